//! The exported C functions. Each one passes an fd that is not offloaded
//! straight to libc; offloaded fds go to `io`, poll/select/epoll to `wait`.

#![allow(clippy::missing_safety_doc)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use libc::{
    c_int, c_long, c_ulong, c_void, epoll_event, fd_set, iovec, msghdr, nfds_t, off_t, pollfd,
    sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};

use crate::epoll_set;
use crate::io;
use crate::real;
use crate::state::{self, lookup, Decision, Sock, State};
use crate::wait::{self, errno, fail, ret, ret_size};

const SOCKADDR_IN_LEN: socklen_t = std::mem::size_of::<libc::sockaddr_in>() as socklen_t;

/// An AF_INET address from the caller's buffer.
unsafe fn read_addr(a: *const sockaddr, len: socklen_t) -> Result<SocketAddrV4, c_int> {
    if a.is_null() {
        return Err(libc::EFAULT);
    }
    if len < SOCKADDR_IN_LEN {
        return Err(libc::EINVAL);
    }
    // SAFETY: the caller's buffer holds at least a sockaddr_in.
    let sin = unsafe { std::ptr::read_unaligned(a.cast::<libc::sockaddr_in>()) };
    if i32::from(sin.sin_family) != libc::AF_INET {
        return Err(libc::EAFNOSUPPORT);
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    ))
}

/// Stores an address like the kernel (truncated to the caller's length,
/// which is set to the full length).
unsafe fn write_addr(addr: SocketAddrV4, a: *mut sockaddr, len: *mut socklen_t) {
    if a.is_null() || len.is_null() {
        return;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `len` is valid; we copy at most `*len` bytes into `a`.
    unsafe {
        let n = (*len).min(SOCKADDR_IN_LEN) as usize;
        std::ptr::copy_nonoverlapping(
            (&sin as *const libc::sockaddr_in).cast::<u8>(),
            a.cast::<u8>(),
            n,
        );
        *len = SOCKADDR_IN_LEN;
    }
}

/// The caller's iovecs as byte slices.
unsafe fn iovs<'a>(v: *const iovec, n: c_int) -> Result<Vec<&'a mut [u8]>, c_int> {
    if !(0..=libc::UIO_MAXIOV).contains(&n) {
        return Err(libc::EINVAL);
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    if v.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: the caller passes `n` valid iovecs.
    let v = unsafe { std::slice::from_raw_parts(v, n as usize) };
    Ok(v.iter()
        .filter(|i| i.iov_len > 0 && !i.iov_base.is_null())
        // SAFETY: each iovec describes a valid buffer of the caller.
        .map(|i| unsafe { std::slice::from_raw_parts_mut(i.iov_base.cast::<u8>(), i.iov_len) })
        .collect())
}

fn stale_check(s: &Sock) -> Result<(), c_int> {
    if s.stale() {
        Err(libc::EBADF)
    } else {
        Ok(())
    }
}

// ---- setup -----------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    // SAFETY: forwards the caller's arguments.
    let fd = unsafe { real::socket(domain, ty, proto) };
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if fd < 0
        || domain != libc::AF_INET
        || base != libc::SOCK_STREAM
        || !(proto == 0 || proto == libc::IPPROTO_TCP)
    {
        return fd;
    }
    match state::decide() {
        Decision::Offload => {
            state::insert(
                fd,
                Sock::new(State::Fresh { bound: None }, ty & libc::SOCK_NONBLOCK != 0),
            );
            fd
        }
        Decision::Kernel => fd,
        Decision::Refuse(e) => {
            // SAFETY: closes the socket we just created.
            unsafe { real::close(fd) };
            fail(e)
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::bind(fd, a, len) };
    };
    if let Err(e) = stale_check(&s) {
        return fail(e);
    }
    // SAFETY: the caller's address buffer of `len` bytes.
    let addr = match unsafe { read_addr(a, len) } {
        Ok(a) => a,
        // SAFETY: the kernel reports the error for a bad address.
        Err(_) => return unsafe { real::bind(fd, a, len) },
    };
    match io::bind(&s, addr) {
        Ok(io::BindTo::Engine) => 0,
        Ok(io::BindTo::Kernel) => {
            state::to_kernel(fd);
            // SAFETY: forwards the caller's arguments.
            unsafe { real::bind(fd, a, len) }
        }
        Err(e) => fail(e),
    }
}

#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::listen(fd, backlog) };
    };
    ret(stale_check(&s)
        .and_then(|()| io::listen(fd, &s, backlog))
        .map(|()| 0))
}

