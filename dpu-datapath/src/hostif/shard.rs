//! The host interface's part on each flow-group owner: executes the
//! front's commands on the owner's engine (after checking that the
//! connection belongs to the application that sent them, and that every
//! offset is inside its buffers) and reports connection events back.
//! Wraps the owner's DPU-resident services, which keep running beside it.

use super::handle;
use super::link::{AppKey, ConnRow, OwnerCmd, OwnerEvt, OwnerLink};
use crate::app::{BufferSource, ConnError, ConnId};
use crate::engine::HandleMoves;
use crate::engine::{ApiError, Engine};
use crate::pipeline::{AppParcel, ShardApp};
use doca_bindings::abi;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddrV4;
use std::sync::Arc;

/// Commands taken per poll, so the data path keeps its share of the owner.
const CMD_BURST: usize = 256;

/// Negative errno for an API error.
pub fn errno_of(e: ApiError) -> i32 {
    -match e {
        ApiError::InvalidHandle => libc::EBADF,
        ApiError::WouldBlock => libc::EAGAIN,
        ApiError::NotConnected => libc::ENOTCONN,
        ApiError::Shutdown => libc::EPIPE,
        ApiError::AddressInUse => libc::EADDRINUSE,
        ApiError::NoRoute => libc::ENETUNREACH,
        ApiError::TooManyConnections => libc::EMFILE,
        ApiError::InvalidArgument => libc::EINVAL,
        ApiError::Connection(c) => conn_errno(c),
    }
}

fn conn_errno(e: ConnError) -> i32 {
    match e {
        ConnError::Refused => libc::ECONNREFUSED,
        ConnError::Reset => libc::ECONNRESET,
        ConnError::TimedOut => libc::ETIMEDOUT,
        ConnError::HostUnreachable => libc::EHOSTUNREACH,
        ConnError::DmaFailed => libc::EIO,
    }
}

/// `OP_INFO`'s reply fields (see `abi::OP_INFO`).
fn tcp_info_fields(i: &crate::engine::ConnInfo) -> (u64, u64, u64) {
    use crate::proto::TcpState as S;
    // Linux's numbering (include/net/tcp_states.h), which TCP_INFO reports.
    let state: u64 = match i.state {
        S::Established => 1,
        S::SynSent => 2,
        S::SynReceived => 3,
        S::FinWait1 => 4,
        S::FinWait2 => 5,
        S::TimeWait => 6,
        S::Closed => 7,
        S::CloseWait => 8,
        S::LastAck => 9,
        S::Listen => 10,
        S::Closing => 11,
    };
    let a =
        state | u64::from(i.rto_backoff) << 8 | u64::from(i.mss) << 16 | u64::from(i.srtt_us) << 32;
    let b = u64::from(i.rttvar_us) | u64::from(i.cwnd) << 32;
    let c = u64::from(i.ssthresh) | u64::from(i.snd_wnd) << 32;
    (a, b, c)
}

fn addr(ip: std::net::Ipv4Addr, port: u16) -> u64 {
    abi::pack_addr(SocketAddrV4::new(ip, port))
}

/// Host-interface shard of one owner.
pub struct HostIfShard {
    owner: usize,
    link: Arc<OwnerLink>,
    inner: Box<dyn ShardApp>,
    /// Host connections on this owner: their application and the handle
    /// it knows them by (this owner's, or the first owner's for one that
    /// moved here with its flow group).
    conns: HashMap<ConnId, (AppKey, u64)>,
    /// Host connections that left with their flow group, until the front
    /// fences them ([`OwnerCmd::MoveFence`]): commands still on their way
    /// for them are given back ([`OwnerEvt::Bounced`]).
    departed: HashMap<ConnId, (AppKey, u64)>,
    /// Host connections that moved here and that the front has not
    /// settled yet ([`OwnerCmd::MoveSettled`]): commands the front held
    /// for them are still on their way, so an application's exit does not
    /// close them before those have run (the settle says what to do).
    unsettled: HashSet<ConnId>,
    /// Connections with SO_LINGER 0: closing them resets them.
    linger_zero: HashSet<ConnId>,
    /// Host listeners: port -> application.
    listeners: HashMap<u16, AppKey>,
    /// Events the front's queue had no room for.
    backlog: VecDeque<OwnerEvt>,
    /// Something was queued for the front during this poll.
    emitted: bool,
}

