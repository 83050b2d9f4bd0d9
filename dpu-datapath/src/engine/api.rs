//! What applications call: listen, accept, connect, send, recv, shutdown,
//! close, abort, and state queries. The host interface turns these into
//! descriptors on DMA rings; in-process users (tests, the demo) call them
//! directly.

use super::Engine;
use crate::app::{AppEvent, BufferSource, ConnBuffers, ConnError, ConnId, ConnPhase};
use crate::flow::FourTuple;
use crate::proto::{CcAlgorithm, Nanos, TcpState};
use crate::wire::SeqNumber;
use std::net::Ipv4Addr;

/// Errors returned to applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The handle does not name a live connection of this engine.
    InvalidHandle,
    /// Nothing to read yet, or no room to write: try again later.
    WouldBlock,
    /// The handshake has not completed.
    NotConnected,
    /// Writing after shutdown or close.
    Shutdown,
    /// The port is already listening.
    AddressInUse,
    /// No route (no gateway for an off-link destination).
    NoRoute,
    /// `tcp.max_connections` reached, or no ephemeral port left.
    TooManyConnections,
    /// The connection ended abnormally.
    Connection(ConnError),
    /// An offset or length outside what the connection allows.
    InvalidArgument,
}

/// What the host interface reports about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnProgress {
    /// Total bytes delivered in order (RX stream offset).
    pub rx_ready: u64,
    /// Total bytes the peer acknowledged (TX stream offset).
    pub tx_acked: u64,
    pub peer_fin: bool,
    pub error: Option<ConnError>,
    pub finished: bool,
    pub buf_tag: u32,
    pub tuple: FourTuple,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ApiError {}

/// A connection as `flextoe-dpu conns` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub tuple: FourTuple,
    pub state: TcpState,
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    pub rcv_nxt: SeqNumber,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// ECN was negotiated.
    pub ecn: bool,
    /// DCTCP's alpha (0..=65535 for 0..=1; 65535 until a DCTCP connection
    /// has seen ACKs); under DCTCP-rate, the rate controller's.
    pub dctcp_alpha: u16,
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub mss: u16,
    /// Retransmission timeouts since the last ACK of new data.
    pub rto_backoff: u8,
    /// The rate the flow scheduler paces at, bits per second (TIMELY's,
    /// capped by `SO_MAX_PACING_RATE`); None when unpaced.
    pub pacing_rate_bps: Option<u64>,
    /// TIMELY's normalised RTT gradient, in thousandths, and the RTT of
    /// its last update (its own probe: the path's RTT without the peer's
    /// delayed-ACK phase), microseconds.
    pub rtt_gradient_milli: Option<i64>,
    pub timely_rtt_us: Option<u32>,
    pub readable: usize,
    pub writable: usize,
}

impl Engine {
    /// Starts listening on `port` with the configured backlog (or `backlog`).
    pub fn listen(&mut self, port: u16, backlog: Option<u32>) -> Result<(), ApiError> {
        if self.ctrl.listeners.contains_key(&port) {
            return Err(ApiError::AddressInUse);
        }
        let backlog = backlog.unwrap_or(self.cfg.listen_backlog).max(1);
        let cc = self.cfg.cc_by_port.get(&port).copied();
        let listener = crate::control::Listener::new(backlog, cc.unwrap_or(self.cfg.proto.cc));
        self.ctrl.listeners.insert(port, listener);
        Ok(())
    }

    /// Sets the congestion control of the connections `port` accepts from
    /// now on (the application chose it for its listening socket).
    pub fn set_listener_cc(&mut self, port: u16, cc: CcAlgorithm) -> Result<(), ApiError> {
        let l = self
            .ctrl
            .listeners
            .get_mut(&port)
            .ok_or(ApiError::InvalidHandle)?;
        l.cc = cc;
        Ok(())
    }