#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { accept4(fd, a, len, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::accept4(fd, a, len, flags) };
    };
    let saved = crate::wait::errno();
    match io::accept(fd, &s, flags) {
        Ok((nfd, peer)) => {
            // SAFETY: the caller's address buffer and length.
            unsafe { write_addr(peer, a, len) };
            crate::wait::set_errno(saved);
            nfd
        }
        Err(e) => fail(e),
    }
}

#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::connect(fd, a, len) };
    };
    if let Err(e) = stale_check(&s) {
        return fail(e);
    }
    // SAFETY: the caller's address buffer of `len` bytes.
    let addr = match unsafe { read_addr(a, len) } {
        Ok(a) => a,
        // SAFETY: the kernel reports the error (or AF_UNSPEC) on the
        // placeholder socket.
        Err(_) => return unsafe { real::connect(fd, a, len) },
    };
    let saved = crate::wait::errno();
    match io::connect(fd, &s, addr) {
        Ok(io::Connected::Done) => {
            crate::wait::set_errno(saved);
            0
        }
        Ok(io::Connected::Kernel(bound)) => {
            state::to_kernel(fd);
            if let Some(b) = bound {
                let mut l = SOCKADDR_IN_LEN;
                // SAFETY: a sockaddr_in-sized buffer.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                // SAFETY: writes into `sin`, `l` its size.
                unsafe { write_addr(b, (&mut sin as *mut libc::sockaddr_in).cast(), &mut l) };
                // SAFETY: binds the now-kernel socket to a valid address.
                if unsafe { real::bind(fd, (&sin as *const libc::sockaddr_in).cast(), l) } < 0 {
                    return -1;
                }
            }
            // SAFETY: forwards the caller's arguments.
            unsafe { real::connect(fd, a, len) }
        }
        Err(e) => fail(e),
    }
}

#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::shutdown(fd, how) };
    };
    ret(stale_check(&s)
        .and_then(|()| io::shutdown(&s, how))
        .map(|()| 0))
}

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if let Some(s) = state::remove(fd) {
        io::linger(&s);
        state::release(s);
    }
    epoll_set::epoll_closed(fd);
    // SAFETY: forwards the caller's argument.
    unsafe { real::close(fd) }
}

// ---- receive -----------------------------------------------------------

unsafe fn recv_impl(
    fd: c_int,
    s: &Arc<Sock>,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
) -> ssize_t {
    if buf.is_null() && n > 0 {
        return fail(libc::EFAULT) as ssize_t;
    }
    let b: &mut [u8] = if n == 0 {
        &mut []
    } else {
        // SAFETY: the caller's buffer of `n` bytes.
        unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), n) }
    };
    let saved = crate::wait::errno();
    crate::wait::ret_size_kept(io::read(fd, s, b, flags), saved)
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's buffer.
        Some(s) => unsafe { recv_impl(fd, &s, buf, n, 0) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::read(fd, buf, n) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if n > buflen {
        std::process::abort();
    }
    // SAFETY: same contract.
    unsafe { read(fd, buf, n) }
}

#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's buffer.
        Some(s) => unsafe { recv_impl(fd, &s, buf, n, flags) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::recv(fd, buf, n, flags) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if n > buflen {
        std::process::abort();
    }
    // SAFETY: same contract.
    unsafe { recv(fd, buf, n, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    match lookup(fd) {
        Some(s) => {
            if !len.is_null() && !a.is_null() {
                // SAFETY: a connected TCP socket reports no source address.
                unsafe { *len = 0 };
            }
            // SAFETY: the caller's buffer.
            unsafe { recv_impl(fd, &s, buf, n, flags) }
        }
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::recvfrom(fd, buf, n, flags, a, len) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    a: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    if n > buflen {
        std::process::abort();
    }
    // SAFETY: same contract.
    unsafe { recvfrom(fd, buf, n, flags, a, len) }
}

/// Reads into several buffers: one read into the first, then more reads
/// without waiting while data is there.
unsafe fn readv_impl(fd: c_int, s: &Arc<Sock>, v: *const iovec, n: c_int, flags: c_int) -> ssize_t {
    // SAFETY: the caller's iovecs.
    let bufs = match unsafe { iovs(v, n) } {
        Ok(b) => b,
        Err(e) => return fail(e) as ssize_t,
    };
    let mut total = 0usize;
    for (i, b) in bufs.into_iter().enumerate() {
        let f = if i == 0 {
            flags
        } else {
            flags | libc::MSG_DONTWAIT
        };
        let len = b.len();
        match io::read(fd, s, b, f & !libc::MSG_PEEK) {
            Ok(k) => {
                total += k;
                if k < len {
                    break;
                }
            }
            Err(_) if total > 0 => break,
            Err(e) => return fail(e) as ssize_t,
        }
    }
    total as ssize_t
}

#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, v: *const iovec, n: c_int) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's iovecs.
        Some(s) => unsafe { readv_impl(fd, &s, v, n, 0) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::readv(fd, v, n) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, m: *mut msghdr, flags: c_int) -> ssize_t {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::recvmsg(fd, m, flags) };
    };
    // SAFETY: the caller's msghdr.
    let Some(msg) = (unsafe { m.as_mut() }) else {
        return fail(libc::EFAULT) as ssize_t;
    };
    msg.msg_namelen = 0;
    msg.msg_controllen = 0;
    msg.msg_flags = 0;
    // SAFETY: the iovecs the msghdr describes.
    unsafe { readv_impl(fd, &s, msg.msg_iov, msg.msg_iovlen as c_int, flags) }
}

// ---- send -------------------------------------------------------------------

unsafe fn send_impl(
    fd: c_int,
    s: &Arc<Sock>,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
) -> ssize_t {
    if buf.is_null() && n > 0 {
        return fail(libc::EFAULT) as ssize_t;
    }
    let b: &[u8] = if n == 0 {
        &[]
    } else {
        // SAFETY: the caller's buffer of `n` bytes.
        unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), n) }
    };
    let saved = crate::wait::errno();
    crate::wait::ret_size_kept(io::write(fd, s, b, flags), saved)
}

