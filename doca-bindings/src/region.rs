//! A shared memory region: a sealed memfd mapped `MAP_SHARED` read/write.
//!
//! The region is written concurrently by another process (the application
//! or the DPU), so this type never hands out `&[u8]`/`&mut [u8]` into the
//! mapping: bytes are copied in and out with raw pointer copies, and the
//! only references it gives are to atomics ([`Region::atomic_u32`]).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;

use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

use crate::abi;

/// An access outside the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Requested offset.
    pub offset: usize,
    /// Requested length.
    pub len: usize,
    /// Size of the region.
    pub region: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "access of {} bytes at offset {} is outside the region of {} bytes",
            self.len, self.offset, self.region
        )
    }
}

impl std::error::Error for OutOfBounds {}

impl From<OutOfBounds> for io::Error {
    fn from(e: OutOfBounds) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// A shared memory region (memfd, sealed against shrinking, mapped shared).
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory owned by this value until drop;
// every access through `&Region` is a raw copy or an atomic, both of which are
// fine from any thread (the region is designed to be written concurrently by
// another process anyway).
unsafe impl Send for Region {}
// SAFETY: see `Send`: no method hands out non-atomic references into the
// mapping, so concurrent use through `&Region` is sound.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("fd", &self.fd)
            .finish()
    }
}

