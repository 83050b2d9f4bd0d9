//! The epoll emulation: `epoll_ctl` bookkeeping and its errors (compared
//! with the kernel's for the same call on a kernel socket), interest masks,
//! level-triggered, `EPOLLET` and `EPOLLONESHOT` reporting on unconnected and
//! connected offloaded sockets, fds and epoll fds closed while registered,
//! `epoll_wait` mixing offloaded and kernel members, sleeping until the DPU
//! posts, timeouts, and stale members after fork.
//!
//! Connected sockets come from a real `toe::Toe` whose DPU side the test
//! drives by hand (`test_support::Dpu`). Every test holds `serial()`.

use super::*;
use crate::epoll_set::{epoll_set, Reg};
use crate::state::tests::{atfork, Attached};
use crate::state::{lookup, Sock, State};
use crate::test_support::*;
use std::collections::VecDeque;

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const HUP: u32 = libc::EPOLLHUP as u32;
const RDHUP: u32 = libc::EPOLLRDHUP as u32;
const ET: u32 = libc::EPOLLET as u32;
const ONESHOT: u32 = libc::EPOLLONESHOT as u32;
const ADD: c_int = libc::EPOLL_CTL_ADD;
const MOD: c_int = libc::EPOLL_CTL_MOD;
const DEL: c_int = libc::EPOLL_CTL_DEL;

/// The library's registration of `fd` in `ep`.
fn reg(ep: c_int, fd: c_int) -> Option<Reg> {
    epoll_set(ep)?.regs.lock().map.get(&fd).cloned()
}

/// One evaluation of `ep`'s offloaded members: (events, data).
fn collect(ep: c_int, max: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    epoll_collect(&epoll_set(ep).expect("a set"), &mut out, max);
    out.iter().map(|e| (e.events, e.u64)).collect()
}

fn sorted(mut v: Vec<(u32, u64)>) -> Vec<(u32, u64)> {
    v.sort_by_key(|e| e.1);
    v
}

// ---- epoll_ctl -------------------------------------------------------------

#[test]
fn epoll_ctl_add_mod_del_keep_one_registration_per_fd() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    assert!(reg(ep, fd).is_none());
    assert_eq!(epoll_ctl(ep, ADD, fd, Some((IN, 7))), Ok(0));
    let r = reg(ep, fd).unwrap();
    assert_eq!((r.events, r.data, r.disabled), (IN, 7, false));
    assert_eq!(
        collect(ep, 8),
        vec![(HUP, 7)],
        "an unconnected socket reports HUP"
    );
    assert_eq!(
        reg(ep, fd).unwrap().prev,
        HUP,
        "bits seen are kept for edges"
    );
    assert_eq!(epoll_ctl(ep, MOD, fd, Some((OUT | ET, 8))), Ok(0));
    let r = reg(ep, fd).unwrap();
    assert_eq!(
        (r.events, r.data, r.prev, r.rx_mark, r.tx_mark, r.disabled),
        (OUT | ET, 8, 0, 0, 0, false),
        "MOD replaces the interest and the data and forgets the last state"
    );
    assert_eq!(epoll_ctl(ep, DEL, fd, None), Ok(0));
    assert!(reg(ep, fd).is_none());
    // SAFETY: a DEL with a dummy event on our own fds.
    let kernel = unsafe {
        let mut e = libc::epoll_event { events: 0, u64: 0 };
        crate::real::epoll_ctl(ep, DEL, fd, &mut e)
    };
    assert_eq!(
        (kernel, errno()),
        (-1, libc::ENOENT),
        "the offloaded fd never reached the kernel's set"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn epoll_ctl_errors_are_the_kernels() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    let k = kernel_socket(); // the same calls on a kernel fd, for reference
    let (pr, pw) = pipe();
    let closed = {
        let x = kernel_socket();
        real_close(x);
        x
    };
    let ev = Some((IN, 1));
    for (what, target) in [("offloaded", fd), ("kernel", k)] {
        let e = |r: Result<c_int, c_int>| r.err();
        assert_eq!(
            e(epoll_ctl(ep, MOD, target, ev)),
            Some(libc::ENOENT),
            "{what}: MOD before ADD"
        );
        assert_eq!(
            e(epoll_ctl(ep, DEL, target, None)),
            Some(libc::ENOENT),
            "{what}: DEL before ADD"
        );
        assert_eq!(
            e(epoll_ctl(ep, ADD, target, None)),
            Some(libc::EFAULT),
            "{what}: ADD without event"
        );
        assert_eq!(e(epoll_ctl(ep, ADD, target, ev)), None, "{what}: ADD");
        assert_eq!(
            e(epoll_ctl(ep, ADD, target, ev)),
            Some(libc::EEXIST),
            "{what}: ADD twice"
        );
        assert_eq!(
            e(epoll_ctl(ep, MOD, target, None)),
            Some(libc::EFAULT),
            "{what}: MOD without event"
        );
        assert_eq!(
            e(epoll_ctl(ep, 99, target, ev)),
            Some(libc::EINVAL),
            "{what}: unknown op"
        );
        assert_eq!(
            e(epoll_ctl(pr, ADD, target, ev)),
            Some(libc::EINVAL),
            "{what}: epfd is a pipe"
        );
        assert_eq!(
            e(epoll_ctl(closed, ADD, target, ev)),
            Some(libc::EBADF),
            "{what}: epfd closed"
        );
        assert_eq!(
            e(epoll_ctl(ep, DEL, target, None)),
            None,
            "{what}: DEL without event"
        );
    }
    let ep2 = kernel_epoll();
    assert_eq!(epoll_ctl(fd, ADD, fd, ev), Err(libc::EINVAL), "epfd == fd");
    assert_eq!(
        epoll_ctl(ep2, ADD, ep2, ev),
        Err(libc::EINVAL),
        "(the kernel's rule)"
    );
    for x in [fd, k, pr, pw, ep, ep2] {
        close(x).unwrap();
    }
}

