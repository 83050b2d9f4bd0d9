//! An event ring as the DPU writes it: on a BlueField the Arm cores reach
//! the application's ring in host memory only by DMA. Each descriptor is
//! staged locally and copied into its entry; the head index that publishes
//! entries to the application is written, by DMA too, only once every
//! entry below it has completed. That is the PCIe ordering rule ("the
//! entry, then the index"), enforced here and nowhere else: copies may
//! complete in any order, the application never sees an index before its
//! entries.
//!
//! The application's tail index (how far it has read) is read directly:
//! on a DPU it arrives as a doorbell write into DPU memory.

use super::ring_index::{entry_offset, IndexStore, STAGE};
use super::{DmaEngine, DmaOp};
use doca_bindings::abi::{Desc, RingLayout};
use doca_bindings::{Region, RingError, RingProducer};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The DPU's producing end of one event ring, over a DMA engine.
pub struct EventRing {
    region: Arc<Region>,
    layout: RingLayout,
    engine: Box<dyn DmaEngine>,
    /// Local copies of entries in flight, entry `i` at `i % staged.len()`.
    staged: Box<[Desc]>,
    done: Box<[bool]>,
    /// Next entry to write.
    head: u32,
    /// Every entry below has completed.
    complete: u32,
    /// The head the application can see.
    index: IndexStore,
    tags: Vec<u64>,
}

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRing")
            .field("head", &self.head)
            .field("complete", &self.complete)
            .field("published", &self.index.published)
            .finish()
    }
}

impl EventRing {
    /// Checks the layout as [`RingProducer::new`] does and starts at index
    /// 0 (set when the region is created, before the application maps it).
    pub fn new(
        region: Arc<Region>,
        layout: RingLayout,
        engine: Box<dyn DmaEngine>,
    ) -> Result<Self, RingError> {
        drop(RingProducer::new(region.clone(), layout)?);
        let stage = layout.capacity.min(STAGE) as usize;
        Ok(Self {
            region,
            layout,
            engine,
            staged: vec![Desc::default(); stage].into_boxed_slice(),
            done: vec![true; stage].into_boxed_slice(),
            head: 0,
            complete: 0,
            index: IndexStore::default(),
            tags: Vec::with_capacity(stage + 1),
        })
    }

    /// Entries written and not yet read by the application (validates its
    /// tail index).
    fn used(&self) -> Result<u32, RingError> {
        let tail = self
            .region
            .atomic_u32(self.layout.tail)
            .map_or(0, |t| t.load(Ordering::Acquire));
        let used = self.head.wrapping_sub(tail);
        if used > self.layout.capacity {
            return Err(RingError::IndexOutOfRange {
                head: self.head,
                tail,
                capacity: self.layout.capacity,
            });
        }
        Ok(used)
    }

    /// Starts writing one descriptor; `Ok(false)` when the ring, the
    /// staging area or the engine is full (try again after [`poll`]).
    ///
    /// [`poll`]: EventRing::poll
    pub fn push(&mut self, d: &Desc) -> Result<bool, RingError> {
        if self.used()? >= self.layout.capacity {
            return Ok(false);
        }
        let stage = self.staged.len();
        if self.head.wrapping_sub(self.complete) as usize >= stage {
            self.poll();
            if self.head.wrapping_sub(self.complete) as usize >= stage {
                return Ok(false);
            }
        }
        let slot = self.head as usize % stage;
        self.staged[slot] = *d;
        self.done[slot] = false;
        let bytes = desc_bytes(&self.staged[slot]);
        let offset = entry_offset(&self.layout, self.head);
        // SAFETY: the staged copy lives in `self.staged`, which is never
        // reallocated, and its slot is written again only for entry
        // `head + stage`, which waits (above) until this entry completed.
        // The engine is dropped with the ring.
        let op = unsafe { DmaOp::to_region(self.region.clone(), offset, bytes, self.head as u64) };
        match self.engine.submit(op) {
            Ok(()) => {
                self.head = self.head.wrapping_add(1);
                Ok(true)
            }
            Err(_) => {
                self.done[slot] = true;
                Ok(false)
            }
        }
    }

    /// Collects completions and publishes the head once the entries below
    /// it completed. True when the application can see entries it could
    /// not before (ring its doorbell): at the store's completion (at its
    /// submit with an engine whose copies land then).
    pub fn poll(&mut self) -> bool {
        let mut published = false;
        if self.index.published != self.head {
            self.tags.clear();
            self.engine.poll(&mut self.tags);
            let stage = self.staged.len();
            for &tag in &self.tags {
                match self.index.complete(tag) {
                    Some(entry) => self.done[entry as usize % stage] = true,
                    None => published = !self.engine.lands_at_submit(),
                }
            }
            while self.complete != self.head && self.done[self.complete as usize % stage] {
                self.complete = self.complete.wrapping_add(1);
            }
        }
        // An engine whose copies land at submit stored it already.
        if self.index.store(
            &mut *self.engine,
            &self.region,
            self.layout.head,
            self.complete,
        ) {
            published |= self.engine.lands_at_submit();
        }
        published
    }

    /// The next entry to write (entries written so far).
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Entries written whose head the application cannot see yet.
    pub fn in_flight(&self) -> bool {
        self.index.published != self.head
    }

    /// Waits until every entry written is published.
    pub fn flush(&mut self) {
        while self.in_flight() {
            if !self.poll() {
                std::hint::spin_loop();
            }
        }
    }
}

/// A descriptor's bytes.
fn desc_bytes(d: &Desc) -> &[u8] {
    // SAFETY: `Desc` is `repr(C)` with integer fields only and no padding
    // (48 bytes, checked in `abi`), so all its bytes are initialised.
    unsafe { std::slice::from_raw_parts((d as *const Desc).cast::<u8>(), size_of::<Desc>()) }
}

/// A descriptor's bytes, to fill.
pub(super) fn desc_bytes_mut(d: &mut Desc) -> &mut [u8] {
    // SAFETY: as `desc_bytes`, and every bit pattern is a valid `Desc`.
    unsafe { std::slice::from_raw_parts_mut((d as *mut Desc).cast::<u8>(), size_of::<Desc>()) }
}
