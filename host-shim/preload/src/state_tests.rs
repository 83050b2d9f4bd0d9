//! The fd table (insert, lookup, remove; what close, dup, dup2, dup3,
//! F_DUPFD, F_SETFL and FIONBIO do to it), the offload decision of
//! `socket()`, and fork handling (what the child sees, the locks, a fresh
//! attachment in the child, the parent's rings left alone).
//!
//! The interposed functions are the process's own `close`, `dup`, ... in
//! this test binary; placeholder fds are real kernel sockets, so fd numbers
//! behave as in a preloaded program. Every test holds `serial()`.

use super::*;
use crate::epoll_set::epoll_set;
use crate::test_support::*;
use std::time::{Duration, Instant};

/// Sets the process's attachment for the duration of a test (then back to
/// "not tried yet", which no other test triggers).
pub(crate) struct Attached;

impl Attached {
    fn set(a: Attach) -> Attached {
        let mut t = relock(TOE.lock());
        t.epoch = EPOCH.load(Ordering::SeqCst);
        t.attach = a;
        Attached
    }

    pub(crate) fn ready(toe: Arc<Toe>) -> Attached {
        Attached::set(Attach::Ready(toe))
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        relock(TOE.lock()).attach = Attach::Untried;
    }
}

/// Installs the fork handlers (as the first `socket()` does).
pub(crate) fn atfork() {
    install_atfork();
}

fn strong(s: &Arc<Sock>) -> usize {
    Arc::strong_count(s)
}

// ---- the table -----------------------------------------------------------

#[test]
fn lookup_and_remove_of_negative_or_unknown_fds_find_nothing() {
    let _g = serial();
    let (fd, s) = offloaded(); // the table is in use
    for bad in [-1, c_int::MIN, fd + 1, 19_999, c_int::MAX] {
        assert!(lookup(bad).is_none(), "lookup({bad})");
        assert!(remove(bad).is_none(), "remove({bad})");
    }
    assert!(maps_to(fd, &s), "the other entry is untouched");
    close(fd).unwrap();
}

#[test]
fn insert_lookup_remove_round_trip() {
    let _g = serial();
    let (fd, s) = offloaded();
    assert!(maps_to(fd, &s));
    assert_eq!(strong(&s), 2, "the table holds one reference");
    let got = remove(fd).expect("the entry");
    assert!(Arc::ptr_eq(&got, &s));
    drop(got);
    assert!(lookup(fd).is_none());
    assert!(remove(fd).is_none(), "a second remove finds nothing");
    assert_eq!(strong(&s), 1);
    assert!(
        is_open(fd),
        "remove only forgets the fd, it does not close it"
    );
    real_close(fd);
}

#[test]
fn insert_of_a_negative_fd_is_ignored() {
    let _g = serial();
    let s = Sock::new(State::Fresh { bound: None }, false);
    insert(-1, s.clone());
    assert!(lookup(-1).is_none());
    assert_eq!(strong(&s), 1, "nothing was stored");
}

#[test]
fn table_reaches_the_highest_fd_the_process_may_open() {
    let _g = serial();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let top = c_int::try_from(lim.rlim_cur.min(1 << 20)).unwrap() - 1;
    let (low, a) = offloaded();
    let k = kernel_socket();
    let high = real_dupfd(k, top);
    real_close(k);
    assert_eq!(high, top, "fd {top} was free");
    let b = Sock::new(State::Fresh { bound: None }, false);
    insert(high, b.clone());
    assert!(maps_to(high, &b));
    assert!(
        maps_to(low, &a),
        "growing the table keeps the entries below"
    );
    assert!(lookup(high - 1).is_none());
    assert!(lookup(high + 1).is_none(), "past the end of the table");
    close(high).unwrap();
    close(low).unwrap();
    assert!(lookup(high).is_none() && lookup(low).is_none());
}

// ---- close -----------------------------------------------------------------

#[test]
fn close_forgets_the_socket_and_closes_the_placeholder() {
    let _g = serial();
    let (fd, s) = offloaded();
    assert_eq!(close(fd), Ok(0));
    assert!(lookup(fd).is_none());
    assert!(!is_open(fd));
    assert_eq!(strong(&s), 1, "the table's reference was dropped");
}