#[test]
fn kernel_fds_stay_in_the_kernels_set() {
    let _g = serial();
    let ep = kernel_epoll();
    let (r, w) = pipe();
    epoll_ctl(ep, ADD, r, Some((IN, 3))).unwrap();
    assert!(reg(ep, r).is_none(), "the library keeps no registration");
    assert_eq!(epoll_wait(ep, 4, 0), Ok(vec![]));
    write(w, b"x").unwrap();
    assert_eq!(epoll_wait(ep, 4, 0), Ok(vec![(IN, 3)]));
    for x in [r, w, ep] {
        close(x).unwrap();
    }
}

// ---- reporting on an unconnected socket (POLLOUT|POLLHUP, like Linux) -----

#[test]
fn level_triggered_reports_at_every_wait() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((OUT, 5))).unwrap();
    for _ in 0..3 {
        assert_eq!(collect(ep, 8), vec![(OUT | HUP, 5)]);
    }
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn interest_masks_filter_but_hup_is_always_reported() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((IN, 1))).unwrap();
    for (events, want) in [
        (IN, HUP),
        (OUT, OUT | HUP),
        (IN | OUT | RDHUP, OUT | HUP),
        (RDHUP, HUP),
        (0, HUP),
    ] {
        epoll_ctl(ep, MOD, fd, Some((events, 1))).unwrap();
        assert_eq!(collect(ep, 8), vec![(want, 1)], "interest {events:#x}");
    }
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn edge_triggered_reports_a_state_once() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((OUT | ET, 2))).unwrap();
    assert_eq!(collect(ep, 8), vec![(OUT | HUP, 2)]);
    assert_eq!(collect(ep, 8), vec![], "nothing changed");
    assert_eq!(collect(ep, 8), vec![]);
    epoll_ctl(ep, MOD, fd, Some((OUT | ET, 2))).unwrap();
    assert_eq!(
        collect(ep, 8),
        vec![(OUT | HUP, 2)],
        "MOD re-arms, as in the kernel"
    );
    assert_eq!(collect(ep, 8), vec![]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn oneshot_reports_once_until_mod() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((OUT | ONESHOT, 4))).unwrap();
    assert_eq!(collect(ep, 8), vec![(OUT | HUP, 4)]);
    assert!(reg(ep, fd).unwrap().disabled);
    assert_eq!(collect(ep, 8), vec![], "disabled, though still ready");
    assert_eq!(
        epoll_ctl(ep, ADD, fd, Some((OUT, 4))),
        Err(libc::EEXIST),
        "still registered"
    );
    epoll_ctl(ep, MOD, fd, Some((OUT | ONESHOT, 6))).unwrap();
    assert_eq!(collect(ep, 8), vec![(OUT | HUP, 6)]);
    assert_eq!(collect(ep, 8), vec![]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn at_most_max_events_are_returned() {
    let _g = serial();
    let ep = kernel_epoll();
    let socks: Vec<_> = (0..3).map(|_| offloaded()).collect();
    for (i, (fd, _)) in socks.iter().enumerate() {
        epoll_ctl(ep, ADD, *fd, Some((OUT, i as u64))).unwrap();
    }
    assert_eq!(
        sorted(collect(ep, 8)),
        vec![(OUT | HUP, 0), (OUT | HUP, 1), (OUT | HUP, 2)]
    );
    for max in [1, 2, 3] {
        let got = collect(ep, max);
        assert_eq!(got.len(), max);
        let mut data: Vec<u64> = got.iter().map(|e| e.1).collect();
        data.dedup();
        assert_eq!(data.len(), max, "each member at most once");
    }
    assert_eq!(epoll_wait(ep, 2, 0).unwrap().len(), 2);
    for (fd, _) in socks {
        close(fd).unwrap();
    }
    close(ep).unwrap();
}

// ---- registrations of closed fds and epoll fds -----------------------------

#[test]
fn closing_a_registered_fd_drops_it_from_every_set() {
    let _g = serial();
    let (ep1, ep2) = (kernel_epoll(), kernel_epoll());
    let (fd, _s) = offloaded();
    let d = dup(fd).unwrap();
    epoll_ctl(ep1, ADD, fd, Some((OUT, 1))).unwrap();
    epoll_ctl(ep2, ADD, fd, Some((OUT, 1))).unwrap();
    epoll_ctl(ep1, ADD, d, Some((OUT, 2))).unwrap();
    close(fd).unwrap();
    assert!(reg(ep1, fd).is_none() && reg(ep2, fd).is_none());
    assert!(
        reg(ep1, d).is_some(),
        "the registration of another fd of the same socket stays"
    );
    assert_eq!(collect(ep1, 8), vec![(OUT | HUP, 2)]);
    assert_eq!(collect(ep2, 8), vec![]);
    assert_eq!(
        epoll_ctl(ep2, DEL, fd, None),
        Err(libc::EBADF),
        "fd is closed"
    );
    for x in [d, ep1, ep2] {
        close(x).unwrap();
    }
}

#[test]
fn a_registration_whose_fd_vanished_is_dropped_at_the_next_wait() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((OUT, 1))).unwrap();
    let gone = kernel_socket();
    real_close(gone);
    let mut r = Reg::new(OUT, 2);
    r.queued = true;
    let set = epoll_set(ep).unwrap();
    let mut m = set.regs.lock();
    m.map.insert(gone, r);
    m.check.push(gone);
    drop(m);
    assert_eq!(collect(ep, 8), vec![(OUT | HUP, 1)]);
    assert!(reg(ep, gone).is_none());
    assert!(reg(ep, fd).is_some());
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn closing_the_epoll_fd_forgets_its_set() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((OUT, 1))).unwrap();
    close(ep).unwrap();
    assert!(epoll_set(ep).is_none());
    let again = kernel_epoll();
    assert_eq!(again, ep, "the number is reused");
    assert!(epoll_set(again).is_none(), "a new epoll fd starts empty");
    assert_eq!(
        epoll_ctl(again, ADD, fd, Some((OUT, 9))),
        Ok(0),
        "not EEXIST"
    );
    assert!(maps_to(fd, &s) && is_open(fd), "the member is untouched");
    // Replaced by dup2: the same.
    let (r, w) = pipe();
    dup2(r, again).unwrap();
    assert!(epoll_set(again).is_none());
    for x in [fd, again, r, w] {
        close(x).unwrap();
    }
}

