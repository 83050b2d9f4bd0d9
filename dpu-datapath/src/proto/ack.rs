//! Acknowledgement processing and congestion control: cumulative ACK, send
//! window update, SACK scoreboard, RTT samples, Reno slow start and
//! congestion avoidance (only while the window is in use, RFC 7661), fast
//! retransmit with NewReno (RFC 6582) or SACK-based (RFC 6675-style)
//! recovery, and the response to ECN echoes (RFC 3168, DCTCP RFC 8257).

use super::deadline::micros;
use super::{
    CcAlgorithm, Deadline, Flags, FlowEvents, Nanos, ProtoConfig, ProtoFlow, RxSnapshot, TcpState,
    DCTCP_ALPHA_ONE, DCTCP_SHIFT_G, SACK_RANGES,
};
use crate::pre::Summary;
use crate::stats::{DropReason, Stats};
use crate::wire::TcpFlags;

const DUPACK_THRESHOLD: u8 = 3;

/// Millisecond timestamp clock (RFC 7323 allows 1 ms to 1 s per tick).
pub fn ts_clock(now: Nanos) -> u32 {
    (now / 1_000_000) as u32
}

impl ProtoFlow {
    /// Handles the ACK field. Returns false when the segment must be dropped
    /// (the snapshot then carries the drop reason and an ACK to send).
    pub(super) fn process_ack(
        &mut self,
        s: &Summary,
        now: Nanos,
        cfg: &ProtoConfig,
        stats: &mut Stats,
        snap: &mut RxSnapshot,
    ) -> bool {
        let ack = s.ack;
        if ack > self.snd_max {
            snap.drop = Some(DropReason::AckUnsent);
            snap.ack = Some(self.pure_ack());
            return false;
        }
        if ack < self.snd_una - self.max_snd_wnd().max(self.mss as u32) {
            // RFC 5961 section 5: too old to be anything but forged.
            snap.drop = Some(DropReason::AckTooOld);
            snap.ack = Some(self.pure_ack());
            return false;
        }

        // Send window update (RFC 9293 3.10.7.4, SND.WL1/SND.WL2 rule).
        let old_wnd = self.snd_wnd;
        // SND.WL2 <= SEG.ACK holds here: SND.WL2 is never above SND.UNA.
        if ack >= self.snd_una && self.snd_wl1 <= s.seq {
            self.snd_wnd = (s.window as u32) << self.snd_wscale();
            self.max_snd_wnd_field = self.max_snd_wnd_field.max(s.window);
            self.snd_wl1 = s.seq;
        }
        if self.snd_wnd > old_wnd {
            snap.wake_tx = true;
            if self.flags.has(Flags::PERSIST) {
                self.flags.set(Flags::PERSIST, false);
                self.rto_at = Deadline::OFF;
            }
        }

        // SACK blocks: only those inside [SND.UNA, SND.MAX] (RFC 2018).
        if self.flags.has(Flags::SACK) && s.sack.count > 0 {
            let before = self.sacked().covered();
            for &(start, end) in s.sack.as_slice() {
                if start < end && start >= ack && end <= self.snd_max {
                    let _ = self.loss().sacked.insert(start, end, SACK_RANGES);
                }
            }
            // Newly SACKed bytes left the network: the pipe has room.
            if self.sacked().covered() != before {
                snap.wake_tx = true;
            }
        }

        // A lost retransmission: data sent after it was SACKed while SND.UNA's
        // hole is still open. Retransmit the holes again instead of waiting
        // for the timeout.
        if self.flags.has(Flags::IN_RECOVERY)
            && self.flags.has(Flags::RTX_MARKED)
            && self
                .sacked()
                .highest()
                .is_some_and(|h| h >= self.rtx_mark + self.mss as u32)
            && ack <= self.snd_una
        {
            self.flags.set(Flags::RTX_MARKED, false);
            self.rtx_next = self.snd_una;
            snap.wake_tx = true;
        }

        if ack > self.snd_una {
            self.on_new_ack(s, now, cfg, stats, snap);
            if !self.sacked().is_empty() && self.sack_loss_detected() {
                self.maybe_enter_recovery(stats, snap);
            }
        } else if ack == self.snd_una
            && s.payload_len == 0
            && !s.flags.contains(TcpFlags::FIN)
            && self.snd_wnd == old_wnd
            && self.snd_max > self.snd_una
        {
            self.on_duplicate_ack(stats, snap);
        } else if ack == self.snd_una && self.snd_max > self.snd_una && self.sack_loss_detected() {
            self.maybe_enter_recovery(stats, snap);
        }
        true
    }

