//! The ring a program's `flextoe_capture` writes frames to, and that
//! `flextoe-dpu bpf capture` reads as pcap: a capture whose filter and
//! sampling are the program's own (`xdp/examples/capture.c`). Nothing is
//! copied while no reader is attached.

#![forbid(unsafe_code)]

use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Frames the ring holds before a program's capture fails (and counts).
pub const RING: usize = 16384;

#[derive(Debug)]
pub struct CaptureRing {
    frames: ArrayQueue<(u64, Vec<u8>)>,
    reading: AtomicBool,
    /// Frames programs captured while a reader was attached.
    pub captured: AtomicU64,
    /// Frames lost to a full ring (the reader too slow).
    pub dropped: AtomicU64,
}

impl Default for CaptureRing {
    fn default() -> Self {
        CaptureRing {
            frames: ArrayQueue::new(RING),
            reading: AtomicBool::new(false),
            captured: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl CaptureRing {
    /// Attaches the one reader; false if another is attached.
    pub fn start(&self) -> bool {
        if self.reading.swap(true, Ordering::AcqRel) {
            return false;
        }
        while self.frames.pop().is_some() {}
        self.dropped.store(0, Ordering::Relaxed);
        true
    }

    pub fn stop(&self) {
        self.reading.store(false, Ordering::Release);
        while self.frames.pop().is_some() {}
    }

    /// A program's capture of `frame`: false when nobody reads or the ring
    /// is full.
    pub fn push(&self, frame: &[u8]) -> bool {
        if !self.reading.load(Ordering::Relaxed) {
            return false;
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        if self.frames.push((ts, frame.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.captured.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The oldest captured frame, for the reader.
    pub fn pop(&self) -> Option<(u64, Vec<u8>)> {
        self.frames.pop()
    }
}
