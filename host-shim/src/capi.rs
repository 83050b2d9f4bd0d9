//! The C API (`include/toe.h`): handles are small non-negative ints in a
//! per-attachment table, errors are negative errno values. No panic
//! crosses the boundary (each entry point catches unwinding and returns
//! -EIO), and every pointer is checked for null.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::errors::neg_errno;
use crate::shared::lock;
use crate::slab::Slab;
use crate::{BatchOp, TcpListener, TcpStream, Toe};

/// What a handle names.
#[derive(Clone, Debug)]
enum Entry {
    Listener(Arc<TcpListener>),
    Stream(Arc<TcpStream>),
}

/// `toe_t`: an attachment and its handle table.
#[derive(Debug)]
pub struct ToeC {
    toe: Arc<Toe>,
    handles: Mutex<Slab<Entry>>,
}

/// Runs `f`, turning a panic into `on_panic`.
fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = e };
}

/// The attachment behind a `toe_t*`, or -EINVAL for null.
///
/// # Safety
/// `t` is null or a pointer returned by `toe_open` and not yet closed.
unsafe fn toe_ref<'a>(t: *mut ToeC) -> Result<&'a ToeC, c_int> {
    // SAFETY: per the contract, a non-null `t` points to a live ToeC that
    // `toe_close` has not freed; we only take a shared reference.
    unsafe { t.as_ref() }.ok_or(-libc::EINVAL)
}

impl ToeC {
    fn entry(&self, handle: c_int) -> Result<Entry, c_int> {
        lock(&self.handles).get(handle).cloned().ok_or(-libc::EBADF)
    }

    fn stream(&self, handle: c_int) -> Result<Arc<TcpStream>, c_int> {
        match self.entry(handle)? {
            Entry::Stream(s) => Ok(s),
            Entry::Listener(_) => Err(-libc::ENOTCONN),
        }
    }

    fn listener(&self, handle: c_int) -> Result<Arc<TcpListener>, c_int> {
        match self.entry(handle)? {
            Entry::Listener(l) => Ok(l),
            Entry::Stream(_) => Err(-libc::EINVAL),
        }
    }

    fn insert(&self, e: Entry) -> c_int {
        lock(&self.handles).insert(e).unwrap_or(-libc::EMFILE)
    }
}

fn errno(e: io::Error) -> c_int {
    neg_errno(&e)
}

/// Collapses `Result<c_int, c_int>` into the C return value.
fn ret(r: Result<c_int, c_int>) -> c_int {
    r.unwrap_or_else(|e| e)
}

/// `f` on connection `conn` of `t` (its result), or the -errno of a NULL
/// `t`, an unknown handle or a listener; -EIO if it panicked.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
unsafe fn on_stream(t: *mut ToeC, conn: c_int, f: impl FnOnce(&TcpStream) -> c_int) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        match t.stream(conn) {
            Ok(s) => f(&s),
            Err(e) => e,
        }
    })
}

fn ret_ssize(r: Result<usize, c_int>) -> libc::ssize_t {
    match r {
        Ok(n) => n as libc::ssize_t,
        Err(e) => e as libc::ssize_t,
    }
}

/// A `sockaddr_in` for an IPv4 socket address.
pub(crate) fn to_sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The socket address of a `sockaddr_in`; -EAFNOSUPPORT if not AF_INET.
pub(crate) fn from_sockaddr_in(s: &libc::sockaddr_in) -> Result<SocketAddrV4, c_int> {
    if c_int::from(s.sin_family) != libc::AF_INET {
        return Err(-libc::EAFNOSUPPORT);
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)),
        u16::from_be(s.sin_port),
    ))
}

