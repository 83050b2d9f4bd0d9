//! An in-memory NIC for tests and benchmarks: per-replica RX queues filled
//! by the test (RSS by flow group, like the hardware), TX queues collected.
//! A full RX queue drops and counts, as a NIC does.

use super::topology::Plan;
use crate::flow::{flow_group, FourTuple};
use crate::proto::Nanos;
use crate::wire::{parse_ingress, ChecksumCaps, L3, L4};
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Frames in and out of the pipeline, one queue pair per replica.
#[derive(Debug)]
pub struct MemNic {
    rx: Vec<ArrayQueue<(Nanos, Vec<u8>)>>,
    tx: Vec<Mutex<Vec<Vec<u8>>>>,
    flow_groups: u32,
    replicas: usize,
    pub rx_dropped: AtomicU64,
}

impl MemNic {
    pub fn new(plan: &Plan, queue_size: usize) -> Self {
        Self {
            rx: (0..plan.replicas)
                .map(|_| ArrayQueue::new(queue_size.max(1)))
                .collect(),
            tx: (0..plan.replicas).map(|_| Mutex::new(Vec::new())).collect(),
            flow_groups: plan.flow_groups,
            replicas: plan.replicas,
            rx_dropped: AtomicU64::new(0),
        }
    }

    /// The RX queue RSS picks: the replica of the frame's flow group; frames
    /// that are not TCP/IPv4 go to queue 0.
    pub fn rss_queue(&self, frame: &[u8]) -> usize {
        let caps = ChecksumCaps {
            verify_rx: false,
            fill_tx: false,
        };
        match parse_ingress(frame, &caps) {
            Ok(p) => match p.l3 {
                L3::Ipv4 { ip, l4: L4::Tcp(t) } => {
                    let tuple = FourTuple {
                        local_ip: ip.dst,
                        local_port: t.dst_port,
                        remote_ip: ip.src,
                        remote_port: t.src_port,
                    };
                    flow_group(&tuple, self.flow_groups) as usize % self.replicas
                }
                _ => 0,
            },
            Err(_) => 0,
        }
    }

    /// Offers a frame to the NIC; false (and counted) if its queue is full.
    pub fn inject(&self, time: Nanos, frame: Vec<u8>) -> bool {
        let q = self.rss_queue(&frame);
        match self.rx[q].push((time, frame)) {
            Ok(()) => true,
            Err(_) => {
                self.rx_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queue `q`'s next received frame.
    pub fn rx_pop(&self, q: usize) -> Option<(Nanos, Vec<u8>)> {
        self.rx[q].pop()
    }

    pub fn rx_pending(&self) -> usize {
        self.rx.iter().map(|q| q.len()).sum()
    }

    /// Transmits frames on queue `q`.
    pub fn tx(&self, q: usize, frames: &mut Vec<Vec<u8>>) {
        self.tx[q].lock().append(frames);
    }

    /// Takes everything transmitted so far, queue by queue.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for q in &self.tx {
            all.append(&mut q.lock());
        }
        all
    }
}
