//! The engine's timer queue: a hashed timing wheel (Varghese and Lauck), so
//! arming a timer costs the same with ten connections or a million, and
//! firing one costs its share of sorting its own slot (a binary heap's push
//! and pop grow with the log of all entries).
//!
//! Entries keep their exact deadline; the wheel's slots (2^22 ns, about
//! 4 ms, each) only index them, in intrusive lists over one node pool (no
//! allocation per entry once the pool has grown), with each slot's earliest
//! deadline beside it. Entries up to 16,384 slots (68.7 s) ahead go
//! straight into their slot; later ones (a backed-off RTO, a long
//! TIME-WAIT) wait in a small heap and move into the wheel as it turns.
//! When the clock reaches a slot, its entries are sorted once by (deadline,
//! key) and fire from that sorted run, so timers fire in exactly the order
//! a heap would give them, and an entry is touched a bounded number of
//! times whatever the clustering (100,000 connections armed in the same
//! microsecond share one slot).
#![forbid(unsafe_code)]

use crate::proto::Nanos;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const SLOT_SHIFT: u32 = 22;
const SLOTS: u64 = 1 << 14;
const WORDS: usize = (SLOTS / 64) as usize;
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node<K> {
    at: Nanos,
    key: K,
    next: u32,
}

/// A timer queue of `(deadline, key)` entries.
pub(crate) struct TimerWheel<K> {
    /// First node of each slot's list, and the list's earliest deadline.
    heads: Box<[u32]>,
    earliest: Box<[Nanos]>,
    /// One bit per slot that holds a list.
    occupied: Box<[u64]>,
    nodes: Vec<Node<K>>,
    free: u32,
    /// The open slot (absolute number, never past the clock's): its
    /// entries, and any pushed for it or an earlier time, are in `open`;
    /// the lists hold slots `(cursor, cursor + SLOTS)`.
    cursor: u64,
    in_lists: usize,
    /// Sorted by (deadline, key), the earliest last.
    open: Vec<(Nanos, K)>,
    /// Entries past the wheel's reach.
    far: BinaryHeap<Reverse<(Nanos, K)>>,
}

impl<K> std::fmt::Debug for TimerWheel<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("cursor", &self.cursor)
            .field(
                "entries",
                &(self.in_lists + self.open.len() + self.far.len()),
            )
            .finish_non_exhaustive()
    }
}

impl<K: Copy + Ord> Default for TimerWheel<K> {
    fn default() -> Self {
        Self {
            heads: vec![NIL; SLOTS as usize].into_boxed_slice(),
            earliest: vec![0; SLOTS as usize].into_boxed_slice(),
            occupied: vec![0; WORDS].into_boxed_slice(),
            nodes: Vec::new(),
            free: NIL,
            cursor: 0,
            in_lists: 0,
            open: Vec::new(),
            far: BinaryHeap::new(),
        }
    }
}

impl<K: Copy + Ord> TimerWheel<K> {
    /// Entries held, superseded ones included.
    pub(crate) fn len(&self) -> usize {
        self.in_lists + self.far.len() + self.open.len()
    }

    pub(crate) fn push(&mut self, at: Nanos, key: K) {
        let slot = at >> SLOT_SHIFT;
        if slot <= self.cursor {
            let pos = self.open.partition_point(|&e| e > (at, key));
            self.open.insert(pos, (at, key));
        } else if slot - self.cursor < SLOTS {
            self.link(slot, at, key);
        } else {
            self.far.push(Reverse((at, key)));
        }
    }

    /// The earliest entry due at `now`, in (deadline, key) order.
    pub(crate) fn pop_due(&mut self, now: Nanos) -> Option<(Nanos, K)> {
        loop {
            if let Some(&(at, _)) = self.open.last() {
                // Later slots hold only later deadlines.
                return if at <= now { self.open.pop() } else { None };
            }
            if !self.open_next(now >> SLOT_SHIFT) {
                return None;
            }
        }
    }