#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's buffer.
        Some(s) => unsafe { send_impl(fd, &s, buf, n, 0) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::write(fd, buf, n) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's buffer.
        Some(s) => unsafe { send_impl(fd, &s, buf, n, flags) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::send(fd, buf, n, flags) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    a: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's buffer (a connected TCP socket ignores the
        // address).
        Some(s) => unsafe { send_impl(fd, &s, buf, n, flags) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::sendto(fd, buf, n, flags, a, len) },
    }
}

unsafe fn writev_impl(
    fd: c_int,
    s: &Arc<Sock>,
    v: *const iovec,
    n: c_int,
    flags: c_int,
) -> ssize_t {
    // SAFETY: the caller's iovecs.
    let bufs = match unsafe { iovs(v, n) } {
        Ok(b) => b,
        Err(e) => return fail(e) as ssize_t,
    };
    let bufs: Vec<&[u8]> = bufs.into_iter().map(|b| &*b).collect();
    let saved = crate::wait::errno();
    crate::wait::ret_size_kept(io::writev(fd, s, &bufs, flags), saved)
}

#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, v: *const iovec, n: c_int) -> ssize_t {
    match lookup(fd) {
        // SAFETY: the caller's iovecs.
        Some(s) => unsafe { writev_impl(fd, &s, v, n, 0) },
        // SAFETY: forwards the caller's arguments.
        None => unsafe { real::writev(fd, v, n) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, m: *const msghdr, flags: c_int) -> ssize_t {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::sendmsg(fd, m, flags) };
    };
    // SAFETY: the caller's msghdr.
    let Some(msg) = (unsafe { m.as_ref() }) else {
        return fail(libc::EFAULT) as ssize_t;
    };
    // SAFETY: the iovecs the msghdr describes.
    unsafe { writev_impl(fd, &s, msg.msg_iov, msg.msg_iovlen as c_int, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    off: *mut off_t,
    count: size_t,
) -> ssize_t {
    if lookup(in_fd).is_some() {
        return fail(libc::EINVAL) as ssize_t;
    }
    let Some(s) = lookup(out_fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::sendfile(out_fd, in_fd, off, count) };
    };
    // SAFETY: the caller's offset, if any.
    let off = unsafe { off.as_mut() };
    ret_size(io::sendfile(out_fd, &s, in_fd, off, count))
}

#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out_fd: c_int,
    in_fd: c_int,
    off: *mut off_t,
    count: size_t,
) -> ssize_t {
    // SAFETY: same contract (off_t is 64-bit here).
    unsafe { sendfile(out_fd, in_fd, off, count) }
}

// ---- control ---------------------------------------------------------------

unsafe fn fcntl_impl(fd: c_int, cmd: c_int, arg: c_ulong, f64: bool) -> c_int {
    // SAFETY: forwards the caller's arguments.
    let r = unsafe {
        if f64 {
            real::fcntl64(fd, cmd, arg)
        } else {
            real::fcntl(fd, cmd, arg)
        }
    };
    if r < 0 {
        return r;
    }
    if let Some(s) = lookup(fd) {
        match cmd {
            libc::F_SETFL => s
                .nonblock
                .store(arg as c_int & libc::O_NONBLOCK != 0, Ordering::Relaxed),
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                state::insert(r, Arc::clone(&s));
            }
            _ => {}
        }
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: same contract.
    unsafe { fcntl_impl(fd, cmd, arg, false) }
}

