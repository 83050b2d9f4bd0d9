//! DCTCP on a rate (`"dctcp-rate"`, FlexTOE's and TAS's default controller,
//! `tas/slow/cc.c`): the same ECN signal as window DCTCP (RFC 8257), acting
//! on a paced rate instead of a window. Per update (about one round trip):
//! - alpha, the moving average (gain 1/16) of the fraction of acknowledged
//!   bytes that were CE-marked, takes the interval's fraction;
//! - a loss halves the rate; otherwise marks cut it by alpha / 2;
//! - otherwise the rate doubles in slow start (until the first mark or
//!   loss) and grows by one step after it;
//! - it never exceeds 1.2 times what the interval carried (a sender with
//!   nothing to send does not bank rate), within the configured bounds.

/// DCTCP's gain g (RFC 8257 4.2).
const GAIN: f64 = 1.0 / 16.0;
/// Headroom over the measured rate (TAS's 1.2).
const MEASURED_HEADROOM: f64 = 1.2;

/// The interval's feedback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    pub acked_bytes: u64,
    pub marked_bytes: u64,
    pub loss: bool,
    pub nanos: u64,
}

/// One connection's DCTCP-rate state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DctcpRate {
    rate_bps: u64,
    alpha: f64,
    slow_start: bool,
}

impl DctcpRate {
    /// Starts at `initial_bps`, alpha at 1 (RFC 8257 3.3: the first cut
    /// halves, as Reno's).
    pub fn new(initial_bps: u64) -> Self {
        Self {
            rate_bps: initial_bps.max(1),
            alpha: 1.0,
            slow_start: true,
        }
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// The marked fraction's moving average, 0..=1.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// One update from an interval's feedback. Returns the new rate.
    pub fn update(&mut self, i: &Interval, step_bps: u64, min_bps: u64, max_bps: u64) -> u64 {
        let fraction = if i.acked_bytes == 0 {
            0.0
        } else {
            (i.marked_bytes as f64 / i.acked_bytes as f64).min(1.0)
        };
        self.alpha = (1.0 - GAIN) * self.alpha + GAIN * fraction;
        let rate = self.rate_bps as f64;
        let mut new = if i.loss {
            self.slow_start = false;
            rate / 2.0
        } else if i.marked_bytes > 0 {
            self.slow_start = false;
            rate * (1.0 - self.alpha / 2.0)
        } else if self.slow_start {
            rate * 2.0
        } else {
            rate + step_bps as f64
        };
        if i.nanos > 0 && new > rate {
            let measured = i.acked_bytes as f64 * 8e9 / i.nanos as f64;
            new = new.min((measured * MEASURED_HEADROOM).max(rate));
        }
        // `as` saturates (NaN becomes 0, which the clamp lifts).
        self.rate_bps = (new as u64).clamp(min_bps.max(1), max_bps.max(1));
        self.rate_bps
    }

    /// A retransmission timeout: half the rate, out of slow start.
    pub fn on_timeout(&mut self, min_bps: u64) -> u64 {
        self.slow_start = false;
        self.rate_bps = (self.rate_bps / 2).max(min_bps.max(1));
        self.rate_bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBPS: u64 = 1_000_000;

    fn interval(acked: u64, marked: u64, loss: bool) -> Interval {
        // 100 us carrying `acked` bytes.
        Interval {
            acked_bytes: acked,
            marked_bytes: marked,
            loss,
            nanos: 100_000,
        }
    }

    #[test]
    fn slow_start_doubles_until_a_mark_then_steps() {
        let mut d = DctcpRate::new(100 * MBPS);
        // 100 us carrying 2,500 B is 200 Mbit/s: the doubling fits.
        assert_eq!(
            d.update(&interval(2_500, 0, false), 10 * MBPS, MBPS, 10_000 * MBPS),
            200 * MBPS
        );
        // A mark: alpha from 1 toward 0.5, the cut alpha / 2.
        let r = d.update(
            &interval(5_000, 2_500, false),
            10 * MBPS,
            MBPS,
            10_000 * MBPS,
        );
        let alpha = (1.0 - GAIN) * (1.0 - GAIN) + GAIN * 0.5;
        assert!((d.alpha() - alpha).abs() < 1e-9);
        assert_eq!(r, (200.0 * MBPS as f64 * (1.0 - alpha / 2.0)) as u64);
        // Out of slow start: one step.
        assert_eq!(
            d.update(
                &interval(1_000_000, 0, false),
                10 * MBPS,
                MBPS,
                10_000 * MBPS
            ),
            r + 10 * MBPS
        );
    }

    #[test]
    fn alpha_settles_at_the_marked_fraction() {
        let mut d = DctcpRate::new(1_000 * MBPS);
        for _ in 0..400 {
            d.update(
                &interval(40_000, 10_000, false),
                10 * MBPS,
                MBPS,
                10_000 * MBPS,
            );
        }
        assert!((d.alpha() - 0.25).abs() < 0.01, "alpha {}", d.alpha());
    }

    #[test]
    fn a_loss_halves_and_an_idle_sender_banks_no_rate() {
        let mut d = DctcpRate::new(1_000 * MBPS);
        assert_eq!(
            d.update(&interval(0, 0, true), 10 * MBPS, MBPS, 10_000 * MBPS),
            500 * MBPS
        );
        // Nothing acknowledged in the interval: no growth past the rate.
        assert_eq!(
            d.update(&interval(0, 0, false), 10 * MBPS, MBPS, 10_000 * MBPS),
            500 * MBPS
        );
        assert_eq!(d.on_timeout(MBPS), 250 * MBPS);
        let mut d = DctcpRate::new(2 * MBPS);
        assert_eq!(
            d.update(&interval(0, 0, true), 10 * MBPS, 2 * MBPS, 10_000 * MBPS),
            2 * MBPS
        );
    }
}