impl Region {
    /// Creates a memfd of `len` bytes, seals it against shrinking, growing
    /// and further sealing, and maps it.
    pub fn create(name: &str, len: usize) -> io::Result<Region> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a region cannot be empty",
            ));
        }
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Self::map(fd, len)
    }

    /// Maps a region received from the peer. The fd must be a memfd carrying
    /// the shrink seal: otherwise the peer could truncate it under us and
    /// turn our accesses into SIGBUS.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Region> {
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("region fd is not a sealable memfd (F_GET_SEALS: {e})"),
            )
        })?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "region memfd is not sealed against shrinking (F_SEAL_SHRINK missing): \
                 the peer could truncate it",
            ));
        }
        let size = rustix::fs::fstat(&fd)?.st_size;
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("region memfd has unusable size {size}"),
                )
            })?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint, no
        // MAP_FIXED) cannot alias any Rust object; `len` is non-zero and no
        // larger than the file, whose size cannot shrink (sealed).
        let p = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )?
        };
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Region { ptr, len, fd })
    }

    /// Size of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: regions are never empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base address of the mapping (page aligned). Any access through it must
    /// tolerate concurrent writes by the peer: never build a `&[u8]` or
    /// `&mut [u8]` over it.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The memfd (to pass to the peer).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn check(&self, offset: usize, len: usize) -> Result<*mut u8, OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: offset <= end <= self.len, so the result stays within
                // (or one past the end of) the mapping.
                Ok(unsafe { self.ptr.as_ptr().add(offset) })
            }
            _ => Err(OutOfBounds {
                offset,
                len,
                region: self.len,
            }),
        }
    }

    /// Copies `out.len()` bytes at `offset` out of the region.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let src = self.check(offset, out.len())?;
        // SAFETY: `src..src+out.len()` is inside the live mapping (checked);
        // `out` is a distinct Rust buffer, so the ranges cannot overlap.
        unsafe { ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies `data` into the region at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        let dst = self.check(offset, data.len())?;
        // SAFETY: `dst..dst+data.len()` is inside the live, writable mapping
        // (checked); `data` is a Rust slice, and no Rust slice may point into
        // the mapping (see `as_ptr`), so the ranges cannot overlap.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Reads the descriptor at `offset` (any alignment; ring entries are
    /// always 8-aligned and then read with one volatile load).
    pub fn read_desc(&self, offset: usize) -> Result<abi::Desc, OutOfBounds> {
        let src = self
            .check(offset, std::mem::size_of::<abi::Desc>())?
            .cast::<abi::Desc>();
        if src.is_aligned() {
            // SAFETY: in bounds (checked), aligned (checked), and every bit
            // pattern is a valid `Desc` (integers only, no padding).
            Ok(unsafe { ptr::read_volatile(src) })
        } else {
            // SAFETY: in bounds (checked); read_unaligned has no alignment
            // requirement; every bit pattern is a valid `Desc`.
            Ok(unsafe { ptr::read_unaligned(src) })
        }
    }

    /// Writes a descriptor at `offset` (any alignment).
    pub fn write_desc(&self, offset: usize, d: &abi::Desc) -> Result<(), OutOfBounds> {
        let dst = self
            .check(offset, std::mem::size_of::<abi::Desc>())?
            .cast::<abi::Desc>();
        if dst.is_aligned() {
            // SAFETY: in bounds and aligned (checked), writable mapping.
            unsafe { ptr::write_volatile(dst, *d) };
        } else {
            // SAFETY: in bounds (checked), writable mapping; no alignment needed.
            unsafe { ptr::write_unaligned(dst, *d) };
        }
        Ok(())
    }

    /// The 32-bit atomic at `offset`, if it is in bounds and 4-aligned.
    pub fn atomic_u32(&self, offset: usize) -> Option<&AtomicU32> {
        let p = self.check(offset, 4).ok()?;
        if !p.cast::<AtomicU32>().is_aligned() {
            return None;
        }
        // SAFETY: in bounds and aligned (checked); AtomicU32 has the layout of
        // u32 and every bit pattern is valid; the mapping lives as long as
        // `&self`; all accesses to it are atomic or raw copies, never `&u32`.
        Some(unsafe { &*p.cast::<AtomicU32>() })
    }

    /// Writes `layout.header()` at offset 0.
    pub fn write_header(&self, layout: &abi::Layout) -> Result<(), OutOfBounds> {
        let h = layout.header();
        let dst = self
            .check(0, std::mem::size_of::<abi::RegionHeader>())?
            .cast::<abi::RegionHeader>();
        // SAFETY: in bounds (checked); the mapping base is page aligned.
        unsafe { ptr::write_volatile(dst, h) };
        Ok(())
    }

    /// Reads the header at offset 0.
    pub fn header(&self) -> Result<abi::RegionHeader, OutOfBounds> {
        let src = self
            .check(0, std::mem::size_of::<abi::RegionHeader>())?
            .cast::<abi::RegionHeader>();
        // SAFETY: in bounds (checked), page-aligned base, integers only.
        Ok(unsafe { ptr::read_volatile(src) })
    }

    /// Checks the header at offset 0 and the region size against `layout`;
    /// the message names the first field that differs.
    pub fn check_header(&self, layout: &abi::Layout) -> Result<(), String> {
        let want = layout.header();
        if self.len < layout.region_size() {
            return Err(format!(
                "region is {} bytes, layout needs {}",
                self.len,
                layout.region_size()
            ));
        }
        let got = self.header().map_err(|e| e.to_string())?;
        let fields: [(&str, u64, u64); 8] = [
            ("magic", got.magic, want.magic),
            (
                "abi_version",
                got.abi_version.into(),
                want.abi_version.into(),
            ),
            ("contexts", got.contexts.into(), want.contexts.into()),
            (
                "ring_entries",
                got.ring_entries.into(),
                want.ring_entries.into(),
            ),
            ("slots", got.slots.into(), want.slots.into()),
            (
                "rx_buf_size",
                got.rx_buf_size.into(),
                want.rx_buf_size.into(),
            ),
            (
                "tx_buf_size",
                got.tx_buf_size.into(),
                want.tx_buf_size.into(),
            ),
            ("region_size", got.region_size, want.region_size),
        ];
        for (name, g, w) in fields {
            if g != w {
                return Err(format!("region header: {name} is {g:#x}, expected {w:#x}"));
            }
        }
        Ok(())
    }

    /// Gives the pages of `offset..offset+len` back to the kernel; they read
    /// as zero afterwards (the size is unchanged).
    pub fn punch_hole(&self, offset: usize, len: usize) -> io::Result<()> {
        self.check(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset as u64,
            len as u64,
        )?;
        // The kernel changed what these bytes read as, behind the
        // compiler's back (rustix's raw syscall is not a memory clobber for
        // the mapping): without this, an optimised build may forward bytes
        // written before the hole to reads after it.
        std::hint::black_box(self.ptr.as_ptr());
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping created in `map`, and no
        // reference into it outlives `&self` (atomics borrow the Region).
        // Nothing useful can be done if munmap fails.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn create_write_read() {
        let r = Region::create("t", 8192).unwrap();
        assert_eq!(r.len(), 8192);
        r.write(100, b"hello").unwrap();
        let mut out = [0u8; 5];
        r.read(100, &mut out).unwrap();
        assert_eq!(&out, b"hello");
        r.write(8187, b"12345").unwrap();
        assert_eq!(
            r.write(8188, b"12345"),
            Err(OutOfBounds {
                offset: 8188,
                len: 5,
                region: 8192
            })
        );
        assert!(r.read(usize::MAX, &mut out).is_err());
        assert!(r.read(8192, &mut []).is_ok());
        assert!(r.read(8193, &mut []).is_err());
    }

    #[test]
    fn empty_region_is_rejected() {
        assert!(Region::create("t", 0).is_err());
    }

    #[test]
    fn sealed_against_resize() {
        let r = Region::create("t", 4096).unwrap();
        assert!(rustix::fs::ftruncate(r.fd(), 100).is_err());
        assert!(rustix::fs::ftruncate(r.fd(), 1 << 20).is_err());
        assert!(rustix::fs::fcntl_add_seals(r.fd(), SealFlags::WRITE).is_err());
    }

    #[test]
    fn from_fd_shares_memory() {
        let a = Region::create("t", 4096).unwrap();
        let fd = a.fd().try_clone_to_owned().unwrap();
        let b = Region::from_fd(fd).unwrap();
        assert_eq!(b.len(), 4096);
        a.write(10, &[1, 2, 3]).unwrap();
        let mut out = [0u8; 3];
        b.read(10, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3]);
        b.atomic_u32(64).unwrap().store(7, Ordering::Release);
        assert_eq!(a.atomic_u32(64).unwrap().load(Ordering::Acquire), 7);
    }

    #[test]
    fn from_fd_requires_shrink_seal() {
        let fd = rustix::fs::memfd_create("u", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let e = Region::from_fd(fd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let fd =
            rustix::fs::memfd_create("u", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        let e = Region::from_fd(fd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("F_SEAL_SHRINK"), "{e}");

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = Region::from_fd(a.into()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn descriptors_any_alignment() {
        let r = Region::create("t", 4096).unwrap();
        let d = abi::Desc {
            op: abi::OP_CONNECT,
            flags: 3,
            status: -11,
            tag: 0x1122334455667788,
            conn: 9,
            a: 1,
            b: 2,
            c: u64::MAX,
        };
        for off in [0, 8, 13, 4096 - 48] {
            r.write_desc(off, &d).unwrap();
            assert_eq!(r.read_desc(off).unwrap(), d);
        }
        assert!(r.read_desc(4096 - 47).is_err());
        assert!(r.write_desc(usize::MAX - 10, &d).is_err());
    }

    #[test]
    fn atomics_bounds_and_alignment() {
        let r = Region::create("t", 4096).unwrap();
        assert!(r.atomic_u32(0).is_some());
        assert!(r.atomic_u32(4092).is_some());
        assert!(r.atomic_u32(4093).is_none());
        assert!(r.atomic_u32(4096).is_none());
        assert!(r.atomic_u32(2).is_none());
        assert!(r.atomic_u32(usize::MAX - 1).is_none());
    }

    #[test]
    fn header_round_trip_and_mismatch() {
        let l = abi::Layout {
            contexts: 1,
            ring_entries: 8,
            slots: 1,
            rx_buf_size: 4096,
            tx_buf_size: 4096,
        };
        let r = Region::create("t", l.region_size()).unwrap();
        assert!(r.check_header(&l).unwrap_err().contains("magic"));
        r.write_header(&l).unwrap();
        r.check_header(&l).unwrap();
        let mut other = l;
        other.ring_entries = 16;
        let e = r.check_header(&other).unwrap_err();
        assert!(e.contains("ring_entries"), "{e}");
        let mut big = l;
        big.slots = 4;
        assert!(r.check_header(&big).unwrap_err().contains("bytes"));
    }

    /// The worked example in docs/hostif-abi.md §1.
    #[test]
    fn documented_example_offsets() {
        let l = abi::Layout {
            contexts: 4,
            ring_entries: 256,
            slots: 16,
            rx_buf_size: 65536,
            tx_buf_size: 65536,
        };
        assert_eq!(l.ctx_stride(), 28672);
        let ctx: Vec<usize> = (0..4).map(|i| l.ctx_offset(i)).collect();
        assert_eq!(ctx, [4096, 32768, 61440, 90112]);
        assert_eq!(l.slots_offset(), 118784);
        assert_eq!(l.region_size(), 2215936);
        let (req, evt) = (l.request_ring(1), l.event_ring(1));
        assert_eq!(
            (req.head, req.tail, req.entries),
            (32768, 32768 + 64, 32768 + 320)
        );
        assert_eq!((evt.head, evt.tail), (32768 + 128, 32768 + 192));
        assert_eq!(evt.entries, 32768 + 320 + 256 * 48);
        assert_eq!(l.app_waiting_offset(1), 32768 + 256);
    }

    #[test]
    fn punch_hole_zeroes() {
        let r = Region::create("t", 4 * 4096).unwrap();
        r.write(4096, &[0xAB; 8192]).unwrap();
        r.punch_hole(4096, 4096).unwrap();
        let mut out = [0xFFu8; 8192];
        r.read(4096, &mut out).unwrap();
        assert!(out[..4096].iter().all(|&b| b == 0));
        assert!(out[4096..].iter().all(|&b| b == 0xAB));
        assert_eq!(r.len(), 4 * 4096);
        assert!(r.punch_hole(4096, 1 << 20).is_err());
    }
}
