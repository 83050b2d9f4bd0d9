//! The three-way handshake: passive open (LISTEN -> SYN-RECEIVED), active
//! open (SYN-SENT), simultaneous open (SYN-SENT -> SYN-RECEIVED), with SYN /
//! SYN-ACK retransmission and option negotiation.

use super::SynCookies;
use crate::app::{AppConn, ConnBuffers, ConnError, ConnId, ConnPhase, EventKind};
use crate::engine::{ApiError, Engine, SynCookieMode, TimerKey};
use crate::flow::FourTuple;
use crate::proto::{ack_ts_clock, CcAlgorithm, Nanos, TcpState};
use crate::stats::DropReason;
use crate::wire::{EthernetAddress, SeqNumber, TcpFlags, TcpOptions, TcpRepr};
use std::net::Ipv4Addr;

/// Options the peer offered in its SYN or SYN-ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// The peer's TSval.
    pub ts_val: Option<u32>,
    /// Window field of the SYN (never scaled).
    pub window: u16,
    /// The segment was an ECN-setup SYN (ECE and CWR) or ECN-setup SYN-ACK
    /// (ECE without CWR), RFC 3168 6.1.1.
    pub ecn: bool,
}

impl PeerOptions {
    fn from_segment(tcp: &TcpRepr<'_>) -> Self {
        Self {
            mss: tcp.options.mss,
            window_scale: tcp.options.window_scale,
            sack_permitted: tcp.options.sack_permitted,
            ts_val: tcp.options.timestamps.map(|(v, _)| v),
            window: tcp.window,
            ecn: ecn_setup(tcp.flags),
        }
    }
}

/// Whether a SYN or SYN-ACK asks for ECN (RFC 3168 6.1.1): a SYN with ECE
/// and CWR, a SYN-ACK with ECE and not CWR.
fn ecn_setup(flags: TcpFlags) -> bool {
    let ece = flags.contains(TcpFlags::ECE);
    let cwr = flags.contains(TcpFlags::CWR);
    if flags.contains(TcpFlags::ACK) {
        ece && !cwr
    } else {
        ece && cwr
    }
}

/// A connection in SYN-SENT or SYN-RECEIVED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub state: TcpState,
    pub iss: SeqNumber,
    pub irs: SeqNumber,
    pub peer: PeerOptions,
    /// Application handle (active opens).
    pub conn: Option<ConnId>,
    /// Listening port (passive opens).
    pub listener: Option<u16>,
    pub remote_mac: Option<EthernetAddress>,
    pub retries: u8,
    pub deadline: Nanos,
    pub sent_at: Nanos,
    /// Rebuilt from a SYN cookie (no RTT sample from the handshake).
    pub from_cookie: bool,
    /// The connection's congestion control (the listener's, or the
    /// application's for an active open); DCTCP asks for ECN.
    pub cc: CcAlgorithm,
    /// The application's cap on the rate (`SO_MAX_PACING_RATE`, bytes per
    /// second, 0 for none), set before the handshake completed.
    pub max_pacing_rate: u64,
}

impl Handshake {
    /// Whether our SYN or SYN-ACK asks for ECN: `tcp.ecn`, or a DCTCP
    /// connection (which needs the marks, as Linux's DCTCP does).
    pub(crate) fn wants_ecn(&self, cfg_ecn: bool) -> bool {
        cfg_ecn || self.cc.dctcp_like()
    }
}

impl Engine {
    /// SYN for no connection: a passive open if someone listens.
    pub(crate) fn on_syn(
        &mut self,
        tuple: FourTuple,
        remote_mac: EthernetAddress,
        tcp: &TcpRepr<'_>,
    ) {
        let installed = self.pre.len() + self.ctrl.handshakes.len();
        let Some(listener) = self.ctrl.listeners.get_mut(&tuple.local_port) else {
            self.stats.drop(DropReason::NoConnection);
            self.reset_unknown(tuple, remote_mac, tcp);
            return;
        };
        let cookie = match self.cfg.syn_cookies {
            SynCookieMode::Never => false,
            SynCookieMode::Auto => listener.full(),
            SynCookieMode::Always => true,
        };
        if listener.accept_queue_full()
            || installed >= self.cfg.max_connections as usize
            || (listener.full() && !cookie)
        {
            // Silent drop, like Linux: the peer retries its SYN.
            self.stats.drop(DropReason::ListenOverflow);
            return;
        }
        if cookie {
            let syn = self.ctrl.cookies.syn_digest(&tuple, tcp.seq.0);
            if !self.ctrl.cookie_budget.take(self.now, syn) {
                // Silent drop, as a full backlog: the peer retries (and
                // its retransmission gets through).
                self.stats.drop(DropReason::CookieRateLimited);
                return;
            }
            self.send_cookie_syn_ack(tuple, remote_mac, tcp);
            return;
        }
        listener.half_open += 1;
        let cc = listener.cc;
        let hs = Handshake {
            state: TcpState::SynReceived,
            iss: SeqNumber(self.ctrl.isn(&tuple, self.now)),
            irs: tcp.seq,
            peer: PeerOptions::from_segment(tcp),
            conn: None,
            listener: Some(tuple.local_port),
            remote_mac: Some(remote_mac),
            retries: 0,
            deadline: 0,
            sent_at: 0,
            from_cookie: false,
            cc,
            max_pacing_rate: 0,
        };
        self.ctrl.handshakes.insert(tuple, hs);
        self.send_handshake_segment(&tuple);
    }

