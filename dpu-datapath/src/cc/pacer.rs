//! Rate enforcement for one connection: the flow scheduler asks the pacer
//! before each segment and, when it is early, parks the flow on the timer
//! wheel until the pacer's time (FlexTOE's QM timing wheel; Linux's fq
//! pacing).
//!
//! Segments leave in pairs, each pair its two wire times at the rate after
//! the one before, as Linux paces its smallest TSO burst (two segments,
//! `tcp_min_tso_segs`). A pair makes the receiver acknowledge at once
//! (every second segment, RFC 9293 3.8.6.3) instead of after its
//! delayed-ACK timer, so the RTT a rate-based controller measures is the
//! path's, not the receiver's delay: one segment per gap at a low rate
//! would make every sample a delayed ACK's and hold TIMELY at its floor. A
//! sender that was late (the worker's poll came after the slot) may catch
//! up by one segment, so the rate holds whatever the poll granularity and
//! bursts stay at most three segments.

use crate::proto::Nanos;

/// Wire bytes a segment adds to its payload: Ethernet, IPv4 and TCP
/// headers with the timestamp option (the rate counts frames, as fq's).
pub const SEGMENT_OVERHEAD: u32 = 14 + 20 + 20 + 12;
/// Segments that leave together.
pub const QUANTUM: u8 = 2;

/// One paced connection's next departure time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pacer {
    next_at: Nanos,
    /// Segments of the current burst already sent (0: none open).
    in_burst: u8,
}

/// Nanoseconds `bytes` take at `rate_bps`.
pub fn wire_time(bytes: u32, rate_bps: u64) -> Nanos {
    (u64::from(bytes) * 8 * 1_000_000_000).div_ceil(rate_bps.max(1))
}

impl Pacer {
    /// When the next segment may leave, if that is after `now`.
    pub fn wait_until(&self, now: Nanos) -> Option<Nanos> {
        (self.in_burst == 0 && now < self.next_at).then_some(self.next_at)
    }

    /// Whether the next segment opens a burst (the first of a pair).
    pub fn opens_burst(&self) -> bool {
        self.in_burst == 0
    }

    /// Accounts a segment of `payload` bytes sent at `now` at `rate_bps`.
    pub fn sent(&mut self, now: Nanos, payload: u32, rate_bps: u64) {
        let gap = wire_time(payload + SEGMENT_OVERHEAD, rate_bps);
        if self.in_burst == 0 {
            // Late by more than one gap: the missed time is not made up.
            self.next_at = self.next_at.max(now.saturating_sub(gap));
        }
        self.next_at += gap;
        self.in_burst = (self.in_burst + 1) % QUANTUM;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1500-byte frames at 1 Gbit/s: 12 us each.
    const RATE: u64 = 1_000_000_000;
    const PAYLOAD: u32 = 1500 - SEGMENT_OVERHEAD;

    #[test]
    fn pairs_leave_two_wire_times_apart() {
        let mut p = Pacer::default();
        let t0 = 1_000_000;
        assert_eq!(p.wait_until(t0), None);
        p.sent(t0, PAYLOAD, RATE);
        assert_eq!(p.wait_until(t0), None, "the pair's second segment");
        p.sent(t0, PAYLOAD, RATE);
        // A new pacer starts with one segment of credit.
        let t1 = t0 + 12_000;
        assert_eq!(p.wait_until(t0), Some(t1));
        p.sent(t1, PAYLOAD, RATE);
        p.sent(t1, PAYLOAD, RATE);
        assert_eq!(p.wait_until(t1), Some(t1 + 24_000));
        p.sent(t1 + 24_000, PAYLOAD, RATE);
        p.sent(t1 + 24_000, PAYLOAD, RATE);
        assert_eq!(p.wait_until(t1 + 24_000), Some(t1 + 48_000));
    }

    #[test]
    fn a_late_sender_catches_up_by_one_segment_only() {
        let mut p = Pacer::default();
        p.sent(0, PAYLOAD, RATE);
        p.sent(0, PAYLOAD, RATE);
        // Polled 100 us late: one segment of credit, not eight.
        let now = 124_000;
        p.sent(now, PAYLOAD, RATE);
        p.sent(now, PAYLOAD, RATE);
        assert_eq!(p.wait_until(now), Some(now + 12_000));
        p.sent(now + 12_000, PAYLOAD, RATE);
        p.sent(now + 12_000, PAYLOAD, RATE);
        assert_eq!(p.wait_until(now), Some(now + 36_000));
    }

    #[test]
    fn a_lone_segment_keeps_the_rate() {
        let mut p = Pacer::default();
        // One segment (nothing more to send), then the next much later:
        // it completes the burst at once, and the one after waits.
        p.sent(0, PAYLOAD, RATE);
        p.sent(5_000_000, PAYLOAD, RATE);
        assert_eq!(p.wait_until(5_000_000), None, "a new burst: late");
        p.sent(5_000_000, PAYLOAD, RATE);
        p.sent(5_000_000, PAYLOAD, RATE);
        assert_eq!(p.wait_until(5_000_000), Some(5_000_000 + 12_000));
    }

    #[test]
    fn wire_time_rounds_up_and_survives_a_zero_rate() {
        assert_eq!(wire_time(1, 3_000_000_000), 3);
        assert_eq!(wire_time(1500, 0), 12_000_000_000_000);
    }
}
