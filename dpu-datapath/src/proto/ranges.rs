//! A small, fixed-capacity set of disjoint sequence ranges. Used for the
//! receiver's out-of-order intervals (data already placed in the RX buffer
//! beyond RCV.NXT) and the sender's SACK scoreboard. No allocation.

use crate::wire::SeqNumber;

/// Disjoint, non-adjacent `[start, end)` ranges sorted by start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRanges<const N: usize> {
    ranges: [(SeqNumber, SeqNumber); N],
    len: u8,
    /// Start of the range most recently added to, reported first in SACK.
    recent: SeqNumber,
}

/// The set has no room for another disjoint range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl<const N: usize> Default for SeqRanges<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> SeqRanges<N> {
    /// No ranges.
    pub const EMPTY: Self = Self {
        ranges: [(SeqNumber(0), SeqNumber(0)); N],
        len: 0,
        recent: SeqNumber(0),
    };

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges[..self.len as usize]
    }

    /// Adds `[start, end)`, merging with overlapping or touching ranges.
    /// `capacity` may be below `N` (a configured limit).
    pub fn insert(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        capacity: usize,
    ) -> Result<(), Full> {
        if end <= start {
            return Ok(());
        }
        let mut start = start;
        let mut end = end;
        // Find the run of ranges [first, last) that touch the new one.
        let n = self.len as usize;
        let first = self.ranges[..n]
            .iter()
            .position(|&(_, e)| e >= start)
            .unwrap_or(n);
        let mut last = first;
        while last < n && self.ranges[last].0 <= end {
            start = start.min(self.ranges[last].0);
            end = end.max(self.ranges[last].1);
            last += 1;
        }
        let merged = last - first;
        if merged == 0 && n >= capacity.min(N) {
            return Err(Full);
        }
        if merged == 0 {
            self.ranges.copy_within(first..n, first + 1);
            self.len += 1;
        } else if merged > 1 {
            self.ranges.copy_within(last..n, first + 1);
            self.len -= (merged - 1) as u8;
        }
        self.ranges[first] = (start, end);
        self.recent = start;
        Ok(())
    }

    /// Removes and returns the end of the first range if it starts at or
    /// before `seq` (it has become contiguous with the cumulative edge).
    pub fn pop_reached(&mut self, seq: SeqNumber) -> Option<SeqNumber> {
        if self.len == 0 || self.ranges[0].0 > seq {
            return None;
        }
        let end = self.ranges[0].1;
        self.ranges.copy_within(1..self.len as usize, 0);
        self.len -= 1;
        Some(end)
    }

    /// Forgets everything below `seq`.
    pub fn trim_below(&mut self, seq: SeqNumber) {
        let mut kept = 0;
        for i in 0..self.len as usize {
            let (s, e) = self.ranges[i];
            if e <= seq {
                continue;
            }
            self.ranges[kept] = (s.max(seq), e);
            kept += 1;
        }
        self.len = kept as u8;
    }

    /// Total bytes covered.
    pub fn covered(&self) -> u32 {
        self.as_slice().iter().map(|&(s, e)| (e - s) as u32).sum()
    }

    /// Highest covered sequence number (end of the last range).
    pub fn highest(&self) -> Option<SeqNumber> {
        self.as_slice().last().map(|r| r.1)
    }

    /// Bytes covered inside `[from, to)`.
    pub fn covered_between(&self, from: SeqNumber, to: SeqNumber) -> u32 {
        self.as_slice()
            .iter()
            .map(|&(s, e)| {
                let s = s.max(from);
                let e = e.min(to);
                if e > s {
                    (e - s) as u32
                } else {
                    0
                }
            })
            .sum()
    }

    /// The first byte at or after `from` not covered by any range, with the
    /// length of the uncovered run (up to the next range, or `None` if the
    /// run is open-ended).
    pub fn next_uncovered(&self, from: SeqNumber) -> (SeqNumber, Option<u32>) {
        let mut at = from;
        for &(s, e) in self.as_slice() {
            if e <= at {
                continue;
            }
            if s <= at {
                at = e;
                continue;
            }
            return (at, Some((s - at) as u32));
        }
        (at, None)
    }

    /// Up to `max` ranges, the most recently extended one first (RFC 2018).
    pub fn sack_blocks(&self, max: usize, out: &mut [(SeqNumber, SeqNumber); 4]) -> u8 {
        let max = max.min(4);
        let mut n = 0;
        if let Some(r) = self.as_slice().iter().find(|r| r.0 == self.recent) {
            if n < max {
                out[n] = *r;
                n += 1;
            }
        }
        for r in self.as_slice().iter().rev() {
            if n >= max {
                break;
            }
            if r.0 != self.recent {
                out[n] = *r;
                n += 1;
            }
        }
        n as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u32) -> SeqNumber {
        SeqNumber(v)
    }

    #[test]
    fn merges_overlapping_and_touching() {
        let mut r = SeqRanges::<8>::default();
        r.insert(s(10), s(20), 8).unwrap();
        r.insert(s(30), s(40), 8).unwrap();
        r.insert(s(20), s(30), 8).unwrap();
        assert_eq!(r.as_slice(), &[(s(10), s(40))]);
        r.insert(s(5), s(50), 8).unwrap();
        assert_eq!(r.as_slice(), &[(s(5), s(50))]);
    }

    #[test]
    fn refuses_a_ninth_interval_but_still_merges() {
        let mut r = SeqRanges::<8>::default();
        for i in 0..8 {
            r.insert(s(i * 100), s(i * 100 + 10), 8).unwrap();
        }
        assert_eq!(r.insert(s(2000), s(2010), 8), Err(Full));
        assert!(r.insert(s(10), s(20), 8).is_ok());
        assert_eq!(r.len(), 8);
        assert_eq!(r.insert(s(3000), s(3010), 3), Err(Full));
    }

    #[test]
    fn works_across_sequence_wrap() {
        let mut r = SeqRanges::<4>::default();
        r.insert(s(u32::MAX - 5), s(5), 4).unwrap();
        r.insert(s(5), s(10), 4).unwrap();
        assert_eq!(r.as_slice(), &[(s(u32::MAX - 5), s(10))]);
        assert_eq!(r.covered(), 16);
        assert_eq!(r.pop_reached(s(u32::MAX - 5)), Some(s(10)));
        assert!(r.is_empty());
    }

    #[test]
    fn uncovered_runs_and_trim() {
        let mut r = SeqRanges::<4>::default();
        r.insert(s(100), s(200), 4).unwrap();
        r.insert(s(300), s(400), 4).unwrap();
        assert_eq!(r.next_uncovered(s(50)), (s(50), Some(50)));
        assert_eq!(r.next_uncovered(s(150)), (s(200), Some(100)));
        assert_eq!(r.next_uncovered(s(350)), (s(400), None));
        assert_eq!(r.covered_between(s(150), s(350)), 100);
        r.trim_below(s(150));
        assert_eq!(r.as_slice(), &[(s(150), s(200)), (s(300), s(400))]);
    }

    #[test]
    fn most_recent_block_first() {
        let mut r = SeqRanges::<8>::default();
        r.insert(s(100), s(200), 8).unwrap();
        r.insert(s(500), s(600), 8).unwrap();
        r.insert(s(300), s(400), 8).unwrap();
        let mut out = [(s(0), s(0)); 4];
        let n = r.sack_blocks(3, &mut out);
        assert_eq!(n, 3);
        assert_eq!(out[0], (s(300), s(400)));
    }
}