    fn on_new_ack(
        &mut self,
        s: &Summary,
        now: Nanos,
        cfg: &ProtoConfig,
        stats: &mut Stats,
        snap: &mut RxSnapshot,
    ) {
        let ack = s.ack;
        let acked = (ack - self.snd_una) as u32;
        let fin_was_sent = self.fin_sent();
        snap.tx_freed = (ack.min(self.tx_end) - self.snd_una).max(0) as u32;
        snap.cc.acked_bytes = acked;
        // The receiver reported these bytes CE-marked (ECE).
        let ece = self.flags.has(Flags::ECN) && s.flags.contains(TcpFlags::ECE);
        snap.cc.ecn_marked = ece;
        // Was the window in use? (RFC 7661: it grows only then.) Either a
        // send waited for it since the last ACK, or the flight filled it.
        let flight_before = (self.snd_max - self.snd_una).max(0) as u32;
        let cwnd_limited = self.flags.has(Flags::CWND_LIMITED)
            || flight_before.saturating_add(self.mss as u32) >= self.cwnd;
        self.flags.set(Flags::CWND_LIMITED, false);
        let ecn_window_done = self.snd_una >= self.cwr_end;

        // RTT from the echoed timestamp. Our TSval ticks in milliseconds:
        // 0 says only "under a millisecond", left to the timed segment.
        let mut sample = None;
        if let (true, Some((_, ecr))) = (self.flags.has(Flags::TS), s.ts) {
            if ecr != 0 {
                let ms = ts_clock(now).wrapping_sub(ecr);
                if (1..60_000).contains(&ms) {
                    sample = Some(ms.saturating_mul(1000));
                }
            }
        }
        // The timed segment (one per round trip, Karn's rule) measures
        // microseconds where TSecr, a millisecond clock, says 0 or 1000 on
        // a datacenter path: it comes first, for the RTO and for
        // congestion control (TIMELY's gradient); TSecr fills in when no
        // segment is timed (during recovery).
        let timed = (self.flags.has(Flags::TIMING) && ack >= self.timed_seq)
            .then(|| micros(now).wrapping_sub(self.timed_at).max(1));
        if ack >= self.timed_seq {
            self.flags.set(Flags::TIMING, false);
        }
        let sample = timed.or(sample);
        if let Some(us) = sample {
            self.rtt.sample(us);
        }
        snap.cc.rtt_sample_us = sample;
        self.rto_retries = 0; // and with it the RTO backoff

        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        if self.rtx_next < ack {
            self.rtx_next = ack;
        }
        if let Some(l) = self.loss.as_mut() {
            l.sacked.trim_below(ack);
            self.release_loss();
        }

        // Congestion control.
        let mss = self.mss as u32;
        if self.flags.has(Flags::IN_RECOVERY) {
            let loss = self.flags.has(Flags::LOSS);
            if ack >= self.recover {
                // Full acknowledgement: leave recovery (RFC 6582 3.2 step 3).
                self.flags.set(Flags::IN_RECOVERY, false);
                self.flags.set(Flags::LOSS, false);
                self.flags.set(Flags::RTX_MARKED, false);
                let flight = (self.snd_max - self.snd_una).max(0) as u32;
                if !loss {
                    self.cwnd = self.ssthresh.min(flight.max(mss) + mss);
                }
                self.dupacks = 0;
            } else if loss {
                // After a timeout: slow start while retransmitting the holes.
                self.cwnd = self.cwnd.saturating_add(acked.min(2 * mss));
            } else if self.flags.has(Flags::SACK) {
                self.rtx_end = self.rtx_end.max(self.sacked().highest().unwrap_or(ack));
            } else {
                // Partial ACK: retransmit the next hole, deflate (RFC 6582 step 4).
                self.rtx_next = ack;
                self.rtx_end = (ack + mss).min(self.snd_max);
                self.cwnd = self.cwnd.saturating_sub(acked).saturating_add(mss).max(mss);
            }
        } else {
            self.dupacks = 0;
            if !cwnd_limited || ece || !ecn_window_done || self.cc.rate_based() {
                // No growth on an ACK with ECE nor until the window of the
                // last ECN reduction is acknowledged (RFC 3168 6.1.2; the
                // CWR state of Linux).
                // Application-limited or only receiving, an unused window
                // does not grow either (RFC 7661; Linux's
                // tcp_is_cwnd_limited).
                // A rate-based window is set from the rate, never grown.
            } else if self.cwnd < self.ssthresh {
                self.cwnd = self.cwnd.saturating_add(acked.min(2 * mss));
            } else {
                self.cwnd = self
                    .cwnd
                    .saturating_add((mss * mss / self.cwnd.max(1)).max(1));
            }
        }
        if self.flags.has(Flags::ECN) {
            if self.cc() == CcAlgorithm::Dctcp {
                self.update_dctcp_alpha(acked, ece);
            }
            if ece {
                stats.ecn_ece_received += 1;
            }
            if ece && ecn_window_done {
                stats.ecn_reductions += 1;
                self.reduce_for_ecn();
            }
        }

        // Our FIN acknowledged?
        if fin_was_sent && ack == self.snd_max {
            snap.events.set(FlowEvents::FIN_ACKED);
            self.state = match self.state {
                TcpState::FinWait1 => TcpState::FinWait2,
                TcpState::Closing => {
                    snap.events.set(FlowEvents::TIME_WAIT);
                    TcpState::TimeWait
                }
                TcpState::LastAck => {
                    snap.events.set(FlowEvents::CLOSED);
                    TcpState::Closed
                }
                other => other,
            };
        }

        // Restart the retransmission timer (RFC 6298 5.2, 5.3).
        if self.snd_una == self.snd_max {
            self.rto_at = Deadline::OFF;
        } else {
            self.arm_rto(now, cfg);
        }
        self.arm_orphan_timer(now);
        self.flags.set(Flags::PERSIST, false);
        snap.wake_tx = true;
    }

