//! Software RSS for ports whose RX queue is not our flow-group hash.
//!
//! The pipeline requires every frame of flow group `g` on queue
//! `g % replicas`. A `net_tap` port's queues are the kernel's choice (the
//! TAP's own flow hash), and a port without RSS only fills queue 0. With
//! more than one replica, [`SteeredNic`] drains every hardware queue and
//! redistributes the frames by flow group into per-replica software queues;
//! TX goes straight to the port. The flow group comes from the NIC's RSS
//! hash when the frame carries one (it is the same Toeplitz hash with the
//! same key), and from one parse of the frame otherwise.
//!
//! Whichever replica polls first pulls for all of them (a `try_lock`: a
//! replica that finds another one pulling takes what is queued and goes
//! on). That lock is the cost of steering in software; ports with RSS do
//! not pay it.

#![forbid(unsafe_code)]

use super::steering::GroupSteering;
use crate::flow::frame_rss_hash;
use crate::io::{Frame, FrameSource, IoStats, Nic};
use crate::proto::Nanos;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;

/// Frames one replica's software queue holds; beyond that they are dropped
/// and counted, as a NIC ring would.
const QUEUE_FRAMES: usize = 4096;
/// Frames taken from one hardware queue per pull.
const PULL_BURST: usize = 64;

/// A port behind software RSS; see the module documentation.
pub struct SteeredNic<N> {
    port: N,
    hw_queues: usize,
    /// Which replica each flow group goes to.
    steering: GroupSteering,
    queues: Vec<ArrayQueue<Frame>>,
    /// Held by whichever replica pulls from the hardware queues.
    pull: Mutex<Vec<(Nanos, Frame)>>,
    /// Frames dropped because a replica's software queue was full.
    pub dropped: AtomicU64,
}

impl<N> std::fmt::Debug for SteeredNic<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteeredNic")
            .field("hw_queues", &self.hw_queues)
            .field("replicas", &self.queues.len())
            .finish()
    }
}

impl<N: Nic> SteeredNic<N> {
    pub fn new(port: N, hw_queues: usize, replicas: usize, flow_groups: u32) -> Self {
        Self {
            port,
            hw_queues: hw_queues.max(1),
            steering: GroupSteering::new(flow_groups, replicas.max(1)),
            queues: (0..replicas.max(1))
                .map(|_| ArrayQueue::new(QUEUE_FRAMES))
                .collect(),
            pull: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    fn pull(&self) {
        let Some(mut scratch) = self.pull.try_lock() else {
            return; // another replica is pulling right now
        };
        for hq in 0..self.hw_queues {
            scratch.clear();
            self.port.rx_burst(hq, PULL_BURST, &mut scratch);
            if scratch.is_empty() {
                continue;
            }
            let mut placing = self.steering.place();
            for (_, frame) in scratch.drain(..) {
                // The NIC's RSS hash when it has one (the same Toeplitz
                // hash with the same key), else one parse of the frame.
                let hash = frame.nic_rss_hash().or_else(|| frame_rss_hash(&frame));
                let q = placing.queue_of(hash);
                if self.queues[q].push(frame).is_ok() {
                    placing.queued(q, 1);
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<N: Nic> Nic for SteeredNic<N> {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        self.pull();
        let mut n = 0;
        while n < max {
            match self.queues[q].pop() {
                Some(frame) => out.push((0, frame)),
                None => break,
            }
            n += 1;
        }
        self.steering.took(q, n);
        n
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        self.port.tx_burst(q % self.hw_queues, frames);
    }

    fn rx_pending(&self) -> usize {
        self.queues.iter().map(ArrayQueue::len).sum()
    }

    fn frame_source(&self) -> FrameSource {
        self.port.frame_source()
    }

    fn stats(&self) -> IoStats {
        self.port.stats()
    }

    fn attach_thread(&self) {
        self.port.attach_thread()
    }

    fn detach_thread(&self) {
        self.port.detach_thread()
    }

    /// The steering is ours: the port's queues are drained whole.
    fn steer(&self, group: u32, to: usize) -> Option<Vec<u64>> {
        self.steering.steer_positions(group, to)
    }

    fn steer_passed(&self, q: usize, positions: &[u64]) -> bool {
        self.steering.passed_positions(q, positions)
    }
}