/// Attaches to the DPU service. `control_path` NULL: `FLEXTOE_CONTROL` or
/// `/run/flextoe/control.sock`. Returns NULL with errno set on failure.
///
/// # Safety
/// `control_path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn toe_open(control_path: *const c_char) -> *mut ToeC {
    let path = if control_path.is_null() {
        crate::control_path_from_env()
    } else {
        // SAFETY: non-null and NUL-terminated per the contract.
        let c = unsafe { CStr::from_ptr(control_path) };
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes()))
    };
    let r = guard(Err(-libc::EIO), || {
        Toe::with_options(path, crate::ToeOptions::from_env()).map_err(errno)
    });
    match r {
        Ok(toe) => Box::into_raw(Box::new(ToeC {
            toe,
            handles: Mutex::new(Slab::default()),
        })),
        Err(e) => {
            set_errno(-e);
            std::ptr::null_mut()
        }
    }
}

/// Stores the DPU's IPv4 address in `*out`. Returns 0 or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toe_local_ip(t: *mut ToeC, out: *mut libc::in_addr) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        if out.is_null() {
            return -libc::EFAULT;
        }
        let a = libc::in_addr {
            s_addr: u32::from(t.toe.local_ip()).to_be(),
        };
        // SAFETY: non-null and writable per the contract; any alignment.
        unsafe { out.write_unaligned(a) };
        0
    })
}

/// Closes every handle and detaches (the service resets what is left).
///
/// # Safety
/// `t` is NULL or from `toe_open`, not closed, and no other call on it is
/// running or will run.
#[no_mangle]
pub unsafe extern "C" fn toe_close(t: *mut ToeC) {
    if t.is_null() {
        return;
    }
    // SAFETY: per the contract `t` came from Box::into_raw in toe_open and
    // nobody else uses it any more.
    let b = unsafe { Box::from_raw(t) };
    guard((), move || {
        let entries = lock(&b.handles).drain();
        drop(entries);
        drop(b);
    });
}

/// Listens on `port` (all addresses); `backlog` <= 0: service default.
/// Returns a listener handle or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_listen(t: *mut ToeC, port: u16, backlog: c_int) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        let backlog = u32::try_from(backlog).unwrap_or(0);
        let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        ret(TcpListener::bind_with_backlog(&t.toe, addr, backlog)
            .map_err(errno)
            .map(|l| t.insert(Entry::Listener(Arc::new(l)))))
    })
}

/// Accepts a connection on `listener`; fills `peer` if not NULL. Returns a
/// connection handle or -errno (-EAGAIN when non-blocking and none waits).
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `peer` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn toe_accept(
    t: *mut ToeC,
    listener: c_int,
    peer: *mut libc::sockaddr_in,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        let l = match t.listener(listener) {
            Ok(l) => l,
            Err(e) => return e,
        };
        let (s, addr) = match l.accept() {
            Ok(x) => x,
            Err(e) => return errno(e),
        };
        if let (false, SocketAddr::V4(a)) = (peer.is_null(), addr) {
            // SAFETY: non-null and writable per the contract; write_unaligned
            // tolerates any alignment.
            unsafe { peer.write_unaligned(to_sockaddr_in(a)) };
        }
        t.insert(Entry::Stream(Arc::new(s)))
    })
}

/// Connects to `addr` (AF_INET), blocking until established. Returns a
/// connection handle or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `addr` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn toe_connect(t: *mut ToeC, addr: *const libc::sockaddr_in) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        if addr.is_null() {
            return -libc::EFAULT;
        }
        // SAFETY: non-null and readable per the contract; any alignment.
        let sa = unsafe { addr.read_unaligned() };
        let a = match from_sockaddr_in(&sa) {
            Ok(a) => a,
            Err(e) => return e,
        };
        ret(TcpStream::connect(&t.toe, a)
            .map_err(errno)
            .map(|s| t.insert(Entry::Stream(Arc::new(s)))))
    })
}

