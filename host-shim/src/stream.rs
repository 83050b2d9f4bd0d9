//! `TcpStream`: a connection of the DPU's engine, read and written through
//! its RX/TX buffers in the shared region.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use doca_bindings::abi::{self, Desc};

use crate::activity::Activity;
use crate::bufpos::{copy_in, copy_out};
use crate::conn::Readiness;
use crate::context::{Context, CtxInner, Wait};
use crate::errors::{check_status, from_errno, invalid_input};
use crate::shared::Shared;
use crate::toe::Toe;
use crate::waiters::WaitKey;

/// A timeout stored as nanoseconds, 0 = none.
#[derive(Debug, Default)]
struct Timeout(AtomicU64);

impl Timeout {
    fn set(&self, t: Option<Duration>) -> io::Result<()> {
        let ns = match t {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(invalid_input("cannot set a 0 duration timeout"));
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        };
        self.0.store(ns, Ordering::Relaxed);
        Ok(())
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
}

/// A TCP connection terminated by the DPU's engine. Like
/// `std::net::TcpStream`: `Read`/`Write` on the stream and on `&TcpStream`
/// (one thread may read while another writes); dropping it closes the
/// connection.
#[derive(Debug)]
pub struct TcpStream {
    toe: Arc<Toe>,
    ctx: u32,
    conn: u64,
    slot: u32,
    peer: SocketAddrV4,
    local: SocketAddrV4,
    nonblocking: AtomicBool,
    nodelay: AtomicBool,
    /// `abi::CC_*` chosen by the application (or inherited from its
    /// listener); `CC_DEFAULT`: the service's.
    cc: AtomicU64,
    /// Accepted (the service's default is then its listening port's).
    accepted: bool,
    read_timeout: Timeout,
    write_timeout: Timeout,
}

/// Keepalive settings ([`TcpStream::set_keepalive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence from the peer before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Between unanswered probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes before the connection is reset (`TCP_KEEPCNT`).
    pub count: u32,
}

impl Default for Keepalive {
    /// Linux's defaults: 2 hours, 75 s, 9 probes.
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

/// A connection's TCP state as the engine sees it (what Linux's
/// `TCP_INFO` reports; [`TcpStream::tcp_info`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Linux's numbering: 1 `TCP_ESTABLISHED` .. 11 `TCP_CLOSING`.
    pub state: u8,
    /// Retransmission timeouts since the last ACK of new data.
    pub rto_backoff: u8,
    pub mss: u16,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub cwnd_bytes: u32,
    pub ssthresh_bytes: u32,
    pub snd_wnd_bytes: u32,
}

impl TcpInfo {
    fn from_reply(d: &Desc) -> TcpInfo {
        TcpInfo {
            state: d.a as u8,
            rto_backoff: (d.a >> 8) as u8,
            mss: (d.a >> 16) as u16,
            rtt_us: (d.a >> 32) as u32,
            rttvar_us: d.b as u32,
            cwnd_bytes: (d.b >> 32) as u32,
            ssthresh_bytes: d.c as u32,
            snd_wnd_bytes: (d.c >> 32) as u32,
        }
    }
}

/// The `abi::CC_*` value of a `TCP_CONGESTION` name: ENOENT for a
/// controller the engine does not have (as Linux answers).
pub fn congestion_control_id(name: &str) -> io::Result<u64> {
    abi::cc_from_name(name.as_bytes()).ok_or_else(|| from_errno(libc::ENOENT))
}

/// Takes the first IPv4 address of `addr` for which `f` succeeds (like std,
/// the last error otherwise).
pub(crate) fn each_v4<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddrV4) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match a {
            SocketAddr::V4(v4) => match f(v4) {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            },
            SocketAddr::V6(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "libtoe: the DPU engine speaks IPv4 only",
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| invalid_input("could not resolve to any addresses")))
}

/// Whether the handshake of `conn` finished: `None` while in progress.
fn connect_outcome(g: &mut CtxInner, conn: u64) -> Option<io::Result<()>> {
    let c = match g.conn(conn) {
        Ok(c) => c,
        Err(e) => return Some(Err(e)),
    };
    if c.connected {
        Some(Ok(()))
    } else if let Some(e) = c.error {
        Some(Err(from_errno(e)))
    } else if c.finished {
        Some(Err(from_errno(libc::ECONNREFUSED)))
    } else {
        None
    }
}