#[test]
fn close_of_an_fd_that_is_not_open_fails_like_libc() {
    let _g = serial();
    let (fd, s) = offloaded();
    let k = kernel_socket();
    real_close(k); // `k` is now a number nobody has open
    assert_eq!(close(k), Err(libc::EBADF));
    assert!(maps_to(fd, &s), "other entries are untouched");
    let (r, w) = pipe();
    assert_eq!(close(r), Ok(0), "a kernel fd closes as usual");
    assert!(!is_open(r));
    close(w).unwrap();
    close(fd).unwrap();
}

#[test]
fn a_reused_fd_number_belongs_to_the_kernel() {
    let _g = serial();
    let (r, w) = pipe();
    let (fd, _s) = offloaded();
    close(fd).unwrap();
    // The lowest free number at or above `fd` is `fd` itself.
    let again = real_dupfd(r, fd);
    assert_eq!(again, fd);
    assert!(lookup(again).is_none(), "the new fd is not offloaded");
    assert_eq!(write(w, b"kernel"), Ok(6));
    assert_eq!(read(again, 16).unwrap(), b"kernel", "read goes to libc");
    for x in [again, r, w] {
        close(x).unwrap();
    }
}

// ---- dup family ------------------------------------------------------------

#[test]
fn dup_shares_the_socket_until_the_last_fd_closes() {
    let _g = serial();
    let (fd, s) = offloaded();
    let d = dup(fd).unwrap();
    assert_ne!(d, fd);
    assert!(maps_to(d, &s), "like an open file description, shared");
    assert_eq!(strong(&s), 3);
    close(fd).unwrap();
    assert!(lookup(fd).is_none());
    assert!(maps_to(d, &s), "the other fd still refers to it");
    close(d).unwrap();
    assert_eq!(strong(&s), 1);
}

#[test]
fn dup_of_a_kernel_fd_is_not_offloaded() {
    let _g = serial();
    let (r, w) = pipe();
    let d = dup(r).unwrap();
    assert!(lookup(d).is_none());
    for x in [d, r, w] {
        close(x).unwrap();
    }
}

#[test]
fn dup2_onto_an_offloaded_fd_replaces_its_socket_and_registrations() {
    let _g = serial();
    let (a_fd, a) = offloaded();
    let (b_fd, b) = offloaded();
    let ep = kernel_epoll();
    epoll_ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        b_fd,
        Some((libc::EPOLLIN as u32, 9)),
    )
    .unwrap();
    assert_eq!(dup2(a_fd, b_fd), Ok(b_fd));
    assert!(
        maps_to(b_fd, &a),
        "the target now shares the source's socket"
    );
    assert!(maps_to(a_fd, &a));
    assert_eq!(strong(&b), 1, "the target's old socket was released");
    let set = epoll_set(ep).unwrap();
    assert!(
        !set.regs.lock().map.contains_key(&b_fd),
        "the old socket's epoll registration went with it (as the kernel drops a closed file's)"
    );
    for x in [a_fd, b_fd, ep] {
        close(x).unwrap();
    }
}

#[test]
fn dup2_onto_itself_changes_nothing() {
    let _g = serial();
    let (fd, s) = offloaded();
    assert_eq!(dup2(fd, fd), Ok(fd));
    assert!(maps_to(fd, &s));
    assert_eq!(strong(&s), 2);
    close(fd).unwrap();
}

#[test]
fn dup2_from_a_closed_fd_leaves_the_target_alone() {
    let _g = serial();
    let (fd, s) = offloaded();
    let k = kernel_socket();
    real_close(k);
    assert_eq!(dup2(k, fd), Err(libc::EBADF));
    assert!(maps_to(fd, &s));
    assert!(is_open(fd));
    close(fd).unwrap();
}

#[test]
fn dup2_of_a_kernel_fd_onto_an_offloaded_fd_hands_the_number_to_the_kernel() {
    let _g = serial();
    let (fd, s) = offloaded();
    let (r, w) = pipe();
    assert_eq!(dup2(r, fd), Ok(fd));
    assert!(lookup(fd).is_none());
    assert_eq!(strong(&s), 1);
    assert_eq!(write(w, b"x"), Ok(1));
    assert_eq!(read(fd, 4).unwrap(), b"x");
    for x in [fd, r, w] {
        close(x).unwrap();
    }
}