    /// Sets a connection's congestion control: at once if it is
    /// established, from the end of the handshake otherwise. A DCTCP
    /// connection negotiates ECN in its handshake; one that switches to
    /// DCTCP later without ECN behaves as NewReno on loss.
    pub fn set_congestion_control(
        &mut self,
        conn: ConnId,
        cc: CcAlgorithm,
    ) -> Result<(), ApiError> {
        let app = self.apps.get(conn).ok_or(ApiError::InvalidHandle)?;
        if let Some(flow) = app.flow {
            if let Some(Some(p)) = self.proto.get_mut(flow.index()) {
                p.set_cc(cc);
            }
            self.refresh_rate(flow, None);
            return Ok(());
        }
        // In its handshake, or already out of the data path (nothing left
        // to control, as Linux accepts the option on a closed socket).
        if let Some(h) = self.ctrl.handshakes.get_mut(&app.tuple) {
            h.cc = cc;
        }
        Ok(())
    }

    /// `TCP_NODELAY` (`nodelay` false turns Nagle's algorithm on) and
    /// `TCP_CORK`. Settings made during the handshake are not kept (the
    /// host applies them once the connection is established). Turning
    /// either off sends what waited.
    pub fn set_tx_options(
        &mut self,
        conn: ConnId,
        nodelay: Option<bool>,
        cork: Option<bool>,
    ) -> Result<(), ApiError> {
        let app = self.apps.get(conn).ok_or(ApiError::InvalidHandle)?;
        let Some(id) = app.flow else {
            return Ok(());
        };
        if let Some(Some(p)) = self.proto.get_mut(id.index()) {
            if let Some(nodelay) = nodelay {
                p.set_nagle(!nodelay);
            }
            if let Some(cork) = cork {
                p.set_cork(cork);
            }
        }
        self.wake(id);
        Ok(())
    }

    /// `SO_RCVBUF`: the connection's advertised window is held to at most
    /// `bytes` (see `ProtoFlow::set_rx_window`; the buffer itself keeps its
    /// size). During the handshake it is not kept (the host applies it
    /// once the connection is established).
    pub fn set_rcvbuf(&mut self, conn: ConnId, bytes: u32) -> Result<(), ApiError> {
        let app = self.apps.get(conn).ok_or(ApiError::InvalidHandle)?;
        if let Some(Some(p)) = app.flow.and_then(|id| self.proto.get_mut(id.index())) {
            p.set_rx_window(bytes);
        }
        Ok(())
    }

    /// A connection's congestion control (None for an unknown handle or a
    /// connection that has left the data path).
    pub fn congestion_control(&self, conn: ConnId) -> Option<CcAlgorithm> {
        let app = self.apps.get(conn)?;
        match app.flow {
            Some(flow) => self.proto.get(flow.index())?.as_ref().map(|p| p.cc()),
            None => self.ctrl.handshakes.get(&app.tuple).map(|h| h.cc),
        }
    }

    /// Takes an established connection from the listener's accept queue.
    pub fn accept(&mut self, port: u16) -> Option<ConnId> {
        self.ctrl.listeners.get_mut(&port)?.accept_queue.pop_front()
    }

    /// Opens a connection (active open). Completion is signalled by the
    /// CONNECTED event or an error.
    pub fn connect(
        &mut self,
        remote_ip: Ipv4Addr,
        remote_port: u16,
        now: Nanos,
    ) -> Result<ConnId, ApiError> {
        self.now = self.now.max(now);
        self.active_open(remote_ip, remote_port, None, None)
    }

    /// Like [`Engine::connect`], with the payload in the given buffers (a
    /// host application's region).
    pub fn connect_with(
        &mut self,
        remote_ip: Ipv4Addr,
        remote_port: u16,
        buffers: ConnBuffers,
    ) -> Result<ConnId, ApiError> {
        self.active_open(remote_ip, remote_port, Some(buffers), None)
    }

    /// Like [`Engine::connect_with`], with the connection's congestion
    /// control (None: `tcp.congestion_control`); DCTCP asks for ECN in
    /// the SYN.
    pub fn connect_with_cc(
        &mut self,
        remote_ip: Ipv4Addr,
        remote_port: u16,
        buffers: Option<ConnBuffers>,
        cc: Option<CcAlgorithm>,
    ) -> Result<ConnId, ApiError> {
        self.active_open(remote_ip, remote_port, buffers, cc)
    }

