//! TIME-WAIT, kept in the control plane (not the data path) so it costs a
//! small table entry: re-ACK retransmitted FINs (and data or old SYNs),
//! ignore RST (RFC 1337), accept a new SYN with a higher sequence number
//! (RFC 6191-style reuse).

use crate::engine::{Engine, TimerKey};
use crate::flow::FourTuple;
use crate::proto::Nanos;
use crate::stats::DropReason;
use crate::wire::{EthernetAddress, SeqNumber, TcpFlags, TcpOptions, TcpRepr};

/// A connection in TIME-WAIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    pub snd_nxt: SeqNumber,
    pub rcv_nxt: SeqNumber,
    pub deadline: Nanos,
    pub remote_mac: EthernetAddress,
    /// TS.Recent, when timestamps were negotiated: every segment must then
    /// carry the option (RFC 7323 3.2).
    pub ts_recent: Option<u32>,
    pub window: u16,
}

impl Engine {
    pub(crate) fn on_time_wait_segment(
        &mut self,
        tuple: FourTuple,
        remote_mac: EthernetAddress,
        tcp: &TcpRepr<'_>,
        _frame: &[u8],
    ) {
        let Some(tw) = self.ctrl.time_wait.get(&tuple).copied() else {
            return;
        };
        let f = tcp.flags;
        if f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK) && tcp.seq > tw.rcv_nxt {
            self.ctrl.time_wait.remove(&tuple);
            self.on_syn(tuple, remote_mac, tcp);
        } else if f.contains(TcpFlags::RST) {
            self.stats.drop(DropReason::RstOutOfWindow);
        } else if f.contains(TcpFlags::FIN) {
            // Our last ACK was lost: ACK again and restart the 2MSL wait.
            let deadline = self.now + self.cfg.time_wait_ns;
            let mut tw = tw;
            if let Some(entry) = self.ctrl.time_wait.get_mut(&tuple) {
                entry.deadline = deadline;
                // TS.Recent follows the peer's retransmitted FIN.
                if let (Some(recent), Some((val, _))) = (entry.ts_recent, tcp.options.timestamps) {
                    if val.wrapping_sub(recent) as i32 >= 0 {
                        entry.ts_recent = Some(val);
                    }
                }
                tw = *entry;
            }
            // The queued timer re-arms itself at the new deadline: no new
            // timer entry per FIN, so a FIN flood cannot grow the timer queue.
            self.time_wait_ack(&tuple, &tw);
        } else if f.contains(TcpFlags::SYN) || !tcp.payload.is_empty() {
            // Retransmitted data (our ACK of it was lost, the peer may not
            // resend its FIN with it) or an old SYN: not acceptable, so
            // answered with an ACK (RFC 9293 3.10.7.4; RFC 5961 4 for the
            // SYN). The 2MSL wait goes on. A bare ACK is not answered: two
            // ends in TIME-WAIT would ACK each other's ACKs forever.
            self.stats.drop(DropReason::OldDuplicate);
            self.time_wait_ack(&tuple, &tw);
        } else {
            self.stats.drop(DropReason::OldDuplicate);
        }
    }

    /// The ACK a TIME-WAIT entry answers with: SND.NXT, RCV.NXT, and
    /// TS.Recent echoed when timestamps were negotiated.
    fn time_wait_ack(&mut self, tuple: &FourTuple, tw: &TimeWait) {
        let options = TcpOptions {
            timestamps: tw
                .ts_recent
                .map(|ecr| (crate::proto::ack_ts_clock(self.now), ecr)),
            ..TcpOptions::default()
        };
        self.send_segment(
            tuple,
            tw.remote_mac,
            tw.snd_nxt,
            tw.rcv_nxt,
            TcpFlags::ACK,
            tw.window,
            options,
        );
    }

    pub(crate) fn time_wait_timer(&mut self, tuple: FourTuple) {
        if let Some(tw) = self.ctrl.time_wait.get(&tuple) {
            if tw.deadline <= self.now {
                self.ctrl.time_wait.remove(&tuple);
            } else {
                let deadline = tw.deadline;
                self.push_timer(deadline, TimerKey::TimeWait(tuple));
            }
        }
    }
}

#[cfg(test)]
#[path = "time_wait_tests.rs"]
mod tests;