#[test]
fn dup3_shares_the_socket_and_sets_cloexec() {
    let _g = serial();
    let (fd, s) = offloaded();
    let k = kernel_socket();
    assert_eq!(dup3(fd, k, libc::O_CLOEXEC), Ok(k));
    assert!(maps_to(k, &s));
    assert_eq!(fcntl(k, libc::F_GETFD, 0), Ok(libc::FD_CLOEXEC));
    assert_eq!(dup3(fd, fd, 0), Err(libc::EINVAL), "the kernel's rule");
    assert!(maps_to(fd, &s));
    close(k).unwrap();
    close(fd).unwrap();
    assert_eq!(strong(&s), 1);
}

#[test]
fn fcntl_dupfd_shares_and_setfl_mirrors_o_nonblock() {
    let _g = serial();
    let (fd, s) = offloaded();
    let d = fcntl(fd, libc::F_DUPFD, 0).unwrap();
    let dc = fcntl(fd, libc::F_DUPFD_CLOEXEC, 0).unwrap();
    assert!(maps_to(d, &s) && maps_to(dc, &s));
    assert!(!s.nonblock.load(Ordering::Relaxed));
    fcntl(d, libc::F_SETFL, libc::O_NONBLOCK).unwrap();
    assert!(s.nonblock.load(Ordering::Relaxed), "shared by every fd");
    assert_eq!(
        fcntl(fd, libc::F_GETFL, 0).unwrap() & libc::O_NONBLOCK,
        libc::O_NONBLOCK
    );
    fcntl(fd, libc::F_SETFL, 0).unwrap();
    assert!(!s.nonblock.load(Ordering::Relaxed));
    assert_eq!(
        fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC),
        Ok(0),
        "other commands only reach the placeholder"
    );
    assert!(!s.nonblock.load(Ordering::Relaxed));
    for x in [d, dc, fd] {
        close(x).unwrap();
    }
    assert_eq!(strong(&s), 1);
}

#[test]
fn fionbio_mirrors_o_nonblock() {
    let _g = serial();
    let (fd, s) = offloaded();
    let mut on = 1;
    assert_eq!(ioctl_int(fd, libc::FIONBIO, &mut on), Ok(0));
    assert!(s.nonblock.load(Ordering::Relaxed));
    let mut off = 0;
    assert_eq!(ioctl_int(fd, libc::FIONBIO, &mut off), Ok(0));
    assert!(!s.nonblock.load(Ordering::Relaxed));
    let mut n = -1;
    assert_eq!(ioctl_int(fd, libc::FIONREAD, &mut n), Ok(0));
    assert_eq!(n, 0, "an unconnected socket has nothing to read");
    close(fd).unwrap();
}

// ---- socket() ----------------------------------------------------------------

#[test]
fn socket_offloads_only_af_inet_stream_and_follows_the_attachment() {
    let _g = serial();
    let (toe, _dpu) = attach();
    let kernel_only = [
        (libc::AF_UNIX, libc::SOCK_STREAM, 0),
        (libc::AF_INET6, libc::SOCK_STREAM, 0),
        (libc::AF_INET, libc::SOCK_DGRAM, 0),
    ];
    {
        // Not even consulted for other kinds of socket.
        let _a = Attached::set(Attach::Refuse(libc::EPERM));
        for (d, t, p) in kernel_only {
            let fd = socket(d, t, p).unwrap();
            assert!(lookup(fd).is_none(), "({d}, {t}) stays on the kernel");
            close(fd).unwrap();
        }
    }
    {
        let _a = Attached::set(Attach::Kernel);
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        assert!(lookup(fd).is_none(), "fallback: the kernel's socket");
        close(fd).unwrap();
    }
    {
        let _a = Attached::set(Attach::Refuse(libc::ECONNREFUSED));
        let k = kernel_socket();
        real_close(k); // the next number the kernel hands out
        assert_eq!(
            socket(libc::AF_INET, libc::SOCK_STREAM, 0),
            Err(libc::ECONNREFUSED)
        );
        assert!(!is_open(k), "the placeholder was closed, not leaked");
    }
    {
        let _a = Attached::ready(toe.clone());
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        let s = lookup(fd).expect("offloaded");
        assert!(matches!(*s.state.lock(), State::Fresh { bound: None }));
        assert!(!s.nonblock.load(Ordering::Relaxed) && !s.stale());
        let nb = socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
        .unwrap();
        let t = lookup(nb).expect("offloaded");
        assert!(t.nonblock.load(Ordering::Relaxed), "SOCK_NONBLOCK");
        assert_eq!(fcntl(nb, libc::F_GETFD, 0), Ok(libc::FD_CLOEXEC));
        assert_eq!(
            socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_UDP),
            Err(libc::EPROTONOSUPPORT),
            "the kernel's answer, nothing offloaded"
        );
        close(fd).unwrap();
        close(nb).unwrap();
    }
}