// ---- epoll_wait ------------------------------------------------------------

#[test]
fn epoll_wait_checks_its_arguments() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    epoll_ctl(ep, ADD, fd, Some((OUT, 1))).unwrap();
    assert_eq!(epoll_wait(ep, 0, 0), Err(libc::EINVAL), "maxevents 0");
    let set = epoll_set(ep).unwrap();
    assert_eq!(
        epoll_core(ep, &set, std::ptr::null_mut(), 4, None, std::ptr::null()),
        Err(libc::EINVAL),
        "no array"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}

/// With an offloaded member ready, a wait asks the kernel on one call in
/// `KERNEL_CHECK_EVERY`: the kernel's ready member (here (IN, 2)) must show
/// within that many calls, with the offloaded one on every call. Returns
/// the call that showed both.
fn kernel_shows_within_a_few_calls(ep: c_int) -> Vec<(u32, u64)> {
    for _ in 0..super::KERNEL_CHECK_EVERY {
        let got = epoll_wait(ep, 8, 0).unwrap();
        assert_eq!(got.first(), Some(&(OUT | HUP, 1)), "{got:?}");
        if got.len() > 1 {
            return got;
        }
    }
    panic!(
        "a ready kernel member was not reported within {} calls",
        super::KERNEL_CHECK_EVERY
    );
}