/// `OP_ADOPT` of `conn` on `ctx`: its reply (the state it sets up is
/// applied by the context, see `Context::on_reply`).
fn adopt(ctx: &Context, conn: u64) -> io::Result<Desc> {
    let reply = ctx.request(
        Desc {
            op: abi::OP_ADOPT,
            conn,
            ..Desc::default()
        },
        Wait::FOREVER,
    )?;
    check_status(reply.status)?;
    Ok(reply)
}

/// A packed address from a reply, unless it is absent (0) or malformed.
fn known(packed: u64) -> Option<SocketAddrV4> {
    abi::unpack_addr(packed).filter(|a| a.port() != 0)
}

impl TcpStream {
    /// Opens a connection (blocking until it is established or fails).
    pub fn connect(toe: &Arc<Toe>, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_v4(addr, |a| {
            TcpStream::connect_v4(toe, a, None, abi::CC_DEFAULT)
        })
    }

    /// Like [`TcpStream::connect`] with the connection's congestion
    /// control (`TCP_CONGESTION` name: "reno", "dctcp", "timely" or "dctcp-rate"; ENOENT
    /// otherwise). DCTCP asks for ECN in the SYN.
    pub fn connect_with_congestion_control(
        toe: &Arc<Toe>,
        addr: impl ToSocketAddrs,
        name: &str,
    ) -> io::Result<TcpStream> {
        let cc = congestion_control_id(name)?;
        each_v4(addr, |a| TcpStream::connect_v4(toe, a, None, cc))
    }

