//! Removing connections from the data path: orderly finish (TIME-WAIT or
//! CLOSED), aborts (application, timeout, peer RST), and the RFC 5961 checks
//! on RST and SYN for installed connections.

use crate::app::ConnError;
use crate::control::TimeWait;
use crate::engine::work::Commit;
use crate::engine::{Engine, TimerKey};
use crate::flow::FlowId;
use crate::proto::RstCheck;
use crate::stats::DropReason;
use crate::wire::{TcpFlags, TcpRepr};

impl Engine {
    /// The flow reached TIME-WAIT or CLOSED: hand it to TIME-WAIT (control
    /// plane) and release its data-path state.
    pub(crate) fn finish_flow(&mut self, id: FlowId, time_wait: bool) {
        let (Some(pre), Some(Some(proto))) = (self.pre.get(id), self.proto.get(id.index())) else {
            return;
        };
        let tuple = pre.template.tuple;
        let remote_mac = pre.template.remote_mac;
        let (snd_nxt, rcv_nxt, ts_recent, window) = proto.time_wait_info();
        if time_wait && self.cfg.time_wait_ns > 0 {
            let deadline = self.now + self.cfg.time_wait_ns;
            self.ctrl.time_wait.insert(
                tuple,
                TimeWait {
                    snd_nxt,
                    rcv_nxt,
                    deadline,
                    remote_mac,
                    ts_recent,
                    window,
                },
            );
            self.push_timer(deadline, TimerKey::TimeWait(tuple));
        }
        self.stats.connections_closed += 1;
        tracing::debug!(%tuple, time_wait, "connection closed");
        self.release_flow(id, None);
    }

    /// Tears a flow down abnormally; optionally tells the peer with RST.
    pub(crate) fn abort_flow(&mut self, id: FlowId, error: ConnError, send_rst: bool) {
        if send_rst {
            if let Some(Some(p)) = self.proto.get(id.index()) {
                let rst = p.rst_fields();
                self.send_fields(id, &rst, &[]);
                self.stats.rst_sent += 1;
            }
        }
        self.stats.connections_reset += 1;
        if let Some(pre) = self.pre.get(id) {
            tracing::debug!(tuple = %pre.template.tuple, ?error, send_rst, "connection reset");
        }
        self.release_flow(id, Some(error));
    }

    /// Frees the flow's data-path state. The application learns of it
    /// through a commit, after everything the flow already put in the
    /// pipeline (the fast path sets `finished` on its own commit instead).
    fn release_flow(&mut self, id: FlowId, error: Option<ConnError>) {
        let conn = self.post.get(id.index()).and_then(|p| p.map(|p| p.conn));
        self.free_flow(id);
        let Some(conn) = conn else {
            return;
        };
        if let Some(app) = self.apps.get_mut(conn) {
            app.flow = None;
        }
        if error.is_some() {
            self.dispatch_commit(Commit {
                conn: Some(conn),
                finished: true,
                error,
                ..Commit::default()
            });
        }
    }

    /// RST, SYN or a segment without ACK on an installed connection.
    pub(crate) fn on_installed_exception(&mut self, id: FlowId, tcp: &TcpRepr<'_>) {
        let Some(Some(p)) = self.proto.get_mut(id.index()) else {
            return;
        };
        if tcp.flags.contains(TcpFlags::RST) {
            self.stats.rst_received += 1;
            match p.check_rst(tcp.seq) {
                RstCheck::Reset => self.abort_flow(id, ConnError::Reset, false),
                RstCheck::Challenge => {
                    self.stats.drop(DropReason::RstChallenged);
                    self.challenge_ack(id);
                }
                RstCheck::OutOfWindow => self.stats.drop(DropReason::RstOutOfWindow),
            }
        } else if tcp.flags.contains(TcpFlags::SYN) {
            // RFC 5961 4: any SYN on a synchronized connection is challenged.
            self.stats.drop(DropReason::SynChallenged);
            self.challenge_ack(id);
        } else {
            self.stats.drop(DropReason::BadFlags);
        }
    }

    /// Sends a rate-limited challenge ACK (RFC 5961 7).
    fn challenge_ack(&mut self, id: FlowId) {
        if !self.ctrl.challenge_allowed(self.now) {
            return;
        }
        if let Some(Some(p)) = self.proto.get_mut(id.index()) {
            let h = p.challenge_ack();
            self.stats.challenge_acks += 1;
            self.send_fields(id, &h, &[]);
        }
    }
}

#[cfg(test)]
#[path = "teardown_tests.rs"]
mod tests;