/// Writes up to `len` bytes. Returns the count written or -errno (-EAGAIN
/// when non-blocking and the TX buffer is full, -EPIPE after a reset or a
/// write shutdown).
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `buf` is readable for `len`
/// bytes (or NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn toe_send(
    t: *mut ToeC,
    conn: c_int,
    buf: *const c_void,
    len: usize,
) -> libc::ssize_t {
    guard(-libc::EIO as libc::ssize_t, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e as libc::ssize_t,
        };
        let s = match t.stream(conn) {
            Ok(s) => s,
            Err(e) => return e as libc::ssize_t,
        };
        if len == 0 {
            return 0;
        }
        if buf.is_null() {
            return -libc::EFAULT as libc::ssize_t;
        }
        let len = len.min(isize::MAX as usize);
        // SAFETY: readable for `len` bytes per the contract, and not
        // written during the call (it is the caller's buffer).
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        ret_ssize((&*s).write(data).map_err(errno))
    })
}

/// Reads up to `len` bytes. Returns the count read, 0 at end of stream, or
/// -errno (-EAGAIN when non-blocking and nothing is readable).
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `buf` is writable for `len`
/// bytes (or NULL with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn toe_recv(
    t: *mut ToeC,
    conn: c_int,
    buf: *mut c_void,
    len: usize,
) -> libc::ssize_t {
    guard(-libc::EIO as libc::ssize_t, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e as libc::ssize_t,
        };
        let s = match t.stream(conn) {
            Ok(s) => s,
            Err(e) => return e as libc::ssize_t,
        };
        if len == 0 {
            return 0;
        }
        if buf.is_null() {
            return -libc::EFAULT as libc::ssize_t;
        }
        let len = len.min(isize::MAX as usize);
        // SAFETY: writable for `len` bytes per the contract and exclusively
        // ours during the call. Memory handed over by C is opaque to the
        // compiler and holds some bytes; we only write into it anyway
        // (Region::read copies into the slice, nothing reads it).
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
        ret_ssize((&*s).read(out).map_err(errno))
    })
}

/// Shuts down `how` (SHUT_RD, SHUT_WR or SHUT_RDWR) of a connection.
/// Returns 0 or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_shutdown(t: *mut ToeC, conn: c_int, how: c_int) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        let how = match how {
            libc::SHUT_RD => Shutdown::Read,
            libc::SHUT_WR => Shutdown::Write,
            libc::SHUT_RDWR => Shutdown::Both,
            _ => return -libc::EINVAL,
        };
        ret(t
            .stream(conn)
            .and_then(|s| s.shutdown(how).map_err(errno))
            .map(|()| 0))
    })
}

/// Closes a handle: a connection (FIN, or RST if data was left unread) or
/// a listener. Returns 0 or -EBADF.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_close_conn(t: *mut ToeC, handle: c_int) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        // Removed under the lock, dropped (closed) outside it; a call still
        // running on the handle in another thread keeps it alive until done.
        let e = lock(&t.handles).remove(handle);
        match e {
            Some(e) => {
                drop(e);
                0
            }
            None => -libc::EBADF,
        }
    })
}

/// Makes send/recv (connection) or accept (listener) return -EAGAIN instead
/// of waiting. Returns 0 or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_set_nonblocking(t: *mut ToeC, handle: c_int, on: c_int) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        let r = match t.entry(handle) {
            Ok(Entry::Stream(s)) => s.set_nonblocking(on != 0),
            Ok(Entry::Listener(l)) => l.set_nonblocking(on != 0),
            Err(e) => return e,
        };
        ret(r.map(|()| 0).map_err(errno))
    })
}

/// Sets a connection's congestion control by its `TCP_CONGESTION` name
/// ("reno", "dctcp", "timely" or "dctcp-rate"). Returns 0, -ENOENT for another name, -EINVAL for
/// a name that is not valid UTF-8 or NULL, or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `name` is NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn toe_set_congestion_control(
    t: *mut ToeC,
    conn: c_int,
    name: *const c_char,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        if name.is_null() {
            return -libc::EINVAL;
        }
        // SAFETY: a NUL-terminated string (the caller's contract).
        let Ok(name) = unsafe { std::ffi::CStr::from_ptr(name) }.to_str() else {
            return -libc::EINVAL;
        };
        let s = match t.stream(conn) {
            Ok(s) => s,
            Err(e) => return e,
        };
        ret(s.set_congestion_control(name).map(|()| 0).map_err(errno))
    })
}