    /// Starts an active open.
    pub(crate) fn active_open(
        &mut self,
        remote_ip: Ipv4Addr,
        remote_port: u16,
        buffers: Option<ConnBuffers>,
        cc: Option<CcAlgorithm>,
    ) -> Result<ConnId, ApiError> {
        let next_hop = if self.cfg.on_link(remote_ip) {
            remote_ip
        } else {
            self.cfg.gateway.ok_or(ApiError::NoRoute)?
        };
        if self.pre.len() + self.ctrl.handshakes.len() >= self.cfg.max_connections as usize {
            return Err(ApiError::TooManyConnections);
        }
        let local_ip = self.cfg.ip;
        let (pre, ctrl) = (&self.pre, &mut self.ctrl);
        let handshakes = &ctrl.handshakes;
        let time_wait = &ctrl.time_wait;
        let tuple_for = |port: u16| FourTuple {
            local_ip,
            local_port: port,
            remote_ip,
            remote_port,
        };
        let owned = &self.owned_groups;
        let groups = self.cfg.flow_groups;
        let in_use = |port: u16| {
            let t = tuple_for(port);
            let foreign = owned.as_ref().is_some_and(|o| {
                !o.get(crate::flow::flow_group(&t, groups) as usize)
                    .copied()
                    .unwrap_or(false)
            });
            foreign
                || pre.lookup(&t).is_some()
                || handshakes.contains_key(&t)
                || time_wait.contains_key(&t)
        };
        let mut ephemeral = ctrl.next_ephemeral_candidate();
        let port = loop {
            match ephemeral.next() {
                Some(p) if !in_use(p) => break p,
                Some(_) => continue,
                None => return Err(ApiError::TooManyConnections),
            }
        };
        ctrl.commit_ephemeral(port);
        let tuple = tuple_for(port);
        let app = match buffers {
            Some(b) => AppConn::with_buffers(tuple, b, ConnPhase::Connecting),
            None => AppConn::new(
                tuple,
                self.cfg.rx_buffer,
                self.cfg.tx_buffer,
                ConnPhase::Connecting,
            ),
        };
        let conn = self.apps.insert(app);
        let hs = Handshake {
            state: TcpState::SynSent,
            iss: SeqNumber(self.ctrl.isn(&tuple, self.now)),
            irs: SeqNumber(0),
            peer: PeerOptions::default(),
            conn: Some(conn),
            listener: None,
            remote_mac: None,
            retries: 0,
            deadline: 0,
            sent_at: 0,
            from_cookie: false,
            cc: cc.unwrap_or(self.cfg.proto.cc),
            max_pacing_rate: 0,
        };
        self.ctrl.handshakes.insert(tuple, hs);
        match self.resolve(next_hop, tuple) {
            Some(mac) => self.next_hop_resolved(tuple, mac),
            // Bounded while ARP is pending too (ARP failure ends it sooner).
            None => self.arm_unsent_handshake(&tuple),
        }
        Ok(conn)
    }

    /// The next hop of a waiting active open answered ARP: send the SYN.
    pub(crate) fn next_hop_resolved(&mut self, tuple: FourTuple, mac: EthernetAddress) {
        if let Some(h) = self.ctrl.handshakes.get_mut(&tuple) {
            if h.remote_mac.is_none() {
                h.remote_mac = Some(mac);
                self.send_handshake_segment(&tuple);
            }
        }
    }

