//! The flow group -> queue map of software steering, which a flow-group
//! move across replicas changes while frames flow (issue 14, resize).
//!
//! A move must know when the old queue has handed out every frame of the
//! group it got before the change: after that, no frame of the group can
//! reach the old replica, and its owner may export the group. So every
//! queue counts the frames put on it and taken from it; [`GroupSteering::steer`]
//! changes the map and reads the old queue's count in one step (under the
//! write lock, while producers queue under the read lock), and the queue's
//! consumer compares its own count with that position
//! ([`GroupSteering::passed`]).

#![forbid(unsafe_code)]

use crate::flow::group_of_hash;
use parking_lot::{RwLock, RwLockReadGuard};
use std::sync::atomic::{AtomicU64, Ordering};

/// See the module documentation.
#[derive(Debug)]
pub struct GroupSteering {
    flow_groups: u32,
    /// Queue of each flow group; written only by [`GroupSteering::steer`].
    map: RwLock<Vec<usize>>,
    /// Per queue: frames put on it (under the read lock).
    queued: Vec<AtomicU64>,
    /// Per queue: frames its consumer took.
    taken: Vec<AtomicU64>,
}

/// The map, held while frames are put on queues (see [`GroupSteering::place`]).
/// Counts are added to the shared counters once per burst, when it is
/// dropped (still under the map's lock), not once per frame.
#[derive(Debug)]
pub struct Placing<'a> {
    steering: &'a GroupSteering,
    map: RwLockReadGuard<'a, Vec<usize>>,
    /// Frames queued per queue in this burst (queues < 64, as replicas).
    counts: [u64; 64],
    /// Bit q: `counts[q]` is not zero.
    touched: u64,
}

impl GroupSteering {
    /// Group `g` on queue `g % queues`, as [`super::Plan::replica_of_group`].
    pub fn new(flow_groups: u32, queues: usize) -> Self {
        let queues = queues.max(1);
        Self {
            flow_groups: flow_groups.max(1),
            map: RwLock::new(
                (0..flow_groups.max(1) as usize)
                    .map(|g| g % queues)
                    .collect(),
            ),
            queued: (0..queues).map(|_| AtomicU64::new(0)).collect(),
            taken: (0..queues).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The map for a burst of frames to place: the map cannot change until
    /// it is dropped, so a frame placed under it is counted in the position
    /// a concurrent [`GroupSteering::steer`] reads.
    pub fn place(&self) -> Placing<'_> {
        Placing {
            steering: self,
            map: self.map.read(),
            counts: [0; 64],
            touched: 0,
        }
    }

    /// Queue `q`'s consumer took `n` frames.
    pub fn took(&self, q: usize, n: usize) {
        if let Some(t) = self.taken.get(q) {
            // Only the consumer writes it (and reads it in `passed`).
            t.store(t.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
        }
    }

    /// Sends group `group`'s frames to queue `to` from now on. Returns the
    /// old queue and how many frames had been put on it: once its consumer
    /// has taken that many, it has taken every frame of the group it will
    /// ever get. None for a group or queue out of range.
    pub fn steer(&self, group: u32, to: usize) -> Option<(usize, u64)> {
        if to >= self.queued.len() {
            return None;
        }
        let mut map = self.map.write();
        let slot = map.get_mut(group as usize)?;
        let from = std::mem::replace(slot, to);
        Some((from, self.queued[from].load(Ordering::Relaxed)))
    }

    /// [`crate::io::Nic::steer`] for a port whose only steering layer is
    /// this one: its one position.
    pub fn steer_positions(&self, group: u32, to: usize) -> Option<Vec<u64>> {
        self.steer(group, to).map(|(_, at)| vec![at])
    }

    /// [`crate::io::Nic::steer_passed`] for such a port.
    pub fn passed_positions(&self, q: usize, positions: &[u64]) -> bool {
        positions.last().is_none_or(|&at| self.passed(q, at))
    }

    /// Whether [`GroupSteering::steer`] would move `group` to `to` (both
    /// exist).
    pub fn can_steer(&self, group: u32, to: usize) -> bool {
        group < self.flow_groups && to < self.queued.len()
    }

    /// Whether queue `q`'s consumer (the caller) has taken `position`
    /// frames.
    pub fn passed(&self, q: usize, position: u64) -> bool {
        self.taken
            .get(q)
            .is_none_or(|t| t.load(Ordering::Relaxed) >= position)
    }
}

impl Placing<'_> {
    /// The queue of a frame with RSS hash `hash` (None: not TCP/IPv4,
    /// queue 0).
    pub fn queue_of(&self, hash: Option<u32>) -> usize {
        match hash {
            Some(h) => self.map[group_of_hash(h, self.steering.flow_groups) as usize],
            None => 0,
        }
    }

    /// `n` frames were put on queue `q`.
    pub fn queued(&mut self, q: usize, n: u64) {
        match self.counts.get_mut(q) {
            Some(c) => {
                *c += n;
                self.touched |= 1 << q;
            }
            None => self.add(q, n),
        }
    }

    fn add(&self, q: usize, n: u64) {
        if let Some(c) = self.steering.queued.get(q) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Drop for Placing<'_> {
    /// Before the map's lock is released: a steer that takes the write
    /// lock next sees these frames counted.
    fn drop(&mut self) {
        while self.touched != 0 {
            let q = self.touched.trailing_zeros() as usize;
            self.touched &= self.touched - 1;
            self.add(q, self.counts[q]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash whose group (of 4) is `g`.
    fn hash_of_group(g: u32) -> u32 {
        (0..u32::MAX)
            .find(|&h| group_of_hash(h, 4) == g)
            .expect("a hash of every group")
    }

    #[test]
    fn a_group_moves_queue_and_the_old_queue_reports_when_it_has_delivered() {
        let s = GroupSteering::new(4, 2);
        let h1 = hash_of_group(1);
        // Three frames of group 1 on queue 1, one taken.
        {
            let mut p = s.place();
            assert_eq!(p.queue_of(Some(h1)), 1);
            assert_eq!(p.queue_of(None), 0);
            p.queued(1, 3);
        }
        s.took(1, 1);
        let (from, position) = s.steer(1, 0).unwrap();
        assert_eq!((from, position), (1, 3));
        assert_eq!(s.place().queue_of(Some(h1)), 0, "steered");
        // Frames queued on 1 after the change do not hold the move back.
        s.place().queued(1, 5);
        assert!(!s.passed(1, position));
        s.took(1, 2);
        assert!(s.passed(1, position));
        assert_eq!(s.steer(9, 0), None, "no group 9");
        assert_eq!(s.steer(1, 2), None, "no queue 2");
    }

    #[test]
    fn a_steer_waits_for_a_burst_being_placed() {
        let s = std::sync::Arc::new(GroupSteering::new(4, 2));
        let mut placing = s.place();
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = s.clone();
        let t = std::thread::spawn(move || tx.send(s2.steer(0, 1)).unwrap());
        // The steer cannot finish while the burst is placed under the map.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(50))
            .is_err());
        placing.queued(0, 2);
        drop(placing);
        assert_eq!(rx.recv().unwrap(), Some((0, 2)), "counts the burst");
        t.join().unwrap();
    }
}