    /// Like [`Engine::listen`], taking accepted connections' buffers from
    /// `source` (a host application's region).
    pub fn listen_with(
        &mut self,
        port: u16,
        backlog: Option<u32>,
        source: std::sync::Arc<dyn BufferSource>,
    ) -> Result<(), ApiError> {
        self.listen(port, backlog)?;
        if let Some(l) = self.ctrl.listeners.get_mut(&port) {
            l.buffers = Some(source);
        }
        Ok(())
    }

    /// Stops listening on `port`; connections waiting in its accept queue
    /// are reset and its half-open connections forgotten (their peers'
    /// final ACKs then find no connection). Returns false if the port was
    /// not listening.
    pub fn unlisten(&mut self, port: u16) -> bool {
        let Some(l) = self.ctrl.listeners.remove(&port) else {
            return false;
        };
        for conn in l.accept_queue {
            let _ = self.abort(conn);
        }
        self.ctrl.handshakes.retain(|_, h| h.listener != Some(port));
        true
    }

    /// The application wrote its TX buffer up to stream offset `written`
    /// itself (host applications write their region directly): checks the
    /// offset against the buffer and hands the new bytes to `proto`.
    pub fn tx_push(&mut self, conn: ConnId, written: u64) -> Result<(), ApiError> {
        let app = self.apps.get(conn).ok_or(ApiError::InvalidHandle)?;
        if written < app.tx_written || written - app.tx_acked > app.tx.len() as u64 {
            return Err(ApiError::InvalidArgument);
        }
        let n = written - app.tx_written;
        if n == 0 {
            return Ok(());
        }
        if let Some(e) = app.error {
            return Err(ApiError::Connection(e));
        }
        if app.write_shut || app.app_closed {
            return Err(ApiError::Shutdown);
        }
        let Some(flow) = app.flow else {
            return Err(ApiError::NotConnected);
        };
        if let Some(app) = self.apps.get_mut(conn) {
            app.tx_written = written;
        }
        if let Some(Some(p)) = self.proto.get_mut(flow.index()) {
            p.app_wrote(n as u32);
        }
        self.wake(flow);
        Ok(())
    }

    /// The application consumed its RX buffer up to stream offset `read`:
    /// checks it against what was delivered and opens the window.
    pub fn rx_pop(&mut self, conn: ConnId, read: u64) -> Result<(), ApiError> {
        let app = self.apps.get(conn).ok_or(ApiError::InvalidHandle)?;
        if read < app.rx_read || read > app.rx_ready {
            return Err(ApiError::InvalidArgument);
        }
        let n = (read - app.rx_read) as usize;
        self.rx_consume(conn, n).map(|_| ())
    }

    /// Positions and status of a connection, as the host interface reports
    /// them: (delivered, acknowledged, peer closed, error, finished).
    pub fn conn_progress(&self, conn: ConnId) -> Option<ConnProgress> {
        let a = self.apps.get(conn)?;
        Some(ConnProgress {
            rx_ready: a.rx_ready,
            tx_acked: a.tx_acked,
            peer_fin: a.peer_fin,
            error: a.error,
            finished: a.phase == ConnPhase::Finished,
            buf_tag: a.buf_tag,
            tuple: a.tuple,
        })
    }

    /// Copies as much of `data` as fits into the TX buffer.
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, ApiError> {
        let app = self.apps.get_mut(conn).ok_or(ApiError::InvalidHandle)?;
        if let Some(e) = app.error {
            return Err(ApiError::Connection(e));
        }
        if app.write_shut || app.app_closed {
            return Err(ApiError::Shutdown);
        }
        let Some(flow) = app.flow else {
            return Err(if app.phase == ConnPhase::Connecting {
                ApiError::NotConnected
            } else {
                ApiError::Shutdown
            });
        };
        let n = data.len().min(app.writable());
        if n == 0 {
            return Err(ApiError::WouldBlock);
        }
        let mask = app.tx.len() as u64 - 1;
        crate::dma::app_write(&app.tx, (app.tx_written & mask) as u32, &data[..n]);
        app.tx_written += n as u64;
        if let Some(Some(p)) = self.proto.get_mut(flow.index()) {
            p.app_wrote(n as u32);
        }
        self.wake(flow);
        Ok(n)
    }