/// Caps a connection's sending rate at `bytes_per_sec`, its segments paced
/// by the DPU (`SO_MAX_PACING_RATE`); 0 removes the cap. Returns 0 or
/// -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_set_max_pacing_rate(
    t: *mut ToeC,
    conn: c_int,
    bytes_per_sec: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        on_stream(t, conn, |s| {
            let rate = Some(bytes_per_sec).filter(|&r| r > 0);
            ret(s.set_max_pacing_rate(rate).map(|()| 0).map_err(errno))
        })
    }
}

/// TCP_NODELAY (`on` = 0 turns Nagle's algorithm on; the default is 1)
/// and TCP_CORK on a connection. Returns 0 or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_set_nodelay(t: *mut ToeC, conn: c_int, on: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        on_stream(t, conn, |s| {
            ret(s.set_nodelay(on != 0).map(|()| 0).map_err(errno))
        })
    }
}

/// See [`toe_set_nodelay`].
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_set_cork(t: *mut ToeC, conn: c_int, on: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        on_stream(t, conn, |s| {
            ret(s.set_cork(on != 0).map(|()| 0).map_err(errno))
        })
    }
}

/// TCP keepalive on a connection (`SO_KEEPALIVE` with `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT`): probes after `idle_secs` of silence,
/// every `interval_secs`, the connection reset after `count` unanswered;
/// `idle_secs` = 0 turns it off. Returns 0, -EINVAL for values out of
/// Linux's ranges, or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_set_keepalive(
    t: *mut ToeC,
    conn: c_int,
    idle_secs: c_int,
    interval_secs: c_int,
    count: c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        on_stream(t, conn, |s| {
            let settings = if idle_secs == 0 {
                None
            } else {
                let in_range = |v: c_int, max: c_int| (1..=max).contains(&v);
                if !in_range(idle_secs, 32767)
                    || !in_range(interval_secs, 32767)
                    || !in_range(count, 127)
                {
                    return -libc::EINVAL;
                }
                Some(crate::Keepalive {
                    idle: std::time::Duration::from_secs(idle_secs as u64),
                    interval: std::time::Duration::from_secs(interval_secs as u64),
                    count: count as u32,
                })
            };
            ret(s.set_keepalive(settings).map(|()| 0).map_err(errno))
        })
    }
}

/// Readiness of a connection, without waiting: a mask of POLLIN (data, EOF
/// or error), POLLOUT (space or error), POLLRDHUP (peer done sending),
/// POLLERR and POLLHUP, or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result.
#[no_mangle]
pub unsafe extern "C" fn toe_poll(t: *mut ToeC, conn: c_int) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        let s = match t.stream(conn) {
            Ok(s) => s,
            Err(e) => return e,
        };
        match s.poll_events() {
            Ok(r) => {
                let mut m = 0;
                for (on, bit) in [
                    (r.readable, libc::POLLIN),
                    (r.writable, libc::POLLOUT),
                    (r.eof, libc::POLLRDHUP),
                    (r.error, libc::POLLERR),
                    (r.hangup, libc::POLLHUP),
                ] {
                    if on {
                        m |= c_int::from(bit);
                    }
                }
                m
            }
            Err(e) => errno(e),
        }
    })
}

#[cfg(test)]
mod tests;

/// `struct toe_op` of toe.h: one receive or send of [`toe_submit`].
#[repr(C)]
#[derive(Debug)]
pub struct ToeOp {
    pub conn: c_int,
    pub op: c_int,
    pub buf: *mut c_void,
    pub len: usize,
    pub result: libc::ssize_t,
}