    /// Like [`TcpStream::connect`] with a timeout (TimedOut when it expires).
    pub fn connect_timeout(
        toe: &Arc<Toe>,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(invalid_input("cannot set a 0 duration timeout"));
        }
        each_v4(addr, |a| {
            TcpStream::connect_v4(toe, a, Some(timeout), abi::CC_DEFAULT)
        })
    }

    fn connect_v4(
        toe: &Arc<Toe>,
        addr: SocketAddrV4,
        timeout: Option<Duration>,
        cc: u64,
    ) -> io::Result<TcpStream> {
        // Rejected locally like the kernel would (no round trip).
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(from_errno(libc::EADDRNOTAVAIL));
        }
        if addr.ip().is_multicast() || addr.ip().is_broadcast() {
            return Err(from_errno(libc::ENETUNREACH));
        }
        let wait = Wait::new(false, timeout, libc::ETIMEDOUT);
        let ctx = toe.thread_context();
        let reply = ctx.request(
            Desc {
                op: abi::OP_CONNECT,
                a: abi::pack_addr(addr),
                b: cc,
                ..Desc::default()
            },
            wait,
        )?;
        check_status(reply.status)?;
        let s = TcpStream::from_reply(toe, ctx, &reply, Some(addr))?;
        s.cc.store(cc, Ordering::Relaxed);
        // Completion: CONN_CONNECTED or CONN_ERROR. On failure or timeout
        // the stream's Drop closes the handle.
        let conn = s.conn;
        s.ctx()
            .wait_for(wait, WaitKey::Conn(conn), |g, _| connect_outcome(g, conn))
            .map(|()| s)
    }

    /// Starts a connection without waiting for it to be established (like
    /// a nonblocking `connect` returning EINPROGRESS): returns once the
    /// engine has taken the request. [`TcpStream::connect_result`] tells
    /// when the handshake completed or failed; until then reads and writes
    /// would block.
    pub fn connect_start(toe: &Arc<Toe>, addr: SocketAddrV4) -> io::Result<TcpStream> {
        TcpStream::connect_start_with(toe, addr, abi::CC_DEFAULT)
    }

    /// [`TcpStream::connect_start`] with the connection's congestion
    /// control (`abi::CC_*`, see [`congestion_control_id`]).
    pub fn connect_start_with(
        toe: &Arc<Toe>,
        addr: SocketAddrV4,
        cc: u64,
    ) -> io::Result<TcpStream> {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(from_errno(libc::EADDRNOTAVAIL));
        }
        if addr.ip().is_multicast() || addr.ip().is_broadcast() {
            return Err(from_errno(libc::ENETUNREACH));
        }
        let ctx = toe.thread_context();
        let reply = ctx.request(
            Desc {
                op: abi::OP_CONNECT,
                a: abi::pack_addr(addr),
                b: cc,
                ..Desc::default()
            },
            Wait::FOREVER,
        )?;
        check_status(reply.status)?;
        let s = TcpStream::from_reply(toe, ctx, &reply, Some(addr))?;
        s.cc.store(cc, Ordering::Relaxed);
        Ok(s)
    }

    /// The outcome of the handshake, after applying pending events (never
    /// waits): `None` while it is in progress, `Some(Ok(()))` once
    /// established (also for accepted streams), `Some(Err(_))` if it failed
    /// (refused, timed out, ...).
    pub fn connect_result(&self) -> io::Result<Option<io::Result<()>>> {
        let conn = self.conn;
        self.here(|| match self.ctx().with(|g, _| connect_outcome(g, conn))? {
            Some(Err(e)) if e.raw_os_error() == Some(libc::EREMCHG) => Err(e),
            r => Ok(r),
        })
    }

    /// The stream for an accept/connect reply (its state is already tracked
    /// by the context, see `Context::adopt`).
    pub(crate) fn from_reply(
        toe: &Arc<Toe>,
        ctx: &Context,
        reply: &Desc,
        peer: Option<SocketAddrV4>,
    ) -> io::Result<TcpStream> {
        let slot = ctx.with(|g, _| g.conns.get(&reply.conn).map(|c| c.slot))?;
        let s = TcpStream {
            toe: toe.clone(),
            ctx: ctx.idx,
            conn: reply.conn,
            slot: slot.unwrap_or(0),
            peer: known(reply.b)
                .or(peer)
                .unwrap_or(SocketAddrV4::new(0.into(), 0)),
            local: known(reply.c).unwrap_or(SocketAddrV4::new(toe.local_ip(), 0)),
            nonblocking: AtomicBool::new(false),
            nodelay: AtomicBool::new(true),
            cc: AtomicU64::new(abi::CC_DEFAULT),
            accepted: peer.is_none(),
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
        };
        match slot {
            Some(_) => Ok(s),
            // Dropping `s` closes the handle.
            None => Err(from_errno(libc::EPROTO)),
        }
    }

    fn ctx(&self) -> &Context {
        self.toe.context(self.ctx)
    }

    /// A connection this process shares with others (inherited across
    /// `fork`) after the child's `join`: adopting it brings its events to
    /// this process's context (`OP_ADOPT`). `peer` and `local` are what
    /// the parent knew.
    pub fn inherit(
        toe: &Arc<Toe>,
        handle: u64,
        peer: SocketAddrV4,
        local: SocketAddrV4,
        accepted: bool,
    ) -> io::Result<TcpStream> {
        let ctx = toe.thread_context();
        // Adopted before the stream exists: one the service refuses is not
        // this process's to close.
        let reply = adopt(ctx, handle)?;
        Ok(TcpStream {
            toe: toe.clone(),
            ctx: ctx.idx,
            conn: handle,
            slot: (reply.c & 0xFFFF_FFFF) as u32,
            peer,
            local,
            nonblocking: AtomicBool::new(false),
            nodelay: AtomicBool::new(true),
            cc: AtomicU64::new(abi::CC_DEFAULT),
            accepted,
            read_timeout: Timeout::default(),
            write_timeout: Timeout::default(),
        })
    }

    /// `OP_ADOPT`: this context takes the connection's events over.
    fn adopt(&self) -> io::Result<()> {
        adopt(self.ctx(), self.conn).map(|_| ())
    }

    /// Runs `f`, adopting the connection back first if another process
    /// sharing it took its events meanwhile (`EREMCHG` from the state).
    fn here<T>(&self, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EREMCHG) => {
                self.adopt()?;
                f()
            }
            r => r,
        }
    }

    /// The context this connection's events arrive on.
    pub fn context_index(&self) -> u32 {
        self.ctx
    }

    fn wait(&self, timeout: &Timeout) -> Wait {
        Wait::new(
            self.nonblocking.load(Ordering::Relaxed),
            timeout.get(),
            libc::EAGAIN,
        )
    }

    /// This stream's context (batches group their operations by it).
    pub(crate) fn ctx_index(&self) -> u32 {
        self.ctx
    }

    /// The attachment this stream belongs to.
    pub(crate) fn toe_ptr(&self) -> &Toe {
        &self.toe
    }

    /// [`TcpStream::try_read`] for a batch (`None`: would block).
    pub(crate) fn try_read_locked(
        &self,
        g: &mut CtxInner,
        sh: &Shared,
        buf: &mut [u8],
    ) -> Option<io::Result<usize>> {
        if buf.is_empty() {
            return Some(Ok(0));
        }
        self.try_read(g, sh, buf)
    }

    /// [`TcpStream::try_write`] for a batch (`None`: would block).
    pub(crate) fn try_write_locked(
        &self,
        g: &mut CtxInner,
        sh: &Shared,
        buf: &[u8],
    ) -> Option<io::Result<usize>> {
        if buf.is_empty() {
            return Some(Ok(0));
        }
        self.try_write(g, sh, buf)
    }

    /// One read that never waits, whatever the stream's mode.
    pub(crate) fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let wait = Wait::new(true, None, libc::EAGAIN);
        self.here(|| {
            self.ctx()
                .wait_for(wait, WaitKey::Conn(self.conn), |g, sh| {
                    self.try_read(g, sh, buf)
                })
        })
    }

    /// One write that never waits, whatever the stream's mode.
    pub(crate) fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let wait = Wait::new(true, None, libc::EAGAIN);
        self.here(|| {
            self.ctx()
                .wait_for(wait, WaitKey::Conn(self.conn), |g, sh| {
                    self.try_write(g, sh, buf)
                })
        })
    }

    /// One read attempt on the locked context state.
    fn try_read(&self, g: &mut CtxInner, sh: &Shared, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let conn = self.conn;
        let c = match g.conn(conn) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        if c.shut_rd {
            return Some(Ok(0));
        }
        let n = (c.readable().min(buf.len() as u64)) as usize;
        if n > 0 {
            let base = sh.layout.rx_buf_offset(c.slot);
            if let Err(e) = copy_out(
                &sh.region,
                base,
                c.rx_size as usize,
                c.rx_read,
                &mut buf[..n],
            ) {
                return Some(Err(e.into()));
            }
            c.rx_read += n as u64;
            let a = c.rx_read;
            g.queue(Desc {
                op: abi::OP_RX_POP,
                conn,
                a,
                ..Desc::default()
            });
            return Some(Ok(n));
        }
        match c.error {
            Some(e) => Some(Err(from_errno(e))),
            None if c.is_eof() => Some(Ok(0)),
            None => None,
        }
    }

    /// One write attempt on the locked context state.
    fn try_write(&self, g: &mut CtxInner, sh: &Shared, buf: &[u8]) -> Option<io::Result<usize>> {
        let conn = self.conn;
        let c = match g.conn(conn) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        if let Some(e) = c.write_error() {
            return Some(Err(from_errno(e)));
        }
        let n = (c.writable().min(buf.len() as u64)) as usize;
        if n == 0 {
            return None;
        }
        let base = sh.layout.tx_buf_offset(c.slot);
        if let Err(e) = copy_in(
            &sh.region,
            base,
            c.tx_size as usize,
            c.tx_written,
            &buf[..n],
        ) {
            return Some(Err(e.into()));
        }
        c.tx_written += n as u64;
        let a = c.tx_written;
        g.queue(Desc {
            op: abi::OP_TX_PUSH,
            conn,
            a,
            ..Desc::default()
        });
        Some(Ok(n))
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let wait = self.wait(&self.read_timeout);
        self.here(|| {
            self.ctx()
                .wait_for(wait, WaitKey::Conn(self.conn), |g, sh| {
                    self.try_read(g, sh, buf)
                })
        })
    }

    fn write_impl(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let wait = self.wait(&self.write_timeout);
        let n = self.here(|| {
            self.ctx()
                .wait_for(wait, WaitKey::Conn(self.conn), |g, sh| {
                    self.try_write(g, sh, buf)
                })
        })?;
        if !wait.nonblocking && self.ctx().has_backlog() {
            // The data is in the TX buffer, but the ring was full: push its
            // OP_TX_PUSH before returning (a timeout here still reports
            // the bytes as written; a later call pushes them).
            let _ = self.ctx().push_backlog(wait);
        }
        Ok(n)
    }

    /// Shuts down the read half (local: later data is discarded), the write
    /// half (FIN after the written data), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.here(|| self.shutdown_here(how))
    }

    fn shutdown_here(&self, how: Shutdown) -> io::Result<()> {
        let conn = self.conn;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.ctx().with(|g, _| {
                g.conn(conn)?.shut_rd = true;
                g.discard_rx(conn);
                io::Result::Ok(())
            })??;
            self.ctx().wake(conn);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let already = self.ctx().with(|g, _| g.conn(conn).map(|c| c.shut_wr))??;
            if !already {
                let reply = self.ctx().request_if(
                    Desc {
                        op: abi::OP_SHUTDOWN,
                        conn,
                        ..Desc::default()
                    },
                    Wait::FOREVER,
                    |g| {
                        g.live_conn(conn)?.shut_wr = true;
                        Ok(())
                    },
                )?;
                // Writers blocked on a full buffer now fail with EPIPE.
                self.ctx().wake(conn);
                check_status(reply.status)?;
            }
        }
        Ok(())
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.peer))
    }

    /// The local address (the DPU's IP and the local port).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.local))
    }

    /// Reads and writes return WouldBlock instead of waiting.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Blocking reads fail with WouldBlock after `t` (like std on Unix).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(t)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// Blocking writes fail with WouldBlock after `t` (like std on Unix).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(t)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// TCP_NODELAY on the engine's side of the connection: off turns
    /// Nagle's algorithm on (a segment shorter than the MSS waits while
    /// data is unacknowledged). On by default: the engine has no Nagle
    /// unless asked.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.setopt(abi::OPT_NODELAY, u64::from(on))?;
        self.nodelay.store(on, Ordering::Relaxed);
        Ok(())
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.nodelay.load(Ordering::Relaxed))
    }

    /// TCP_CORK: segments shorter than the MSS wait until the cork comes
    /// off (or the stream is shut down for writing); taking it off sends
    /// what waited.
    pub fn set_cork(&self, on: bool) -> io::Result<()> {
        self.setopt(abi::OPT_CORK, u64::from(on))
    }

    /// SO_LINGER with a zero timeout: closing the stream (or the process
    /// exiting, even by SIGKILL) resets the connection instead of
    /// delivering what was written and then a FIN. Other linger values
    /// keep the graceful close (which never blocks here: the DPU delivers
    /// the queued data on its own).
    pub fn set_linger_zero(&self, on: bool) -> io::Result<()> {
        self.setopt(abi::OPT_LINGER_ZERO, u64::from(on))
    }

    /// `SO_SNDBUF`: at most `bytes` written and not yet acknowledged
    /// (between 2 KiB and the connection's TX buffer); writes wait, or
    /// return WouldBlock, beyond it.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        let conn = self.conn;
        self.ctx().with(|g, _| {
            g.conn(conn).map(|c| {
                c.tx_limit = (bytes as u64).clamp(2048, c.tx_size);
            })
        })?
    }

    /// `SO_RCVBUF`: the DPU offers the peer a window of at most `bytes`
    /// (rounded down to a power of two, at least 1/128 of the RX buffer;
    /// a window already offered is not taken back).
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.setopt(abi::OPT_RCVBUF, bytes as u64)
    }

    /// `SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and
    /// `TCP_KEEPCNT`: after `idle` without a segment from the peer (and
    /// nothing in flight), the DPU probes every `interval`; after `count`
    /// unanswered probes it resets the connection and reads and writes
    /// fail with `TimedOut`. Whole seconds, 1-32767 (idle, interval) and
    /// 1-127 (count), as on Linux; `None` turns it off.
    pub fn set_keepalive(&self, settings: Option<Keepalive>) -> io::Result<()> {
        let packed = match settings {
            None => 0,
            Some(k) => {
                let secs = |d: Duration| u16::try_from(d.as_secs()).unwrap_or(u16::MAX);
                let count = u8::try_from(k.count).unwrap_or(u8::MAX);
                if secs(k.idle) == 0 || secs(k.interval) == 0 || count == 0 {
                    return Err(invalid_input(
                        "keepalive: idle and interval of at least 1 s, count at least 1",
                    ));
                }
                abi::pack_keepalive(secs(k.idle), secs(k.interval), count)
            }
        };
        self.setopt(abi::OPT_KEEPALIVE, packed)
    }

    /// `SO_MAX_PACING_RATE`: caps the connection's sending rate at
    /// `bytes_per_sec`, the DPU's flow scheduler spacing its segments (in
    /// pairs, as Linux's fq); `None` removes the cap.
    pub fn set_max_pacing_rate(&self, bytes_per_sec: Option<u64>) -> io::Result<()> {
        self.setopt(abi::OPT_MAX_PACING_RATE, bytes_per_sec.unwrap_or(0))
    }

    /// `TCP_CONGESTION`: the connection's congestion control from now on
    /// ("reno", "dctcp", "timely" or "dctcp-rate"; ENOENT otherwise). Switching an open connection
    /// to DCTCP uses ECN only if its handshake negotiated it.
    pub fn set_congestion_control(&self, name: &str) -> io::Result<()> {
        let cc = congestion_control_id(name)?;
        self.setopt(abi::OPT_CONGESTION, cc)?;
        self.cc.store(cc, Ordering::Relaxed);
        Ok(())
    }

    /// The connection's congestion control (`TCP_CONGESTION` name).
    pub fn congestion_control(&self) -> String {
        match abi::cc_name(self.cc.load(Ordering::Relaxed)) {
            Some(name) => name.into(),
            None => {
                let port = self.accepted.then_some(self.local.port());
                self.toe.default_congestion_control(port).into()
            }
        }
    }

    /// Records the controller the engine gave this connection without a
    /// request (an accepted connection inherits its listener's).
    pub fn inherit_congestion_control(&self, cc: u64) {
        self.cc.store(cc, Ordering::Relaxed);
    }

    fn setopt(&self, opt: u64, value: u64) -> io::Result<()> {
        self.here(|| self.setopt_here(opt, value))
    }

    fn setopt_here(&self, opt: u64, value: u64) -> io::Result<()> {
        let conn = self.conn;
        let reply = self.ctx().request_if(
            Desc {
                op: abi::OP_SETOPT,
                conn,
                a: opt,
                b: value,
                ..Desc::default()
            },
            Wait::FOREVER,
            |g| g.live_conn(conn).map(|_| ()),
        )?;
        check_status(reply.status)
    }

    /// Waits until the peer acknowledged every byte written (what
    /// `SO_LINGER` with a timeout waits for at close): Ok(false) when
    /// `timeout` passed first, or the connection failed or was reset.
    pub fn wait_acknowledged(&self, timeout: Duration) -> io::Result<bool> {
        let conn = self.conn;
        let wait = Wait::new(false, Some(timeout), libc::ETIMEDOUT);
        let r = self.here(|| {
            self.ctx()
                .wait_for(wait, WaitKey::Conn(conn), |g, _| match g.conn(conn) {
                    Err(e) => Some(Err(e)),
                    Ok(c) if c.tx_acked >= c.tx_written => Some(Ok(true)),
                    Ok(c) if c.error.is_some() || c.finished => Some(Ok(false)),
                    Ok(_) => None,
                })
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => Ok(false),
            r => r,
        }
    }

    /// The connection's TCP state from the engine (one round trip), as
    /// Linux's `TCP_INFO`.
    pub fn tcp_info(&self) -> io::Result<TcpInfo> {
        let conn = self.conn;
        let reply = self.ctx().request_if(
            Desc {
                op: abi::OP_INFO,
                conn,
                ..Desc::default()
            },
            Wait::FOREVER,
            |g| {
                g.conns
                    .get(&conn)
                    .map_or(Err(from_errno(libc::EBADF)), |c| {
                        if c.released {
                            Err(from_errno(libc::ENOTCONN))
                        } else {
                            Ok(())
                        }
                    })
            },
        )?;
        check_status(reply.status)?;
        Ok(TcpInfo::from_reply(&reply))
    }

    /// The connection's pending error, cleared by the call (like SO_ERROR).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let conn = self.conn;
        self.here(|| self.take_error_here(conn))
    }

    fn take_error_here(&self, conn: u64) -> io::Result<Option<io::Error>> {
        self.ctx().with(|g, _| {
            let c = g.conn(conn)?;
            match c.error {
                Some(e) if !c.error_taken => {
                    c.error_taken = true;
                    Ok(Some(from_errno(e)))
                }
                _ => Ok(None),
            }
        })?
    }

    /// Readiness after applying pending events (never waits).
    pub fn poll_events(&self) -> io::Result<Readiness> {
        let conn = self.conn;
        self.here(|| {
            self.ctx()
                .with(|g, _| g.conn(conn).map(|c| c.readiness()))?
        })
    }

    /// [`TcpStream::poll_events`] from the context's state as of its last
    /// poll, without polling its rings: for a caller that polled this
    /// connection's context just before (see [`TcpStream::context_index`]).
    pub fn poll_events_unpolled(&self) -> io::Result<Readiness> {
        let conn = self.conn;
        self.here(|| {
            self.ctx()
                .with_unpolled(|g| g.conn(conn).map(|c| c.readiness()))?
        })
    }

    /// A count that grows with every event this connection receives (data,
    /// space, FIN, errors, replies), readable without locking: a caller
    /// that saw the same value before knows its readiness changed only by
    /// its own calls since (an epoll emulation skips such members). Counted
    /// only once it is polled (`Toe::poll_context`), and with a hook to be
    /// told of each count (`Activity::set_hook`).
    pub fn activity(&self) -> io::Result<Arc<Activity>> {
        let conn = self.conn;
        self.ctx().with_unpolled(|g| g.activity(conn))
    }

    /// Bytes a read returns now without waiting.
    pub fn readable_bytes(&self) -> io::Result<u64> {
        Ok(self.poll_events()?.readable_bytes)
    }

    /// Bytes a write accepts now without waiting.
    pub fn writable_bytes(&self) -> io::Result<u64> {
        Ok(self.poll_events()?.writable_bytes)
    }

    /// True once all data is read and no more will come (a read returns 0).
    pub fn is_eof(&self) -> io::Result<bool> {
        Ok(self.poll_events()?.eof)
    }

    /// The engine's handle of the connection.
    pub fn handle(&self) -> u64 {
        self.conn
    }

    /// Accepted from a listener (not connected by this application).
    pub fn is_accepted(&self) -> bool {
        self.accepted
    }

    /// Reads and writes return WouldBlock instead of waiting.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// The connection's slot (buffers) in the region.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The attachment this stream belongs to.
    pub fn toe(&self) -> &Arc<Toe> {
        &self.toe
    }

    /// Resets the connection (RST) at once. Afterwards reads and writes
    /// fail with ConnectionAborted; dropping the stream sends nothing more.
    pub fn abort(&self) -> io::Result<()> {
        self.here(|| self.abort_here())
    }

    fn abort_here(&self) -> io::Result<()> {
        let conn = self.conn;
        let reply = self.ctx().request_if(
            Desc {
                op: abi::OP_ABORT,
                conn,
                ..Desc::default()
            },
            Wait::FOREVER,
            |g| {
                g.live_conn(conn)?.release();
                Ok(())
            },
        )?;
        self.ctx().wake(conn);
        check_status(reply.status)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let conn = self.conn;
        // No other thread can be using the stream (`&mut self`), so nobody
        // waits on it: queue the close and return.
        self.ctx().post(|g| g.close_conn(conn));
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