    /// The earliest deadline held.
    pub(crate) fn peek(&self) -> Option<Nanos> {
        if let Some(&(at, _)) = self.open.last() {
            return Some(at);
        }
        let far = self.far.peek().map(|Reverse((at, _))| *at);
        let listed = if self.in_lists == 0 {
            None
        } else {
            self.next_occupied(self.cursor + 1)
                .map(|slot| self.earliest[(slot % SLOTS) as usize])
        };
        match (listed, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn link(&mut self, slot: u64, at: Nanos, key: K) {
        let i = (slot % SLOTS) as usize;
        let head = self.heads[i];
        let node = Node {
            at,
            key,
            next: head,
        };
        let n = if self.free != NIL {
            let n = self.free;
            self.free = self.nodes[n as usize].next;
            self.nodes[n as usize] = node;
            n
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.earliest[i] = if head == NIL {
            at
        } else {
            self.earliest[i].min(at)
        };
        self.heads[i] = n;
        self.occupied[i / 64] |= 1 << (i % 64);
        self.in_lists += 1;
    }

    /// With `open` empty: opens the next slot that holds entries, if it is
    /// not past `target` (the clock's slot). False when nothing is due.
    fn open_next(&mut self, target: u64) -> bool {
        loop {
            self.pull_far();
            let next = if self.in_lists == 0 {
                None
            } else {
                self.next_occupied(self.cursor + 1)
            };
            match next {
                Some(slot) if slot <= target => {
                    self.cursor = slot;
                    self.unlink_into_open(slot);
                    return true;
                }
                Some(_) => {
                    self.cursor = self.cursor.max(target);
                    return false;
                }
                None => match self.far.peek() {
                    // The lists are empty, but a far entry is due: turn
                    // the wheel until it is in reach.
                    Some(Reverse((at, _))) if *at >> SLOT_SHIFT <= target => {
                        self.cursor = self.cursor.max((*at >> SLOT_SHIFT) - SLOTS + 1);
                    }
                    _ => {
                        self.cursor = self.cursor.max(target);
                        return false;
                    }
                },
            }
        }
    }

    /// Far entries the wheel now reaches go into it.
    fn pull_far(&mut self) {
        while let Some(&Reverse((at, key))) = self.far.peek() {
            let slot = at >> SLOT_SHIFT;
            if slot - self.cursor >= SLOTS {
                break;
            }
            self.far.pop();
            self.link(slot, at, key);
        }
    }

    /// Moves a slot's list into `open`, sorted.
    fn unlink_into_open(&mut self, slot: u64) {
        let i = (slot % SLOTS) as usize;
        let mut n = self.heads[i];
        while n != NIL {
            let node = self.nodes[n as usize];
            self.open.push((node.at, node.key));
            self.nodes[n as usize].next = self.free;
            self.free = n;
            self.in_lists -= 1;
            n = node.next;
        }
        self.heads[i] = NIL;
        self.occupied[i / 64] &= !(1 << (i % 64));
        // The earliest last: `pop` takes it.
        self.open.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// The first occupied slot from `from` on (absolute numbers, within
    /// one turn of the wheel).
    fn next_occupied(&self, from: u64) -> Option<u64> {
        let to = from + SLOTS - 1;
        let mut slot = from;
        while slot <= to {
            let i = (slot % SLOTS) as usize;
            let bits = self.occupied[i / 64] >> (i % 64);
            if bits != 0 {
                let found = slot + bits.trailing_zeros() as u64;
                return (found <= to).then_some(found);
            }
            slot += 64 - (i % 64) as u64;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn drain(w: &mut TimerWheel<u32>, now: Nanos) -> Vec<(Nanos, u32)> {
        std::iter::from_fn(|| w.pop_due(now)).collect()
    }

    #[test]
    fn fires_in_deadline_then_key_order_and_not_before() {
        let mut w = TimerWheel::default();
        w.push(40 * MS, 2);
        w.push(200 * MS, 1);
        w.push(40 * MS, 1);
        w.push(40 * MS + 5, 0);
        assert_eq!(w.peek(), Some(40 * MS));
        assert_eq!(drain(&mut w, 40 * MS - 1), vec![]);
        assert_eq!(drain(&mut w, 40 * MS), vec![(40 * MS, 1), (40 * MS, 2)]);
        assert_eq!(drain(&mut w, 100 * MS), vec![(40 * MS + 5, 0)]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.peek(), Some(200 * MS));
        assert_eq!(drain(&mut w, u64::MAX / 2), vec![(200 * MS, 1)]);
        assert_eq!((w.len(), w.peek()), (0, None));
    }

    #[test]
    fn far_entries_move_in_as_the_wheel_turns() {
        let mut w = TimerWheel::default();
        let start = 8 * 3600 * 1000 * MS; // a monotonic clock 8 h after boot
        w.push(start + 600_000 * MS, 3); // max RTO, past the wheel's reach
        w.push(start + 60_000 * MS, 2);
        w.push(start + 200 * MS, 1);
        assert_eq!(w.peek(), Some(start + 200 * MS));
        assert_eq!(drain(&mut w, start + 300 * MS), vec![(start + 200 * MS, 1)]);
        assert_eq!(drain(&mut w, start + 59_999 * MS), vec![]);
        assert_eq!(w.peek(), Some(start + 60_000 * MS));
        assert_eq!(
            drain(&mut w, start + 700_000 * MS),
            vec![(start + 60_000 * MS, 2), (start + 600_000 * MS, 3)]
        );
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn an_entry_pushed_while_firing_fires_in_order() {
        let mut w = TimerWheel::default();
        w.push(10 * MS, 5);
        w.push(20 * MS, 5);
        assert_eq!(w.pop_due(30 * MS), Some((10 * MS, 5)));
        // A timer that fires re-arms for a time already passed.
        w.push(15 * MS, 1);
        assert_eq!(drain(&mut w, 30 * MS), vec![(15 * MS, 1), (20 * MS, 5)]);
    }

    #[test]
    fn nodes_are_reused() {
        let mut w = TimerWheel::default();
        for round in 0..100u64 {
            for k in 0..50u32 {
                w.push(round * 10 * MS + k as u64, k);
            }
            assert_eq!(drain(&mut w, round * 10 * MS + 100).len(), 50);
        }
        assert_eq!(w.nodes.len(), 50);
    }

    proptest! {
        /// Against a binary heap: same entries, same pop order, for any
        /// pushes and clock steps (including steps of minutes and hours).
        #[test]
        fn pops_exactly_like_a_heap(
            ops in proptest::collection::vec((0u8..4, 0u64..200_000 * MS, 0u32..8), 1..200)
        ) {
            let mut w = TimerWheel::default();
            let mut h = BinaryHeap::new();
            let mut now = 1_000 * MS;
            for (op, x, key) in ops {
                if op == 0 {
                    now += x % (5_000 * MS);
                    let mut rearm = key % 3 == 0;
                    loop {
                        let a = w.pop_due(now);
                        let b = match h.peek() {
                            Some(&Reverse((at, k))) if at <= now => { h.pop(); Some((at, k)) }
                            _ => None,
                        };
                        prop_assert_eq!(a, b);
                        if a.is_none() { break; }
                        // Firing may re-arm at or before now (once here).
                        if std::mem::take(&mut rearm) {
                            w.push(now - x % 1000, key);
                            h.push(Reverse((now - x % 1000, key)));
                        }
                    }
                } else {
                    w.push(now + x, key);
                    h.push(Reverse((now + x, key)));
                }
                prop_assert_eq!(w.len(), h.len());
                prop_assert_eq!(w.peek(), h.peek().map(|Reverse((at, _))| *at));
            }
        }
    }
}