    /// DCTCP's alpha, updated per ACK: alpha += g * (acked / cwnd) *
    /// (marked - alpha). Over one window (acked bytes summing to cwnd) this
    /// is RFC 8257's per-window moving average, alpha = (1 - g) alpha + g F,
    /// computed without two byte counters and a window marker in the
    /// connection state.
    pub(super) fn update_dctcp_alpha(&mut self, acked: u32, marked: bool) {
        let target = if marked {
            i64::from(DCTCP_ALPHA_ONE)
        } else {
            0
        };
        let alpha = i64::from(self.dctcp_alpha);
        let share = i64::from(acked.min(self.cwnd.max(1)));
        let step = (target - alpha) * share / (i64::from(self.cwnd.max(1)) << DCTCP_SHIFT_G);
        self.dctcp_alpha = (alpha + step).clamp(0, i64::from(DCTCP_ALPHA_ONE)) as u16;
    }

    /// The response to ECE, once per window (RFC 3168 6.1.2): Reno halves
    /// the window, DCTCP takes alpha / 2 off it (RFC 8257 3.3); the next
    /// new data segment carries CWR.
    fn reduce_for_ecn(&mut self) {
        let mss = self.mss as u32;
        let cut = match self.cc() {
            CcAlgorithm::Reno => self.cwnd / 2,
            // The controller cuts its rate (and the window with it).
            CcAlgorithm::Timely | CcAlgorithm::DctcpRate => 0,
            CcAlgorithm::Dctcp => {
                ((u64::from(self.cwnd) * u64::from(self.dctcp_alpha)) >> 17) as u32
            }
        };
        if !self.flags.has(Flags::IN_RECOVERY) {
            self.ssthresh = self.cwnd.saturating_sub(cut).max(2 * mss);
            self.cwnd = self.ssthresh;
        }
        self.cwr_end = self.snd_max;
        self.flags.set(Flags::CWR_DUE, true);
    }