    /// Sends (or resends) the SYN or SYN-ACK and arms the retry timer.
    fn send_handshake_segment(&mut self, tuple: &FourTuple) {
        self.handshake_segment(tuple, true);
    }

    /// Resends the SYN-ACK without touching the retry timer.
    fn send_handshake_segment_now(&mut self, tuple: &FourTuple) {
        self.handshake_segment(tuple, false);
    }

    fn handshake_segment(&mut self, tuple: &FourTuple, arm: bool) {
        let now = self.now;
        let initial_rto = self.cfg.proto.rto.initial_us as u64 * 1000;
        let max_rto = self.cfg.proto.rto.max_us as u64 * 1000;
        let rcv_wscale = self.cfg.rcv_wscale();
        let (ws, ts, sack, mss) = (
            self.cfg.window_scale,
            self.cfg.timestamps,
            self.cfg.sack,
            self.cfg.mss,
        );
        let cfg_ecn = self.cfg.proto.ecn;
        let window = self.cfg.rx_buffer.min(u16::MAX as u32) as u16;
        let Some(h) = self.ctrl.handshakes.get_mut(tuple) else {
            return;
        };
        let ecn = h.wants_ecn(cfg_ecn);
        let Some(mac) = h.remote_mac else {
            return;
        };
        // A SYN offers everything enabled; a SYN-ACK only what the peer offered.
        let offer = |peer_has: bool| h.state == TcpState::SynSent || peer_has;
        let mut options = TcpOptions {
            mss: Some(mss),
            ..TcpOptions::default()
        };
        if ws && offer(h.peer.window_scale.is_some()) {
            options.window_scale = Some(rcv_wscale);
        }
        if sack && offer(h.peer.sack_permitted) {
            options.sack_permitted = true;
        }
        if ts && offer(h.peer.ts_val.is_some()) {
            options.timestamps = Some((ack_ts_clock(now), h.peer.ts_val.unwrap_or(0)));
        }
        // ECN (RFC 3168 6.1.1): an ECN-setup SYN has ECE and CWR; the
        // SYN-ACK answers an ECN-setup SYN with ECE alone.
        let (flags, ack) = match h.state {
            TcpState::SynSent if ecn => {
                (TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, SeqNumber(0))
            }
            TcpState::SynSent => (TcpFlags::SYN, SeqNumber(0)),
            _ if ecn && h.peer.ecn => (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE, h.irs + 1u32),
            _ => (TcpFlags::SYN | TcpFlags::ACK, h.irs + 1u32),
        };
        let seq = h.iss;
        if !arm {
            self.send_segment(tuple, mac, seq, ack, flags, window, options);
            return;
        }
        h.sent_at = now;
        h.deadline = now + (initial_rto << h.retries.min(10)).min(max_rto);
        let deadline = h.deadline;
        self.send_segment(tuple, mac, seq, ack, flags, window, options);
        self.push_timer(deadline, TimerKey::Handshake(*tuple));
    }

    /// Arms the retry timer of a handshake whose segment cannot be sent yet
    /// (next hop not resolved): it counts against the same retry budget.
    fn arm_unsent_handshake(&mut self, tuple: &FourTuple) {
        let now = self.now;
        let initial_rto = self.cfg.proto.rto.initial_us as u64 * 1000;
        let max_rto = self.cfg.proto.rto.max_us as u64 * 1000;
        let Some(h) = self.ctrl.handshakes.get_mut(tuple) else {
            return;
        };
        h.deadline = now + (initial_rto << h.retries.min(10)).min(max_rto);
        let deadline = h.deadline;
        self.push_timer(deadline, TimerKey::Handshake(*tuple));
    }

    /// Retransmits a SYN or SYN-ACK, or drops the handshake once its retry
    /// budget is spent: `tcp.synack_retries` for passive opens (so a
    /// backlog filled by spoofed SYNs drains by itself), `syn_retries` for
    /// active ones. A handshake still waiting for ARP counts the same way.
    pub(crate) fn handshake_timer(&mut self, tuple: FourTuple) {
        let now = self.now;
        let Some(h) = self.ctrl.handshakes.get_mut(&tuple) else {
            return;
        };
        if now < h.deadline {
            return; // superseded by a later deadline
        }
        let budget = if h.listener.is_some() {
            self.cfg.synack_retries
        } else {
            self.cfg.syn_retries
        };
        h.retries = h.retries.saturating_add(1);
        if h.retries > budget {
            let error = if h.remote_mac.is_none() {
                ConnError::HostUnreachable
            } else {
                ConnError::TimedOut
            };
            self.stats.handshakes_expired += 1;
            self.fail_handshake(&tuple, error);
            return;
        }
        if h.remote_mac.is_none() {
            self.arm_unsent_handshake(&tuple);
        } else {
            self.send_handshake_segment(&tuple);
        }
    }

