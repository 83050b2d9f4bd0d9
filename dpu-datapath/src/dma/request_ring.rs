//! A request ring as the DPU reads it: the application writes descriptors
//! into its ring in host memory and publishes them with its head index;
//! the DPU fetches the entries by DMA, hands them out once the reads
//! completed, and writes its tail index back (by DMA too) only over
//! entries already read, so the application never reuses an entry a read
//! is still fetching.
//!
//! The application's head index is read directly: on a DPU it arrives as a
//! doorbell write into DPU memory.

use super::event_ring::desc_bytes_mut;
use super::ring_index::{entry_offset, IndexStore, STAGE};
use super::{DmaEngine, DmaOp};
use doca_bindings::abi::{Desc, RingLayout};
use doca_bindings::{Region, RingConsumer, RingError};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The DPU's consuming end of one request ring, over a DMA engine.
pub struct RequestRing {
    region: Arc<Region>,
    layout: RingLayout,
    engine: Box<dyn DmaEngine>,
    /// Where entries are read to, entry `i` at `i % staged.len()`.
    staged: Box<[Desc]>,
    done: Box<[bool]>,
    /// Next entry to hand out.
    tail: u32,
    /// Reads submitted for every entry below.
    fetching: u32,
    /// Reads completed for every entry below.
    fetched: u32,
    /// The tail the application can see.
    index: IndexStore,
    tags: Vec<u64>,
}

impl std::fmt::Debug for RequestRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestRing")
            .field("tail", &self.tail)
            .field("fetching", &self.fetching)
            .field("fetched", &self.fetched)
            .field("published", &self.index.published)
            .finish()
    }
}

impl RequestRing {
    /// Checks the layout as [`RingConsumer::new`] does and starts at index
    /// 0 (set when the region is created, before the application maps it).
    pub fn new(
        region: Arc<Region>,
        layout: RingLayout,
        engine: Box<dyn DmaEngine>,
    ) -> Result<Self, RingError> {
        drop(RingConsumer::new(region.clone(), layout)?);
        let stage = layout.capacity.min(STAGE) as usize;
        Ok(Self {
            region,
            layout,
            engine,
            staged: vec![Desc::default(); stage].into_boxed_slice(),
            done: vec![false; stage].into_boxed_slice(),
            tail: 0,
            fetching: 0,
            fetched: 0,
            index: IndexStore::default(),
            tags: Vec::with_capacity(stage + 1),
        })
    }

    /// The application's head, validated against our tail.
    fn head(&self) -> Result<u32, RingError> {
        let head = self
            .region
            .atomic_u32(self.layout.head)
            .map_or(0, |h| h.load(Ordering::Acquire));
        if head.wrapping_sub(self.tail) > self.layout.capacity {
            return Err(RingError::IndexOutOfRange {
                head,
                tail: self.tail,
                capacity: self.layout.capacity,
            });
        }
        Ok(head)
    }

    /// Requests published and not handed out yet (validates the head).
    pub fn pending(&mut self) -> Result<u32, RingError> {
        Ok(self.head()?.wrapping_sub(self.tail))
    }

    /// Appends up to `max` requests whose reads completed to `out`, and
    /// starts reading the next ones; returns how many were appended (0
    /// while the first reads are in flight: call again).
    pub fn pop_many(&mut self, out: &mut Vec<Desc>, max: usize) -> Result<usize, RingError> {
        let head = self.head()?;
        self.collect();
        let stage = self.staged.len() as u32;
        while self.fetching != head && self.fetching.wrapping_sub(self.tail) < stage {
            let slot = (self.fetching % stage) as usize;
            self.done[slot] = false;
            let offset = entry_offset(&self.layout, self.fetching);
            let bytes = desc_bytes_mut(&mut self.staged[slot]);
            // SAFETY: the slot lives in `self.staged`, never reallocated;
            // it is read out (below) only after this read completed, and
            // reused only for entry `fetching + stage`, which waits until
            // this one was handed out. The engine is dropped with the ring.
            let op = unsafe {
                DmaOp::from_region(self.region.clone(), offset, bytes, self.fetching as u64)
            };
            if self.engine.submit(op).is_err() {
                self.done[slot] = true;
                break;
            }
            self.fetching = self.fetching.wrapping_add(1);
        }
        // Reads an immediate engine already made complete at this poll.
        self.collect();
        let n = (self.fetched.wrapping_sub(self.tail) as usize).min(max);
        out.reserve(n);
        for _ in 0..n {
            out.push(self.staged[(self.tail % stage) as usize]);
            self.tail = self.tail.wrapping_add(1);
        }
        self.publish();
        Ok(n)
    }

    /// Collects completions: reads done, the tail store done.
    fn collect(&mut self) {
        if self.fetched == self.fetching && !self.index.in_flight() {
            return;
        }
        self.tags.clear();
        self.engine.poll(&mut self.tags);
        let stage = self.staged.len();
        for &tag in &self.tags {
            if let Some(entry) = self.index.complete(tag) {
                self.done[entry as usize % stage] = true;
            }
        }
        while self.fetched != self.fetching && self.done[self.fetched as usize % stage] {
            self.fetched = self.fetched.wrapping_add(1);
        }
    }

    /// Writes the tail back over the entries handed out (their reads
    /// completed).
    fn publish(&mut self) {
        self.index
            .store(&mut *self.engine, &self.region, self.layout.tail, self.tail);
    }

    /// Reads or a tail store in flight.
    pub fn in_flight(&self) -> bool {
        self.fetching != self.fetched || self.tail != self.index.published
    }

    /// Progress without taking requests: completions, the tail store.
    pub fn poll(&mut self) {
        self.collect();
        self.publish();
    }

    /// Appends every request published so far to `out`, waiting for their
    /// reads (an application that exited: what it posted still counts).
    pub fn pop_all(&mut self, out: &mut Vec<Desc>) -> Result<usize, RingError> {
        let mut n = 0;
        while self.pending()? > 0 {
            n += self.pop_many(out, usize::MAX)?;
        }
        Ok(n)
    }
}
