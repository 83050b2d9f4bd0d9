//! A circular payload buffer in application ("host") memory.
//!
//! On a BlueField this memory is on the host and the DPU reaches it with PCIe
//! DMA; here it is ordinary memory that `dma` workers write and read while
//! the application reads and writes other parts of it. The byte ranges never
//! overlap in time: `proto` hands the `dma` stage disjoint ranges (payload
//! between RCV.NXT and the advertised window edge, or unacknowledged TX data),
//! and the application only touches ranges published to it after the DMA
//! completed (commit after the egress reorder). That invariant is what makes
//! the unsafe accessors below sound; this module is one of the few places
//! where `unsafe` is allowed.

use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::Arc;

/// Power-of-two circular buffer shared between the DMA stage and the app.
pub struct HostBuffer {
    base: *mut u8,
    len: usize,
    /// Keeps the memory alive: our own allocation, or the application's
    /// region (see [`HostBuffer::external`]).
    _storage: Storage,
    /// The application region the buffer lies in, and its offset there:
    /// how engines that address regions (DOCA DMA jobs) reach it.
    home: Option<(Arc<doca_bindings::Region>, usize)>,
}

enum Storage {
    Owned(#[allow(dead_code)] Box<[UnsafeCell<u8>]>),
    External(#[allow(dead_code)] Arc<dyn Any + Send + Sync>),
}

// SAFETY: concurrent access is to disjoint ranges only (see module docs);
// every access goes through the `unsafe` methods whose callers uphold that.
unsafe impl Sync for HostBuffer {}
// SAFETY: the pointer is to memory owned by `_storage`, which is Send.
unsafe impl Send for HostBuffer {}

impl std::fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffer")
            .field("len", &self.len())
            .finish()
    }
}

impl HostBuffer {
    /// A zeroed buffer of `len` bytes (a power of two).
    pub fn new(len: usize) -> Self {
        debug_assert!(len.is_power_of_two());
        let bytes: Box<[UnsafeCell<u8>]> = (0..len).map(|_| UnsafeCell::new(0)).collect();
        // UnsafeCell<u8> has the layout of u8, so the slice is a byte array.
        let base = UnsafeCell::raw_get(bytes.as_ptr());
        Self {
            base,
            len,
            _storage: Storage::Owned(bytes),
            home: None,
        }
    }

    /// A buffer in memory owned by `keep` (an application's shared region).
    /// The application may write that memory at any time: the engine only
    /// ever copies bytes in and out (never forms references to them), so
    /// the worst a misbehaving application can do is corrupt its own
    /// payload.
    ///
    /// # Safety
    /// `[base, base + len)` must be valid for reads and writes for as long
    /// as `keep` lives, and `len` a power of two.
    pub unsafe fn external(base: *mut u8, len: usize, keep: Arc<dyn Any + Send + Sync>) -> Self {
        debug_assert!(len.is_power_of_two());
        Self {
            base,
            len,
            _storage: Storage::External(keep),
            home: None,
        }
    }

    /// Records that the buffer is `offset` bytes into `region`.
    pub fn with_home(mut self, region: Arc<doca_bindings::Region>, offset: usize) -> Self {
        self.home = Some((region, offset));
        self
    }

    /// The region the buffer lies in and its offset there, if known.
    pub fn home(&self) -> Option<(&Arc<doca_bindings::Region>, usize)> {
        self.home.as_ref().map(|(r, o)| (r, *o))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the buffer starts (what an RDMA registration covers).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base
    }

    fn base(&self) -> *mut u8 {
        self.base
    }

    /// Copies `data` in at `pos`, wrapping at the end.
    ///
    /// # Safety
    /// No other thread may access `[pos, pos + data.len())` (modulo the
    /// length) during the call.
    pub unsafe fn write_wrapping(&self, pos: u32, data: &[u8]) {
        let len = self.len();
        if len == 0 {
            return;
        }
        let data = &data[..data.len().min(len)];
        let pos = pos as usize & (len - 1);
        let first = data.len().min(len - pos);
        // SAFETY: both ranges are inside the buffer (pos < len, first <=
        // len - pos, rest <= pos); the caller guarantees exclusive access.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base().add(pos), first);
            std::ptr::copy_nonoverlapping(
                data.as_ptr().add(first),
                self.base(),
                data.len() - first,
            );
        }
    }

    /// Copies `out.len()` bytes starting at `pos` into `out`, wrapping.
    ///
    /// # Safety
    /// No other thread may write `[pos, pos + out.len())` during the call.
    pub unsafe fn read_wrapping(&self, pos: u32, out: &mut [u8]) {
        let len = self.len();
        if len == 0 {
            return;
        }
        let n = out.len().min(len);
        let pos = pos as usize & (len - 1);
        let first = n.min(len - pos);
        // SAFETY: as in `write_wrapping`, the ranges are in bounds and the
        // caller guarantees nobody writes them meanwhile.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base().add(pos), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(self.base(), out.as_mut_ptr().add(first), n - first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_both_ways() {
        let b = HostBuffer::new(8);
        // SAFETY: single-threaded test.
        unsafe { b.write_wrapping(6, &[1, 2, 3, 4]) };
        let mut out = [0u8; 4];
        // SAFETY: single-threaded test.
        unsafe { b.read_wrapping(6, &mut out) };
        assert_eq!(out, [1, 2, 3, 4]);
        let mut all = [0u8; 8];
        // SAFETY: single-threaded test.
        unsafe { b.read_wrapping(0, &mut all) };
        assert_eq!(all, [3, 4, 0, 0, 0, 0, 1, 2]);
    }
}