#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: same contract.
    unsafe { fcntl_impl(fd, cmd, arg, true) }
}

#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::ioctl(fd, req, arg) };
    };
    if let Err(e) = stale_check(&s) {
        return fail(e);
    }
    match req {
        libc::FIONREAD => {
            if arg.is_null() {
                return fail(libc::EFAULT);
            }
            match io::readable(&s) {
                Ok(n) => {
                    // SAFETY: FIONREAD's argument is an int.
                    unsafe { *arg.cast::<c_int>() = n };
                    0
                }
                Err(e) => fail(e),
            }
        }
        libc::FIONBIO => {
            // SAFETY: forwards the caller's arguments.
            let r = unsafe { real::ioctl(fd, req, arg) };
            if r == 0 {
                // SAFETY: FIONBIO's argument is an int (validated by the kernel).
                let on = unsafe { *arg.cast::<c_int>() } != 0;
                s.nonblock.store(on, Ordering::Relaxed);
            }
            r
        }
        // SAFETY: forwards the caller's arguments.
        _ => unsafe { real::ioctl(fd, req, arg) },
    }
}

fn timeval_ns(v: *const c_void, len: socklen_t) -> Option<u64> {
    if v.is_null() || (len as usize) < std::mem::size_of::<timeval>() {
        return None;
    }
    // SAFETY: checked size; the kernel accepted the same buffer.
    let tv = unsafe { std::ptr::read_unaligned(v.cast::<timeval>()) };
    Some((tv.tv_sec.max(0) as u64) * 1_000_000_000 + (tv.tv_usec.max(0) as u64) * 1000)
}