// ---- fork ----------------------------------------------------------------

#[test]
fn fork_child_sees_inherited_sockets_as_stale() {
    let _g = serial();
    install_atfork();
    let (fd, s) = offloaded();
    let ep = kernel_epoll();
    let epoch = EPOCH.load(Ordering::SeqCst);
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080);
    let r = in_child(|| {
        check(
            EPOCH.load(Ordering::SeqCst) == epoch + 1,
            "the child has a new epoch",
        )?;
        let x = lookup(fd).ok_or("the inherited fd is still in the table")?;
        check(x.stale(), "the inherited socket is stale")?;
        drop(x);
        check(
            eval(&s).revents == libc::POLLNVAL as u32,
            "it evaluates as POLLNVAL",
        )?;
        let ebadf: Result<c_int, c_int> = Err(libc::EBADF);
        check(bind(fd, any) == ebadf, "bind: EBADF")?;
        check(listen(fd, 1) == ebadf, "listen: EBADF")?;
        check(
            connect(fd, REMOTE.parse().unwrap()) == ebadf,
            "connect: EBADF",
        )?;
        check(accept(fd) == ebadf, "accept: EBADF")?;
        check(shutdown(fd, libc::SHUT_RDWR) == ebadf, "shutdown: EBADF")?;
        check(read(fd, 4) == Err(libc::EBADF), "read: EBADF")?;
        check(write(fd, b"x") == Err(libc::EBADF), "write: EBADF")?;
        check(
            epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, Some((libc::EPOLLIN as u32, 1))) == ebadf,
            "epoll_ctl: EBADF",
        )?;
        check(
            getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) == ebadf,
            "getsockopt: EBADF",
        )?;
        check(
            setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1) == ebadf,
            "setsockopt: EBADF",
        )?;
        let mut n = 0;
        check(
            ioctl_int(fd, libc::FIONREAD, &mut n) == ebadf,
            "ioctl(FIONREAD): EBADF",
        )?;
        check(getsockname(fd) == ebadf, "getsockname: EBADF")?;
        check(getpeername(fd) == ebadf, "getpeername: EBADF")?;
        check(
            poll1(fd, libc::POLLIN, 0) == Ok((1, libc::POLLNVAL)),
            "poll: POLLNVAL",
        )?;
        check(
            !Sock::new(State::Fresh { bound: None }, false).stale(),
            "a socket made in the child is not stale",
        )?;
        check(close(fd) == Ok(0), "close works")?;
        check(lookup(fd).is_none(), "close forgets it")?;
        check(!is_open(fd), "close closes the placeholder")?;
        check(
            Arc::strong_count(&s) == 2,
            "the parent's socket is leaked, never dropped, in the child",
        )
    });
    r.unwrap();
    assert_eq!(
        EPOCH.load(Ordering::SeqCst),
        epoch,
        "the parent keeps its epoch"
    );
    assert!(
        maps_to(fd, &s) && !s.stale(),
        "the parent's table is intact"
    );
    assert!(
        is_open(fd),
        "the child's close did not close the parent's fd"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn fork_child_leaves_the_parents_rings_alone() {
    let _g = serial();
    install_atfork();
    let (toe, mut dpu) = attach();
    let (fd, _s, mut c) = connected(&toe, &mut dpu);
    // An event the parent has not read yet, and no request pending.
    dpu.deliver(&mut c, b"hello");
    assert!(dpu.take_requests().is_empty());
    let tail = dpu.evt_tail();
    let r = in_child(|| {
        let ebadf: Result<c_int, c_int> = Err(libc::EBADF);
        let mut n = 0;
        check(
            ioctl_int(fd, libc::FIONREAD, &mut n) == ebadf,
            "ioctl(FIONREAD): EBADF",
        )?;
        check(
            getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) == ebadf,
            "getsockopt(SO_ERROR): EBADF",
        )?;
        check(getpeername(fd) == ebadf, "getpeername: EBADF")?;
        check(read(fd, 16) == Err(libc::EBADF), "read: EBADF")?;
        check(
            poll1(fd, libc::POLLIN, 0) == Ok((1, libc::POLLNVAL)),
            "poll",
        )?;
        check(
            setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1) == ebadf,
            "setsockopt(TCP_NODELAY): EBADF",
        )?;
        check(close(fd) == Ok(0), "close")
    });
    r.unwrap();
    assert_eq!(
        dpu.evt_tail(),
        tail,
        "the child consumed nothing from the parent's event ring"
    );
    assert!(
        dpu.take_requests().is_empty(),
        "the child posted nothing on the parent's request ring (no OP_SETOPT, no OP_CLOSE)"
    );
    // The parent's connection is intact and gets its event.
    assert_eq!(read(fd, 16).unwrap(), b"hello");
    assert_ne!(dpu.evt_tail(), tail, "(the parent's read does consume it)");
    close(fd).unwrap();
}

