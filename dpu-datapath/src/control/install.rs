//! Connection install: negotiate options from the handshake, then place each
//! stage's share of the state with its owner (pre: tuple and template;
//! proto: sequence state; post: application handle and CC counters).

use crate::app::{AppConn, ConnPhase, EventKind};
use crate::engine::Engine;
use crate::flow::{FlowId, FourTuple};
use crate::post::{CcCounters, PostFlow};
use crate::pre::{HeaderTemplate, PreFlow};
use crate::proto::{ProtoFlow, ProtoInit, TcpState};

/// MSS assumed when the peer sends none (RFC 9293 3.7.1).
const DEFAULT_PEER_MSS: u16 = 536;
/// Bytes the timestamp option takes in every segment.
const TS_OPTION_SPACE: u16 = 12;
/// Smallest peer MSS we accept.
const MIN_PEER_MSS: u16 = 88;

impl Engine {
    /// Completes a handshake: installs the flow in the data path.
    pub(crate) fn establish(&mut self, tuple: &FourTuple) -> Option<FlowId> {
        let h = self.cancel_handshake(tuple)?;
        let mac = h.remote_mac?;
        let cfg = &self.cfg;
        let ts = cfg.timestamps && h.peer.ts_val.is_some();
        let ws = cfg.window_scale && h.peer.window_scale.is_some();
        let sack = cfg.sack && h.peer.sack_permitted;
        // A hostile or broken peer may announce a tiny MSS: clamp it to the
        // smallest sane value (Linux's floor is 88) before taking options out.
        let mss = h
            .peer
            .mss
            .unwrap_or(DEFAULT_PEER_MSS)
            .clamp(MIN_PEER_MSS, cfg.mss.max(MIN_PEER_MSS))
            .saturating_sub(if ts { TS_OPTION_SPACE } else { 0 });
        let rtt_us = (h.retries == 0 && !h.from_cookie)
            .then(|| ((self.now.saturating_sub(h.sent_at)) / 1000) as u32);
        let init = ProtoInit {
            state: TcpState::Established,
            iss: h.iss,
            irs: h.irs,
            peer_window: h.peer.window,
            snd_wscale: if ws {
                h.peer.window_scale.unwrap_or(0).min(14)
            } else {
                0
            },
            rcv_wscale: if ws { cfg.rcv_wscale() } else { 0 },
            mss,
            ts_recent: if ts { h.peer.ts_val } else { None },
            sack,
            rx_size: cfg.rx_buffer,
            tx_size: cfg.tx_buffer,
            rtt_us,
            syn_retransmitted: h.retries > 0,
            syn_window: cfg.rx_buffer.min(u16::MAX as u32) as u16,
        };
        let template = HeaderTemplate {
            local_mac: cfg.mac,
            remote_mac: mac,
            vlan: None,
            tuple: *tuple,
            timestamps: ts,
        };
        let mut proto = ProtoFlow::new(&init, &cfg.proto);
        proto.set_cc(h.cc);
        // The handshake's last segment arrived now (keepalive's idle time).
        proto.note_rx(self.now);
        // Both ends asked for ECN in the handshake (our SYN or SYN-ACK
        // carried the request only with `tcp.ecn` on or for DCTCP).
        if h.wants_ecn(cfg.proto.ecn) && h.peer.ecn && !h.from_cookie {
            proto.enable_ecn();
        }

        let conn = match h.conn {
            Some(conn) => {
                self.stats.connections_opened += 1;
                conn
            }
            None => {
                let listener = h.listener.and_then(|p| self.ctrl.listeners.get_mut(&p))?;
                let app = match &listener.buffers {
                    Some(source) => AppConn::with_buffers(*tuple, source.alloc()?, ConnPhase::Open),
                    None => AppConn::new(
                        *tuple,
                        self.cfg.rx_buffer,
                        self.cfg.tx_buffer,
                        ConnPhase::Open,
                    ),
                };
                let conn = self.apps.insert(app);
                listener.accept_queue.push_back(conn);
                self.stats.connections_accepted += 1;
                conn
            }
        };
        let id = self.alloc_flow();
        self.pre.install(id, PreFlow { template });
        self.proto[id.index()] = Some(proto);
        self.post[id.index()] = Some(PostFlow {
            conn,
            cc: CcCounters::default(),
        });
        if let Some(app) = self.apps.get_mut(conn) {
            app.flow = Some(id);
            app.phase = ConnPhase::Open;
        }
        self.refresh_rate(id, Some(h.max_pacing_rate));
        if h.conn.is_some() {
            self.apps
                .raise(conn, EventKind::CONNECTED | EventKind::WRITABLE);
        }
        tracing::debug!(
            %tuple,
            active = h.conn.is_some(),
            mss,
            ws,
            ts,
            sack,
            "connection established"
        );
        Some(id)
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
