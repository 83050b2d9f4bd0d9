//! Sampled per-stage processing time (`flextoe_stage_processing_seconds`).
//!
//! A task times one item in [`SAMPLE_EVERY`] with two `Instant::now()`
//! calls around its processing of that item and counts the duration into
//! a plain (non-atomic) bucket array of its own ([`StageTimer`]). Together
//! with the task's other live counters it copies the array to its slot of
//! the [`super::StatsBoard`] every [`super::StatsBoard::PERIOD`]; the
//! metrics exporter merges the slots by stage and replica. Nothing shared
//! is touched per packet. When disabled (`PipelineOptions::stage_timing`
//! false, i.e. `metrics.enabled` false) a task reads no clock and publishes
//! no histogram: the cost is one predictable branch per item.

use std::time::Instant;

/// One item in this many is timed (a power of two).
pub const SAMPLE_EVERY: u32 = 64;

/// Upper bounds of the histogram buckets, in nanoseconds (100 ns to 1 ms,
/// 1-2-5 steps); a last, implicit bucket holds everything slower.
pub const BUCKET_BOUNDS_NS: [u64; 13] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000,
];

/// Counts of sampled processing times (not cumulative: `counts[i]` holds
/// the samples in `(BUCKET_BOUNDS_NS[i-1], BUCKET_BOUNDS_NS[i]]`, the last
/// entry those above the largest bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageHistogram {
    pub counts: [u64; BUCKET_BOUNDS_NS.len() + 1],
    /// Sum of the sampled durations, in nanoseconds.
    pub sum_ns: u64,
}

impl StageHistogram {
    /// Counts one duration.
    pub fn record(&mut self, ns: u64) {
        let i = BUCKET_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKET_BOUNDS_NS.len());
        self.counts[i] += 1;
        self.sum_ns += ns;
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &StageHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }
}

/// Where a task's histogram is published: its stage label (`pre`, `proto`,
/// `dma`, `post`), its replica, and the latest copy.
#[derive(Debug)]
pub struct TimingSlot {
    pub stage: &'static str,
    pub replica: usize,
    pub hist: parking_lot::Mutex<StageHistogram>,
}

impl TimingSlot {
    pub fn new(stage: &'static str, replica: usize) -> Self {
        Self {
            stage,
            replica,
            hist: Default::default(),
        }
    }
}

/// A task's sampler and its private histogram.
#[derive(Debug, Default)]
pub(crate) struct StageTimer {
    enabled: bool,
    /// Items seen, to pick one in [`SAMPLE_EVERY`].
    seen: u32,
    pub(crate) hist: StageHistogram,
    /// Index into `StatsBoard::timings`.
    pub(crate) slot: usize,
}

impl StageTimer {
    pub(crate) fn new(enabled: bool, slot: usize) -> Self {
        Self {
            enabled,
            slot,
            ..Self::default()
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Called once per item before processing it: the start time if this
    /// item is sampled.
    #[inline]
    pub(crate) fn start(&mut self) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        self.seen = self.seen.wrapping_add(1);
        (self.seen & (SAMPLE_EVERY - 1) == 0).then(Instant::now)
    }

    /// Called after processing the item `start` was returned for.
    #[inline]
    pub(crate) fn stop(&mut self, start: Option<Instant>) {
        if let Some(t) = start {
            self.hist.record(t.elapsed().as_nanos() as u64);
        }
    }

    /// Copies the histogram to its board slot (if enabled).
    pub(crate) fn publish(&self, board: &super::StatsBoard) {
        if self.enabled {
            if let Some(slot) = board.timings.get(self.slot) {
                *slot.hist.lock() = self.hist;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_buckets() {
        let mut h = StageHistogram::default();
        for ns in [0, 100, 101, 999, 1_000_000, 1_000_001, u64::MAX / 4] {
            h.record(ns);
        }
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[3], 1);
        assert_eq!(h.counts[12], 1);
        assert_eq!(h.counts[13], 2);
        assert_eq!(h.count(), 7);
    }

    #[test]
    fn one_item_in_sample_every_is_timed() {
        let mut t = StageTimer::new(true, 0);
        for _ in 0..SAMPLE_EVERY * 10 {
            let s = t.start();
            t.stop(s);
        }
        assert_eq!(t.hist.count(), 10);
        let mut off = StageTimer::new(false, 0);
        for _ in 0..1000 {
            let s = off.start();
            off.stop(s);
        }
        assert_eq!(off.hist.count(), 0);
    }
}