impl std::fmt::Debug for HostIfShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostIfShard")
            .field("owner", &self.owner)
            .field("conns", &self.conns.len())
            .finish()
    }
}

impl HostIfShard {
    pub fn new(owner: usize, link: Arc<OwnerLink>, inner: Box<dyn ShardApp>) -> Self {
        Self {
            owner,
            link,
            inner,
            conns: HashMap::new(),
            departed: HashMap::new(),
            unsettled: HashSet::new(),
            linger_zero: HashSet::new(),
            listeners: HashMap::new(),
            backlog: VecDeque::new(),
            emitted: false,
        }
    }

    /// Host connections this owner holds.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn emit(&mut self, evt: OwnerEvt) {
        self.emitted = true;
        if !self.backlog.is_empty() {
            self.backlog.push_back(evt);
        } else if let Err(evt) = self.link.evts.push(evt) {
            self.backlog.push_back(evt);
        }
    }

    fn owns(&mut self, app: AppKey, conn: ConnId) -> bool {
        if self.conns.get(&conn).is_some_and(|c| c.0 == app) {
            return true;
        }
        self.emit(OwnerEvt::Violation {
            app,
            reason: abi::VIOLATION_FOREIGN_CONN,
            detail: "connection handle not owned by the application",
        });
        false
    }

    fn opened(&self, engine: &Engine, id: ConnId) -> Option<(u64, u32, u64, u64)> {
        let p = engine.conn_progress(id)?;
        Some((
            handle::encode(self.owner, id),
            p.buf_tag,
            addr(p.tuple.remote_ip, p.tuple.remote_port),
            addr(p.tuple.local_ip, p.tuple.local_port),
        ))
    }

    /// The handle the application knows connection `id` by.
    fn host_handle(&self, id: ConnId) -> u64 {
        self.conns
            .get(&id)
            .map(|c| c.1)
            .unwrap_or_else(|| handle::encode(self.owner, id))
    }

    fn command(&mut self, engine: &mut Engine, cmd: OwnerCmd) {
        if let Some((app, conn)) = cmd.conn_of() {
            if let Some(&(_, host)) = self.departed.get(&conn).filter(|d| d.0 == app) {
                self.emit(OwnerEvt::Bounced { host, cmd });
                return;
            }
        }
        match cmd {
            OwnerCmd::Listen {
                app,
                ctx,
                tag,
                port,
                backlog,
                source,
                cc,
                reply,
            } => {
                let source: Arc<dyn BufferSource> = Arc::new(source);
                let backlog = (backlog > 0).then_some(backlog);
                let status = match engine.listen_with(port, backlog, source) {
                    Ok(()) => {
                        if let Some(cc) = cc {
                            let _ = engine.set_listener_cc(port, cc);
                        }
                        self.listeners.insert(port, app);
                        0
                    }
                    Err(e) => errno_of(e),
                };
                if reply {
                    self.emit(OwnerEvt::Reply {
                        app,
                        ctx,
                        tag,
                        op: abi::OP_LISTEN,
                        status,
                        conn: 0,
                        a: u64::from(port),
                        b: 0,
                        c: 0,
                    });
                }
            }
            OwnerCmd::Unlisten { app, port } => {
                if self.listeners.get(&port) == Some(&app) {
                    self.listeners.remove(&port);
                    engine.unlisten(port);
                }
            }
            OwnerCmd::Connect {
                app,
                ctx,
                tag,
                remote,
                source,
                cc,
            } => {
                let (mut status, mut conn, mut a, mut b, mut c) = (0, 0, 0, 0, 0);
                match source.alloc() {
                    None => status = -libc::ENOBUFS,
                    Some(bufs) => {
                        match engine.connect_with_cc(*remote.ip(), remote.port(), Some(bufs), cc) {
                            Ok(id) => {
                                self.conns.insert(id, (app, handle::encode(self.owner, id)));
                                if let Some(o) = self.opened(engine, id) {
                                    (conn, a, b, c) = (o.0, u64::from(o.1), o.2, o.3);
                                }
                            }
                            Err(e) => status = errno_of(e),
                        }
                    }
                }
                self.emit(OwnerEvt::Reply {
                    app,
                    ctx,
                    tag,
                    op: abi::OP_CONNECT,
                    status,
                    conn,
                    a,
                    b,
                    c,
                });
            }
            OwnerCmd::TxPush { app, conn, written } => {
                if !self.owns(app, conn) {
                    return;
                }
                // Other errors (writing after a reset or a shutdown) reach
                // the application through the connection's events.
                if let Err(ApiError::InvalidArgument) = engine.tx_push(conn, written) {
                    self.emit(OwnerEvt::Violation {
                        app,
                        reason: abi::VIOLATION_TX_BOUNDS,
                        detail: "TX push past the free space of the connection's buffer",
                    });
                }
            }
            OwnerCmd::RxPop { app, conn, read } => {
                if !self.owns(app, conn) {
                    return;
                }
                if let Err(ApiError::InvalidArgument) = engine.rx_pop(conn, read) {
                    self.emit(OwnerEvt::Violation {
                        app,
                        reason: abi::VIOLATION_RX_BOUNDS,
                        detail: "RX pop past the delivered data",
                    });
                }
            }
            OwnerCmd::ConnOp {
                app,
                ctx,
                tag,
                op,
                conn,
                a,
                b,
                reply,
            } => {
                if !self.owns(app, conn) {
                    return;
                }
                let host = self.host_handle(conn);
                // An unknown controller is ENOENT, as Linux answers
                // TCP_CONGESTION (every other failed option: ENOPROTOOPT).
                let mut unknown_cc = false;
                let mut bad_value = false;
                let mut fields = (0, 0, 0);
                let result = match op {
                    abi::OP_INFO => match engine.conn_info(conn) {
                        Some(i) => {
                            fields = tcp_info_fields(&i);
                            Ok(())
                        }
                        None => Err(ApiError::InvalidArgument),
                    },
                    abi::OP_SHUTDOWN => engine.shutdown_write(conn),
                    abi::OP_SETOPT if a == abi::OPT_CONGESTION => match super::front::cc_of(b) {
                        Ok(cc) => engine
                            .set_congestion_control(conn, cc.unwrap_or(engine.config().proto.cc)),
                        Err(()) => {
                            unknown_cc = true;
                            Err(ApiError::InvalidArgument)
                        }
                    },
                    abi::OP_CLOSE => self.release(engine, conn, true),
                    abi::OP_ABORT => self.release(engine, conn, false),
                    abi::OP_SETOPT if a == abi::OPT_MAX_PACING_RATE => {
                        engine.set_max_pacing_rate(conn, b)
                    }
                    abi::OP_SETOPT if a == abi::OPT_LINGER_ZERO => {
                        if b != 0 {
                            self.linger_zero.insert(conn);
                        } else {
                            self.linger_zero.remove(&conn);
                        }
                        Ok(())
                    }
                    abi::OP_SETOPT if a == abi::OPT_KEEPALIVE => {
                        match crate::engine::Keepalive::from_packed(b) {
                            Ok(k) => engine.set_keepalive(conn, k),
                            Err(e) => {
                                bad_value = true;
                                Err(e)
                            }
                        }
                    }
                    abi::OP_SETOPT if a == abi::OPT_NODELAY => {
                        engine.set_tx_options(conn, Some(b != 0), None)
                    }
                    abi::OP_SETOPT if a == abi::OPT_CORK => {
                        engine.set_tx_options(conn, None, Some(b != 0))
                    }
                    abi::OP_SETOPT if a == abi::OPT_RCVBUF => {
                        engine.set_rcvbuf(conn, b.min(u64::from(u32::MAX)) as u32)
                    }
                    abi::OP_SETOPT => Err(ApiError::InvalidArgument),
                    _ => Err(ApiError::InvalidArgument),
                };
                let status = match (op, result) {
                    (_, Ok(())) => 0,
                    (abi::OP_SETOPT, Err(_)) if unknown_cc => -libc::ENOENT,
                    (abi::OP_SETOPT, Err(_)) if bad_value => -libc::EINVAL,
                    (abi::OP_SETOPT, Err(_)) => -libc::ENOPROTOOPT,
                    (_, Err(e)) => errno_of(e),
                };
                if !reply {
                    return;
                }
                self.emit(OwnerEvt::Reply {
                    app,
                    ctx,
                    tag,
                    op,
                    status,
                    conn: host,
                    a: fields.0,
                    b: fields.1,
                    c: fields.2,
                });
            }
            OwnerCmd::Dump { reply } => {
                let rows = engine
                    .conn_ids()
                    .into_iter()
                    .filter_map(|id| {
                        let t = engine.conn_tuple(id)?;
                        let info = engine.conn_info(id);
                        let cc = engine.congestion_control(id);
                        let dctcp = cc.is_some_and(|c| c.dctcp_like());
                        let timely = cc == Some(crate::proto::CcAlgorithm::Timely);
                        let rate = cc == Some(crate::proto::CcAlgorithm::DctcpRate);
                        let state = engine
                            .conn_state(id)
                            .unwrap_or(crate::proto::TcpState::Closed);
                        Some(ConnRow {
                            owner: self.owner,
                            app: self.conns.get(&id).map(|c| c.0),
                            local: format!("{}:{}", t.local_ip, t.local_port),
                            remote: format!("{}:{}", t.remote_ip, t.remote_port),
                            state: state.as_str(),
                            snd_una: info.map(|i| i.snd_una.0).unwrap_or(0),
                            snd_nxt: info.map(|i| i.snd_nxt.0).unwrap_or(0),
                            rcv_nxt: info.map(|i| i.rcv_nxt.0).unwrap_or(0),
                            snd_wnd: info.map(|i| i.snd_wnd).unwrap_or(0),
                            rcv_wnd: info.map(|i| i.rcv_wnd).unwrap_or(0),
                            cwnd: info.map(|i| i.cwnd).unwrap_or(0),
                            ssthresh: info.map(|i| i.ssthresh).unwrap_or(0),
                            cc: match (info.is_some_and(|i| i.ecn), dctcp, timely, rate) {
                                (_, _, true, _) => "timely",
                                (true, _, _, true) => "dctcp-rate",
                                (false, _, _, true) => "dctcp-rate-noecn",
                                (true, true, _, _) => "dctcp",
                                // Without marks DCTCP reacts to loss only.
                                (false, true, _, _) => "dctcp-noecn",
                                (true, false, _, _) => "reno+ecn",
                                (false, false, _, _) => "reno",
                            },
                            dctcp_alpha: info.filter(|i| i.ecn && dctcp).map(|i| {
                                f64::from(i.dctcp_alpha) / f64::from(crate::proto::DCTCP_ALPHA_ONE)
                            }),
                            pacing_rate_bps: info.and_then(|i| i.pacing_rate_bps),
                            rtt_gradient: info
                                .and_then(|i| i.rtt_gradient_milli)
                                .map(|g| g as f64 / 1000.0),
                            srtt_us: info.map(|i| i.srtt_us).unwrap_or(0),
                            readable: engine.readable(id),
                            writable: engine.writable(id),
                        })
                    })
                    .collect();
                let _ = reply.send(rows);
            }
            OwnerCmd::MoveFence { host, conn } => {
                self.departed.remove(&conn);
                self.emit(OwnerEvt::Fenced {
                    host,
                    at: (self.owner, conn),
                });
            }
            OwnerCmd::MoveSettled { app, conn, release } => {
                if self.conns.get(&conn).is_some_and(|c| c.0 == app) {
                    self.unsettled.remove(&conn);
                    if let Some(graceful) = release {
                        let _ = self.release(engine, conn, graceful);
                    }
                }
                // Otherwise the application closed it meanwhile.
            }
            OwnerCmd::AppGone { app, graceful } => {
                let ports: Vec<u16> = self
                    .listeners
                    .iter()
                    .filter(|(_, a)| **a == app)
                    .map(|(p, _)| *p)
                    .collect();
                for port in ports {
                    self.listeners.remove(&port);
                    engine.unlisten(port);
                }
                let unsettled = &self.unsettled;
                let conns: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(id, c)| c.0 == app && !unsettled.contains(id))
                    .map(|(id, _)| *id)
                    .collect();
                for conn in conns {
                    let _ = self.release(engine, conn, graceful);
                }
            }
        }
    }

    /// The application lets go of a connection: a close as Linux's (the
    /// engine delivers what was written, then FIN; it resets when unread
    /// data remains), or a reset when `graceful` is false or SO_LINGER 0
    /// asked for one. The engine keeps the connection (and its buffers in
    /// the application's region) until it has finished.
    fn release(
        &mut self,
        engine: &mut Engine,
        conn: ConnId,
        graceful: bool,
    ) -> Result<(), ApiError> {
        self.unsettled.remove(&conn);
        if let Some((_, host)) = self.conns.remove(&conn) {
            if host != handle::encode(self.owner, conn) {
                self.emit(OwnerEvt::Released { host });
            }
        }
        let linger_zero = self.linger_zero.remove(&conn);
        if graceful && !linger_zero {
            engine.close(conn)
        } else {
            engine.abort(conn)
        }
    }

    fn accept_all(&mut self, engine: &mut Engine) {
        let ports: Vec<(u16, AppKey)> = self.listeners.iter().map(|(p, a)| (*p, *a)).collect();
        for (port, app) in ports {
            while let Some(id) = engine.accept(port) {
                self.conns.insert(id, (app, handle::encode(self.owner, id)));
                if let Some((conn, slot, remote, local)) = self.opened(engine, id) {
                    self.emit(OwnerEvt::Accepted {
                        app,
                        port,
                        conn,
                        slot,
                        remote,
                        local,
                    });
                }
            }
        }
    }

    fn report_events(&mut self, engine: &mut Engine) {
        while let Some(ev) = engine.next_event() {
            let Some(&(app, host)) = self.conns.get(&ev.conn) else {
                continue;
            };
            let Some(p) = engine.conn_progress(ev.conn) else {
                continue;
            };
            self.emit(OwnerEvt::Conn {
                app,
                conn: host,
                flags: u16::from(ev.kinds),
                rx_ready: p.rx_ready,
                tx_acked: p.tx_acked,
                status: p.error.map(|e| -conn_errno(e)).unwrap_or(0),
            });
        }
    }
}