#[test]
fn epoll_wait_reports_offloaded_members_then_kernel_ones() {
    let _g = serial();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    let (r, w) = pipe();
    epoll_ctl(ep, ADD, fd, Some((OUT, 1))).unwrap();
    epoll_ctl(ep, ADD, r, Some((IN, 2))).unwrap();
    assert_eq!(epoll_wait(ep, 8, 0), Ok(vec![(OUT | HUP, 1)]));
    write(w, b"x").unwrap();
    assert_eq!(
        kernel_shows_within_a_few_calls(ep),
        vec![(OUT | HUP, 1), (IN, 2)]
    );
    assert_eq!(epoll_wait(ep, 1, 0), Ok(vec![(OUT | HUP, 1)]), "max 1");
    epoll_ctl(ep, DEL, fd, None).unwrap();
    assert_eq!(
        epoll_wait(ep, 8, 0),
        Ok(vec![(IN, 2)]),
        "kernel members alone"
    );
    for x in [fd, r, w, ep] {
        close(x).unwrap();
    }
}

// ---- connected sockets -------------------------------------------------------

#[test]
fn edge_triggered_in_fires_on_new_data_not_after_a_partial_read() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let (fd, _s, mut c) = connected(&toe, &mut dpu);
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((IN | ET, 1))).unwrap();
    assert_eq!(collect(ep, 8), vec![], "nothing to read yet");
    dpu.deliver(&mut c, b"hello");
    assert_eq!(collect(ep, 8), vec![(IN, 1)]);
    assert_eq!(collect(ep, 8), vec![], "reported once");
    dpu.deliver(&mut c, b"world");
    assert_eq!(
        collect(ep, 8),
        vec![(IN, 1)],
        "more data: again, though IN was set"
    );
    assert_eq!(read(fd, 3).unwrap(), b"hel");
    assert_eq!(
        collect(ep, 8),
        vec![],
        "a partial read without new data: nothing"
    );
    assert_eq!(read(fd, 64).unwrap(), b"loworld");
    assert_eq!(collect(ep, 8), vec![]);
    dpu.deliver(&mut c, b"!");
    assert_eq!(collect(ep, 8), vec![(IN, 1)]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn level_triggered_in_fires_until_the_data_is_read() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let (fd, _s, mut c) = connected(&toe, &mut dpu);
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((IN, 1))).unwrap();
    assert_eq!(collect(ep, 8), vec![]);
    dpu.deliver(&mut c, b"abc");
    assert_eq!(collect(ep, 8), vec![(IN, 1)]);
    assert_eq!(collect(ep, 8), vec![(IN, 1)]);
    assert_eq!(read(fd, 2).unwrap(), b"ab");
    assert_eq!(collect(ep, 8), vec![(IN, 1)], "one byte left");
    assert_eq!(read(fd, 2).unwrap(), b"c");
    assert_eq!(collect(ep, 8), vec![]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn edge_triggered_out_fires_when_tx_space_is_freed() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let (fd, _s, c) = connected(&toe, &mut dpu);
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((OUT | ET, 1))).unwrap();
    assert_eq!(collect(ep, 8), vec![(OUT, 1)]);
    assert_eq!(write(fd, b"abc"), Ok(3));
    assert_eq!(collect(ep, 8), vec![], "writing uses space, frees none");
    let push = dpu.next_request();
    assert_eq!((push.op, push.a), (doca_bindings::abi::OP_TX_PUSH, 3));
    dpu.ack(&c, 3);
    assert_eq!(
        collect(ep, 8),
        vec![(OUT, 1)],
        "acknowledged bytes free space"
    );
    assert_eq!(collect(ep, 8), vec![]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn rdhup_is_reported_only_when_asked() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let (fd, _s, c) = connected(&toe, &mut dpu);
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((IN, 1))).unwrap();
    dpu.fin(&c);
    assert_eq!(collect(ep, 8), vec![(IN, 1)], "EOF is readable");
    epoll_ctl(ep, MOD, fd, Some((IN | RDHUP, 1))).unwrap();
    assert_eq!(collect(ep, 8), vec![(IN | RDHUP, 1)]);
    epoll_ctl(ep, MOD, fd, Some((RDHUP, 1))).unwrap();
    assert_eq!(collect(ep, 8), vec![(RDHUP, 1)]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn oneshot_stays_silent_through_new_data_until_mod() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let (fd, _s, mut c) = connected(&toe, &mut dpu);
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((IN | ONESHOT, 1))).unwrap();
    dpu.deliver(&mut c, b"one");
    assert_eq!(collect(ep, 8), vec![(IN, 1)]);
    dpu.deliver(&mut c, b"two");
    assert_eq!(collect(ep, 8), vec![]);
    epoll_ctl(ep, MOD, fd, Some((IN | ONESHOT, 2))).unwrap();
    assert_eq!(
        collect(ep, 8),
        vec![(IN, 2)],
        "the data still there is reported"
    );
    assert_eq!(collect(ep, 8), vec![]);
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn epoll_wait_sleeps_until_the_dpu_posts() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let (fd, _s, mut c) = connected(&toe, &mut dpu);
    let _a = Attached::ready(toe.clone());
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((IN, 1))).unwrap();
    let t = Instant::now();
    let got = std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            dpu.deliver(&mut c, b"late");
        });
        epoll_wait(ep, 4, 10_000)
    });
    assert_eq!(got, Ok(vec![(IN, 1)]));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(90), "it slept ({waited:?})");
    assert!(
        waited < Duration::from_secs(5),
        "and woke for the event ({waited:?})"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}