#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    v: *const c_void,
    len: socklen_t,
) -> c_int {
    if lookup(fd).is_some_and(|s| s.stale()) {
        return fail(libc::EBADF);
    }
    // TCP_CONGESTION names the engine's controllers, not the kernel's
    // (which may lack "dctcp" or offer "cubic"): answered here.
    if let (Some(s), libc::IPPROTO_TCP, libc::TCP_CONGESTION) = (lookup(fd), level, name) {
        if v.is_null() {
            return fail(libc::EFAULT);
        }
        // SAFETY: the caller's buffer of `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(v.cast::<u8>(), len as usize) };
        let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
        return match io::set_congestion_control(&s, name) {
            Ok(()) => 0,
            Err(e) => fail(e),
        };
    }
    // The placeholder kernel socket validates the option and keeps its
    // value (so getsockopt reads it back and errors match the kernel's).
    // SAFETY: forwards the caller's arguments.
    let r = unsafe { real::setsockopt(fd, level, name, v, len) };
    if r < 0 {
        return r;
    }
    if let Some(s) = lookup(fd) {
        match (level, name) {
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) if !v.is_null() && len as usize >= 4 => {
                // SAFETY: an int option (validated by the kernel).
                let on = unsafe { std::ptr::read_unaligned(v.cast::<c_int>()) } != 0;
                io::set_nodelay(&s, on);
            }
            (libc::IPPROTO_TCP, libc::TCP_CORK) if !v.is_null() && len as usize >= 4 => {
                // SAFETY: an int option (validated by the kernel).
                let on = unsafe { std::ptr::read_unaligned(v.cast::<c_int>()) } != 0;
                io::set_cork(&s, on);
            }
            (libc::SOL_SOCKET, libc::SO_LINGER)
                if !v.is_null() && len as usize >= std::mem::size_of::<libc::linger>() =>
            {
                // SAFETY: a struct linger (size checked, validated by the kernel).
                let l = unsafe { std::ptr::read_unaligned(v.cast::<libc::linger>()) };
                io::set_linger_zero(&s, l.l_onoff != 0 && l.l_linger == 0);
                let secs = if l.l_onoff != 0 {
                    l.l_linger.max(0) as u32
                } else {
                    0
                };
                s.linger_secs
                    .store(secs, std::sync::atomic::Ordering::Relaxed);
            }
            (libc::SOL_SOCKET, libc::SO_MAX_PACING_RATE) if !v.is_null() && len >= 4 => {
                // As Linux: a u64 when 8 bytes are given, else a u32;
                // all ones means no cap.
                let rate = if len as usize >= 8 {
                    // SAFETY: 8 bytes of the caller's (validated) option.
                    unsafe { std::ptr::read_unaligned(v.cast::<u64>()) }
                } else {
                    // SAFETY: 4 bytes of the caller's (validated) option.
                    let r = unsafe { std::ptr::read_unaligned(v.cast::<u32>()) };
                    if r == u32::MAX {
                        u64::MAX
                    } else {
                        u64::from(r)
                    }
                };
                io::set_max_pacing_rate(&s, if rate == u64::MAX { 0 } else { rate });
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                io::set_buffer_size(fd, &s, name)
            }
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
            | (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT) => {
                io::set_keepalive(fd, &s)
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => {
                if let Some(ns) = timeval_ns(v, len) {
                    s.rcvtimeo.store(ns, Ordering::Relaxed);
                }
            }
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => {
                if let Some(ns) = timeval_ns(v, len) {
                    s.sndtimeo.store(ns, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    v: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    if let Some(s) = lookup(fd) {
        if let Err(e) = stale_check(&s) {
            return fail(e);
        }
        if (level, name) == (libc::IPPROTO_TCP, libc::TCP_CONGESTION) {
            if v.is_null() || len.is_null() {
                return fail(libc::EFAULT);
            }
            // As Linux: the name NUL-padded to TCP_CA_NAME_MAX (16) bytes,
            // of which `*len` are copied.
            let mut buf = [0u8; 16];
            let cc = io::congestion_control(&s);
            let n = cc.len().min(15);
            buf[..n].copy_from_slice(&cc.as_bytes()[..n]);
            // SAFETY: the caller's buffer of `*len` bytes.
            unsafe {
                let n = (*len as usize).min(buf.len());
                std::ptr::copy_nonoverlapping(buf.as_ptr(), v.cast::<u8>(), n);
                *len = n as socklen_t;
            }
            return 0;
        }
        if (level, name) == (libc::IPPROTO_TCP, libc::TCP_INFO) {
            if v.is_null() || len.is_null() {
                return fail(libc::EFAULT);
            }
            let t = io::tcp_info(&s);
            // SAFETY: the caller's buffer of `*len` bytes; `t` is plain data.
            unsafe {
                let n = (*len as usize).min(std::mem::size_of_val(&t));
                std::ptr::copy_nonoverlapping(
                    (&t as *const libc::tcp_info).cast::<u8>(),
                    v.cast::<u8>(),
                    n,
                );
                *len = n as socklen_t;
            }
            return 0;
        }
        let int_opt = match (level, name) {
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => io::mss(&s),
            (libc::SOL_SOCKET, libc::SO_ERROR) => Some(io::take_error(&s)),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => Some(c_int::from(io::is_listening(&s))),
            _ => None,
        };
        if let Some(val) = int_opt {
            if v.is_null() || len.is_null() {
                return fail(libc::EFAULT);
            }
            // SAFETY: the caller's buffer of `*len` bytes.
            unsafe {
                let n = (*len as usize).min(4);
                std::ptr::copy_nonoverlapping(
                    (&val as *const c_int).cast::<u8>(),
                    v.cast::<u8>(),
                    n,
                );
                *len = n as socklen_t;
            }
            return 0;
        }
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::getsockopt(fd, level, name, v, len) }
}

#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::getsockname(fd, a, len) };
    };
    if let Err(e) = stale_check(&s) {
        return fail(e);
    }
    if a.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller's buffer and length.
    unsafe { write_addr(io::local_addr(&s), a, len) };
    0
}

#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, a: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::getpeername(fd, a, len) };
    };
    if let Err(e) = stale_check(&s) {
        return fail(e);
    }
    if a.is_null() || len.is_null() {
        return fail(libc::EFAULT);
    }
    match io::peer_addr(&s) {
        Ok(p) => {
            // SAFETY: the caller's buffer and length.
            unsafe { write_addr(p, a, len) };
            0
        }
        Err(e) => fail(e),
    }
}

// ---- dup ---------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: forwards the caller's argument.
    let r = unsafe { real::dup(fd) };
    if r >= 0 {
        if let Some(s) = lookup(fd) {
            state::insert(r, Arc::clone(&s));
        }
    }
    r
}

