//! What both ring ends over DMA share: the staging bound, entry offsets,
//! and the index this side owns, stored into host memory by DMA (one
//! store in flight at a time; its value is visible once it completed).

#![forbid(unsafe_code)]

use super::{DmaEngine, DmaOp};
use doca_bindings::abi::{Desc, RingLayout};
use doca_bindings::Region;
use std::sync::Arc;

/// Entries staged (copies in flight or not yet handed out) per ring at most.
pub(super) const STAGE: u32 = 128;
/// Tags of index stores carry this bit; entry tags are the entry index.
const INDEX_TAG: u64 = 1 << 32;

/// Where entry `idx` lies in the region.
pub(super) fn entry_offset(layout: &RingLayout, idx: u32) -> usize {
    layout.entries + (idx & (layout.capacity - 1)) as usize * std::mem::size_of::<Desc>()
}

/// The index a ring end owns, as the application sees it.
#[derive(Debug, Default)]
pub(super) struct IndexStore {
    /// The value whose store completed.
    pub(super) published: u32,
    /// A store in flight.
    publishing: Option<u32>,
}

impl IndexStore {
    /// Takes a completion tag: the entry index it names, or None when it
    /// was this index's store (now published).
    pub(super) fn complete(&mut self, tag: u64) -> Option<u32> {
        if tag & INDEX_TAG != 0 {
            self.published = tag as u32;
            self.publishing = None;
            None
        } else {
            Some(tag as u32)
        }
    }

    pub(super) fn in_flight(&self) -> bool {
        self.publishing.is_some()
    }

    /// Stores `value` at `offset` of `region` unless a store is in flight
    /// or it is published already; true when one was submitted.
    pub(super) fn store(
        &mut self,
        engine: &mut dyn DmaEngine,
        region: &Arc<Region>,
        offset: usize,
        value: u32,
    ) -> bool {
        if self.publishing.is_some() || value == self.published {
            return false;
        }
        let op = DmaOp::store_index(region.clone(), offset, value, INDEX_TAG | u64::from(value));
        let submitted = engine.submit(op).is_ok();
        if submitted {
            self.publishing = Some(value);
        }
        submitted
    }
}
