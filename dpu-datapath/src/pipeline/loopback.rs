//! Connections to the engine's own address, like Linux's loopback: frames
//! the egress stage sends to our own MAC go back to ingress (on the queue
//! RSS would pick) instead of the wire. Wraps any [`Nic`]; with
//! [`NullNic`] underneath, the service has no network port at all and only
//! its applications talk to each other (development, tests, no root).

use super::steering::GroupSteering;
use crate::flow::frame_rss_hash;
use crate::io::{Frame, FrameSource, IoStats, Nic};
use crate::proto::Nanos;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Frames the loopback path holds per queue before it drops (and counts).
const LOOPBACK_QUEUE: usize = 8192;

/// A [`Nic`] that loops frames addressed to `mac` back to its RX queues.
#[derive(Debug)]
pub struct LoopbackNic<N> {
    inner: N,
    mac: [u8; 6],
    queues: Vec<ArrayQueue<Frame>>,
    /// The worker that polls each RX queue, unparked when frames are looped
    /// to it (idle workers park between polls).
    pollers: Vec<std::sync::OnceLock<std::thread::Thread>>,
    /// The queue RSS would pick for each flow group (groups move between
    /// replicas: [`Nic::steer`]).
    steering: GroupSteering,
    /// `flextoe-dpu capture` sees every frame here.
    tap: std::sync::Arc<crate::capture::CaptureTap>,
    /// Frames looped back, and dropped because a loopback queue was full.
    pub looped: AtomicU64,
    pub dropped: AtomicU64,
}

impl<N: Nic> LoopbackNic<N> {
    pub fn new(inner: N, mac: [u8; 6], replicas: usize, flow_groups: u32) -> Self {
        Self {
            inner,
            mac,
            queues: (0..replicas.max(1))
                .map(|_| ArrayQueue::new(LOOPBACK_QUEUE))
                .collect(),
            pollers: (0..replicas.max(1))
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            steering: GroupSteering::new(flow_groups, replicas.max(1)),
            tap: Default::default(),
            looped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// The capture tap on this NIC (every frame in from the wire, every
    /// frame out, looped ones included).
    pub fn capture_tap(&self) -> std::sync::Arc<crate::capture::CaptureTap> {
        self.tap.clone()
    }
}

impl<N: Nic> Nic for LoopbackNic<N> {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        let mut n = 0;
        if let Some(p) = self.pollers.get(q) {
            p.get_or_init(std::thread::current);
        }
        if let Some(queue) = self.queues.get(q) {
            while n < max {
                match queue.pop() {
                    Some(f) => out.push((0, f)),
                    None => break,
                }
                n += 1;
            }
            self.steering.took(q, n);
        }
        let before = out.len();
        let wire = self.inner.rx_burst(q, max - n, out);
        if wire > 0 {
            self.tap.record(out[before..].iter().map(|(_, f)| &f[..]));
        }
        n + wire
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        // Segments the port is to cut (TSO) go whole to our own address,
        // which takes them as Linux's loopback takes 64 KiB ones; a capture
        // shows the others cut, as the wire will carry them.
        let capturing = self.tap.is_active();
        if capturing {
            crate::io::gso::expand_where(frames, |f| f.get(..6) != Some(&self.mac[..]));
        }
        if capturing {
            // The capture shows the checksums the port will write.
            frames.iter_mut().for_each(Frame::finish_tx_checksums);
            self.tap.record(frames.iter().map(|f| &f[..]));
        }
        // Counted and woken once per burst, not per frame (the counters are
        // shared by every egress worker).
        let (mut looped, mut dropped, mut woken) = (0u64, 0u64, 0u64);
        let mut placing = self.steering.place();
        frames.retain_mut(|f| {
            if f.get(..6) != Some(&self.mac[..]) {
                return true;
            }
            let target = placing.queue_of(frame_rss_hash(f));
            // A reply built in a received buffer still carries what the NIC
            // said about the frame it was.
            f.forget_nic_rx_offloads();
            // No port computes the checksums of a frame that never leaves.
            f.finish_tx_checksums();
            match self.queues[target].push(std::mem::take(f)) {
                Ok(()) => {
                    looped += 1;
                    placing.queued(target, 1);
                }
                Err(_) => dropped += 1,
            }
            woken |= 1 << (target % 64);
            false
        });
        drop(placing);
        if looped > 0 {
            self.looped.fetch_add(looped, Ordering::Relaxed);
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        // Wake the workers that poll those queues, unless it is us (with
        // the pipeline, egress and ingress run on different workers).
        let me = std::thread::current().id();
        for (target, poller) in self.pollers.iter().enumerate() {
            if woken & (1 << (target % 64)) == 0 {
                continue;
            }
            if let Some(t) = poller.get().filter(|t| t.id() != me) {
                t.unpark();
            }
        }
        if !frames.is_empty() {
            self.inner.tx_burst(q, frames);
        }
    }

    fn rx_pending(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum::<usize>() + self.inner.rx_pending()
    }

    fn frame_source(&self) -> FrameSource {
        self.inner.frame_source()
    }

    fn stats(&self) -> IoStats {
        self.inner.stats()
    }

    fn attach_thread(&self) {
        self.inner.attach_thread()
    }

    fn detach_thread(&self) {
        self.inner.detach_thread()
    }

    /// The wire's steering and ours move together; our position last.
    fn steer(&self, group: u32, to: usize) -> Option<Vec<u64>> {
        // Checked first: the wire's steering must not move alone.
        if !self.steering.can_steer(group, to) {
            return None;
        }
        let mut positions = self.inner.steer(group, to)?;
        let (_, at) = self.steering.steer(group, to)?;
        positions.push(at);
        Some(positions)
    }

    fn steer_passed(&self, q: usize, positions: &[u64]) -> bool {
        match positions.split_last() {
            Some((&at, inner)) => self.steering.passed(q, at) && self.inner.steer_passed(q, inner),
            None => true,
        }
    }
}

/// A port with no wire: receives nothing, discards what is sent.
#[derive(Debug, Default)]
pub struct NullNic {
    pub discarded: AtomicU64,
}

impl Nic for NullNic {
    fn rx_burst(&self, _q: usize, _max: usize, _out: &mut Vec<(Nanos, Frame)>) -> usize {
        0
    }

    fn tx_burst(&self, _q: usize, frames: &mut Vec<Frame>) {
        self.discarded
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        frames.clear();
    }

    fn rx_pending(&self) -> usize {
        0
    }

    /// Nothing is ever on its way: a group moves at once.
    fn steer(&self, _group: u32, _to: usize) -> Option<Vec<u64>> {
        Some(Vec::new())
    }
}
