//! Test support for the unit tests of the fd table, fork handling and the
//! epoll emulation.
//!
//! - [`serial`]: the tables are process-wide (as in a preloaded program),
//!   so every test that touches them, or forks, holds one lock.
//! - Thin wrappers over the interposed C functions (in this test binary they
//!   *are* the process's `close`, `dup`, `epoll_ctl`, ...) returning
//!   `Result<value, errno>`, and over libc's own (`real`) ones.
//! - [`attach`]: a real `toe::Toe` registered with a stand-in service on a
//!   temporary Unix socket, whose DPU side ([`Dpu`]) the test drives by
//!   hand, descriptor by descriptor (no service, no engine).
//! - [`in_child`]: runs checks in a forked child and reports them back.

use std::io::Read;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use doca_bindings::abi::{self, Desc, Layout};
use doca_bindings::control::{self, ControlReply, ControlRequest, RegisterReply};
use doca_bindings::{Doorbell, Region, RingConsumer, RingProducer};
use libc::{c_int, epoll_event};
use toe::{TcpListener, TcpStream, Toe, ToeOptions};

use crate::interpose;
use crate::real;
use crate::state::{self, Sock, State};
use crate::wait::errno;

/// Every test touching the process-wide tables holds this.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- C calls -------------------------------------------------------------

fn res(r: c_int) -> Result<c_int, c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

fn res_size(r: libc::ssize_t) -> Result<usize, c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as usize)
    }
}

pub(crate) fn close(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: closing an fd number has no memory-safety precondition.
    res(unsafe { interpose::close(fd) })
}

pub(crate) fn dup(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: no pointers.
    res(unsafe { interpose::dup(fd) })
}

pub(crate) fn dup2(old: c_int, new: c_int) -> Result<c_int, c_int> {
    // SAFETY: no pointers.
    res(unsafe { interpose::dup2(old, new) })
}

pub(crate) fn dup3(old: c_int, new: c_int, flags: c_int) -> Result<c_int, c_int> {
    // SAFETY: no pointers.
    res(unsafe { interpose::dup3(old, new, flags) })
}

/// `fcntl` with an integer argument.
pub(crate) fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> Result<c_int, c_int> {
    // SAFETY: the commands used by the tests take an integer argument.
    res(unsafe { interpose::fcntl(fd, cmd, arg as libc::c_ulong) })
}

/// `ioctl` with a pointer to an int.
pub(crate) fn ioctl_int(fd: c_int, req: libc::c_ulong, v: &mut c_int) -> Result<c_int, c_int> {
    // SAFETY: `v` is a valid int for requests taking an `int *`.
    res(unsafe { interpose::ioctl(fd, req, (v as *mut c_int).cast()) })
}

pub(crate) fn socket(domain: c_int, ty: c_int, proto: c_int) -> Result<c_int, c_int> {
    // SAFETY: no pointers.
    res(unsafe { interpose::socket(domain, ty, proto) })
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SIN_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

pub(crate) fn bind(fd: c_int, a: SocketAddrV4) -> Result<c_int, c_int> {
    let sin = sockaddr(a);
    // SAFETY: `sin` is a sockaddr_in of SIN_LEN bytes.
    res(unsafe { interpose::bind(fd, (&sin as *const libc::sockaddr_in).cast(), SIN_LEN) })
}

pub(crate) fn connect(fd: c_int, a: SocketAddrV4) -> Result<c_int, c_int> {
    let sin = sockaddr(a);
    // SAFETY: `sin` is a sockaddr_in of SIN_LEN bytes.
    res(unsafe { interpose::connect(fd, (&sin as *const libc::sockaddr_in).cast(), SIN_LEN) })
}

pub(crate) fn listen(fd: c_int, backlog: c_int) -> Result<c_int, c_int> {
    // SAFETY: no pointers.
    res(unsafe { interpose::listen(fd, backlog) })
}

pub(crate) fn accept(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: null address and length are allowed.
    res(unsafe { interpose::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), 0) })
}

