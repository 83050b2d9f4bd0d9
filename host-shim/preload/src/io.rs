//! The socket operations on offloaded sockets, in safe Rust: results are
//! `Ok(value)` or `Err(errno)`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libc::c_int;
use toe::{TcpListener, TcpStream};

use crate::real;
use crate::state::{self, insert, refill, settle_connect, Sock, State, SERVICE_LOST};
use crate::wait::wait_one;

fn errno_of(e: &std::io::Error) -> c_int {
    toe::errno_of(e)
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

fn deadline(ns: u64) -> Option<Instant> {
    (ns != 0).then(|| Instant::now() + Duration::from_nanos(ns))
}

/// The stream to read or write, or why there is none.
enum Io {
    Ready(Arc<TcpStream>),
    Connecting,
}

fn io_stream(sock: &Sock, for_write: bool) -> Result<Io, c_int> {
    if sock.stale() {
        return Err(libc::EBADF);
    }
    if SERVICE_LOST.load(Ordering::Relaxed) {
        return Err(if for_write {
            libc::EPIPE
        } else {
            libc::ECONNRESET
        });
    }
    let mut st = sock.state.lock();
    settle_connect(sock, &mut st);
    match &mut *st {
        State::Fresh { .. } | State::Listening { .. } => Err(if for_write {
            libc::EPIPE
        } else {
            libc::ENOTCONN
        }),
        State::Stream {
            failed: Some(e),
            reported,
            ..
        } => {
            if *reported {
                Err(if for_write {
                    libc::EPIPE
                } else {
                    libc::ENOTCONN
                })
            } else {
                *reported = true;
                Err(*e)
            }
        }
        State::Stream {
            connecting: true, ..
        } => Ok(Io::Connecting),
        State::Stream { s, .. } => Ok(Io::Ready(s.clone())),
    }
}

/// Reads into `buf` (recv flags: MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL).
pub(crate) fn read(
    fd: c_int,
    sock: &Arc<Sock>,
    buf: &mut [u8],
    flags: c_int,
) -> Result<usize, c_int> {
    let nonblock = sock.nonblock.load(Ordering::Relaxed) || flags & libc::MSG_DONTWAIT != 0;
    let peek = flags & libc::MSG_PEEK != 0;
    let waitall = flags & libc::MSG_WAITALL != 0 && !peek;
    let dl = deadline(sock.rcvtimeo.load(Ordering::Relaxed));
    if buf.is_empty() {
        return Ok(0);
    }
    let mut done = 0usize;
    loop {
        let r = match io_stream(sock, false) {
            Ok(Io::Ready(s)) => {
                let mut pk = sock.peeked.lock();
                if peek {
                    let mut eof = false;
                    while pk.len() < buf.len() {
                        let mut tmp = vec![0u8; buf.len() - pk.len()];
                        match (&*s).read(&mut tmp) {
                            Ok(0) => {
                                eof = true;
                                break;
                            }
                            Ok(n) => pk.extend_from_slice(&tmp[..n]),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) if pk.is_empty() => return Err(errno_of(&e)),
                            Err(_) => break,
                        }
                    }
                    if !pk.is_empty() {
                        let n = pk.len().min(buf.len());
                        buf[..n].copy_from_slice(&pk[..n]);
                        return Ok(n);
                    }
                    if eof {
                        return Ok(0);
                    }
                    Err(libc::EAGAIN)
                } else if !pk.is_empty() {
                    let n = pk.len().min(buf.len() - done);
                    buf[done..done + n].copy_from_slice(&pk[..n]);
                    pk.drain(..n);
                    let mut n = n;
                    if pk.is_empty() && done + n < buf.len() {
                        // Whatever else is already there, like one kernel read.
                        if let Ok(k) = (&*s).read(&mut buf[done + n..]) {
                            n += k;
                        }
                    }
                    sock.rx_consumed.fetch_add(n as u64, Ordering::Relaxed);
                    Ok(n)
                } else {
                    drop(pk);
                    match (&*s).read(&mut buf[done..]) {
                        Ok(0) => return Ok(done),
                        Ok(n) => {
                            sock.rx_consumed.fetch_add(n as u64, Ordering::Relaxed);
                            Ok(n)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(libc::EAGAIN),
                        Err(e) => Err(errno_of(&e)),
                    }
                }
            }
            Ok(Io::Connecting) => Err(libc::EAGAIN),
            Err(e) => Err(e),
        };
        match r {
            Ok(n) => {
                done += n;
                if !waitall || done == buf.len() {
                    return Ok(done);
                }
            }
            Err(libc::EAGAIN) => {
                if done > 0 && !waitall {
                    return Ok(done);
                }
                if nonblock {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(libc::EAGAIN)
                    };
                }
                if let Err(e) = wait_one(fd, sock, libc::POLLIN, dl) {
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            }
            Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
        }
    }
}

fn sigpipe(flags: c_int) {
    if flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: raises a signal in the calling thread, like the kernel.
        unsafe { libc::raise(libc::SIGPIPE) };
    }
}