fn dup_onto(old: c_int, new: c_int, r: c_int) -> c_int {
    if r >= 0 && old != new {
        if let Some(s) = state::remove(new) {
            state::release(s);
        }
        epoll_set::epoll_closed(new);
        if let Some(s) = lookup(old) {
            state::insert(new, Arc::clone(&s));
        }
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: forwards the caller's arguments.
    let r = unsafe { real::dup2(old, new) };
    dup_onto(old, new, r)
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: forwards the caller's arguments.
    let r = unsafe { real::dup3(old, new, flags) };
    dup_onto(old, new, r)
}

// ---- poll / select -----------------------------------------------------

/// poll over the caller's array; `None` if nothing in it is offloaded.
unsafe fn poll_offloaded(
    fds: *mut pollfd,
    n: nfds_t,
    deadline: impl FnOnce() -> Option<std::time::Instant>,
    sigmask: *const sigset_t,
) -> Option<c_int> {
    if !state::ANY.load(Ordering::Relaxed) || fds.is_null() || n == 0 {
        return None;
    }
    // SAFETY: the caller's array of `n` pollfds.
    let fds = unsafe { std::slice::from_raw_parts_mut(fds, n as usize) };
    let calls: Vec<Option<state::Call>> = fds.iter().map(|p| lookup(p.fd)).collect();
    let socks: Vec<Option<Arc<Sock>>> = calls.iter().map(|c| c.as_deref().cloned()).collect();
    if socks.iter().all(Option::is_none) {
        return None;
    }
    Some(ret(wait::poll_core(fds, &socks, deadline(), sigmask)))
}

#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the caller's array.
    let found = unsafe { poll_offloaded(fds, n, || wait::deadline_ms(timeout), std::ptr::null()) };
    if let Some(r) = found {
        return r;
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::poll(fds, n, timeout) }
}

#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if (n as usize).saturating_mul(std::mem::size_of::<pollfd>()) > fdslen {
        std::process::abort();
    }
    // SAFETY: same contract.
    unsafe { poll(fds, n, timeout) }
}

#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's array and timeout.
    let found = unsafe { poll_offloaded(fds, n, || wait::deadline_ts(ts), mask) };
    if let Some(r) = found {
        return r;
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::ppoll(fds, n, ts, mask) }
}

#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    if (n as usize).saturating_mul(std::mem::size_of::<pollfd>()) > fdslen {
        std::process::abort();
    }
    // SAFETY: same contract.
    unsafe { ppoll(fds, n, ts, mask) }
}

const FD_BITS: usize = 8 * std::mem::size_of::<libc::c_ulong>();

unsafe fn fd_isset(set: *const fd_set, fd: usize) -> bool {
    if set.is_null() {
        return false;
    }
    // SAFETY: fd < FD_SETSIZE (checked by the caller); fd_set is an array
    // of unsigned longs.
    unsafe { (*set.cast::<c_ulong>().add(fd / FD_BITS) >> (fd % FD_BITS)) & 1 != 0 }
}

unsafe fn fd_set_bit(set: *mut fd_set, fd: usize) {
    // SAFETY: as `fd_isset`.
    unsafe { *set.cast::<c_ulong>().add(fd / FD_BITS) |= 1 << (fd % FD_BITS) };
}

/// select over offloaded fds; `None` if none of the sets holds one.
unsafe fn select_offloaded(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    deadline: impl FnOnce() -> Option<std::time::Instant>,
    sigmask: *const sigset_t,
) -> Option<c_int> {
    if !state::ANY.load(Ordering::Relaxed) || nfds <= 0 {
        return None;
    }
    let nfds = (nfds as usize).min(libc::FD_SETSIZE);
    let mut fds = Vec::new();
    let mut socks = Vec::new();
    let mut any = false;
    for fd in 0..nfds {
        // SAFETY: fd < FD_SETSIZE; the sets are the caller's (or null).
        let (ir, iw, ie) = unsafe { (fd_isset(r, fd), fd_isset(w, fd), fd_isset(e, fd)) };
        if !(ir || iw || ie) {
            continue;
        }
        let mut events = 0;
        if ir {
            events |= libc::POLLIN;
        }
        if iw {
            events |= libc::POLLOUT;
        }
        if ie {
            events |= libc::POLLPRI;
        }
        let s = lookup(fd as c_int).map(|c| Arc::clone(&c));
        any |= s.is_some();
        fds.push(pollfd {
            fd: fd as c_int,
            events,
            revents: 0,
        });
        socks.push(s);
    }
    if !any {
        return None;
    }
    let n = match wait::poll_core(&mut fds, &socks, deadline(), sigmask) {
        Ok(n) => n,
        Err(err) => return Some(fail(err)),
    };
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Some(fail(libc::EBADF));
    }
    // SAFETY: clears the caller's sets (FD_SETSIZE bits each).
    unsafe {
        for set in [r, w, e] {
            if !set.is_null() {
                libc::FD_ZERO(set);
            }
        }
    }
    let mut count = 0;
    if n > 0 {
        for p in &fds {
            let fd = p.fd as usize;
            let rv = p.revents;
            // SAFETY: fd < FD_SETSIZE; the caller's sets.
            unsafe {
                if !r.is_null()
                    && p.events & libc::POLLIN != 0
                    && rv & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                {
                    fd_set_bit(r, fd);
                    count += 1;
                }
                if !w.is_null()
                    && p.events & libc::POLLOUT != 0
                    && rv & (libc::POLLOUT | libc::POLLERR) != 0
                {
                    fd_set_bit(w, fd);
                    count += 1;
                }
                if !e.is_null() && p.events & libc::POLLPRI != 0 && rv & libc::POLLPRI != 0 {
                    fd_set_bit(e, fd);
                    count += 1;
                }
            }
        }
    }
    Some(count)
}