pub(crate) fn shutdown(fd: c_int, how: c_int) -> Result<c_int, c_int> {
    // SAFETY: no pointers.
    res(unsafe { interpose::shutdown(fd, how) })
}

pub(crate) fn read(fd: c_int, n: usize) -> Result<Vec<u8>, c_int> {
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` has room for `n` bytes.
    let k = res_size(unsafe { interpose::read(fd, buf.as_mut_ptr().cast(), n) })?;
    buf.truncate(k);
    Ok(buf)
}

pub(crate) fn write(fd: c_int, data: &[u8]) -> Result<usize, c_int> {
    // SAFETY: `data` is valid for its length.
    res_size(unsafe { interpose::write(fd, data.as_ptr().cast(), data.len()) })
}

pub(crate) fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` is an int and `len` its size.
    res(unsafe {
        interpose::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut len)
    })?;
    Ok(v)
}

pub(crate) fn setsockopt_int(
    fd: c_int,
    level: c_int,
    name: c_int,
    v: c_int,
) -> Result<c_int, c_int> {
    let len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` is an int and `len` its size.
    res(unsafe { interpose::setsockopt(fd, level, name, (&v as *const c_int).cast(), len) })
}

pub(crate) fn getsockname(fd: c_int) -> Result<c_int, c_int> {
    let mut sin = sockaddr(SocketAddrV4::new(0.into(), 0));
    let mut len = SIN_LEN;
    // SAFETY: `sin` is a sockaddr_in and `len` its size.
    res(unsafe {
        interpose::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len)
    })
}

pub(crate) fn getpeername(fd: c_int) -> Result<c_int, c_int> {
    let mut sin = sockaddr(SocketAddrV4::new(0.into(), 0));
    let mut len = SIN_LEN;
    // SAFETY: `sin` is a sockaddr_in and `len` its size.
    res(unsafe {
        interpose::getpeername(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len)
    })
}

/// `poll` on one fd: (count, revents).
pub(crate) fn poll1(fd: c_int, events: i16, timeout_ms: c_int) -> Result<(c_int, i16), c_int> {
    let mut p = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    // SAFETY: `p` is an array of one pollfd.
    let n = res(unsafe { interpose::poll(p.as_mut_ptr(), 1, timeout_ms) })?;
    Ok((n, p[0].revents))
}

pub(crate) fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: Option<(u32, u64)>,
) -> Result<c_int, c_int> {
    let mut e = ev.map(|(events, u64)| epoll_event { events, u64 });
    let p = e
        .as_mut()
        .map_or(std::ptr::null_mut(), |e| e as *mut epoll_event);
    // SAFETY: `p` is null or a valid epoll_event.
    res(unsafe { interpose::epoll_ctl(epfd, op, fd, p) })
}

/// `epoll_wait` into an array of `max` (at least 1) events: (events, data).
pub(crate) fn epoll_wait(
    epfd: c_int,
    max: usize,
    timeout_ms: c_int,
) -> Result<Vec<(u32, u64)>, c_int> {
    let mut evs = vec![epoll_event { events: 0, u64: 0 }; max.max(1)];
    // SAFETY: `evs` has room for `max` events.
    let n =
        res(unsafe { interpose::epoll_wait(epfd, evs.as_mut_ptr(), max as c_int, timeout_ms) })?;
    Ok(evs[..n as usize]
        .iter()
        .map(|e| (e.events, e.u64))
        .collect())
}

/// A kernel TCP socket, as the placeholder `socket()` keeps for an
/// offloaded one (made with libc's `socket`, so not offloaded).
pub(crate) fn kernel_socket() -> c_int {
    // SAFETY: no pointers.
    let fd = unsafe { real::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: errno {}", errno());
    fd
}

/// A new kernel epoll instance.
pub(crate) fn kernel_epoll() -> c_int {
    // SAFETY: no pointers.
    let fd = unsafe { real::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(fd >= 0, "epoll_create1: errno {}", errno());
    fd
}

/// A pipe (read end, write end).
pub(crate) fn pipe() -> (c_int, c_int) {
    let mut p = [0; 2];
    // SAFETY: `p` has room for two fds.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (p[0], p[1])
}

/// Whether `fd` is open (libc's fcntl, F_GETFD).
pub(crate) fn is_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD takes no argument.
    unsafe { real::fcntl(fd, libc::F_GETFD, 0) >= 0 }
}

/// libc's `fcntl(fd, F_DUPFD, min)`: a new fd number >= `min`, not offloaded.
pub(crate) fn real_dupfd(fd: c_int, min: c_int) -> c_int {
    // SAFETY: F_DUPFD takes an integer.
    let r = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, min as libc::c_ulong) };
    assert!(r >= 0, "F_DUPFD: errno {}", errno());
    r
}

/// libc's `close` (the tables are not told).
pub(crate) fn real_close(fd: c_int) {
    // SAFETY: no pointers.
    unsafe { real::close(fd) };
}

/// A fresh offloaded socket on a new placeholder fd, as `socket()` makes
/// when attached: (fd, socket).
pub(crate) fn offloaded() -> (c_int, Arc<Sock>) {
    let fd = kernel_socket();
    let s = Sock::new(State::Fresh { bound: None }, false);
    state::insert(fd, s.clone());
    (fd, s)
}

/// The socket at `fd` is `s` (the same shared object).
pub(crate) fn maps_to(fd: c_int, s: &Arc<Sock>) -> bool {
    state::lookup(fd).is_some_and(|x| Arc::ptr_eq(&x, s))
}

// ---- a hand-driven DPU ---------------------------------------------------

pub(crate) const LAYOUT: Layout = Layout {
    contexts: 1,
    ring_entries: 64,
    slots: 4,
    rx_buf_size: 4096,
    tx_buf_size: 4096,
};
pub(crate) const LOCAL_IP: [u8; 4] = [198, 18, 0, 1];
pub(crate) const REMOTE: &str = "198.18.0.2:7";

/// The DPU's side of an attachment's single context, driven by the test.
pub(crate) struct Dpu {
    pub(crate) region: Arc<Region>,
    pub(crate) req: RingConsumer,
    evt: RingProducer,
    bell: Doorbell,
    _dpu_bell: Doorbell,
    _control: UnixStream,
    pub(crate) app_id: u32,
    next_conn: u64,
}

impl std::fmt::Debug for Dpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpu").field("app_id", &self.app_id).finish()
    }
}

/// One connection the test opened through the [`Dpu`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conn {
    pub(crate) handle: u64,
    pub(crate) slot: u32,
    /// Bytes delivered so far (the RX stream offset).
    pub(crate) rx_ready: u64,
}

impl Dpu {
    /// The next request (5 s at most).
    pub(crate) fn next_request(&mut self) -> Desc {
        let t = Instant::now();
        loop {
            if let Some(d) = self.req.pop().unwrap() {
                return d;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "no request came");
            std::thread::yield_now();
        }
    }

    /// Requests waiting in the ring (taken off it).
    pub(crate) fn take_requests(&mut self) -> Vec<Desc> {
        let mut v = Vec::new();
        self.req
            .pop_many(&mut v, LAYOUT.ring_entries as usize)
            .unwrap();
        v
    }

    /// Posts an event and rings the application if a thread sleeps.
    pub(crate) fn post(&mut self, d: Desc) {
        assert!(self.evt.push(&d).unwrap(), "event ring full");
        std::sync::atomic::fence(Ordering::SeqCst);
        let w = self
            .region
            .atomic_u32(LAYOUT.app_waiting_offset(0))
            .unwrap();
        if w.load(Ordering::SeqCst) != 0 {
            w.store(0, Ordering::SeqCst);
            self.bell.ring().unwrap();
        }
    }

    fn reply(&mut self, req: &Desc, status: i32, conn: u64, a: u64) {
        self.post(Desc {
            op: abi::EV_REPLY,
            flags: req.op,
            status,
            tag: req.tag,
            conn,
            a,
            b: req.a,
            c: abi::pack_addr(SocketAddrV4::new(LOCAL_IP.into(), 40000)),
        });
    }

    /// Connects `toe` to [`REMOTE`]: the stream (handshake done or, with
    /// `established` false, still in progress).
    pub(crate) fn connect(&mut self, toe: &Arc<Toe>, established: bool) -> (TcpStream, Conn) {
        std::thread::scope(|sc| {
            let app = sc.spawn(|| TcpStream::connect_start(toe, REMOTE.parse().unwrap()));
            let req = self.next_request();
            assert_eq!(req.op, abi::OP_CONNECT);
            self.next_conn += 1;
            let conn = Conn {
                handle: 0x0100_0000_0000_0000 | self.next_conn,
                slot: (self.next_conn % u64::from(LAYOUT.slots)) as u32,
                rx_ready: 0,
            };
            self.reply(&req, 0, conn.handle, conn.slot.into());
            let s = app.join().unwrap().unwrap();
            if established {
                self.conn_event(&conn, abi::CONN_CONNECTED | abi::CONN_WRITABLE);
            }
            (s, conn)
        })
    }

    /// A listener of `toe` on `port`.
    pub(crate) fn listen(&mut self, toe: &Arc<Toe>, port: u16) -> TcpListener {
        std::thread::scope(|sc| {
            let app = sc.spawn(|| {
                TcpListener::bind(
                    toe,
                    SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port),
                )
            });
            let req = self.next_request();
            assert_eq!(req.op, abi::OP_LISTEN);
            self.reply(&req, 0, 0, req.a);
            app.join().unwrap().unwrap()
        })
    }

    pub(crate) fn conn_event(&mut self, c: &Conn, flags: u16) {
        self.post(Desc {
            op: abi::EV_CONN,
            flags,
            conn: c.handle,
            a: c.rx_ready,
            ..Desc::default()
        });
    }

    /// `data` arrives on `c` (written into its RX buffer, then announced).
    pub(crate) fn deliver(&mut self, c: &mut Conn, data: &[u8]) {
        let size = u64::from(LAYOUT.rx_buf_size);
        let at = c.rx_ready % size;
        assert!(at + data.len() as u64 <= size, "the tests never wrap");
        self.region
            .write(LAYOUT.rx_buf_offset(c.slot) + at as usize, data)
            .unwrap();
        c.rx_ready += data.len() as u64;
        self.conn_event(c, abi::CONN_READABLE);
    }

    /// The peer acknowledged `acked` bytes of `c` (TX space is freed).
    pub(crate) fn ack(&mut self, c: &Conn, acked: u64) {
        self.post(Desc {
            op: abi::EV_CONN,
            flags: abi::CONN_WRITABLE,
            conn: c.handle,
            a: c.rx_ready,
            b: acked,
            ..Desc::default()
        });
    }

    /// The peer's FIN on `c`.
    pub(crate) fn fin(&mut self, c: &Conn) {
        self.conn_event(c, abi::CONN_PEER_CLOSED | abi::CONN_READABLE);
    }

    /// The event ring's consumer index as the application last stored it.
    pub(crate) fn evt_tail(&self) -> u32 {
        self.region
            .atomic_u32(LAYOUT.event_ring(0).tail)
            .unwrap()
            .load(Ordering::SeqCst)
    }
}

fn dup_fd(fd: std::os::fd::BorrowedFd<'_>) -> OwnedFd {
    fd.try_clone_to_owned().unwrap()
}

/// Answers one `register` on `listener` like the service: a region of
/// [`LAYOUT`], its doorbells, and the reply.
pub(crate) fn serve_registration(listener: &UnixListener, app_id: u32) -> Dpu {
    let (sock, _) = listener.accept().unwrap();
    let (req, _) = control::recv_json::<ControlRequest>(&sock, 0)
        .unwrap()
        .expect("a register request");
    assert!(matches!(req, ControlRequest::Register { .. }), "{req:?}");
    let region = Arc::new(Region::create("preload-test", LAYOUT.region_size()).unwrap());
    region.write_header(&LAYOUT).unwrap();
    let dpu_bell = Doorbell::new().unwrap();
    let bell = Doorbell::new().unwrap();
    let reply = ControlReply::success(&RegisterReply {
        app_id,
        abi_version: abi::ABI_VERSION,
        layout: LAYOUT,
        local_ip: LOCAL_IP.into(),
        congestion_control: "reno".into(),
        congestion_control_by_port: Default::default(),
        first_context: 0,
        granted_contexts: None,
    })
    .unwrap();
    let fds = [
        dup_fd(region.fd()),
        dup_fd(dpu_bell.fd()),
        dup_fd(bell.fd()),
    ];
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    control::send_json(&sock, &reply, &borrowed).unwrap();
    Dpu {
        req: RingConsumer::new(region.clone(), LAYOUT.request_ring(0)).unwrap(),
        evt: RingProducer::new(region.clone(), LAYOUT.event_ring(0)).unwrap(),
        region,
        bell,
        _dpu_bell: dpu_bell,
        _control: sock,
        app_id,
        next_conn: 0,
    }
}

/// A path for a stand-in service's control socket, and its listener.
pub(crate) fn service_socket() -> (PathBuf, UnixListener) {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "toe-preload-test-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    (path, l)
}

pub(crate) fn options() -> ToeOptions {
    ToeOptions {
        contexts: 1,
        spin: Duration::ZERO,
        name: "preload-unit-test".into(),
    }
}

/// A real attachment registered with a stand-in service, and the DPU side
/// of its rings.
pub(crate) fn attach() -> (Arc<Toe>, Dpu) {
    let (path, listener) = service_socket();
    let server = std::thread::spawn(move || serve_registration(&listener, 1));
    let toe = Toe::with_options(&path, options()).unwrap();
    let dpu = server.join().unwrap();
    let _ = std::fs::remove_file(&path);
    (toe, dpu)
}

/// An offloaded socket in the connected state on a new placeholder fd.
pub(crate) fn connected(toe: &Arc<Toe>, dpu: &mut Dpu) -> (c_int, Arc<Sock>, Conn) {
    let (s, c) = dpu.connect(toe, true);
    let fd = kernel_socket();
    let sock = Sock::new(
        State::Stream {
            s: Arc::new(s),
            connecting: false,
            failed: None,
            reported: true,
        },
        true,
    );
    state::insert(fd, sock.clone());
    (fd, sock, c)
}

// ---- fork ----------------------------------------------------------------

/// Runs `f` in a forked child (10 s at most) and returns what it reported:
/// `Ok(())` or the first failed check.
pub(crate) fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (rd, wr) = pipe();
    // SAFETY: the child only runs `f` (the library's own code and plain
    // system calls; glibc makes malloc usable after fork) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: errno {}", errno());
    if pid == 0 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err("the child panicked".into()));
        let (code, msg) = match r {
            Ok(()) => (0, String::new()),
            Err(m) => (1, m),
        };
        // SAFETY: `msg` is valid for its length; `_exit` ends the child
        // without running the parent's destructors or atexit handlers.
        unsafe {
            real::write(wr, msg.as_ptr().cast(), msg.len());
            libc::_exit(code);
        }
    }
    real_close(wr);
    let t = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if t.elapsed() > Duration::from_secs(10) {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            real_close(rd);
            return Err("the child did not finish within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: `rd` is the pipe's read end, owned here from now on.
    let mut report = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(rd) });
    let mut msg = String::new();
    let _ = report.read_to_string(&mut msg);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else if msg.is_empty() {
        Err(format!("the child ended with status {status:#x}"))
    } else {
        Err(msg)
    }
}

/// `Err(what)` unless `cond`.
pub(crate) fn check(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}