/// Writes `buf` (send flags: MSG_DONTWAIT, MSG_NOSIGNAL). Blocking sockets
/// write everything unless a signal or timeout comes.
pub(crate) fn write(fd: c_int, sock: &Arc<Sock>, buf: &[u8], flags: c_int) -> Result<usize, c_int> {
    let nonblock = sock.nonblock.load(Ordering::Relaxed) || flags & libc::MSG_DONTWAIT != 0;
    let dl = deadline(sock.sndtimeo.load(Ordering::Relaxed));
    if buf.is_empty() {
        return Ok(0);
    }
    let mut done = 0usize;
    loop {
        let r = match io_stream(sock, true) {
            Ok(Io::Ready(s)) => match (&*s).write(&buf[done..]) {
                Ok(n) => {
                    sock.tx_written.fetch_add(n as u64, Ordering::Relaxed);
                    Ok(n)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(libc::EAGAIN),
                Err(e) => Err(errno_of(&e)),
            },
            Ok(Io::Connecting) => Err(libc::EAGAIN),
            Err(e) => Err(e),
        };
        match r {
            Ok(n) => {
                done += n;
                if done == buf.len() {
                    return Ok(done);
                }
            }
            Err(libc::EAGAIN) => {
                if nonblock {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(libc::EAGAIN)
                    };
                }
                if let Err(e) = wait_one(fd, sock, libc::POLLOUT, dl) {
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            }
            Err(e) => {
                if done > 0 {
                    return Ok(done);
                }
                if e == libc::EPIPE {
                    sigpipe(flags);
                }
                return Err(e);
            }
        }
    }
}

/// Writes several buffers in order; stops at the first short write.
pub(crate) fn writev(
    fd: c_int,
    sock: &Arc<Sock>,
    bufs: &[&[u8]],
    flags: c_int,
) -> Result<usize, c_int> {
    let mut total = 0;
    for b in bufs {
        if b.is_empty() {
            continue;
        }
        match write(fd, sock, b, flags) {
            Ok(n) => {
                total += n;
                if n < b.len() {
                    break;
                }
            }
            Err(_) if total > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// sendfile(2) to an offloaded socket: the file is read here and written
/// to the connection's TX buffer.
pub(crate) fn sendfile(
    out_fd: c_int,
    sock: &Arc<Sock>,
    in_fd: c_int,
    offset: Option<&mut libc::off_t>,
    count: usize,
) -> Result<usize, c_int> {
    const CHUNK: usize = 256 * 1024;
    let mut buf = vec![0u8; CHUNK.min(count.max(1))];
    let mut pos = offset.as_ref().map(|o| **o);
    let mut total = 0usize;
    let mut ret = Ok(());
    while total < count {
        let want = buf.len().min(count - total);
        // SAFETY: reads at most `want` bytes into `buf`.
        let n = unsafe {
            match pos {
                Some(p) => real::pread(in_fd, buf.as_mut_ptr().cast(), want, p),
                None => real::read(in_fd, buf.as_mut_ptr().cast(), want),
            }
        };
        if n < 0 {
            ret = Err(crate::wait::errno());
            break;
        }
        if n == 0 {
            break;
        }
        let n = n as usize;
        let w = match write(out_fd, sock, &buf[..n], 0) {
            Ok(w) => w,
            Err(e) => {
                if pos.is_none() {
                    // SAFETY: rewinds the file position past unsent data.
                    unsafe { real::lseek(in_fd, -(n as libc::off_t), libc::SEEK_CUR) };
                }
                ret = Err(e);
                break;
            }
        };
        total += w;
        if let Some(p) = pos.as_mut() {
            *p += w as libc::off_t;
        }
        if w < n {
            if pos.is_none() {
                // SAFETY: as above.
                unsafe { real::lseek(in_fd, -((n - w) as libc::off_t), libc::SEEK_CUR) };
            }
            break;
        }
    }
    if let (Some(o), Some(p)) = (offset, pos) {
        *o = p;
    }
    match ret {
        Err(e) if total == 0 => Err(e),
        _ => Ok(total),
    }
}

/// What `bind` does with an AF_INET address.
pub(crate) enum BindTo {
    /// Recorded for the engine.
    Engine,
    /// Not an engine address: the socket becomes the kernel's.
    Kernel,
}

pub(crate) fn bind(sock: &Sock, addr: SocketAddrV4) -> Result<BindTo, c_int> {
    let toe_ip = state::toe().map(|t| t.local_ip());
    let mut st = sock.state.lock();
    match &mut *st {
        State::Fresh { bound: None } => {
            let ip = *addr.ip();
            if ip.is_unspecified() || Some(ip) == toe_ip {
                *st = State::Fresh { bound: Some(addr) };
                Ok(BindTo::Engine)
            } else {
                Ok(BindTo::Kernel)
            }
        }
        _ => Err(libc::EINVAL),
    }
}

pub(crate) fn listen(fd: c_int, sock: &Sock, backlog: c_int) -> Result<(), c_int> {
    let Some(toe) = state::toe() else {
        return Err(libc::EBADF);
    };
    // SO_REUSEPORT, as the placeholder kept it: several sockets of this
    // application may listen on the port (and share its connections).
    let reuseport = {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: an int option into a local of the size given.
        let r = unsafe {
            real::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT,
                (&raw mut v).cast(),
                &mut len,
            )
        };
        r == 0 && v != 0
    };
    let bind = |addr: SocketAddrV4| {
        let cc = sock.cc.load(Ordering::Relaxed);
        if reuseport {
            TcpListener::bind_reuseport(&toe, addr, backlog_u32(backlog), cc)
        } else {
            TcpListener::bind_with(&toe, addr, backlog_u32(backlog), cc)
        }
    };
    let mut st = sock.state.lock();
    let bound = match &*st {
        State::Fresh { bound } => *bound,
        State::Listening { .. } => return Ok(()),
        State::Stream { .. } => return Err(libc::EINVAL),
    };
    let addr = bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let l = if addr.port() == 0 {
        // Ephemeral port: the engine wants an explicit one.
        let mut seed = u64::from(std::process::id()) ^ (Instant::now().elapsed().as_nanos() as u64);
        let mut last = libc::EADDRINUSE;
        let mut found = None;
        for _ in 0..64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let port = 32768 + ((seed >> 33) % 28000) as u16;
            let addr = SocketAddrV4::new(*addr.ip(), port);
            // A port picked here is never shared (as Linux's).
            match TcpListener::bind_with(
                &toe,
                addr,
                backlog_u32(backlog),
                sock.cc.load(Ordering::Relaxed),
            ) {
                Ok(l) => {
                    found = Some(l);
                    break;
                }
                Err(e) => last = errno_of(&e),
            }
        }
        found.ok_or(last)?
    } else {
        bind(addr).map_err(|e| errno_of(&e))?
    };
    let _ = l.set_nonblocking(true);
    *st = State::Listening {
        l,
        pending: Default::default(),
        seen: 0,
    };
    Ok(())
}

fn backlog_u32(backlog: c_int) -> u32 {
    u32::try_from(backlog).unwrap_or(0)
}

/// Accepts a connection; the new fd is a placeholder kernel socket.
pub(crate) fn accept(
    fd: c_int,
    sock: &Arc<Sock>,
    flags: c_int,
) -> Result<(c_int, SocketAddrV4), c_int> {
    if sock.stale() {
        return Err(libc::EBADF);
    }
    loop {
        let got = {
            let mut st = sock.state.lock();
            match &mut *st {
                State::Listening { l, pending, seen } => {
                    if pending.is_empty() {
                        refill(l, pending, seen);
                    }
                    pending.pop_front()
                }
                _ => return Err(libc::EINVAL),
            }
        };
        if let Some(s) = got {
            let ty = libc::SOCK_STREAM | (flags & (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK));
            // SAFETY: creates a socket; no pointers involved.
            let nfd = unsafe { real::socket(libc::AF_INET, ty, 0) };
            if nfd < 0 {
                return Err(crate::wait::errno());
            }
            let peer = s
                .peer_addr()
                .map(v4)
                .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
            // Accepted sockets inherit TCP_NODELAY, TCP_CORK, SO_LINGER
            // and SO_MAX_PACING_RATE, as on Linux (TCP_NODELAY on is the
            // engine's default).
            let nodelay = sock.nodelay.load(Ordering::Relaxed);
            let (nagle, cork) = (
                sock.nagle.load(Ordering::Relaxed),
                sock.cork.load(Ordering::Relaxed),
            );
            if nagle {
                let _ = s.set_nodelay(false);
            }
            if cork {
                let _ = s.set_cork(true);
            }
            let linger_zero = sock.linger_zero.load(Ordering::Relaxed);
            if linger_zero {
                let _ = s.set_linger_zero(true);
            }
            let pacing = sock.max_pacing_rate.load(Ordering::Relaxed);
            if pacing > 0 {
                let _ = s.set_max_pacing_rate(Some(pacing));
            }
            // SO_KEEPALIVE with its timers and the buffer sizes too: on the
            // new placeholder (so getsockopt reads them back) and in the
            // engine.
            let keepalive = sock.keepalive.load(Ordering::Relaxed);
            let (rcvbuf, sndbuf) = (
                sock.rcvbuf.load(Ordering::Relaxed),
                sock.sndbuf.load(Ordering::Relaxed),
            );
            if keepalive != 0 || rcvbuf != 0 || sndbuf != 0 {
                copy_inherited_options(fd, nfd);
            }
            if keepalive != 0 {
                let _ = s.set_keepalive(keepalive_settings(keepalive));
            }
            if rcvbuf != 0 {
                let _ = s.set_recv_buffer_size(rcvbuf as usize);
            }
            if sndbuf != 0 {
                let _ = s.set_send_buffer_size(sndbuf as usize);
            }
            // TCP_CONGESTION set on the listener after listen(): the
            // engine's listener kept the earlier choice, so apply it here.
            let cc = sock.cc.load(Ordering::Relaxed);
            if let Some(name) = toe::cc_name(cc) {
                if s.congestion_control() != name {
                    let _ = s.set_congestion_control(name);
                }
            }
            let ns = Sock::new(
                State::Stream {
                    s: Arc::new(s),
                    connecting: false,
                    failed: None,
                    reported: true,
                },
                flags & libc::SOCK_NONBLOCK != 0,
            );
            ns.nodelay.store(nodelay, Ordering::Relaxed);
            ns.nagle.store(nagle, Ordering::Relaxed);
            ns.cork.store(cork, Ordering::Relaxed);
            ns.linger_zero.store(linger_zero, Ordering::Relaxed);
            ns.linger_secs
                .store(sock.linger_secs.load(Ordering::Relaxed), Ordering::Relaxed);
            ns.max_pacing_rate.store(pacing, Ordering::Relaxed);
            ns.keepalive.store(keepalive, Ordering::Relaxed);
            ns.rcvbuf.store(rcvbuf, Ordering::Relaxed);
            ns.sndbuf.store(sndbuf, Ordering::Relaxed);
            insert(nfd, ns);
            return Ok((nfd, peer));
        }
        if sock.nonblock.load(Ordering::Relaxed) {
            return Err(libc::EAGAIN);
        }
        wait_one(fd, sock, libc::POLLIN, None)?;
    }
}

/// What `connect` did.
pub(crate) enum Connected {
    Done,
    /// The destination is the host's (loopback): hand the socket to the
    /// kernel and connect there (after binding it to this address).
    Kernel(Option<SocketAddrV4>),
}

pub(crate) fn connect(fd: c_int, sock: &Arc<Sock>, addr: SocketAddrV4) -> Result<Connected, c_int> {
    if sock.stale() {
        return Err(libc::EBADF);
    }
    let Some(toe) = state::toe() else {
        return Err(libc::EBADF);
    };
    {
        let mut st = sock.state.lock();
        settle_connect(sock, &mut st);
        match &*st {
            State::Fresh { bound } => {
                if !state::offloadable_dest(*addr.ip()) {
                    if bound.is_some_and(|b| !b.ip().is_unspecified()) {
                        // A loopback peer from a socket bound to the DPU's IP.
                        return Err(libc::EADDRNOTAVAIL);
                    }
                    return Ok(Connected::Kernel(*bound));
                }
            }
            State::Listening { .. } => return Err(libc::EISCONN),
            State::Stream {
                connecting: true, ..
            } => {
                return Err(if sock.nonblock.load(Ordering::Relaxed) {
                    libc::EALREADY
                } else {
                    libc::EINPROGRESS
                })
            }
            State::Stream { failed: None, .. } => {}
            // A failed connect may be retried.
            State::Stream { .. } => {}
        }
        if let State::Stream {
            failed, reported, ..
        } = &mut *st
        {
            match failed {
                // Like Linux: the first connect after a nonblocking one
                // completed returns its outcome, later ones EISCONN.
                None if !*reported => {
                    *reported = true;
                    return Ok(Connected::Done);
                }
                None => return Err(libc::EISCONN),
                Some(e) if !*reported => {
                    *reported = true;
                    return Err(*e);
                }
                Some(_) => {}
            }
        }
        let cc = sock.cc.load(Ordering::Relaxed);
        let s = TcpStream::connect_start_with(&toe, addr, cc).map_err(|e| errno_of(&e))?;
        let _ = s.set_nonblocking(true);
        *st = State::Stream {
            s: Arc::new(s),
            connecting: true,
            failed: None,
            reported: false,
        };
    }
    if sock.nonblock.load(Ordering::Relaxed) {
        // Completed already (unlikely): still EINPROGRESS, like Linux.
        return Err(libc::EINPROGRESS);
    }
    loop {
        {
            let mut st = sock.state.lock();
            settle_connect(sock, &mut st);
            if let State::Stream {
                connecting: false,
                failed,
                reported,
                ..
            } = &mut *st
            {
                *reported = true;
                return match failed {
                    Some(e) => Err(*e),
                    None => Ok(Connected::Done),
                };
            }
        }
        wait_one(fd, sock, libc::POLLOUT, None)?;
    }
}

pub(crate) fn shutdown(sock: &Sock, how: c_int) -> Result<(), c_int> {
    let how = match how {
        libc::SHUT_RD => std::net::Shutdown::Read,
        libc::SHUT_WR => std::net::Shutdown::Write,
        libc::SHUT_RDWR => std::net::Shutdown::Both,
        _ => return Err(libc::EINVAL),
    };
    let s = {
        let mut st = sock.state.lock();
        settle_connect(sock, &mut st);
        match &*st {
            State::Listening { .. } => return Ok(()),
            State::Stream {
                s,
                connecting: false,
                failed: None,
                ..
            } => s.clone(),
            _ => return Err(libc::ENOTCONN),
        }
    };
    s.shutdown(how).map_err(|e| errno_of(&e))
}

pub(crate) fn local_addr(sock: &Sock) -> SocketAddrV4 {
    match &*sock.state.lock() {
        State::Fresh { bound } => bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        State::Listening { l, .. } => l
            .local_addr()
            .map(v4)
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        State::Stream { s, .. } => s
            .local_addr()
            .map(v4)
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    }
}

pub(crate) fn peer_addr(sock: &Sock) -> Result<SocketAddrV4, c_int> {
    let mut st = sock.state.lock();
    settle_connect(sock, &mut st);
    match &*st {
        State::Stream {
            s,
            connecting: false,
            failed: None,
            ..
        } => Ok(s.peer_addr().map(v4).map_err(|e| errno_of(&e))?),
        _ => Err(libc::ENOTCONN),
    }
}

/// SO_ERROR: the pending error, cleared.
pub(crate) fn take_error(sock: &Sock) -> c_int {
    let mut st = sock.state.lock();
    settle_connect(sock, &mut st);
    match &mut *st {
        State::Stream {
            failed: Some(e),
            reported,
            ..
        } => {
            if *reported {
                0
            } else {
                *reported = true;
                *e
            }
        }
        State::Stream { s, .. } => match s.take_error() {
            Ok(Some(e)) => errno_of(&e),
            _ => 0,
        },
        _ => 0,
    }
}

/// FIONREAD.
pub(crate) fn readable(sock: &Sock) -> Result<c_int, c_int> {
    let peeked = sock.peeked.lock().len() as u64;
    match &*sock.state.lock() {
        State::Listening { .. } => Err(libc::EINVAL),
        State::Stream { s, .. } => {
            let n = s.readable_bytes().unwrap_or(0) + peeked;
            Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
        }
        State::Fresh { .. } => Ok(0),
    }
}

/// TCP_NODELAY applied to the engine's connection (off: Nagle's
/// algorithm).
pub(crate) fn set_nodelay(sock: &Sock, on: bool) {
    sock.nodelay.store(on, Ordering::Relaxed);
    sock.nagle.store(!on, Ordering::Relaxed);
    if let Some(s) = sock.stream() {
        let _ = s.set_nodelay(on);
    }
}

/// TCP_CORK applied to the engine's connection.
pub(crate) fn set_cork(sock: &Sock, on: bool) {
    sock.cork.store(on, Ordering::Relaxed);
    if let Some(s) = sock.stream() {
        let _ = s.set_cork(on);
    }
}

/// SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT, as the
/// placeholder kernel socket `fd` holds them (it validated them and keeps
/// them for getsockopt), packed as idle | interval << 16 | count << 32;
/// 0 when keepalive is off.
pub(crate) fn placeholder_keepalive(fd: c_int) -> u64 {
    let get = |level: c_int, name: c_int| -> c_int {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: an int option into a local of the size given.
        let r = unsafe { real::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
        if r < 0 {
            0
        } else {
            v
        }
    };
    if get(libc::SOL_SOCKET, libc::SO_KEEPALIVE) == 0 {
        return 0;
    }
    let secs = |v: c_int| v.clamp(1, 32767) as u64;
    secs(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE))
        | secs(get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)) << 16
        | (get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT).clamp(1, 127) as u64) << 32
}