    fn on_duplicate_ack(&mut self, stats: &mut Stats, snap: &mut RxSnapshot) {
        let mss = self.mss as u32;
        self.dupacks = self.dupacks.saturating_add(1);
        if self.flags.has(Flags::IN_RECOVERY) {
            if self.flags.has(Flags::SACK) {
                self.rtx_end = self
                    .rtx_end
                    .max(self.sacked().highest().unwrap_or(self.snd_una));
            } else {
                self.cwnd = self.cwnd.saturating_add(mss);
            }
            snap.wake_tx = true;
            return;
        }
        if self.dupacks >= self.dupack_threshold() {
            self.maybe_enter_recovery(stats, snap);
        }
    }

    /// Enters fast recovery, once per window (RFC 6582: only past `recover`).
    pub(super) fn maybe_enter_recovery(&mut self, stats: &mut Stats, snap: &mut RxSnapshot) {
        if self.flags.has(Flags::IN_RECOVERY) || self.snd_una <= self.recover {
            return;
        }
        let mss = self.mss as u32;
        let flight = (self.snd_max - self.snd_una) as u32;
        self.ssthresh = (flight / 2).max(2 * mss);
        self.recover = self.snd_max;
        self.flags.set(Flags::IN_RECOVERY, true);
        self.rtx_next = self.snd_una;
        if self.flags.has(Flags::SACK) {
            self.cwnd = self.ssthresh;
            self.rtx_end = self
                .sacked()
                .highest()
                .unwrap_or(self.snd_una + mss)
                .max(self.snd_una + mss)
                .min(self.snd_max);
        } else {
            self.cwnd = self.ssthresh + DUPACK_THRESHOLD as u32 * mss;
            self.rtx_end = (self.snd_una + mss).min(self.snd_max);
        }
        self.flags.set(Flags::TIMING, false);
        stats.fast_retransmits += 1;
        snap.cc.loss = true;
        snap.wake_tx = true;
    }

    /// With SACK, a hole is lost once enough bytes above it were SACKed
    /// (RFC 6675 IsLost), whether or not the ACKs were pure duplicates:
    /// with data flowing both ways most ACKs ride on data segments.
    fn sack_loss_detected(&self) -> bool {
        self.flags.has(Flags::SACK)
            && self.sacked().covered() > (self.dupack_threshold() as u32 - 1) * self.mss as u32
    }

    /// Duplicate ACKs that signal a loss: 3, or fewer when only a few
    /// segments are outstanding and nothing new can be sent to elicit more
    /// (early retransmit, RFC 5827).
    fn dupack_threshold(&self) -> u8 {
        let mss = self.mss as u32;
        let outstanding = (self.snd_max - self.snd_una).max(0) as u32;
        let segments = outstanding.div_ceil(mss);
        let unsent = self.tx_end > self.snd_max;
        if segments < DUPACK_THRESHOLD as u32 + 1 && !unsent {
            segments.saturating_sub(1).max(1) as u8
        } else {
            DUPACK_THRESHOLD
        }
    }

    /// Our FIN is in flight or acknowledged.
    pub(super) fn fin_sent(&self) -> bool {
        self.flags.has(Flags::FIN_REQUESTED) && self.snd_max == self.tx_end + 1u32
    }
}
