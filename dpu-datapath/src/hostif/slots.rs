//! Connection buffer slots in a host application's region. The DPU owns the
//! allocation (the application only learns a slot number), so an
//! application can never make two connections share bytes. A slot returns
//! to the pool when the last reference to its buffers is gone (the engine's
//! connection and any DMA work in flight), and its pages are given back
//! (punched out, so they read as zero for the next connection).

use crate::app::{BufferSource, ConnBuffers};
use crate::dma::HostBuffer;
use doca_bindings::abi::Layout;
use doca_bindings::Region;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug)]
struct Pool {
    region: Arc<Region>,
    layout: Layout,
    free: Mutex<Vec<u32>>,
    in_use: AtomicU32,
}

/// The slots of one application's region.
#[derive(Clone, Debug)]
pub struct SlotPool(Arc<Pool>);

/// One allocated slot; dropping the last reference frees it.
#[derive(Debug)]
struct SlotLease {
    pool: Arc<Pool>,
    slot: u32,
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        let p = &self.pool;
        let off = p.layout.rx_buf_offset(self.slot);
        if let Err(e) = p.region.punch_hole(off, p.layout.slot_stride()) {
            static LIMIT: crate::stats::LogLimit = crate::stats::LogLimit::new(1);
            if let Some(suppressed) = LIMIT.allow() {
                tracing::warn!(error = %e, slot = self.slot, suppressed, "hostif: cannot release slot pages");
            }
        }
        p.free.lock().push(self.slot);
        p.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SlotPool {
    pub fn new(region: Arc<Region>, layout: Layout) -> Self {
        // Lowest slots first (popped from the end).
        let free = (0..layout.slots).rev().collect();
        Self(Arc::new(Pool {
            region,
            layout,
            free: Mutex::new(free),
            in_use: AtomicU32::new(0),
        }))
    }

    /// Slots held by connections (or DMA in flight).
    pub fn in_use(&self) -> u32 {
        self.0.in_use.load(Ordering::Relaxed)
    }
}

impl BufferSource for SlotPool {
    fn alloc(&self) -> Option<ConnBuffers> {
        let slot = self.0.free.lock().pop()?;
        self.0.in_use.fetch_add(1, Ordering::Relaxed);
        let l = &self.0.layout;
        let lease: Arc<dyn std::any::Any + Send + Sync> = Arc::new(SlotLease {
            pool: self.0.clone(),
            slot,
        });
        let base = self.0.region.as_ptr();
        // SAFETY: the layout was validated when the region was created with
        // exactly `layout.region_size()` bytes, so both buffers lie inside
        // the mapping, which `lease` keeps alive (it holds the region). The
        // slot is exclusively this connection's until the lease drops.
        let (rx, tx) = unsafe {
            (
                HostBuffer::external(
                    base.add(l.rx_buf_offset(slot)),
                    l.rx_buf_size as usize,
                    lease.clone(),
                ),
                HostBuffer::external(
                    base.add(l.tx_buf_offset(slot)),
                    l.tx_buf_size as usize,
                    lease,
                ),
            )
        };
        let region = &self.0.region;
        let rx = rx.with_home(region.clone(), l.rx_buf_offset(slot));
        let tx = tx.with_home(region.clone(), l.tx_buf_offset(slot));
        Some(ConnBuffers {
            rx: Arc::new(rx),
            tx: Arc::new(tx),
            tag: slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_return_when_buffers_drop() {
        let layout = Layout {
            contexts: 1,
            ring_entries: 8,
            slots: 2,
            rx_buf_size: 4096,
            tx_buf_size: 4096,
        };
        let region = Arc::new(Region::create("slots-test", layout.region_size()).unwrap());
        let pool = SlotPool::new(region.clone(), layout);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert_ne!(a.tag, b.tag);
        assert!(pool.alloc().is_none(), "only two slots");
        crate::dma::place_rx(&a.rx, 10, b"hello");
        let mut out = [0u8; 5];
        region
            .read(layout.rx_buf_offset(a.tag) + 10, &mut out)
            .unwrap();
        assert_eq!(&out, b"hello", "the buffer is the region's memory");
        let tag = a.tag;
        let rx_clone = a.rx.clone();
        drop(a);
        assert_eq!(pool.in_use(), 2, "a DMA reference keeps the slot");
        drop(rx_clone);
        assert_eq!(pool.in_use(), 1);
        region
            .read(layout.rx_buf_offset(tag) + 10, &mut out)
            .unwrap();
        assert_eq!(out, [0; 5], "freed pages read as zero");
        assert_eq!(pool.alloc().unwrap().tag, tag);
    }
}