#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    t: *mut timeval,
) -> c_int {
    // SAFETY: the caller's timeout, if any.
    let tv = unsafe { t.as_ref() }.copied();
    let deadline = tv.map(|tv| {
        std::time::Instant::now()
            + std::time::Duration::from_micros(
                (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64,
            )
    });
    // SAFETY: the caller's sets.
    let found = unsafe { select_offloaded(nfds, r, w, e, || deadline, std::ptr::null()) };
    if let Some(res) = found {
        if let (Some(d), false) = (deadline, t.is_null()) {
            // Linux reports the time left.
            let left = d.saturating_duration_since(std::time::Instant::now());
            // SAFETY: the caller's timeval.
            unsafe {
                (*t).tv_sec = left.as_secs() as libc::time_t;
                (*t).tv_usec = left.subsec_micros() as libc::suseconds_t;
            }
        }
        return res;
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::select(nfds, r, w, e, t) }
}

#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's sets, timeout and mask.
    let found = unsafe { select_offloaded(nfds, r, w, e, || wait::deadline_ts(ts), mask) };
    if let Some(res) = found {
        return res;
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::pselect(nfds, r, w, e, ts, mask) }
}

// ---- epoll -----------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn epoll_create(size: c_int) -> c_int {
    // SAFETY: forwards the caller's argument.
    unsafe { real::epoll_create(size) }
}

#[no_mangle]
pub unsafe extern "C" fn epoll_create1(flags: c_int) -> c_int {
    // SAFETY: forwards the caller's argument.
    unsafe { real::epoll_create1(flags) }
}

#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut epoll_event,
) -> c_int {
    let Some(s) = lookup(fd) else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::epoll_ctl(epfd, op, fd, ev) };
    };
    if s.stale() {
        return fail(libc::EBADF);
    }
    if epfd == fd {
        return fail(libc::EINVAL);
    }
    // The epoll fd must be one: a DEL of an fd that is surely not in its
    // kernel set tells EBADF/EINVAL from ENOENT.
    // SAFETY: plain syscall with a dummy event.
    let probe = unsafe {
        let mut dummy = epoll_event { events: 0, u64: 0 };
        real::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, &mut dummy)
    };
    if probe < 0 && errno() != libc::ENOENT {
        return -1;
    }
    // SAFETY: the caller's event, read for ADD/MOD.
    let evv = unsafe { ev.as_ref() }.copied();
    let set = epoll_set::epoll_set_or_new(epfd);
    let mut regs = set.regs.lock();
    match op {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
            let Some(e) = evv else {
                return fail(libc::EFAULT);
            };
            let exists = regs.map.contains_key(&fd);
            if op == libc::EPOLL_CTL_ADD && exists {
                return fail(libc::EEXIST);
            }
            if op == libc::EPOLL_CTL_MOD && !exists {
                return fail(libc::ENOENT);
            }
            if !regs.register(epfd, fd, e.events, e.u64, &s) {
                // No slot left on the socket: this set visits every member.
                set.untracked.store(true, Ordering::Relaxed);
            }
            0
        }
        libc::EPOLL_CTL_DEL => {
            if regs.unregister(epfd, fd, Some(&s)) {
                0
            } else {
                fail(libc::ENOENT)
            }
        }
        _ => fail(libc::EINVAL),
    }
}

unsafe fn epoll_wait_impl(
    epfd: c_int,
    evs: *mut epoll_event,
    max: c_int,
    deadline: impl FnOnce() -> Option<std::time::Instant>,
    mask: *const sigset_t,
) -> Option<c_int> {
    let set = epoll_set::epoll_set(epfd)?;
    if set.regs.lock().map.is_empty() {
        return None;
    }
    Some(ret(wait::epoll_core(
        epfd,
        &set,
        evs,
        max,
        deadline(),
        mask,
    )))
}