/// An epoll pass polls each context once, for the first member that reads
/// its state. A member evaluated without a poll (here a listener with a
/// connection already accepted ahead) must not count as that poll: a
/// stream after it on the same context would read stale state and miss
/// its data. Each round is a new set, so a new iteration order.
#[test]
fn members_after_one_that_needs_no_poll_still_see_fresh_events() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let l = dpu.listen(&toe, 8081);
    let (ahead, _) = dpu.connect(&toe, true);
    let lfd = kernel_socket();
    let ls = Sock::new(
        State::Listening {
            l,
            pending: VecDeque::from([ahead]),
            seen: 0,
        },
        true,
    );
    crate::state::insert(lfd, ls);
    let (fd, _s, mut c) = connected(&toe, &mut dpu);
    for round in 0..12 {
        let ep = kernel_epoll();
        epoll_ctl(ep, ADD, lfd, Some((IN, 2))).unwrap();
        epoll_ctl(ep, ADD, fd, Some((IN, 1))).unwrap();
        assert_eq!(collect(ep, 8), vec![(IN, 2)], "round {round}: the listener");
        dpu.deliver(&mut c, b"x");
        assert_eq!(
            sorted(collect(ep, 8)),
            vec![(IN, 1), (IN, 2)],
            "round {round}: the stream's data"
        );
        assert_eq!(read(fd, 8).unwrap(), b"x");
        close(ep).unwrap();
    }
    close(fd).unwrap();
    close(lfd).unwrap();
}

