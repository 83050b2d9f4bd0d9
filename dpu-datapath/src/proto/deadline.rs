//! Per-connection times in 32 bits: microseconds on the engine's clock,
//! wrapping every 71.6 minutes and compared like sequence numbers (RFC 1982
//! serial arithmetic). A connection holds four of them (RTO, delayed ACK,
//! the deadline the engine's queue holds, the start of the timed segment);
//! 32 bits instead of 64 is 16 B of issue 13's per-connection budget.
//!
//! Every delay a flow arms is far below the 35-minute horizon of the
//! comparison: the RTO is at most `tcp.max_rto_ms` (600 s), the delayed
//! ACK milliseconds, FIN-WAIT-2 60 s. A keepalive timer (hours) would not
//! fit and belongs in the control plane.

use super::Nanos;

/// The engine's clock in whole microseconds, wrapped to 32 bits.
pub fn micros(now: Nanos) -> u32 {
    (now / 1000) as u32
}

/// A point in time a timer fires at, or `OFF`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadline(u32);

impl Deadline {
    pub const OFF: Self = Self(0);

    /// `delay_ns` after `now`, rounded up to the microsecond so a timer
    /// never fires early. Tick 0 stands for `OFF`: a deadline that lands on
    /// it fires one microsecond late instead.
    pub fn after(now: Nanos, delay_ns: u64) -> Self {
        let us = now.saturating_add(delay_ns).div_ceil(1000);
        Self((us as u32).max(1))
    }

    /// The deadline the engine's queue entry at `at` (a value [`Self::at`]
    /// returned) stands for.
    pub fn of_queue_entry(at: Nanos) -> Self {
        Self(micros(at).max(1))
    }

    pub fn is_set(self) -> bool {
        self.0 != 0
    }

    /// Armed, and `now` is at or past it.
    pub fn reached(self, now: Nanos) -> bool {
        self.is_set() && micros(now).wrapping_sub(self.0) as i32 >= 0
    }

    /// Armed and earlier than `other` (which may be `OFF`).
    pub fn before(self, other: Self) -> bool {
        self.is_set() && (!other.is_set() || (self.0.wrapping_sub(other.0) as i32) < 0)
    }

    /// The earlier of two deadlines, ignoring `OFF`.
    pub fn earliest(self, other: Self) -> Self {
        if other.before(self) {
            other
        } else {
            self
        }
    }

    /// The deadline on the engine's 64-bit clock, given the time now: for
    /// the engine's timer queue. A deadline already reached maps to at most
    /// `now`.
    pub fn at(self, now: Nanos) -> Nanos {
        let ahead = self.0.wrapping_sub(micros(now)) as i32 as i64;
        let us = (now / 1000) as i64 + ahead;
        us.max(0) as u64 * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn never_fires_early_and_fires_within_a_microsecond() {
        let now = 5_000_123;
        let d = Deadline::after(now, 40 * MS);
        assert!(!d.reached(now + 40 * MS - 1));
        assert!(d.reached(now + 40 * MS + 877));
        assert_eq!(d.at(now), 45_001_000);
        assert_eq!(Deadline::of_queue_entry(d.at(now)), d);
    }

    #[test]
    fn off_is_never_reached_and_never_earliest() {
        assert!(!Deadline::OFF.reached(u64::MAX / 2));
        let d = Deadline::after(0, MS);
        assert_eq!(d.earliest(Deadline::OFF), d);
        assert_eq!(Deadline::OFF.earliest(d), d);
        assert!(d.before(Deadline::OFF));
        assert!(!Deadline::OFF.before(d));
    }

    #[test]
    fn comparisons_hold_across_the_32_bit_wrap() {
        // 71.6 minutes of microseconds: the clock's low 32 bits wrap here.
        let wrap_ns = (1u64 << 32) * 1000;
        let now = wrap_ns - 2 * MS;
        let rto = Deadline::after(now, 200 * MS); // past the wrap
        let delack = Deadline::after(now, MS); // before it
        assert!(delack.before(rto));
        assert_eq!(rto.earliest(delack), delack);
        assert!(!rto.reached(now + 199 * MS));
        assert!(rto.reached(now + 200 * MS));
        assert_eq!(rto.at(now), now + 200 * MS);
        assert_eq!(Deadline::of_queue_entry(rto.at(now)), rto);
        // Reached deadlines map to a time no later than now.
        assert!(delack.at(now + 5 * MS) <= now + 5 * MS);
    }

    #[test]
    fn the_longest_timer_is_inside_the_horizon() {
        let now = 123_456_789_000;
        let d = Deadline::after(now, 600_000 * MS); // tcp.max_rto_ms at its bound
        assert!(!d.reached(now + 599_999 * MS));
        assert!(d.reached(now + 600_000 * MS));
        assert_eq!(d.at(now), now + 600_000 * MS);
    }
}