/// `TOE_OP_RECV` and `TOE_OP_SEND` of toe.h.
pub const TOE_OP_RECV: c_int = 0;
pub const TOE_OP_SEND: c_int = 1;

/// Runs `n` receives and sends in one call that never waits
/// ([`Toe::submit`]); sets each op's `result`. Returns 0 or -errno.
///
/// # Safety
/// `t` is NULL or a live `toe_open` result; `ops` points to `n` writable
/// `struct toe_op`, each `buf` valid for `len` bytes (writable for
/// receives), none overlapping another op's buffer or the ops array.
#[no_mangle]
pub unsafe extern "C" fn toe_submit(t: *mut ToeC, ops: *mut ToeOp, n: usize) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: forwarded contract.
        let t = match unsafe { toe_ref(t) } {
            Ok(t) => t,
            Err(e) => return e,
        };
        if n == 0 {
            return 0;
        }
        if ops.is_null() {
            return -libc::EFAULT;
        }
        // SAFETY: `ops` points to `n` writable toe_op per the contract.
        let ops = unsafe { std::slice::from_raw_parts_mut(ops, n) };
        let streams: Vec<Result<Arc<TcpStream>, c_int>> =
            ops.iter().map(|op| t.stream(op.conn)).collect();
        let overlapping = overlapping_receives(ops);
        let mut batch = Vec::with_capacity(n);
        let mut index = Vec::with_capacity(n);
        for (i, (op, stream)) in ops.iter_mut().zip(&streams).enumerate() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    op.result = *e as libc::ssize_t;
                    continue;
                }
            };
            let len = op.len.min(isize::MAX as usize);
            if op.buf.is_null() && len > 0 {
                op.result = -libc::EFAULT as libc::ssize_t;
                continue;
            }
            if overlapping.contains(&i) {
                // Two receives into the same bytes: refused, not raced.
                op.result = -libc::EINVAL as libc::ssize_t;
                continue;
            }
            let item = match op.op {
                TOE_OP_RECV => {
                    let buf: &mut [u8] = if len == 0 {
                        &mut []
                    } else {
                        // SAFETY: writable for `len` bytes and exclusively ours
                        // during the call (buffers do not overlap, per the contract).
                        unsafe { std::slice::from_raw_parts_mut(op.buf.cast::<u8>(), len) }
                    };
                    BatchOp::Read { stream, buf }
                }
                TOE_OP_SEND => {
                    let buf: &[u8] = if len == 0 {
                        &[]
                    } else {
                        // SAFETY: readable for `len` bytes per the contract.
                        unsafe { std::slice::from_raw_parts(op.buf.cast::<u8>(), len) }
                    };
                    BatchOp::Write { stream, buf }
                }
                _ => {
                    op.result = -libc::EINVAL as libc::ssize_t;
                    continue;
                }
            };
            batch.push(item);
            index.push(i);
        }
        let mut results = Vec::with_capacity(batch.len());
        t.toe.submit(&mut batch, &mut results);
        drop(batch);
        for (i, r) in index.into_iter().zip(results) {
            ops[i].result = ret_ssize(r.map_err(errno));
        }
        0
    })
}

/// Receives of a batch to refuse so that the others' buffers are disjoint:
/// in address order, each one that overlaps a receive already kept.
fn overlapping_receives(ops: &[ToeOp]) -> Vec<usize> {
    let mut spans: Vec<(usize, usize, usize)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.op == TOE_OP_RECV && op.len > 0 && !op.buf.is_null())
        .map(|(i, op)| {
            let start = op.buf as usize;
            (start, start.saturating_add(op.len), i)
        })
        .collect();
    spans.sort_unstable();
    let mut refused = Vec::new();
    let mut kept_end = 0usize;
    for (start, end, i) in spans {
        if start < kept_end {
            refused.push(i);
        } else {
            kept_end = end;
        }
    }
    refused
}
