//! `TcpListener`: a listening port of the DPU's engine.
//!
//! `EV_ACCEPTABLE{port}` bumps the listener's generation (whichever context
//! it arrives on). `accept` asks the DPU with `OP_ACCEPT`; on -EAGAIN (queue
//! empty, or another thread took the connection) it waits for the
//! generation to move past the value read before asking, so an arrival
//! between the reply and the wait is never missed.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use doca_bindings::abi::{self, Desc};

use crate::context::{Context, Wait};
use crate::errors::{check_status, from_status, invalid_input};
use crate::stream::{each_v4, TcpStream};
use crate::toe::Toe;
use crate::waiters::WaitKey;

/// A listening socket on the DPU. Dropping it stops listening.
#[derive(Debug)]
pub struct TcpListener {
    toe: Arc<Toe>,
    /// The context `OP_LISTEN` went to (where its `EV_ACCEPTABLE`s arrive).
    ctx: u32,
    local: SocketAddrV4,
    generation: Arc<AtomicU64>,
    nonblocking: AtomicBool,
    /// `abi::CC_*` of accepted connections (`CC_DEFAULT`: the service's).
    cc: u64,
}

/// Checks a listen address against the DPU's IP.
pub(crate) fn check_listen_addr(toe_ip: std::net::Ipv4Addr, addr: SocketAddrV4) -> io::Result<()> {
    if addr.port() == 0 {
        return Err(invalid_input(
            "libtoe: ephemeral listen ports are not supported",
        ));
    }
    if !addr.ip().is_unspecified() && *addr.ip() != toe_ip {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "libtoe: cannot listen on {}: the DPU's address is {toe_ip}",
                addr.ip()
            ),
        ));
    }
    Ok(())
}

impl TcpListener {
    /// Listens on `addr` (IP 0.0.0.0 or the DPU's IP; port not 0) with the
    /// service's default backlog.
    pub fn bind(toe: &Arc<Toe>, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(toe, addr, 0)
    }

    /// Like [`TcpListener::bind`]; `backlog` 0 means the service default.
    pub fn bind_with_backlog(
        toe: &Arc<Toe>,
        addr: impl ToSocketAddrs,
        backlog: u32,
    ) -> io::Result<TcpListener> {
        each_v4(addr, |a| {
            TcpListener::bind_v4(toe, a, backlog, abi::CC_DEFAULT, false)
        })
    }

    /// Like [`TcpListener::bind_with_backlog`], with the congestion control
    /// of the connections it accepts (`abi::CC_*`, see
    /// [`crate::congestion_control_id`]; `CC_DEFAULT`: the service's).
    pub fn bind_with(
        toe: &Arc<Toe>,
        addr: impl ToSocketAddrs,
        backlog: u32,
        cc: u64,
    ) -> io::Result<TcpListener> {
        each_v4(addr, |a| TcpListener::bind_v4(toe, a, backlog, cc, false))
    }

    /// Like [`TcpListener::bind_with`] with `SO_REUSEPORT`: another
    /// listener of this application on the port, opened the same way, is
    /// shared (each accepts the connections waiting on the port, whoever
    /// comes first) instead of refused with EADDRINUSE.
    pub fn bind_reuseport(
        toe: &Arc<Toe>,
        addr: impl ToSocketAddrs,
        backlog: u32,
        cc: u64,
    ) -> io::Result<TcpListener> {
        each_v4(addr, |a| TcpListener::bind_v4(toe, a, backlog, cc, true))
    }

    fn bind_v4(
        toe: &Arc<Toe>,
        addr: SocketAddrV4,
        backlog: u32,
        cc: u64,
        reuseport: bool,
    ) -> io::Result<TcpListener> {
        check_listen_addr(toe.local_ip(), addr)?;
        let ctx = toe.thread_context();
        // Registered before the request: an EV_ACCEPTABLE may follow the
        // reply at once.
        let generation = ctx.shared().add_listener(addr.port(), reuseport)?;
        let flags = if reuseport { abi::LISTEN_REUSEPORT } else { 0 };
        let reply = ctx.request(
            Desc {
                op: abi::OP_LISTEN,
                a: addr.port().into(),
                b: backlog.into(),
                c: cc | flags,
                ..Desc::default()
            },
            Wait::FOREVER,
        );
        match reply.and_then(|r| check_status(r.status)) {
            Ok(()) => Ok(TcpListener {
                toe: toe.clone(),
                ctx: ctx.idx,
                local: addr,
                generation,
                nonblocking: AtomicBool::new(false),
                cc,
            }),
            Err(e) => {
                ctx.shared().remove_listener(addr.port());
                Err(e)
            }
        }
    }

