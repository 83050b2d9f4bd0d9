//! Per-flow timers owned by `proto`: retransmission timeout (RFC 6298),
//! persist / zero-window probe, delayed ACK. The engine's timer queue calls
//! [`ProtoFlow::on_timers`] when [`ProtoFlow::next_deadline`] has passed.

use super::{Deadline, Flags, HeaderFields, Nanos, ProtoConfig, ProtoFlow};
use crate::stats::Stats;
use crate::wire::TcpFlags;

/// What a timer expiry asks the engine to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerAction {
    /// Send this pure ACK (delayed ACK) or probe (persist).
    pub send: Option<HeaderFields>,
    /// Retransmissions are due: run the flow through the TX scheduler.
    pub wake_tx: bool,
    /// Too many timeouts without progress: reset the connection.
    pub abort: bool,
    /// A retransmission timeout collapsed the window (a loss).
    pub timeout: bool,
}

impl ProtoFlow {
    /// Earliest armed deadline, `OFF` when none is.
    pub fn next_deadline(&self) -> Deadline {
        self.rto_at.earliest(self.delack_at)
    }

    /// Arms the retransmission (or persist) timer one RTO from now, with
    /// the backoff of the timeouts so far.
    pub(super) fn arm_rto(&mut self, now: Nanos, cfg: &ProtoConfig) {
        let rto_us = self.rtt.rto_us(&cfg.rto, self.rto_retries);
        self.rto_at = Deadline::after(now, rto_us as u64 * 1000);
    }

    /// Runs every timer that has expired by `now`.
    pub fn on_timers(&mut self, now: Nanos, cfg: &ProtoConfig, stats: &mut Stats) -> TimerAction {
        let mut action = TimerAction::default();
        if self.delack_at.reached(now) {
            action.send = Some(self.pure_ack());
        }
        if !self.rto_at.reached(now) {
            return action;
        }
        if self.flags.has(Flags::PERSIST) {
            // Zero-window probe: an old sequence number elicits an ACK that
            // carries the peer's current window. A peer that keeps its window
            // shut for as many probes as we allow retransmissions is given
            // up on, so it cannot pin the connection forever.
            self.rto_retries = self.rto_retries.saturating_add(1);
            if self.rto_retries > cfg.max_retransmits.saturating_mul(2) {
                action.abort = true;
                self.rto_at = Deadline::OFF;
                return action;
            }
            stats.zero_window_probes += 1;
            self.arm_rto(now, cfg);
            action.send = Some(self.header(self.snd_una - 1u32, TcpFlags::ACK));
            return action;
        }
        if self.snd_max == self.snd_una {
            // TCP_CORK's ceiling: the short tail it held goes now.
            if self.tx_conf & super::TX_CORK != 0 && self.tx_end > self.snd_nxt {
                self.tx_conf |= super::TX_CORK_FLUSH;
                action.wake_tx = true;
            }
            // An orphan in FIN-WAIT-2 whose peer never sent its FIN.
            if self.state == super::TcpState::FinWait2 && self.flags.has(Flags::ORPHAN) {
                action.abort = true;
            }
            self.rto_at = Deadline::OFF;
            return action;
        }
        self.rto_retries = self.rto_retries.saturating_add(1);
        if self.rto_retries > cfg.max_retransmits {
            action.abort = true;
            self.rto_at = Deadline::OFF;
            return action;
        }
        // Timeout: collapse the window (RFC 5681 3.1).
        let mss = self.mss as u32;
        let flight = (self.snd_max - self.snd_una) as u32;
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.recover = self.snd_max;
        self.rtx_next = self.snd_una;
        self.dupacks = 0;
        self.flags.set(Flags::TIMING, false);
        self.flags.set(Flags::RTX_MARKED, false);
        if self.flags.has(Flags::SACK) {
            // Resend from SND.UNA, slow-starting, as loss recovery up to
            // SND.MAX (SND.NXT stays, so new losses are still detected). The
            // scoreboard is cleared (RFC 2018 section 8: the peer may have
            // discarded what it SACKed); the ACKs that follow SACK again
            // what it still holds, and those holes are then skipped.
            if let Some(l) = self.loss.as_mut() {
                l.sacked.clear();
            }
            self.release_loss();
            self.rtx_end = self.snd_max;
            self.flags.set(Flags::IN_RECOVERY, true);
            self.flags.set(Flags::LOSS, true);
        } else {
            // No SACK: go back to SND.UNA and resend everything.
            self.snd_nxt = self.snd_una;
            self.rtx_end = self.snd_una;
            if let Some(l) = self.loss.as_mut() {
                l.sacked.clear();
            }
            self.release_loss();
            self.flags.set(Flags::IN_RECOVERY, false);
        }
        self.arm_rto(now, cfg);
        stats.timeout_retransmits += 1;
        action.wake_tx = true;
        action.timeout = true;
        action
    }
}