/// The preload-side options of a socket adopted after an exec, from its
/// placeholder kernel socket (which kept what the program set): TCP_NODELAY,
/// SO_LINGER, SO_RCVTIMEO/SO_SNDTIMEO and keepalive (the engine kept its
/// own side of them).
pub(crate) fn options_from_placeholder(fd: c_int, sock: &Sock) {
    fn get<T: Default>(fd: c_int, level: c_int, name: c_int) -> Option<T> {
        let mut v = T::default();
        let mut len = std::mem::size_of::<T>() as libc::socklen_t;
        // SAFETY: the option is read into a local of the size given.
        let r = unsafe { real::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
        (r == 0).then_some(v)
    }
    let nodelay: c_int = get(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY).unwrap_or(0);
    sock.nodelay.store(nodelay != 0, Ordering::Relaxed);
    let linger = get::<[c_int; 2]>(fd, libc::SOL_SOCKET, libc::SO_LINGER).unwrap_or([0, 0]);
    sock.linger_zero
        .store(linger[0] != 0 && linger[1] == 0, Ordering::Relaxed);
    let secs = if linger[0] != 0 {
        linger[1].max(0) as u32
    } else {
        0
    };
    sock.linger_secs.store(secs, Ordering::Relaxed);
    for (name, slot) in [
        (libc::SO_RCVTIMEO, &sock.rcvtimeo),
        (libc::SO_SNDTIMEO, &sock.sndtimeo),
    ] {
        if let Some(tv) = get::<[i64; 2]>(fd, libc::SOL_SOCKET, name) {
            slot.store(
                tv[0].max(0) as u64 * 1_000_000_000 + tv[1].max(0) as u64 * 1000,
                Ordering::Relaxed,
            );
        }
    }
    sock.keepalive
        .store(placeholder_keepalive(fd), Ordering::Relaxed);
    let cork: c_int = get(fd, libc::IPPROTO_TCP, libc::TCP_CORK).unwrap_or(0);
    sock.cork.store(cork != 0, Ordering::Relaxed);
    sock.rcvbuf.store(
        placeholder_buffer_size(fd, libc::SO_RCVBUF),
        Ordering::Relaxed,
    );
    sock.sndbuf.store(
        placeholder_buffer_size(fd, libc::SO_SNDBUF),
        Ordering::Relaxed,
    );
}

/// Copies the options an accepted socket inherits from its listener
/// (keepalive, buffer sizes) from placeholder `from` to `to`.
fn copy_inherited_options(from: c_int, to: c_int) {
    for (level, name) in [
        (libc::SOL_SOCKET, libc::SO_RCVBUF),
        (libc::SOL_SOCKET, libc::SO_SNDBUF),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    ] {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: int options between two of our placeholder sockets, into
        // and out of a local of the size given.
        unsafe {
            if real::getsockopt(from, level, name, (&raw mut v).cast(), &mut len) == 0 {
                // The kernel reports buffer sizes doubled and doubles what
                // it is given: hand it back what the program set.
                if name == libc::SO_RCVBUF || name == libc::SO_SNDBUF {
                    v /= 2;
                }
                real::setsockopt(to, level, name, (&raw const v).cast(), len);
            }
        }
    }
}

/// SO_RCVBUF or SO_SNDBUF was set on `fd`: the placeholder's value (the
/// kernel doubles what it is given, to leave room for its overhead) halved
/// is what the engine's connection gets, as the payload Linux would hold.
pub(crate) fn set_buffer_size(fd: c_int, sock: &Sock, name: c_int) {
    let bytes = placeholder_buffer_size(fd, name);
    let slot = if name == libc::SO_RCVBUF {
        &sock.rcvbuf
    } else {
        &sock.sndbuf
    };
    slot.store(bytes, Ordering::Relaxed);
    if let Some(s) = sock.stream() {
        apply_buffer_sizes(sock, &s);
    }
}

/// SO_RCVBUF or SO_SNDBUF of the placeholder, halved (see
/// [`set_buffer_size`]); 0 when unreadable.
pub(crate) fn placeholder_buffer_size(fd: c_int, name: c_int) -> u32 {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: an int option into a local of the size given.
    if unsafe { real::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut v).cast(), &mut len) } < 0 {
        return 0;
    }
    (v.max(0) / 2) as u32
}