    fn ctx(&self) -> &Context {
        self.toe.context(self.ctx)
    }

    /// A listener this process shares with others (inherited across
    /// `fork`), after the child's [`Toe::join`] kept `addr`'s port: its
    /// notices come to the joined context, and it accepts as any other.
    pub fn inherit(toe: &Arc<Toe>, addr: SocketAddrV4, cc: u64) -> io::Result<TcpListener> {
        // The join made the first context this process's notice context.
        let ctx = toe.context(toe.first_context());
        let generation = ctx.shared().add_listener(addr.port(), true)?;
        // Connections may already wait: the first accept asks.
        generation.store(1, Ordering::Release);
        Ok(TcpListener {
            toe: toe.clone(),
            ctx: ctx.idx,
            local: addr,
            generation,
            nonblocking: AtomicBool::new(false),
            cc,
        })
    }

    /// `abi::CC_*` of the connections it accepts.
    pub fn congestion_control_id(&self) -> u64 {
        self.cc
    }

    /// The context this listener's notices arrive on.
    pub fn context_index(&self) -> u32 {
        self.ctx
    }

    /// Accepts a connection. It is bound to a context other than the
    /// listener's (round-robin, see `Toe::accept_context`).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        loop {
            let seen = self.generation.load(Ordering::Acquire);
            let ctx = self.toe.accept_context(self.ctx);
            let reply = ctx.request(
                Desc {
                    op: abi::OP_ACCEPT,
                    a: self.local.port().into(),
                    ..Desc::default()
                },
                Wait::FOREVER,
            )?;
            if reply.status == 0 {
                let s = TcpStream::from_reply(&self.toe, ctx, &reply, None)?;
                s.inherit_congestion_control(self.cc);
                let peer = s.peer_addr()?;
                return Ok((s, peer));
            }
            if reply.status != -libc::EAGAIN {
                return Err(from_status(reply.status));
            }
            let generation = &self.generation;
            self.ctx().wait_for(
                Wait::new(nonblocking, None, libc::EAGAIN),
                WaitKey::Port(self.local.port()),
                |_, _| (generation.load(Ordering::Acquire) != seen).then_some(Ok(())),
            )?;
        }
    }

    /// An endless iterator of `accept()` results (streams only).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address given to `bind`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.local))
    }

    /// `accept` returns WouldBlock instead of waiting.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// A counter bumped by every `EV_ACCEPTABLE` for this port, after
    /// applying pending events (never waits): when it moved since an
    /// `accept` returned WouldBlock, a connection may be waiting.
    pub fn accept_generation(&self) -> io::Result<u64> {
        self.ctx().with(|_, _| ())?;
        Ok(self.generation.load(Ordering::Acquire))
    }

    /// The attachment this listener belongs to.
    pub fn toe(&self) -> &Arc<Toe> {
        &self.toe
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let port = self.local.port();
        self.ctx().shared().remove_listener(port);
        self.ctx().post(|g| {
            g.queue(Desc {
                op: abi::OP_UNLISTEN,
                a: port.into(),
                ..Desc::default()
            })
        });
    }
}

/// Iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn listen_addresses() {
        let ip = Ipv4Addr::new(198, 18, 0, 1);
        let ok = |s: &str| check_listen_addr(ip, s.parse().unwrap());
        ok("0.0.0.0:80").unwrap();
        ok("198.18.0.1:8080").unwrap();
        let e = ok("0.0.0.0:0").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e
            .to_string()
            .contains("ephemeral listen ports are not supported"));
        assert_eq!(
            ok("10.0.0.1:80").unwrap_err().kind(),
            io::ErrorKind::AddrNotAvailable
        );
    }
}