impl ShardApp for HostIfShard {
    fn start(&mut self, engine: &mut Engine) {
        self.inner.start(engine);
    }

    fn poll(&mut self, engine: &mut Engine) {
        self.link.worker.get_or_init(std::thread::current);
        while let Some(evt) = self.backlog.pop_front() {
            if let Err(evt) = self.link.evts.push(evt) {
                self.backlog.push_front(evt);
                break;
            }
        }
        for _ in 0..CMD_BURST {
            let Some(cmd) = self.link.cmds.pop() else {
                break;
            };
            self.command(engine, cmd);
        }
        if !self.listeners.is_empty() {
            self.accept_all(engine);
        }
        self.report_events(engine);
        self.inner.poll(engine);
        if std::mem::take(&mut self.emitted) || !self.backlog.is_empty() {
            self.link.front.wake();
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self.inner.into_any()
    }

    fn movable(&self) -> bool {
        self.inner.movable()
    }

    /// Host connections leave with what the front needs to keep the
    /// application's handle working; they stay in `departed` so that
    /// commands already on their way here are given back.
    fn export_conns(&mut self, conns: &[ConnId]) -> AppParcel {
        let mut host = Vec::new();
        let mut others = Vec::new();
        for &id in conns {
            match self.conns.remove(&id) {
                Some((app, h)) => {
                    self.departed.insert(id, (app, h));
                    self.unsettled.remove(&id);
                    let linger_zero = self.linger_zero.remove(&id);
                    host.push(MovedConn {
                        id,
                        app,
                        host: h,
                        linger_zero,
                    });
                }
                None => others.push(id),
            }
        }
        Box::new(HostParcel {
            from: self.owner,
            host,
            inner: self.inner.export_conns(&others),
        })
    }

    /// Takes in host connections and tells the front where each one is
    /// now; those of an application that left meanwhile are let go of.
    fn import_conns(&mut self, engine: &mut Engine, parcel: AppParcel, moves: &HandleMoves) {
        let Ok(parcel) = parcel.downcast::<HostParcel>() else {
            tracing::error!(
                owner = self.owner,
                "hostif: a moved group came without its parcel"
            );
            return;
        };
        let HostParcel { from, host, inner } = *parcel;
        let new_id: HashMap<ConnId, ConnId> = moves.iter().copied().collect();
        for c in host {
            let Some(&id) = new_id.get(&c.id) else {
                tracing::error!(
                    owner = self.owner,
                    "hostif: a moved connection was not imported"
                );
                continue;
            };
            self.conns.insert(id, (c.app, c.host));
            self.unsettled.insert(id);
            if c.linger_zero {
                self.linger_zero.insert(id);
            }
            self.emit(OwnerEvt::Moved {
                app: c.app,
                host: c.host,
                from: (from, c.id),
                to: (self.owner, id),
            });
        }
        self.inner.import_conns(engine, inner, moves);
    }
}

/// A host connection on its way to another owner.
#[derive(Debug)]
struct MovedConn {
    id: ConnId,
    app: AppKey,
    host: u64,
    linger_zero: bool,
}

/// [`HostIfShard`]'s side of a moved flow group.
struct HostParcel {
    from: usize,
    host: Vec<MovedConn>,
    inner: AppParcel,
}