/// Gives the engine's connection the socket's SO_RCVBUF and SO_SNDBUF.
pub(crate) fn apply_buffer_sizes(sock: &Sock, s: &TcpStream) {
    let rcv = sock.rcvbuf.load(Ordering::Relaxed);
    if rcv != 0 {
        let _ = s.set_recv_buffer_size(rcv as usize);
    }
    let snd = sock.sndbuf.load(Ordering::Relaxed);
    if snd != 0 {
        let _ = s.set_send_buffer_size(snd as usize);
    }
}

/// A keepalive option was set on `fd`: the engine's connection follows
/// the placeholder's settings (kept for a connect still to complete).
pub(crate) fn set_keepalive(fd: c_int, sock: &Sock) {
    sock.keepalive
        .store(placeholder_keepalive(fd), Ordering::Relaxed);
    if let Some(s) = sock.stream() {
        apply_keepalive(sock, &s);
    }
}

/// Gives the engine's connection the socket's keepalive settings.
pub(crate) fn apply_keepalive(sock: &Sock, s: &TcpStream) {
    let _ = s.set_keepalive(keepalive_settings(sock.keepalive.load(Ordering::Relaxed)));
}

fn keepalive_settings(packed: u64) -> Option<toe::Keepalive> {
    (packed != 0).then(|| toe::Keepalive {
        idle: Duration::from_secs(packed & 0xffff),
        interval: Duration::from_secs((packed >> 16) & 0xffff),
        count: ((packed >> 32) & 0xff) as u32,
    })
}