    /// Drops a handshake; an active open's application sees `error`.
    pub(crate) fn fail_handshake(&mut self, tuple: &FourTuple, error: ConnError) {
        let Some(h) = self.cancel_handshake(tuple) else {
            return;
        };
        if let Some(conn) = h.conn {
            if let Some(app) = self.apps.get_mut(conn) {
                app.error = Some(error);
                app.phase = ConnPhase::Finished;
            }
            self.apps
                .raise(conn, EventKind::ERROR | EventKind::FINISHED);
            self.stats.connect_failures += 1;
        }
    }

    /// Removes a handshake and its listener's half-open count.
    pub(crate) fn cancel_handshake(&mut self, tuple: &FourTuple) -> Option<Handshake> {
        let h = self.ctrl.handshakes.remove(tuple)?;
        if let Some(port) = h.listener {
            if let Some(l) = self.ctrl.listeners.get_mut(&port) {
                l.half_open = l.half_open.saturating_sub(1);
            }
        }
        Some(h)
    }

    /// A segment for a connection in SYN-SENT or SYN-RECEIVED.
    pub(crate) fn on_handshake_segment(
        &mut self,
        tuple: FourTuple,
        remote_mac: EthernetAddress,
        tcp: &TcpRepr<'_>,
        frame: &[u8],
    ) {
        let Some(h) = self.ctrl.handshakes.get(&tuple).cloned() else {
            return;
        };
        let f = tcp.flags;
        let (syn, ack, rst) = (
            f.contains(TcpFlags::SYN),
            f.contains(TcpFlags::ACK),
            f.contains(TcpFlags::RST),
        );
        let ack_ok = ack && tcp.ack == h.iss + 1u32;
        match h.state {
            TcpState::SynSent => {
                if rst {
                    if ack_ok {
                        self.stats.rst_received += 1;
                        self.fail_handshake(&tuple, ConnError::Refused);
                    } else {
                        self.stats.drop(DropReason::RstOutOfWindow);
                    }
                } else if ack && !ack_ok {
                    self.stats.drop(DropReason::BadHandshake);
                    self.reset_unknown(tuple, remote_mac, tcp);
                } else if syn && ack_ok {
                    if let Some(hs) = self.ctrl.handshakes.get_mut(&tuple) {
                        hs.irs = tcp.seq;
                        hs.peer = PeerOptions::from_segment(tcp);
                    }
                    if let Some(flow) = self.establish(&tuple) {
                        let h = self.proto[flow.index()].as_mut().map(|p| p.challenge_ack());
                        if let Some(h) = h {
                            self.send_fields(flow, &h, &[]);
                        }
                    }
                } else if syn {
                    // Simultaneous open (RFC 9293 figure 7).
                    if let Some(hs) = self.ctrl.handshakes.get_mut(&tuple) {
                        hs.irs = tcp.seq;
                        hs.peer = PeerOptions::from_segment(tcp);
                        hs.state = TcpState::SynReceived;
                        hs.retries = 0;
                    }
                    self.send_handshake_segment(&tuple);
                } else {
                    self.stats.drop(DropReason::BadHandshake);
                }
            }
            _ => {
                // SYN-RECEIVED. Our SYN-ACK offered this (unscaled) window.
                let window = self.cfg.rx_buffer.min(u16::MAX as u32);
                if rst {
                    let rcv_nxt = h.irs + 1u32;
                    if tcp.seq == rcv_nxt {
                        self.stats.rst_received += 1;
                        self.fail_handshake(&tuple, ConnError::Refused);
                    } else if tcp.seq > rcv_nxt && tcp.seq < rcv_nxt + window {
                        // RFC 5961 3.2: in window but inexact -> challenge.
                        self.stats.drop(DropReason::RstChallenged);
                        if self.ctrl.challenge_allowed(self.now) {
                            self.stats.challenge_acks += 1;
                            self.syn_received_ack(&tuple, remote_mac, &h);
                        }
                    } else {
                        self.stats.drop(DropReason::RstOutOfWindow);
                    }
                } else if syn && !ack {
                    // Our SYN-ACK was lost: the peer retransmitted its SYN.
                    // Answer, but keep the retry timer and its deadline, so
                    // repeated SYNs neither grow the timer queue nor keep a
                    // half-open entry alive forever.
                    if tcp.seq == h.irs {
                        self.send_handshake_segment_now(&tuple);
                    } else {
                        self.stats.drop(DropReason::BadHandshake);
                    }
                } else if ack_ok && syn && tcp.seq != h.irs {
                    // A SYN-ACK must carry the ISN its SYN announced.
                    self.stats.drop(DropReason::BadHandshake);
                } else if ack_ok && !syn && !syn_received_acceptable(&h, tcp, window) {
                    // RFC 9293 3.10.7.4: a sequence number outside the
                    // window we offered is answered with an ACK (rate
                    // limited, as Linux does) and dropped; the half-open
                    // entry stays.
                    self.stats.drop(DropReason::OutOfWindow);
                    if self.ctrl.challenge_allowed(self.now) {
                        self.syn_received_ack(&tuple, remote_mac, &h);
                    }
                } else if ack_ok {
                    if syn {
                        // Simultaneous open: the peer's SYN-ACK completes it.
                        if let Some(hs) = self.ctrl.handshakes.get_mut(&tuple) {
                            hs.peer = PeerOptions::from_segment(tcp);
                        }
                    } else if let (Some(hs), Some((ts_val, _))) =
                        (self.ctrl.handshakes.get_mut(&tuple), tcp.options.timestamps)
                    {
                        hs.peer.ts_val = hs.peer.ts_val.map(|_| ts_val);
                    }
                    if let Some(flow) = self.establish(&tuple) {
                        if syn {
                            let h = self.proto[flow.index()].as_mut().map(|p| p.challenge_ack());
                            if let Some(h) = h {
                                self.send_fields(flow, &h, &[]);
                            }
                        } else {
                            // The ACK may carry data, a FIN and the peer's
                            // scaled window: run it through the fast path.
                            self.receive_installed(frame);
                        }
                    }
                } else if ack {
                    self.stats.drop(DropReason::BadHandshake);
                    self.reset_unknown(tuple, remote_mac, tcp);
                } else {
                    self.stats.drop(DropReason::BadHandshake);
                }
            }
        }
    }

