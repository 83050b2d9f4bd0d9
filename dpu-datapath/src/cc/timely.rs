//! TIMELY (Mittal et al., SIGCOMM'15), with the slow start and per-update
//! floor of TAS's `tas/slow/cc.c`, which FlexTOE runs. Once per update (the
//! engine calls it about once per round trip) the rate follows the newest
//! RTT sample:
//! - below `t_low`: additive increase (the queue is short whatever its trend);
//! - above `t_high`: a cut in proportion to how far above, `beta * (1 -
//!   t_high / rtt)`;
//! - in between, the RTT gradient (the moving average of successive RTT
//!   differences over `min_rtt`) decides: falling or flat, additive increase
//!   (five steps after `hai_threshold` such updates in a row: hyperactive
//!   increase); rising, a cut of `beta * gradient`.
//!
//! A new connection doubles its rate per update until the RTT passes
//! halfway between the thresholds; no update ever cuts the rate below half;
//! a loss halves it.

use pipeline_config::{RateControl, Timely as TimelyConfig};

/// TIMELY's parameters, in engine units (`tcp.timely`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimelyParams {
    pub t_low_us: u32,
    pub t_high_us: u32,
    pub min_rtt_us: u32,
    pub step_bps: u64,
    pub beta: f64,
    pub ewma_alpha: f64,
    pub hai_threshold: u8,
    pub initial_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
}

const MBPS: u64 = 1_000_000;
/// Steps per update in hyperactive increase (the paper's N).
const HAI_STEPS: u64 = 5;

impl TimelyParams {
    pub fn from_config(c: &TimelyConfig, r: &RateControl) -> Self {
        Self {
            t_low_us: c.t_low_us,
            t_high_us: c.t_high_us,
            min_rtt_us: c.min_rtt_us.max(1),
            step_bps: u64::from(r.step_mbps) * MBPS,
            beta: c.beta,
            ewma_alpha: c.ewma_alpha,
            hai_threshold: c.hai_threshold.clamp(1, 255) as u8,
            initial_bps: u64::from(r.initial_rate_mbps) * MBPS,
            min_bps: u64::from(r.min_rate_mbps).max(1) * MBPS,
            max_bps: u64::from(r.max_rate_mbps).max(1) * MBPS,
        }
    }
}

impl Default for TimelyParams {
    fn default() -> Self {
        Self::from_config(&TimelyConfig::default(), &RateControl::default())
    }
}

/// One connection's TIMELY state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timely {
    rate_bps: u64,
    /// The previous RTT sample; 0 before the first.
    prev_rtt_us: u32,
    /// Moving average of successive RTT differences, microseconds.
    rtt_diff_us: f64,
    /// Updates in a row with a non-positive gradient (hyperactive increase).
    calm_updates: u8,
    slow_start: bool,
}

impl Timely {
    pub fn new(p: &TimelyParams) -> Self {
        Self {
            rate_bps: p.initial_bps.clamp(p.min_bps, p.max_bps),
            prev_rtt_us: 0,
            rtt_diff_us: 0.0,
            calm_updates: 0,
            slow_start: true,
        }
    }

    /// The sending rate, bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// The normalised RTT gradient the last update saw.
    pub fn gradient(&self, p: &TimelyParams) -> f64 {
        self.rtt_diff_us / f64::from(p.min_rtt_us)
    }

    /// The RTT sample of the last update, microseconds (0 before one).
    pub fn rtt_us(&self) -> u32 {
        self.prev_rtt_us
    }

    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// One update from the newest RTT sample. Returns the new rate.
    pub fn on_rtt(&mut self, rtt_us: u32, p: &TimelyParams) -> u64 {
        let rtt_us = rtt_us.max(1);
        let first = self.prev_rtt_us == 0;
        let new_diff = f64::from(rtt_us) - f64::from(self.prev_rtt_us);
        self.prev_rtt_us = rtt_us;
        if !first {
            self.rtt_diff_us = (1.0 - p.ewma_alpha) * self.rtt_diff_us + p.ewma_alpha * new_diff;
        }
        let rate = self.rate_bps as f64;
        let halfway = (u64::from(p.t_low_us) + u64::from(p.t_high_us)) / 2;
        if self.slow_start && u64::from(rtt_us) <= halfway {
            return self.set(rate * 2.0, p);
        }
        self.slow_start = false;
        let step = p.step_bps as f64;
        let new = if rtt_us < p.t_low_us {
            rate + step
        } else if rtt_us > p.t_high_us {
            self.calm_updates = 0;
            rate * (1.0 - p.beta * (1.0 - f64::from(p.t_high_us) / f64::from(rtt_us)))
        } else if self.gradient(p) <= 0.0 {
            self.calm_updates = self.calm_updates.saturating_add(1);
            let steps = if self.calm_updates >= p.hai_threshold {
                HAI_STEPS
            } else {
                1
            };
            rate + steps as f64 * step
        } else {
            self.calm_updates = 0;
            rate * (1.0 - p.beta * self.gradient(p))
        };
        // One update never cuts below half (TAS).
        self.set(new.max(rate / 2.0), p)
    }

