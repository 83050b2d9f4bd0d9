//! The stage tasks, one file each, in packet order.

#![forbid(unsafe_code)]

pub mod dma;
pub mod egress;
pub mod fused;
pub mod fused_moves;
pub mod ingress;
pub mod ingress_reorder;
pub mod owner;
pub mod pipelined;
pub mod post;
pub mod pre;
pub mod rtc;
pub mod split;

use crate::engine::work::{RxWork, TxWork};
use crate::io::{Frame, FrameSource};
use crate::post::{post_rx, post_tx, post_tx_in_place};
use crate::wire::ChecksumCaps;
use std::collections::VecDeque;

use super::ring::Producer;

/// Round-robin dispatch over several output rings: tries each ring once per
/// item; returns the item if all are full (back-pressure).
pub(crate) fn dispatch<T: Send>(
    outs: &mut [Producer<T>],
    next: &mut usize,
    item: T,
) -> Result<(), T> {
    let mut item = item;
    for _ in 0..outs.len() {
        let i = *next % outs.len();
        *next = next.wrapping_add(1);
        match outs[i].push(item) {
            Ok(()) => return Ok(()),
            Err(back) => item = back,
        }
    }
    Err(item)
}

/// Flushes `pending` round-robin into `outs`; returns true when all went.
pub(crate) fn flush<T: Send>(
    outs: &mut [Producer<T>],
    next: &mut usize,
    pending: &mut VecDeque<T>,
) -> bool {
    while let Some(item) = pending.pop_front() {
        if let Err(back) = dispatch(outs, next, item) {
            pending.push_front(back);
            return false;
        }
    }
    true
}

/// Test-only stress knob: a random busy-wait of up to `max_ns` per item in
/// the data-parallel stages, to shake out ordering bugs.
#[derive(Debug)]
pub(crate) struct StageDelay {
    max_ns: u64,
    state: u64,
}

impl StageDelay {
    pub(crate) fn new(max_ns: u64, seed: u64) -> Self {
        Self {
            max_ns,
            state: seed | 1,
        }
    }

    pub(crate) fn apply(&mut self) {
        if self.max_ns == 0 {
            return;
        }
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let ns = r % self.max_ns;
        let start = std::time::Instant::now();
        while (start.elapsed().as_nanos() as u64) < ns {
            std::hint::spin_loop();
        }
        if r.is_multiple_of(7) {
            std::thread::yield_now();
        }
    }
}

/// Spare frame buffers shared by a replica's `post` (frames that leave no
/// ACK) and `dma` (buffers for TX segments) workers, bounded: beyond the
/// capacity buffers are freed, below it `take` allocates from the port's
/// [`FrameSource`] (its mbuf pool on DPDK, so TX segments are built where
/// the NIC sends them from).
#[derive(Debug)]
pub(crate) struct SpareFrames {
    spare: crossbeam_queue::ArrayQueue<Frame>,
    /// Buffers of segments longer than 32 KiB (TSO, or 64 KiB segments on
    /// the loopback), kept apart and few: they are 64 KiB each.
    large: crossbeam_queue::ArrayQueue<Frame>,
    source: FrameSource,
}

/// Large spare buffers kept per replica.
const SPARE_LARGE: usize = 16;

/// Spare NIC buffers kept at most per replica, and at most an eighth of
/// the pool: idle mbufs here are mbufs the port's RX ring cannot refill
/// with (with a small pool, a larger spare queue held every free mbuf and
/// the RX ring starved for good: `tests/linux_interop.rs`, pool
/// exhaustion).
#[cfg(feature = "dpdk")]
const SPARE_NIC_BUFFERS: usize = 256;

impl SpareFrames {
    pub(crate) fn new(capacity: usize, source: FrameSource) -> Self {
        let capacity = match source {
            FrameSource::Heap => capacity,
            #[cfg(feature = "dpdk")]
            FrameSource::Mbufs { pool, .. } => capacity
                .min(SPARE_NIC_BUFFERS)
                .min(pool.size() as usize / 8),
        };
        Self {
            spare: crossbeam_queue::ArrayQueue::new(capacity.max(1)),
            large: crossbeam_queue::ArrayQueue::new(SPARE_LARGE),
            source,
        }
    }

    /// An empty buffer: a spare one, or a new one.
    pub(crate) fn take(&self) -> Frame {
        self.spare.pop().unwrap_or_else(|| self.source.alloc())
    }

    /// An empty buffer for a segment longer than the MSS (TSO).
    pub(crate) fn take_large(&self) -> Frame {
        self.large
            .pop()
            .unwrap_or_else(|| self.source.alloc_large())
    }

    /// `post` for a received segment: its frame becomes the ACK, or, when
    /// no ACK is due, goes back to the spare queue (None).
    pub(crate) fn post_rx(
        &self,
        work: &RxWork,
        mut frame: Frame,
        caps: &ChecksumCaps,
    ) -> Option<Frame> {
        post_rx(work, &mut frame, caps);
        if frame.is_empty() {
            self.give(frame);
            return None;
        }
        Some(frame)
    }

    /// `post` for a transmitted segment `dma` put in `frame` after `room`
    /// bytes: headers written in place, or (a shape the in-place writer
    /// does not take) the generic emitter into a fresh frame from the
    /// payload, the old frame going back to the spare queue.
    pub(crate) fn post_tx(
        &self,
        work: &TxWork,
        frame: &mut Frame,
        room: usize,
        caps: &ChecksumCaps,
    ) {
        if room == 0 || !post_tx_in_place(work, frame, caps) {
            let mut out = self.take();
            post_tx(work, &frame[room.min(frame.len())..], &mut out, caps);
            self.give(std::mem::replace(frame, out));
        }
    }

    /// Keeps `frame` for reuse (freed when the pool is full, or when it is
    /// a heap frame and the port has its own buffers).
    pub(crate) fn give(&self, mut frame: Frame) {
        if !frame.is_nic_buffer() && !matches!(self.source, FrameSource::Heap) {
            return;
        }
        frame.clear();
        let _ = if frame.is_large() {
            self.large.push(frame)
        } else {
            self.spare.push(frame)
        };
    }
}