    /// Reads received bytes. `Ok(0)` means end of stream (the peer closed).
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, ApiError> {
        let app = self.apps.get_mut(conn).ok_or(ApiError::InvalidHandle)?;
        let n = buf.len().min(app.readable());
        if n == 0 {
            if let Some(e) = app.error {
                return Err(ApiError::Connection(e));
            }
            if app.peer_fin || app.phase == ConnPhase::Finished {
                return Ok(0);
            }
            return Err(ApiError::WouldBlock);
        }
        let mask = app.rx.len() as u64 - 1;
        crate::dma::app_read(&app.rx, (app.rx_read & mask) as u32, &mut buf[..n]);
        self.rx_consume(conn, n)
    }

    /// Releases `n` readable bytes without copying them (for applications
    /// that process data in place); may send a window update.
    pub fn rx_consume(&mut self, conn: ConnId, n: usize) -> Result<usize, ApiError> {
        let app = self.apps.get_mut(conn).ok_or(ApiError::InvalidHandle)?;
        let n = n.min(app.readable());
        app.rx_read += n as u64;
        if let (Some(flow), true) = (app.flow, n > 0) {
            let update = self
                .proto
                .get_mut(flow.index())
                .and_then(Option::as_mut)
                .and_then(|p| p.app_consumed(n as u32));
            if let Some(h) = update {
                self.stats.window_updates += 1;
                self.send_fields(flow, &h, &[]);
            }
        }
        Ok(n)
    }

    /// Half-close: no more writes; our FIN follows the buffered data.
    pub fn shutdown_write(&mut self, conn: ConnId) -> Result<(), ApiError> {
        let app = self.apps.get_mut(conn).ok_or(ApiError::InvalidHandle)?;
        if app.write_shut {
            return Ok(());
        }
        app.write_shut = true;
        if let Some(flow) = app.flow {
            if let Some(Some(p)) = self.proto.get_mut(flow.index()) {
                p.app_shutdown_write();
            }
            self.wake(flow);
        }
        Ok(())
    }

    /// Closes the handle. Buffered data is still delivered and the FIN sent;
    /// the engine releases the connection when it leaves the data path.
    /// Unread received data turns the close into an abort (RST), as Linux does.
    pub fn close(&mut self, conn: ConnId) -> Result<(), ApiError> {
        let app = self.apps.get_mut(conn).ok_or(ApiError::InvalidHandle)?;
        match (app.phase, app.flow) {
            (ConnPhase::Finished, _) | (_, None) => {
                let tuple = app.tuple;
                if app.phase == ConnPhase::Connecting {
                    self.cancel_handshake(&tuple);
                }
                self.apps.remove(conn);
                self.keepalive.remove(&conn);
                Ok(())
            }
            (_, Some(_)) if app.readable() > 0 => self.abort(conn),
            (_, Some(flow)) => {
                app.app_closed = true;
                let now = self.now;
                if let Some(Some(p)) = self.proto.get_mut(flow.index()) {
                    p.app_closed(now);
                }
                self.arm_flow_timer(flow);
                self.shutdown_write(conn)
            }
        }
    }

    /// Resets the connection (RST to the peer) and releases the handle.
    pub fn abort(&mut self, conn: ConnId) -> Result<(), ApiError> {
        let app = self.apps.get(conn).ok_or(ApiError::InvalidHandle)?;
        if let Some(flow) = app.flow {
            self.abort_flow(flow, ConnError::Reset, true);
        } else if app.phase == ConnPhase::Connecting {
            let tuple = app.tuple;
            self.cancel_handshake(&tuple);
        }
        self.apps.remove(conn);
        self.keepalive.remove(&conn);
        Ok(())
    }