    /// A loss (fast recovery or a timeout): half the rate, out of slow start.
    pub fn on_loss(&mut self, p: &TimelyParams) -> u64 {
        self.slow_start = false;
        self.calm_updates = 0;
        self.set(self.rate_bps as f64 / 2.0, p)
    }

    fn set(&mut self, rate: f64, p: &TimelyParams) -> u64 {
        // `as` saturates (and maps NaN to 0, which the clamp lifts).
        self.rate_bps = (rate as u64).clamp(p.min_bps, p.max_bps);
        self.rate_bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TimelyParams {
        TimelyParams {
            t_low_us: 50,
            t_high_us: 500,
            min_rtt_us: 20,
            step_bps: 10 * MBPS,
            beta: 0.8,
            ewma_alpha: 0.5,
            hai_threshold: 5,
            initial_bps: 1_000 * MBPS,
            min_bps: 10 * MBPS,
            max_bps: 10_000 * MBPS,
        }
    }

    /// Out of slow start, at `rate`, the previous sample `rtt`.
    fn settled(rate: u64, rtt: u32, p: &TimelyParams) -> Timely {
        let mut t = Timely::new(p);
        t.slow_start = false;
        t.rate_bps = rate;
        t.prev_rtt_us = rtt;
        t
    }

    #[test]
    fn slow_start_doubles_until_the_rtt_passes_halfway() {
        let p = params();
        let mut t = Timely::new(&p);
        assert_eq!(t.on_rtt(30, &p), 2_000 * MBPS);
        assert_eq!(t.on_rtt(270, &p), 4_000 * MBPS, "275 is halfway");
        assert!(t.in_slow_start());
        let r = t.on_rtt(300, &p);
        assert!(!t.in_slow_start());
        assert!(r < 4_000 * MBPS, "a rising RTT in the band cuts: {r}");
    }

    #[test]
    fn below_t_low_the_rate_grows_by_one_step() {
        let p = params();
        let mut t = settled(1_000 * MBPS, 40, &p);
        assert_eq!(t.on_rtt(45, &p), 1_010 * MBPS, "even with a rising RTT");
    }

    #[test]
    fn above_t_high_the_cut_follows_the_excess() {
        let p = params();
        let mut t = settled(1_000 * MBPS, 1000, &p);
        // 1 - 0.8 * (1 - 500/1000) = 0.6
        assert_eq!(t.on_rtt(1000, &p), 600 * MBPS);
        // Far above: the cut stops at half.
        let mut t = settled(1_000 * MBPS, 100_000, &p);
        assert_eq!(t.on_rtt(100_000, &p), 500 * MBPS);
    }

    #[test]
    fn in_the_band_the_gradient_decides_with_hyperactive_increase() {
        let p = params();
        let mut t = settled(1_000 * MBPS, 100, &p);
        // Flat RTT: one step per update, five after five calm updates.
        let rates: Vec<u64> = (0..7).map(|_| t.on_rtt(100, &p) / MBPS).collect();
        assert_eq!(rates, [1010, 1020, 1030, 1040, 1090, 1140, 1190]);
        // Rising by 20 us (diff EWMA 10 us, gradient 0.5): x (1 - 0.4).
        assert_eq!(t.on_rtt(120, &p) / MBPS, 714);
        // The rise breaks the hyperactive run.
        assert_eq!(t.on_rtt(110, &p) / MBPS, 724, "diff 0, gradient 0");
    }

    #[test]
    fn the_rate_stays_within_its_bounds_and_a_loss_halves_it() {
        let p = params();
        let mut t = settled(p.max_bps, 30, &p);
        assert_eq!(t.on_rtt(30, &p), p.max_bps);
        assert_eq!(t.on_loss(&p), p.max_bps / 2);
        let mut t = settled(p.min_bps, 100, &p);
        assert_eq!(t.on_loss(&p), p.min_bps);
        assert_eq!(t.on_rtt(400, &p), p.min_bps);
    }

    #[test]
    fn the_default_parameters_are_tas_s() {
        let p = TimelyParams::default();
        assert_eq!((p.t_low_us, p.t_high_us, p.min_rtt_us), (30, 150, 11));
        assert_eq!(p.step_bps, 10 * MBPS);
        assert_eq!(Timely::new(&p).rate_bps(), 10 * MBPS);
    }
}