#[test]
fn fork_child_attaches_afresh_and_the_parent_keeps_its_attachment() {
    let _g = serial();
    install_atfork();
    let (path, listener) = service_socket();
    let server = std::thread::spawn(move || {
        let parent = serve_registration(&listener, 1);
        let child = serve_registration(&listener, 2);
        (parent, child)
    });
    let toe = Toe::with_options(&path, options()).unwrap();
    let _a = Attached::ready(toe.clone());
    assert!(matches!(decide(), Decision::Offload));
    let p = path.clone();
    let r = in_child(move || {
        check(
            toe_now().is_none(),
            "the parent's attachment is not the child's",
        )?;
        // The child is single-threaded here.
        std::env::set_var(toe::CONTROL_ENV, &p);
        std::env::set_var("FLEXTOE_CONTEXTS", "1");
        check(matches!(decide(), Decision::Offload), "the child registers")?;
        let t = toe_now().ok_or("the child's attachment")?;
        check(
            t.app_id() == 2,
            format!("a new registration, got app {}", t.app_id()),
        )?;
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).map_err(|e| e.to_string())?;
        let s = lookup(fd).ok_or("offloaded in the child")?;
        check(!s.stale(), "on the child's attachment")
    });
    let _ = std::fs::remove_file(&path);
    r.unwrap();
    let (parent, child) = server.join().unwrap();
    assert_eq!((parent.app_id, child.app_id), (1, 2));
    let now = toe_now().expect("the parent's attachment");
    assert!(Arc::ptr_eq(&now, &toe), "unchanged in the parent");
    assert_eq!(now.app_id(), 1);
}

fn toe_now() -> Option<Arc<Toe>> {
    toe()
}