    /// TCP state of a connection (CLOSED once it left the data path).
    pub fn conn_state(&self, conn: ConnId) -> Option<TcpState> {
        let app = self.apps.get(conn)?;
        match app.flow {
            Some(flow) => self.proto.get(flow.index())?.as_ref().map(|p| p.state()),
            None if app.phase == ConnPhase::Connecting => Some(
                self.ctrl
                    .handshakes
                    .get(&app.tuple)
                    .map(|h| h.state)
                    .unwrap_or(TcpState::SynSent),
            ),
            None => Some(TcpState::Closed),
        }
    }

    /// The error that ended the connection, if any.
    pub fn conn_error(&self, conn: ConnId) -> Option<ConnError> {
        self.apps.get(conn)?.error
    }

    /// Bytes ready to read.
    pub fn readable(&self, conn: ConnId) -> usize {
        self.apps.get(conn).map(|a| a.readable()).unwrap_or(0)
    }

    /// Free TX buffer space.
    pub fn writable(&self, conn: ConnId) -> usize {
        self.apps.get(conn).map(|a| a.writable()).unwrap_or(0)
    }

    /// The peer closed its direction and everything before its FIN was read.
    pub fn at_eof(&self, conn: ConnId) -> bool {
        self.apps
            .get(conn)
            .map(|a| a.readable() == 0 && (a.peer_fin || a.phase == ConnPhase::Finished))
            .unwrap_or(true)
    }

    /// The peer's FIN arrived (all its data is readable or read).
    pub fn peer_closed(&self, conn: ConnId) -> bool {
        self.apps.get(conn).map(|a| a.peer_fin).unwrap_or(true)
    }

    /// All our data was acknowledged by the peer.
    pub fn all_sent(&self, conn: ConnId) -> bool {
        self.apps
            .get(conn)
            .map(|a| a.tx_acked == a.tx_written)
            .unwrap_or(true)
    }

    /// A snapshot of the connection for diagnostics.
    pub fn conn_info(&self, conn: ConnId) -> Option<ConnInfo> {
        let app = self.apps.get(conn)?;
        let flow = app.flow?;
        let p = self.proto.get(flow.index())?.as_ref()?;
        let rate = self.rate_info(flow);
        let (pacing_rate_bps, gradient) = (rate.rate_bps, rate.timely);
        Some(ConnInfo {
            tuple: app.tuple,
            state: p.state(),
            snd_una: p.snd_una(),
            snd_nxt: p.snd_nxt(),
            rcv_nxt: p.rcv_nxt(),
            snd_wnd: p.snd_wnd(),
            rcv_wnd: p.rcv_wnd(),
            cwnd: p.cwnd(),
            ssthresh: p.ssthresh(),
            ecn: p.ecn(),
            dctcp_alpha: match rate.dctcp_rate_alpha {
                Some(a) => (a * f64::from(crate::proto::DCTCP_ALPHA_ONE)) as u16,
                None => p.dctcp_alpha(),
            },
            srtt_us: p.srtt_us(),
            rttvar_us: p.rttvar_us(),
            mss: p.mss(),
            rto_backoff: p.rto_backoff(),
            pacing_rate_bps,
            rtt_gradient_milli: gradient.map(|(g, _)| (g * 1000.0) as i64),
            timely_rtt_us: gradient.map(|(_, rtt)| rtt),
            readable: app.readable(),
            writable: app.writable(),
        })
    }

    /// Every application connection (for `flextoe-dpu conns`).
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.apps.ids().collect()
    }

    /// The local and remote addresses of a connection.
    pub fn conn_tuple(&self, conn: ConnId) -> Option<FourTuple> {
        self.apps.get(conn).map(|a| a.tuple)
    }

    /// Next coalesced notification for the application.
    pub fn next_event(&mut self) -> Option<AppEvent> {
        self.apps.next_event()
    }
}