    /// `<SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK>` in SYN-RECEIVED (challenge and
    /// unacceptable-segment ACKs). Timestamps are negotiated once our
    /// SYN-ACK carried them: every non-RST segment has TSopt (RFC 7323
    /// 3.2).
    fn syn_received_ack(&mut self, tuple: &FourTuple, remote_mac: EthernetAddress, h: &Handshake) {
        let window = self.cfg.rx_buffer.min(u16::MAX as u32);
        let options = TcpOptions {
            timestamps: h
                .peer
                .ts_val
                .filter(|_| self.cfg.timestamps)
                .map(|ecr| (ack_ts_clock(self.now), ecr)),
            ..TcpOptions::default()
        };
        self.send_segment(
            tuple,
            remote_mac,
            h.iss + 1u32,
            h.irs + 1u32,
            TcpFlags::ACK,
            window as u16,
            options,
        );
    }

    /// Answers a SYN with a cookie SYN-ACK and keeps nothing (RFC 4987).
    fn send_cookie_syn_ack(
        &mut self,
        tuple: FourTuple,
        remote_mac: EthernetAddress,
        tcp: &TcpRepr<'_>,
    ) {
        let peer = PeerOptions::from_segment(tcp);
        let iss = self
            .ctrl
            .cookies
            .encode(&tuple, tcp.seq.0, peer.mss.unwrap_or(536), self.now);
        let mut options = TcpOptions {
            mss: Some(self.cfg.mss),
            ..TcpOptions::default()
        };
        // Window scale and SACK can only be remembered in our TSval.
        if let (true, Some(ts_val)) = (self.cfg.timestamps, peer.ts_val) {
            let ws = peer.window_scale.filter(|_| self.cfg.window_scale);
            let sack = self.cfg.sack && peer.sack_permitted;
            if ws.is_some() {
                options.window_scale = Some(self.cfg.rcv_wscale());
            }
            options.sack_permitted = sack;
            let ours = SynCookies::ts_val(ack_ts_clock(self.now), ws, sack);
            options.timestamps = Some((ours, ts_val));
        }
        let window = self.cfg.rx_buffer.min(u16::MAX as u32) as u16;
        self.stats.syn_cookies_sent += 1;
        self.ctrl.last_cookie_at = Some(self.now);
        self.send_segment(
            &tuple,
            remote_mac,
            SeqNumber(iss),
            tcp.seq + 1u32,
            TcpFlags::SYN | TcpFlags::ACK,
            window,
            options,
        );
    }