#[test]
fn fork_waits_for_held_locks_and_the_child_gets_them_free() {
    let _g = serial();
    atfork();
    // Several rounds: whether a queued thread would be handed a lock in the
    // child depends on timing (parking_lot's eventual fairness); with the
    // old parking_lot locks about one run in ten failed here.
    for round in 0..4 {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let g = relock(FDS.write());
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(120));
            drop(g);
        });
        held_rx.recv().unwrap();
        // Threads queued on the locks while the process forks: a reader of
        // the fd table (any interposed call, e.g. a write to stdout) and
        // one asking for the attachment.
        let queued: Vec<_> = (0..2)
            .map(|i| {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(40));
                    if i == 0 {
                        let _ = lookup(1);
                    } else {
                        let _ = toe();
                    }
                })
            })
            .collect();
        let t = Instant::now();
        let r = in_child(|| {
            check(FDS.try_write().is_ok(), "the fd table is free in the child")?;
            check(
                EPOLLS.try_write().is_ok(),
                "the epoll table is free in the child",
            )?;
            check(
                TOE.try_lock().is_ok(),
                "the attachment is free in the child",
            )?;
            let (fd, s) = offloaded();
            check(
                close(fd) == Ok(0) && Arc::strong_count(&s) == 1,
                "close works in the child",
            )
        });
        let waited = t.elapsed();
        holder.join().unwrap();
        for q in queued {
            q.join().unwrap();
        }
        r.map_err(|e| format!("round {round}: {e}")).unwrap();
        assert!(
            waited >= Duration::from_millis(80),
            "fork waited for the held lock (waited {waited:?})"
        );
        assert!(FDS.try_write().is_ok(), "and the parent released them");
        assert!(EPOLLS.try_write().is_ok() && TOE.try_lock().is_ok());
    }
}

#[test]
fn fork_child_does_not_wait_for_an_epoll_set_locked_in_the_parent() {
    let _g = serial();
    atfork();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    crate::test_support::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, Some((libc::EPOLLIN as u32, 1)))
        .unwrap();
    let set = epoll_set(ep).unwrap();
    // Another thread is inside epoll_wait (holding the set) when the
    // process forks.
    let (tx, rx) = std::sync::mpsc::channel();
    let busy = std::thread::spawn(move || {
        let g = set.regs.lock();
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(g);
    });
    rx.recv().unwrap();
    let r = in_child(|| {
        check(
            epoll_set(ep).is_none(),
            "the parent's epoll sets are not the child's",
        )?;
        check(close(fd) == Ok(0), "closing an inherited member returns")?;
        check(
            crate::test_support::epoll_wait(ep, 4, 0) == Ok(vec![]),
            "the inherited epoll fd is the kernel's",
        )
    });
    busy.join().unwrap();
    r.unwrap();
    assert!(
        epoll_set(ep).unwrap().regs.lock().map.contains_key(&fd),
        "the parent's set is intact"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}

// ---- TCP_CONGESTION --------------------------------------------------------

/// getsockopt(TCP_CONGESTION) as a program calls it: a 16-byte buffer.
fn congestion(fd: c_int) -> Result<String, c_int> {
    let mut buf = [0xffu8; 16];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: a buffer of `len` bytes and its length.
    let r = unsafe {
        crate::interpose::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(crate::wait::errno());
    }
    assert_eq!(len, 16, "the name NUL-padded to TCP_CA_NAME_MAX");
    let name = buf.split(|&b| b == 0).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(name).into_owned())
}

fn set_congestion(fd: c_int, name: &[u8]) -> Result<c_int, c_int> {
    // SAFETY: the name's bytes and their length.
    let r = unsafe {
        crate::interpose::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(crate::wait::errno())
    } else {
        Ok(r)
    }
}

#[test]
fn tcp_congestion_names_the_engines_controllers() {
    let _g = serial();
    let (fd, s) = offloaded();
    // Not attached yet: the service's default is not known, "reno" stands in.
    assert_eq!(congestion(fd), Ok("reno".into()));
    // Names the engine lacks are ENOENT, as on Linux, even where the
    // kernel has them ("cubic"), and change nothing.
    assert_eq!(set_congestion(fd, b"cubic"), Err(libc::ENOENT));
    assert_eq!(set_congestion(fd, b"bbr\0"), Err(libc::ENOENT));
    assert_eq!(set_congestion(fd, b""), Err(libc::ENOENT));
    // With or without the terminating NUL, as Linux takes it.
    assert_eq!(set_congestion(fd, b"dctcp"), Ok(0));
    assert_eq!(congestion(fd), Ok("dctcp".into()));
    assert_eq!(
        s.cc.load(Ordering::Relaxed),
        toe::cc_from_name(b"dctcp").unwrap()
    );
    assert_eq!(set_congestion(fd, b"reno\0junk"), Ok(0));
    assert_eq!(congestion(fd), Ok("reno".into()));
    close(fd).unwrap();
}