/// `n` established streams in a new epoll set, each registered for IN
/// with its index as data.
fn registered_members(
    toe: &Arc<Toe>,
    dpu: &mut Dpu,
    n: usize,
) -> (c_int, Vec<(c_int, Arc<Sock>, Conn)>) {
    let members: Vec<_> = (0..n)
        .map(|_| {
            let m = connected(toe, dpu);
            // The test layout's event ring holds 64: take them as we go.
            toe.poll().unwrap();
            m
        })
        .collect();
    let ep = kernel_epoll();
    for (i, (fd, _, _)) in members.iter().enumerate() {
        epoll_ctl(ep, ADD, *fd, Some((IN, i as u64))).unwrap();
    }
    (ep, members)
}

/// Closes what [`registered_members`] made.
fn close_members(ep: c_int, members: Vec<(c_int, Arc<Sock>, Conn)>) {
    for (fd, _, _) in members {
        close(fd).unwrap();
    }
    close(ep).unwrap();
}

/// An epoll pass evaluates only the members something happened to: an
/// event for their connection, or a call of the application on them.
/// Level-triggered members stay reported from what was seen; the rest cost
/// no lock of their socket or context.
#[test]
fn a_pass_evaluates_only_members_with_news() {
    use crate::state::EVALUATIONS;
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let (ep, mut members) = registered_members(&toe, &mut dpu, 16);
    let evals = || EVALUATIONS.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(collect(ep, 64), vec![]);
    let e0 = evals();
    assert_eq!(collect(ep, 64), vec![], "nothing happened");
    assert_eq!(evals(), e0, "so nothing was evaluated again");
    let (fd3, _, c3) = &mut members[3];
    let fd3 = *fd3;
    dpu.deliver(c3, b"abc");
    assert_eq!(collect(ep, 64), vec![(IN, 3)]);
    assert_eq!(evals(), e0 + 1, "data for one member: one evaluation");
    assert_eq!(
        collect(ep, 64),
        vec![(IN, 3)],
        "level-triggered, still there"
    );
    assert_eq!(evals(), e0 + 1);
    assert_eq!(read(fd3, 2).unwrap(), b"ab");
    assert_eq!(collect(ep, 64), vec![(IN, 3)], "one byte left");
    assert_eq!(evals(), e0 + 2, "the application's read: one evaluation");
    assert_eq!(read(fd3, 2).unwrap(), b"c");
    assert_eq!(collect(ep, 64), vec![]);
    let (_, _, c9) = &mut members[9];
    dpu.fin(c9);
    assert_eq!(collect(ep, 64), vec![(IN, 9)], "a FIN is news too");
    crate::state::SERVICE_LOST.store(true, std::sync::atomic::Ordering::Relaxed);
    let lost = collect(ep, 64);
    crate::state::SERVICE_LOST.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        lost.len(),
        16,
        "the service gone: every member evaluated: {lost:?}"
    );
    close_members(ep, members);
}

/// An epoll pass over N established members with no news: the ready list
/// (visits none of them), against a pass over every member reusing their
/// last evaluations (before the ready list), and against evaluating every
/// member (before `Seen`). Checks the visit and evaluation counts, and
/// prints the cost per pass (`cargo test --release -p toe-preload --lib --
/// --nocapture pass_cost`; a measurement, not a check: timing is never
/// asserted).
#[test]
fn pass_cost_over_idle_members() {
    use crate::state::EVALUATIONS;
    use crate::wait::VISITS;
    use std::sync::atomic::Ordering::Relaxed;
    let evals = || EVALUATIONS.load(Relaxed);
    let visits = || VISITS.load(Relaxed);
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    for n in [16usize, 128, 512] {
        let (ep, members) = registered_members(&toe, &mut dpu, n);
        let set = epoll_set(ep).unwrap();
        let rounds = 2000;
        let mut per_pass = [0.0f64; 3];
        let mut out = Vec::new();
        epoll_collect(&set, &mut out, 64);
        for (k, mode) in ["ready list", "every member", "evaluating all"]
            .into_iter()
            .enumerate()
        {
            set.untracked.store(k > 0, Relaxed);
            let (e0, v0) = (evals(), visits());
            let t = Instant::now();
            for _ in 0..rounds {
                if k == 2 {
                    for r in set.regs.lock().map.values_mut() {
                        r.seen = None;
                    }
                }
                out.clear();
                epoll_collect(&set, &mut out, 64);
            }
            per_pass[k] = t.elapsed().as_secs_f64() / rounds as f64 * 1e9;
            let (expect_evals, expect_visits) = match k {
                0 => (0, 0),
                1 => (0, n * rounds),
                _ => (n * rounds, n * rounds),
            };
            assert_eq!(evals() - e0, expect_evals as u64, "{n} members, {mode}");
            assert_eq!(visits() - v0, expect_visits as u64, "{n} members, {mode}");
            assert!(out.is_empty());
        }
        set.untracked.store(false, Relaxed);
        println!(
            "pass over {n} idle members: ready list {:.0} ns, every member reusing evaluations {:.0} ns, evaluating all {:.0} ns",
            per_pass[0], per_pass[1], per_pass[2],
        );
        close_members(ep, members);
        // The closes' requests, before the next round's connects (more
        // than the ring holds: the rest wait in the library's outbox).
        while !dpu.take_requests().is_empty() {
            toe.poll().unwrap();
        }
    }
}

