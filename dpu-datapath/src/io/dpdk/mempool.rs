//! The packet-buffer pool (`rte_pktmbuf_pool_create`).

use core::ptr::NonNull;
use std::ffi::CString;

use dpdk_sys::rte_mempool;

use super::error::{DpdkError, EINVAL};
use super::mbuf::Mbuf;

/// Per-lcore cache of free mbufs; DPDK requires `cache <= n / 1.5`.
const CACHE_SIZE: u32 = 256;

/// An mbuf pool. Every [`Mbuf`] borrows the pool it came from, so the pool cannot be
/// freed while one is alive; the owner must also stop the ports whose rings hold its
/// mbufs before dropping it (`DpdkPort` does).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<rte_mempool>,
    name: String,
    data_room: u16,
    size: u32,
}

// SAFETY: a pktmbuf pool's operations (alloc, free, counters) are safe from any
// thread: its ring is multi-producer/multi-consumer, and threads that are not EAL
// lcores bypass the per-lcore caches. `name` and `data_room` are immutable.
unsafe impl Send for Mempool {}
// SAFETY: as above; `&Mempool` only allows those operations.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `mbufs` packet buffers, each with `data_room` bytes (headroom
    /// included, as DPDK counts it), on NUMA `socket` (`SOCKET_ID_ANY` = -1 for any).
    /// `name` must be unique in the process and shorter than `RTE_MEMPOOL_NAMESIZE`.
    pub fn create(name: &str, mbufs: u32, data_room: u16, socket: i32) -> Result<Self, DpdkError> {
        let op = || format!("rte_pktmbuf_pool_create({name:?}, {mbufs} mbufs)");
        let c_name = CString::new(name)
            .map_err(|_| DpdkError::invalid(op(), EINVAL, "NUL byte in the pool name"))?;
        // At most an eighth of the pool per lcore: larger caches let a
        // small pool sit in threads that do not refill the RX ring while
        // the ring starves (DPDK itself requires `cache <= n / 1.5`).
        let cache = CACHE_SIZE.min(mbufs / 8);
        // SAFETY: c_name is a valid NUL-terminated string that DPDK copies; the numbers
        // are plain values it validates. Needs EAL, which the callers' `Eal` token proves.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), mbufs, cache, 0, data_room, socket)
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno(op()))?;
        Ok(Mempool {
            raw,
            name: name.to_owned(),
            data_room,
            size: mbufs,
        })
    }

    /// One mbuf, reset and empty; `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf<'_>> {
        // SAFETY: self.raw is a live pktmbuf pool (created above, freed only in Drop).
        let raw = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf of this pool that nobody else owns;
        // the returned Mbuf borrows `self`, so it cannot outlive the pool.
        unsafe { Mbuf::from_raw(raw) }
    }

    /// Mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Free mbufs (approximate while other threads use the pool).
    pub fn available(&self) -> u32 {
        // SAFETY: self.raw is a live pool; the call only reads counters.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs handed out (to rings, in flight or held by the application).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes per mbuf data buffer, headroom included.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is live and, by the borrow on Mbuf and the port's drop order,
        // no mbuf of it is still referenced.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}