/// The last close of a connection with SO_LINGER and a timeout: waits up
/// to that long for the peer to acknowledge what was written, as Linux's
/// close waits (Linux also waits for the FIN's ACK). A shared socket
/// (another fd, or another process after fork) does not wait.
pub(crate) fn linger(sock: &Arc<Sock>) {
    let secs = sock.linger_secs.load(Ordering::Relaxed);
    if secs == 0 || Arc::strong_count(sock) > 1 || sock.stale() {
        return;
    }
    if sock.inherited.load(Ordering::Relaxed) {
        return;
    }
    if let Some(s) = sock.stream() {
        let _ = s.wait_acknowledged(std::time::Duration::from_secs(secs.into()));
    }
}

/// SO_LINGER applied to the engine's connection: only a zero timeout
/// changes what the DPU does (close and exit reset the connection).
pub(crate) fn set_linger_zero(sock: &Sock, on: bool) {
    sock.linger_zero.store(on, Ordering::Relaxed);
    if let Some(s) = sock.stream() {
        let _ = s.set_linger_zero(on);
    }
}

/// SO_MAX_PACING_RATE applied to the engine's connection (bytes per
/// second, 0 for no cap), kept for connect and inherited by accepted ones.
pub(crate) fn set_max_pacing_rate(sock: &Sock, bytes_per_sec: u64) {
    sock.max_pacing_rate.store(bytes_per_sec, Ordering::Relaxed);
    if let Some(s) = sock.stream() {
        let _ = s.set_max_pacing_rate(Some(bytes_per_sec).filter(|&r| r > 0));
    }
}