/// The ready list: among many idle members, a pass visits the ones with
/// news only (an event, or the application's call), level-triggered ones
/// again while they stay ready, edge-triggered ones once.
#[test]
fn a_pass_visits_only_members_with_news() {
    use crate::wait::VISITS;
    use std::sync::atomic::Ordering::Relaxed;
    let visits = || VISITS.load(Relaxed);
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let (ep, mut members) = registered_members(&toe, &mut dpu, 200);
    // Member 8 edge-triggered (the test DPU's 4 buffer slots: not 3's).
    let fd8 = members[8].0;
    epoll_ctl(ep, MOD, fd8, Some((IN | ET, 8))).unwrap();
    assert_eq!(collect(ep, 64), vec![]);
    let v0 = visits();
    assert_eq!(collect(ep, 64), vec![]);
    assert_eq!(visits(), v0, "200 idle members: none visited");
    dpu.deliver(&mut members[3].2, b"abc");
    dpu.deliver(&mut members[8].2, b"xyz");
    assert_eq!(sorted(collect(ep, 64)), vec![(IN, 3), (IN, 8)]);
    assert_eq!(visits(), v0 + 2, "the two with data");
    assert_eq!(collect(ep, 64), vec![(IN, 3)], "level-triggered: again");
    assert_eq!(visits(), v0 + 3, "only the level-triggered one, again");
    assert_eq!(read(members[3].0, 8).unwrap(), b"abc");
    assert_eq!(collect(ep, 64), vec![], "read out");
    assert_eq!(visits(), v0 + 4);
    assert_eq!(collect(ep, 64), vec![]);
    assert_eq!(visits(), v0 + 4, "and then not at all");
    // More data for the edge-triggered one: a new edge.
    dpu.deliver(&mut members[8].2, b"!");
    assert_eq!(collect(ep, 64), vec![(IN, 8)]);
    assert_eq!(visits(), v0 + 5);
    // A call on an idle member is news (its readiness may have changed).
    getpeername(members[100].0).unwrap();
    assert_eq!(collect(ep, 64), vec![]);
    assert_eq!(visits(), v0 + 6, "the member the application called");
    close_members(ep, members);
}

/// A member deleted and added again while queued is reported once.
#[test]
fn a_member_added_again_is_reported_once() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let (ep, mut members) = registered_members(&toe, &mut dpu, 3);
    assert_eq!(collect(ep, 64), vec![]);
    dpu.deliver(&mut members[1].2, b"abc");
    assert_eq!(collect(ep, 64), vec![(IN, 1)]);
    // Queued (level-triggered and ready): out and in again.
    epoll_ctl(ep, DEL, members[1].0, None).unwrap();
    epoll_ctl(ep, ADD, members[1].0, Some((IN, 1))).unwrap();
    assert_eq!(collect(ep, 64), vec![(IN, 1)], "once");
    close_members(ep, members);
}