#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    evs: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    // SAFETY: the caller's array of `max` events.
    let found = unsafe {
        epoll_wait_impl(
            epfd,
            evs,
            max,
            || wait::deadline_ms(timeout),
            std::ptr::null(),
        )
    };
    if let Some(r) = found {
        return r;
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::epoll_wait(epfd, evs, max, timeout) }
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    evs: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the caller's array of `max` events and mask.
    let found = unsafe { epoll_wait_impl(epfd, evs, max, || wait::deadline_ms(timeout), mask) };
    if let Some(r) = found {
        return r;
    }
    // SAFETY: forwards the caller's arguments.
    unsafe { real::epoll_pwait(epfd, evs, max, timeout, mask) }
}

// ---- raw syscall() -----------------------------------------------------------

/// `syscall(2)` for the socket system calls (some runtimes issue them
/// directly); every other number goes to libc. Declared with six integer
/// arguments: on x86-64 and aarch64 a variadic caller passes them in the
/// same registers.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    // SAFETY: each arm reinterprets the raw arguments as the system call's
    // C prototype, as the kernel would.
    unsafe {
        match n {
            libc::SYS_socket => socket(a as c_int, b as c_int, c as c_int) as c_long,
            libc::SYS_bind => bind(a as c_int, b as *const sockaddr, c as socklen_t) as c_long,
            libc::SYS_listen => listen(a as c_int, b as c_int) as c_long,
            libc::SYS_accept => {
                accept(a as c_int, b as *mut sockaddr, c as *mut socklen_t) as c_long
            }
            libc::SYS_accept4 => accept4(
                a as c_int,
                b as *mut sockaddr,
                c as *mut socklen_t,
                d as c_int,
            ) as c_long,
            libc::SYS_connect => {
                connect(a as c_int, b as *const sockaddr, c as socklen_t) as c_long
            }
            libc::SYS_sendto => sendto(
                a as c_int,
                b as *const c_void,
                c as size_t,
                d as c_int,
                e as *const sockaddr,
                f as socklen_t,
            ) as c_long,
            libc::SYS_recvfrom => recvfrom(
                a as c_int,
                b as *mut c_void,
                c as size_t,
                d as c_int,
                e as *mut sockaddr,
                f as *mut socklen_t,
            ) as c_long,
            libc::SYS_sendmsg => sendmsg(a as c_int, b as *const msghdr, c as c_int) as c_long,
            libc::SYS_recvmsg => recvmsg(a as c_int, b as *mut msghdr, c as c_int) as c_long,
            libc::SYS_shutdown => shutdown(a as c_int, b as c_int) as c_long,
            libc::SYS_getsockname => {
                getsockname(a as c_int, b as *mut sockaddr, c as *mut socklen_t) as c_long
            }
            libc::SYS_getpeername => {
                getpeername(a as c_int, b as *mut sockaddr, c as *mut socklen_t) as c_long
            }
            libc::SYS_setsockopt => setsockopt(
                a as c_int,
                b as c_int,
                c as c_int,
                d as *const c_void,
                e as socklen_t,
            ) as c_long,
            libc::SYS_getsockopt => getsockopt(
                a as c_int,
                b as c_int,
                c as c_int,
                d as *mut c_void,
                e as *mut socklen_t,
            ) as c_long,
            libc::SYS_close if lookup(a as c_int).is_some() => close(a as c_int) as c_long,
            libc::SYS_read if lookup(a as c_int).is_some() => {
                read(a as c_int, b as *mut c_void, c as size_t) as c_long
            }
            libc::SYS_write if lookup(a as c_int).is_some() => {
                write(a as c_int, b as *const c_void, c as size_t) as c_long
            }
            _ => real::syscall(n, a, b, c, d, e, f),
        }
    }
}

// ---- signals (SA_RESTART, see signals.rs) --------------------------------

#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the caller's contract is sigaction(2)'s.
    unsafe { crate::signals::sigaction(sig, act, old) }
}

#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: the caller's contract is signal(2)'s.
    unsafe { crate::signals::signal(sig, handler, true) }
}

#[no_mangle]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: as `signal`.
    unsafe { crate::signals::signal(sig, handler, true) }
}

#[no_mangle]
pub unsafe extern "C" fn sysv_signal(
    sig: c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    // SAFETY: as `signal`.
    unsafe { crate::signals::signal(sig, handler, false) }
}