/// TCP_CONGESTION on an offloaded socket: checked against the engine's
/// controllers (ENOENT otherwise, as Linux), kept for connect, listen and
/// accept, and applied to an open connection at once.
pub(crate) fn set_congestion_control(sock: &Sock, name: &[u8]) -> Result<(), c_int> {
    let cc = toe::cc_from_name(name).ok_or(libc::ENOENT)?;
    if let Some(s) = sock.stream() {
        let name = toe::cc_name(cc).unwrap_or("reno");
        s.set_congestion_control(name).map_err(|e| errno_of(&e))?;
    }
    sock.cc.store(cc, Ordering::Relaxed);
    Ok(())
}

/// What getsockopt(TCP_CONGESTION) reads: the connection's controller,
/// or for a socket not yet connected the one it will get.
pub(crate) fn congestion_control(sock: &Sock) -> String {
    if let Some(s) = sock.stream() {
        return s.congestion_control();
    }
    let chosen = toe::cc_name(sock.cc.load(Ordering::Relaxed));
    if let Some(name) = chosen {
        return name.into();
    }
    let port = match &*sock.state.lock() {
        State::Listening { l, .. } => l.local_addr().ok().map(|a| a.port()),
        _ => None,
    };
    match state::toe() {
        Some(toe) => toe.default_congestion_control(port).into(),
        None => "reno".into(),
    }
}