    /// An ACK to a listening port with no handshake: installs the
    /// connection if it carries one of our cookies (and runs the ACK, which
    /// may carry data, through the fast path). One that does not is dropped
    /// and counted while cookies are in use: under a flood the client's
    /// ACK and first segment may have been lost (a cookie can only be
    /// checked against the first, whose sequence number names the peer's
    /// ISN), and its retransmission will get in; a RST would kill a
    /// connection the client believes is open. False (the caller resets)
    /// when no cookie was sent lately.
    pub(crate) fn on_cookie_ack(
        &mut self,
        tuple: FourTuple,
        remote_mac: EthernetAddress,
        tcp: &TcpRepr<'_>,
        frame: &[u8],
    ) -> bool {
        if self.cfg.syn_cookies == SynCookieMode::Never {
            return false;
        }
        let peer_isn = tcp.seq - 1u32;
        let cookie = tcp.ack - 1u32;
        let Some(mss) = self
            .ctrl
            .cookies
            .decode(&tuple, peer_isn.0, cookie.0, self.now)
        else {
            let recent = self
                .ctrl
                .last_cookie_at
                .is_some_and(|t| self.now.saturating_sub(t) < SynCookies::MAX_LIFETIME_NS);
            if recent {
                self.stats.syn_cookies_failed += 1;
            }
            return recent;
        };
        let installed = self.pre.len() + self.ctrl.handshakes.len();
        let Some(listener) = self.ctrl.listeners.get_mut(&tuple.local_port) else {
            return false;
        };
        if listener.accept_queue_full() || installed >= self.cfg.max_connections as usize {
            // Valid, but no room: dropped like Linux; the peer's data or
            // its retransmission will try again.
            self.stats.drop(DropReason::ListenOverflow);
            return true;
        }
        let ts = tcp.options.timestamps.filter(|_| self.cfg.timestamps);
        let (window_scale, sack) = match ts {
            Some((_, ts_ecr)) => SynCookies::ts_options(ts_ecr),
            None => (None, false),
        };
        self.stats.syn_cookies_validated += 1;
        // `establish` counts the handshake out of the listener's half-open.
        listener.half_open += 1;
        let cc = listener.cc;
        let hs = Handshake {
            state: TcpState::SynReceived,
            iss: cookie,
            irs: peer_isn,
            peer: PeerOptions {
                mss: Some(mss),
                window_scale: window_scale.filter(|_| self.cfg.window_scale),
                sack_permitted: sack && self.cfg.sack,
                ts_val: ts.map(|(v, _)| v),
                window: tcp.window,
                // A cookie does not keep the SYN's ECN request: such a
                // connection runs without ECN.
                ecn: false,
            },
            conn: None,
            listener: Some(tuple.local_port),
            remote_mac: Some(remote_mac),
            retries: 0,
            deadline: 0,
            sent_at: self.now,
            from_cookie: true,
            cc,
            max_pacing_rate: 0,
        };
        self.ctrl.handshakes.insert(tuple, hs);
        if self.establish(&tuple).is_some() {
            self.receive_installed(frame);
        }
        true
    }

    /// Re-runs a frame through `pre` now that its flow is installed.
    fn receive_installed(&mut self, frame: &[u8]) {
        if let crate::pre::PreOutcome::Fast(summary) =
            crate::pre::classify(frame, &self.local, &self.pre, &self.cfg.caps)
        {
            self.fast_path(&summary, frame);
        }
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;

/// RFC 9293 3.10.7.4's acceptability test for a segment in SYN-RECEIVED:
/// RCV.NXT = IRS + 1, RCV.WND the window our SYN-ACK offered. A segment
/// with data (or a FIN) is acceptable if its first or last byte is in the
/// window, an empty one if its sequence number is.
fn syn_received_acceptable(h: &Handshake, tcp: &TcpRepr<'_>, window: u32) -> bool {
    let rcv_nxt = h.irs + 1u32;
    let in_window = |seq: SeqNumber| seq >= rcv_nxt && seq < rcv_nxt + window;
    let len = tcp.payload.len() as u32 + u32::from(tcp.flags.contains(TcpFlags::FIN));
    if len == 0 {
        return in_window(tcp.seq);
    }
    in_window(tcp.seq) || in_window(tcp.seq + (len - 1))
}