/// A pass that looks at a member while a call on it is under way does not
/// keep what it saw: the call's end is news too.
#[test]
fn a_call_is_news_again_when_it_ends() {
    use std::io::Read;
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let (ep, mut members) = registered_members(&toe, &mut dpu, 2);
    let fd = members[1].0;
    dpu.deliver(&mut members[1].2, b"abc");
    assert_eq!(collect(ep, 64), vec![(IN, 1)]);
    // A call starts; a pass (another thread's) looks meanwhile.
    let call = lookup(fd).unwrap();
    assert_eq!(collect(ep, 64), vec![(IN, 1)]);
    // The call's effect: the data consumed (no event comes of it).
    let stream = call.stream().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!((&*stream).read(&mut buf).unwrap(), 3);
    drop(call);
    assert_eq!(collect(ep, 64), vec![], "read out: not ready any more");
    close_members(ep, members);
}

/// `maxevents` cuts a pass short: the members not reached are visited
/// first next time, so every ready member gets reported.
#[test]
fn a_short_pass_leaves_the_rest_for_the_next() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let (ep, mut members) = registered_members(&toe, &mut dpu, 10);
    for (i, m) in members.iter_mut().enumerate() {
        epoll_ctl(ep, MOD, m.0, Some((IN | ET, i as u64))).unwrap();
    }
    assert_eq!(collect(ep, 64), vec![]);
    for m in members.iter_mut() {
        dpu.deliver(&mut m.2, b"a");
    }
    let mut got: Vec<u64> = Vec::new();
    for _ in 0..4 {
        got.extend(collect(ep, 3).into_iter().map(|e| e.1));
    }
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<u64>>(), "each edge once");
    close_members(ep, members);
}

#[test]
fn epoll_wait_times_out_on_members_that_never_become_ready() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let l = dpu.listen(&toe, 8080);
    let _a = Attached::ready(toe.clone());
    let fd = kernel_socket();
    let s = Sock::new(
        State::Listening {
            l,
            pending: VecDeque::new(),
            seen: 0,
        },
        true,
    );
    crate::state::insert(fd, s);
    let ep = kernel_epoll();
    epoll_ctl(ep, ADD, fd, Some((IN, 1))).unwrap();
    assert_eq!(epoll_wait(ep, 4, 0), Ok(vec![]), "no connection to accept");
    let t = Instant::now();
    assert_eq!(epoll_wait(ep, 4, 150), Ok(vec![]));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}

#[test]
fn after_fork_stale_members_are_never_reported_and_the_timeout_holds() {
    let _g = serial();
    atfork();
    let ep = kernel_epoll();
    let (fd, _s) = offloaded();
    let (r, w) = pipe();
    epoll_ctl(ep, ADD, fd, Some((OUT, 1))).unwrap();
    epoll_ctl(ep, ADD, r, Some((IN, 2))).unwrap();
    assert_eq!(
        epoll_wait(ep, 4, 0),
        Ok(vec![(OUT | HUP, 1)]),
        "in the parent"
    );
    let res = in_child(|| {
        check(lookup(fd).is_some_and(|s| s.stale()), "inherited, stale")?;
        check(
            epoll_set(ep).is_none(),
            "the child forgot the parent's registrations",
        )?;
        check(
            epoll_wait(ep, 4, 0) == Ok(vec![]),
            "a stale member is never reported",
        )?;
        check(
            epoll_ctl(ep, MOD, fd, Some((OUT, 1))) == Err(libc::EBADF),
            "nor can it be registered again",
        )?;
        let t = Instant::now();
        let got = epoll_wait(ep, 4, 200);
        let waited = t.elapsed();
        check(got == Ok(vec![]), format!("nothing ready: {got:?}"))?;
        check(
            waited >= Duration::from_millis(190),
            format!("the 200 ms timeout is honoured, returned after {waited:?}"),
        )?;
        write(w, b"x").map_err(|e| e.to_string())?;
        let got = epoll_wait(ep, 4, 10_000);
        check(
            got == Ok(vec![(IN, 2)]),
            format!("kernel members still are: {got:?}"),
        )
    });
    res.unwrap();
    assert_eq!(
        kernel_shows_within_a_few_calls(ep),
        vec![(OUT | HUP, 1), (IN, 2)],
        "the parent's set is intact"
    );
    for x in [fd, r, w, ep] {
        close(x).unwrap();
    }
}