/// What getsockopt(TCP_INFO) reads: the engine's view of an open
/// connection (one round trip); a listener is `TCP_LISTEN`, anything else
/// `TCP_CLOSE`. Fields the engine does not keep are 0.
pub(crate) fn tcp_info(sock: &Sock) -> libc::tcp_info {
    // SAFETY: tcp_info is plain integers; all zeros is a valid value.
    let mut t: libc::tcp_info = unsafe { std::mem::zeroed() };
    t.tcpi_state = 7; // TCP_CLOSE
    if is_listening(sock) {
        t.tcpi_state = 10; // TCP_LISTEN
        return t;
    }
    let Some(i) = sock.stream().and_then(|s| s.tcp_info().ok()) else {
        return t;
    };
    let mss = u32::from(i.mss.max(1));
    t.tcpi_state = i.state;
    t.tcpi_retransmits = i.rto_backoff;
    t.tcpi_backoff = i.rto_backoff;
    t.tcpi_snd_mss = mss;
    t.tcpi_rcv_mss = mss;
    t.tcpi_advmss = mss;
    t.tcpi_pmtu = mss + 40;
    t.tcpi_rtt = i.rtt_us;
    t.tcpi_rttvar = i.rttvar_us;
    t.tcpi_snd_cwnd = i.cwnd_bytes / mss;
    // Linux reports an unset threshold as TCP_INFINITE_SSTHRESH.
    t.tcpi_snd_ssthresh = (i.ssthresh_bytes / mss).min(0x7fff_ffff);
    t
}

/// getsockopt(TCP_MAXSEG) of a connection: the engine's MSS (None before
/// it is connected: the placeholder's answer, 536 as Linux's).
pub(crate) fn mss(sock: &Sock) -> Option<c_int> {
    let s = sock.stream()?;
    s.tcp_info().ok().map(|i| c_int::from(i.mss))
}

/// Whether the socket listens (SO_ACCEPTCONN).
pub(crate) fn is_listening(sock: &Sock) -> bool {
    matches!(&*sock.state.lock(), State::Listening { .. })
}
