//! The in-memory NIC of tests and benchmarks, and the RX queue RSS picks
//! for a frame (software steering).
//!
//! The in-memory NIC's RX queues are filled by the test (RSS by flow group,
//! like the hardware) and its TX queues collected. A full RX queue drops and
//! counts, as a NIC does.

use super::steering::GroupSteering;
use super::topology::Plan;
use crate::flow::{frame_rss_hash, group_of_hash};
use crate::io::{Frame, Nic};
use crate::proto::Nanos;
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The queue (replica) a received frame belongs to, as the NIC's RSS must
/// pick it: the replica of the frame's flow group; frames that are not
/// TCP/IPv4 (ARP, ICMP, garbage) go to queue 0. For software steering when
/// the NIC cannot do it (e.g. a TAP, whose queue is the kernel's choice).
pub fn rss_queue(frame: &[u8], flow_groups: u32, replicas: usize) -> usize {
    match frame_rss_hash(frame) {
        Some(hash) => group_of_hash(hash, flow_groups) as usize % replicas.max(1),
        None => 0,
    }
}

/// Frames in and out of the pipeline, one queue pair per replica.
#[derive(Debug)]
pub struct MemNic {
    rx: Vec<ArrayQueue<(Nanos, Frame)>>,
    /// Transmitted frames per queue, each with its place in the order of
    /// all transmissions (so [`MemNic::take_tx`] keeps the order in which
    /// the pipeline handed them over, across queues: a flow group that
    /// moved to another replica must not look reordered).
    tx: Vec<Mutex<Vec<(u64, Frame)>>>,
    tx_order: AtomicU64,
    /// RSS by flow group, as the hardware's, but a group can move queue
    /// ([`Nic::steer`]).
    steering: GroupSteering,
    pub rx_dropped: AtomicU64,
    /// While set, receive returns nothing (benchmarks fill the queues
    /// first, so the injecting thread does not compete with the workers).
    held: AtomicBool,
    /// While set, transmitted frames are counted and freed instead of
    /// kept (benchmarks: keeping millions of frames costs page faults that
    /// a real port never pays).
    discard_tx: AtomicBool,
    discarded: AtomicU64,
}

impl MemNic {
    pub fn new(plan: &Plan, queue_size: usize) -> Self {
        Self {
            rx: (0..plan.replicas)
                .map(|_| ArrayQueue::new(queue_size.max(1)))
                .collect(),
            tx: (0..plan.replicas).map(|_| Mutex::new(Vec::new())).collect(),
            tx_order: AtomicU64::new(0),
            steering: GroupSteering::new(plan.flow_groups, plan.replicas),
            rx_dropped: AtomicU64::new(0),
            held: AtomicBool::new(false),
            discard_tx: AtomicBool::new(false),
            discarded: AtomicU64::new(0),
        }
    }

    /// Counts and frees transmitted frames (true) or keeps them (false).
    pub fn discard_tx(&self, on: bool) {
        self.discard_tx.store(on, Ordering::Release);
    }

    /// Makes room for `frames` transmitted frames per queue, so keeping
    /// them costs the transmitting worker neither reallocation nor page
    /// faults (benchmarks: a real port's TX completion recycles a buffer
    /// cheaply; freeing here, on the worker, a frame another thread
    /// allocated costs glibc a cross-arena free: 650 -> 628 ns per packet
    /// in the pipeline bench, run to completion, when it stopped).
    pub fn reserve_tx(&self, frames: usize) {
        for q in &self.tx {
            q.lock().reserve(frames);
        }
    }

    /// Holds (true) or releases (false) received frames.
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Release);
    }

    /// The RX queue RSS picks: the replica of the frame's flow group (as
    /// steered); frames that are not TCP/IPv4 go to queue 0.
    pub fn rss_queue(&self, frame: &[u8]) -> usize {
        self.steering.place().queue_of(frame_rss_hash(frame))
    }

    /// Offers a frame to the NIC; false (and counted) if its queue is full.
    pub fn inject(&self, time: Nanos, frame: Vec<u8>) -> bool {
        let mut placing = self.steering.place();
        let q = placing.queue_of(frame_rss_hash(&frame));
        self.push(&mut placing, q, time, frame)
    }

    /// Offers a frame to RX queue `q` directly (the caller did RSS).
    pub fn inject_to(&self, q: usize, time: Nanos, frame: Vec<u8>) -> bool {
        self.push(&mut self.steering.place(), q, time, frame)
    }

    fn push(
        &self,
        placing: &mut super::steering::Placing<'_>,
        q: usize,
        time: Nanos,
        frame: Vec<u8>,
    ) -> bool {
        let ok = self.rx[q].push((time, frame.into())).is_ok();
        if ok {
            placing.queued(q, 1);
        } else {
            self.rx_dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Frames transmitted since the last [`MemNic::take_tx`], kept or
    /// discarded, without taking them.
    pub fn tx_count(&self) -> usize {
        self.tx.iter().map(|q| q.lock().len()).sum::<usize>()
            + self.discarded.load(Ordering::Acquire) as usize
    }

    /// Takes everything transmitted (and kept) so far, in the order the
    /// pipeline handed it over.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        self.discarded.store(0, Ordering::Release);
        let mut all = Vec::new();
        for q in &self.tx {
            all.append(&mut q.lock());
        }
        all.sort_by_key(|(order, _)| *order);
        all.into_iter().map(|(_, f)| f.into_vec()).collect()
    }
}

impl Nic for MemNic {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        if self.held.load(Ordering::Acquire) {
            return 0;
        }
        let mut n = 0;
        while n < max {
            match self.rx[q].pop() {
                Some(f) => out.push(f),
                None => break,
            }
            n += 1;
        }
        self.steering.took(q, n);
        n
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        if self.discard_tx.load(Ordering::Acquire) {
            self.discarded
                .fetch_add(frames.len() as u64, Ordering::AcqRel);
            frames.clear();
            return;
        }
        let first = self
            .tx_order
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        let mut queue = self.tx[q].lock();
        queue.extend((first..).zip(frames.drain(..)));
    }

    fn rx_pending(&self) -> usize {
        self.rx.iter().map(|q| q.len()).sum()
    }

    fn steer(&self, group: u32, to: usize) -> Option<Vec<u64>> {
        self.steering.steer_positions(group, to)
    }

    fn steer_passed(&self, q: usize, positions: &[u64]) -> bool {
        self.steering.passed_positions(q, positions)
    }
}
