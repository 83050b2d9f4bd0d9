//! Software RSS for ports whose RX queue is not our flow-group hash.
//!
//! The pipeline requires every frame of flow group `g` on queue
//! `g % replicas`. A `net_tap` port's queues are the kernel's choice (the
//! TAP's own flow hash), and a port without RSS only fills queue 0. With
//! more than one replica, [`SteeredNic`] drains every hardware queue and
//! redistributes the frames by flow group into per-replica software queues
//! (`pipeline::rss_queue`); TX goes straight to the port.

use dpu_datapath::io::PacketIo;
use dpu_datapath::pipeline::{rss_queue, Nic, PortNic};
use dpu_datapath::proto::Nanos;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;

/// Frames one replica's software queue holds; beyond that they are dropped
/// and counted, as a NIC ring would.
const QUEUE_FRAMES: usize = 4096;
/// Frames taken from one hardware queue per pull.
const PULL_BURST: usize = 64;

pub struct SteeredNic<P: PacketIo + Send> {
    port: Arc<PortNic<P>>,
    hw_queues: usize,
    flow_groups: u32,
    queues: Vec<ArrayQueue<Vec<u8>>>,
    /// Held by whichever replica pulls from the hardware queues.
    pull: Mutex<Vec<(Nanos, Vec<u8>)>>,
    pub dropped: AtomicU64,
}

impl<P: PacketIo + Send> SteeredNic<P> {
    pub fn new(port: Arc<PortNic<P>>, hw_queues: usize, replicas: usize, flow_groups: u32) -> Self {
        Self {
            port,
            hw_queues: hw_queues.max(1),
            flow_groups,
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
            for (_, frame) in scratch.drain(..) {
                let q = rss_queue(&frame, self.flow_groups, self.queues.len());
                if self.queues[q].push(frame).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<P: PacketIo + Send> Nic for SteeredNic<P> {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Vec<u8>)>) -> usize {
        self.pull();
        let mut n = 0;
        while n < max {
            match self.queues[q].pop() {
                Some(frame) => out.push((0, frame)),
                None => break,
            }
            n += 1;
        }
        n
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Vec<u8>>) {
        self.port.tx_burst(q % self.hw_queues, frames);
    }

    fn rx_pending(&self) -> usize {
        self.queues.iter().map(ArrayQueue::len).sum()
    }
}
