//! [`Frame`]: the packet buffer every stage passes along, from the RX burst
//! to the TX burst.
//!
//! On the DPDK backend a frame is the NIC's own buffer (an mbuf): a received
//! segment goes through `pre`, the owner, `dma` and `post`, turns into its
//! ACK in place and leaves as the same buffer, and `dma` builds data
//! segments in mbufs of the port's pool ([`FrameSource`]). Every other
//! backend (loopback, in-memory, simulator) and every frame the control
//! plane builds uses a heap buffer; a port copies such a frame into one of
//! its buffers at TX, as before. A frame that must grow past its mbuf's
//! room becomes a heap frame (a copy), so no operation fails.
//!
//! RAII: dropping a frame returns its buffer (mbuf to its pool, heap memory
//! to the allocator); a frame has one owner, so a buffer cannot be freed
//! twice or leaked by any stage that drops it.

use crate::wire::ChecksumCaps;
use core::ops::{Deref, DerefMut};

#[cfg(feature = "dpdk")]
use super::dpdk::{Mbuf, Mempool};

/// Room of a fresh heap frame: a full 1500-byte frame and its headers.
pub const HEAP_FRAME_CAPACITY: usize = 1600;

/// What segment writers need from a buffer: `Vec<u8>` and [`Frame`] both.
pub trait FrameBuf: DerefMut<Target = [u8]> {
    /// Empties the buffer (keeps its memory).
    fn clear(&mut self);
    /// Shortens the buffer to `len` bytes (no-op when shorter).
    fn truncate(&mut self, len: usize);
    /// Sets the length to `len`; bytes added are zero.
    fn resize_zeroed(&mut self, len: usize);
    /// Appends `data`.
    fn extend_from_slice(&mut self, data: &[u8]);
    /// Asks the port to compute the IPv4 header and TCP checksums of this
    /// IPv4/TCP frame at TX (headers of `l2_len` and `l3_len` bytes).
    /// True when the buffer carries the request (a NIC buffer): the writer
    /// then leaves the pseudo-header sum in the TCP checksum field and zero
    /// in the IPv4 one. False, nothing asked, for any other buffer: the
    /// writer computes both. Only call it for a port with TX checksum
    /// offload (`ChecksumCaps::tx_offload`).
    fn request_tx_checksums(&mut self, _l2_len: u8, _l3_len: u16) -> bool {
        false
    }
    /// Asks the port to cut this IPv4/TCP frame's payload into segments of
    /// `segment` bytes and compute their checksums (TSO), the headers being
    /// `l2_len`, `l3_len` and `l4_len` bytes. True when the buffer carries
    /// the request (a NIC buffer): the writer then leaves the pseudo-header
    /// sum without the length in the TCP checksum field and zero in the
    /// IPv4 one. False for any other buffer: the writer computes the whole
    /// segment's checksums, and a [`Frame`] on the heap remembers the size
    /// so that it is cut in software before the port (`io::gso`). Only
    /// call it for a port with TSO (`ProtoConfig::tso_max`).
    fn request_tso(&mut self, _l2_len: u8, _l3_len: u16, _l4_len: u8, _segment: u16) -> bool {
        false
    }
}

impl FrameBuf for Vec<u8> {
    fn clear(&mut self) {
        Vec::clear(self)
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len)
    }

    fn resize_zeroed(&mut self, len: usize) {
        self.resize(len, 0)
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        Vec::extend_from_slice(self, data)
    }
}

/// A packet buffer owned by whichever stage holds it; see the module docs.
///
/// The second field is the piece size a heap frame is to be cut into (TSO
/// without a NIC buffer to carry the request, see [`FrameBuf::request_tso`]);
/// 0 otherwise.
pub struct Frame(Repr, u16);

enum Repr {
    Heap(Vec<u8>),
    #[cfg(feature = "dpdk")]
    Mbuf(Mbuf<'static>),
}

impl Frame {
    /// An empty heap frame (allocates nothing until written).
    pub const fn new() -> Self {
        Frame(Repr::Heap(Vec::new()), 0)
    }

    /// An empty heap frame with room for a full-size frame.
    pub fn with_heap_capacity() -> Self {
        Frame(Repr::Heap(Vec::with_capacity(HEAP_FRAME_CAPACITY)), 0)
    }

    /// A received or freshly allocated NIC buffer; a chained (multi-segment)
    /// mbuf is copied into one heap buffer, since every stage reads a frame
    /// as one slice.
    #[cfg(feature = "dpdk")]
    pub fn from_mbuf(mbuf: Mbuf<'static>) -> Self {
        if mbuf.is_contiguous() {
            Frame(Repr::Mbuf(mbuf), 0)
        } else {
            let mut v = Vec::with_capacity(mbuf.pkt_len());
            mbuf.copy_to(&mut v);
            Frame(Repr::Heap(v), 0)
        }
    }

    /// The mbuf behind this frame, for the port's TX burst; the heap
    /// buffer (`Err`) when the frame is not one.
    #[cfg(feature = "dpdk")]
    pub fn into_mbuf(self) -> Result<Mbuf<'static>, Vec<u8>> {
        match self.0 {
            Repr::Mbuf(m) => Ok(m),
            Repr::Heap(v) => Err(v),
        }
    }

    /// The RSS hash the NIC computed for this frame, if it did.
    pub fn nic_rss_hash(&self) -> Option<u32> {
        match &self.0 {
            Repr::Heap(_) => None,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.rss_hash(),
        }
    }

    /// Whether the NIC verified this frame's IPv4 and TCP checksums (good).
    pub fn nic_checksums_good(&self) -> bool {
        match &self.0 {
            Repr::Heap(_) => false,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.checksums_good(),
        }
    }

    /// Forgets what the NIC said about the received bytes (checksum
    /// verdicts, RSS hash): call after changing a received frame, or before
    /// handing it back as a received one (a reply built in it and looped
    /// back), so that a rewritten or corrupted frame is neither taken as
    /// verified nor hashed as the old tuple.
    pub fn forget_nic_rx_offloads(&mut self) {
        match &mut self.0 {
            Repr::Heap(_) => {}
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => {
                m.clear_checksum_flags();
                m.clear_rss_hash();
            }
        }
    }

    /// The checksum checks `pre` must still make on this frame: `caps`
    /// without the receive check when the NIC already verified both sums
    /// (drivers set the L4 verdict for TCP and UDP only, so an ICMP frame is
    /// still checked).
    pub fn rx_caps(&self, caps: &ChecksumCaps) -> ChecksumCaps {
        ChecksumCaps {
            verify_rx: caps.verify_rx && !self.nic_checksums_good(),
            ..*caps
        }
    }

    /// Whether the port is to compute this frame's checksums at TX
    /// ([`FrameBuf::request_tx_checksums`]): its bytes hold a partial TCP
    /// checksum until then.
    pub fn tx_checksums_pending(&self) -> bool {
        match &self.0 {
            Repr::Heap(_) => false,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.tx_checksums_requested(),
        }
    }

    /// The segment size the port was asked to cut this frame's payload
    /// into (TSO), if it was ([`FrameBuf::request_tso`]).
    pub fn tso_segment(&self) -> Option<u16> {
        match &self.0 {
            Repr::Heap(_) => (self.1 > 0).then_some(self.1),
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.tso_segment(),
        }
    }

    /// Computes the checksums the port was asked for, in software, and
    /// withdraws the request: for whatever reads or changes the frame
    /// before the port (a frame looped back to our own address, the
    /// impairment layer, an eBPF program at egress, a capture, a copy).
    /// A frame the port was to cut (TSO) stays whole, one segment longer
    /// than the MSS with valid checksums: callers that send it on split it
    /// first (`io::gso`).
    pub fn finish_tx_checksums(&mut self) {
        // A heap segment to cut already has its checksums: it is whole now.
        self.1 = 0;
        #[cfg(feature = "dpdk")]
        if let Repr::Mbuf(m) = &mut self.0 {
            if m.tx_checksums_requested() {
                m.clear_tx_checksums();
                crate::wire::checksum::fill_ipv4_tcp(m.data_mut());
            }
        }
    }

    /// Whether the buffer holds a segment longer than 32 KiB: one of
    /// [`FrameSource::alloc_large`]'s, or a heap buffer grown for one
    /// (kept apart from the buffers that serve ACKs and ordinary segments).
    pub fn is_large(&self) -> bool {
        let room = match &self.0 {
            Repr::Heap(v) => v.capacity(),
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.room(),
        };
        room > usize::from(u16::MAX / 2)
    }

    /// True when the frame lives in a NIC buffer (no copy at TX).
    pub fn is_nic_buffer(&self) -> bool {
        !matches!(self.0, Repr::Heap(_))
    }

    /// The bytes as a `Vec` (a copy for NIC buffers).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.finish_tx_checksums();
        match self.0 {
            Repr::Heap(v) => v,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.data().to_vec(),
        }
    }

    /// The heap buffer behind this frame, after moving NIC buffers' bytes
    /// into one (for operations past the mbuf's room).
    #[cfg(feature = "dpdk")]
    fn heap(&mut self, extra: usize) -> &mut Vec<u8> {
        // A heap frame cannot carry the request to the port (a TSO size it
        // keeps, to be cut in software).
        let segment = self.tso_segment().unwrap_or(0);
        self.finish_tx_checksums();
        self.1 = segment;
        if let Repr::Mbuf(m) = &self.0 {
            let mut v = Vec::with_capacity((m.data().len() + extra).max(HEAP_FRAME_CAPACITY));
            v.extend_from_slice(m.data());
            // Dropping the old representation returns the mbuf to its pool.
            self.0 = Repr::Heap(v);
        }
        match &mut self.0 {
            Repr::Heap(v) => v,
            Repr::Mbuf(_) => unreachable!("converted above"),
        }
    }
}

/// Cache lines of a frame [`Frame::prefetch`] asks for at most (headers
/// and the start of the payload: what `pre` and the checksum read first).
const PREFETCH_LINES: usize = 4;

impl Frame {
    /// Asks the CPU to start loading the frame's first bytes into the
    /// cache, so the stages find them there: a received frame was written
    /// by the NIC (or, in the benches, long before) and its lines are cold.
    /// Called on a whole burst before the first frame is parsed, the misses
    /// overlap instead of stalling one after another (`rte_prefetch0` in
    /// DPDK applications). A hint: no effect on what the program computes.
    pub fn prefetch(&self) {
        let bytes: &[u8] = self;
        for line in bytes.chunks(64).take(PREFETCH_LINES) {
            prefetch_line(line.as_ptr());
        }
    }

    /// Empties the frame (keeps its buffer; forgets a TX checksum request).
    pub fn clear(&mut self) {
        self.1 = 0;
        match &mut self.0 {
            Repr::Heap(v) => v.clear(),
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => {
                m.set_data_len(0);
                m.clear_tx_checksums();
            }
        }
    }

    /// Shortens the frame to `len` bytes (no-op when shorter).
    pub fn truncate(&mut self, len: usize) {
        match &mut self.0 {
            Repr::Heap(v) => v.truncate(len),
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => {
                if len < m.data().len() {
                    m.set_data_len(len);
                }
            }
        }
    }

    /// Sets the length to `len`; bytes added are zero.
    pub fn resize_zeroed(&mut self, len: usize) {
        match &mut self.0 {
            Repr::Heap(v) => v.resize(len, 0),
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) if len <= m.room() => {
                let old = m.data().len();
                m.set_data_len(len);
                if len > old {
                    m.data_mut()[old..].fill(0);
                }
            }
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(_) => self.heap(len).resize(len, 0),
        }
    }

    /// Sets the length to `len` for a caller that writes every byte before
    /// anything reads them (the `dma` stage's payload copy and `post`'s
    /// headers): an mbuf keeps its buffer's stale bytes instead of being
    /// zeroed first (64 KiB for a segment the port cuts); a heap frame is
    /// zero-filled as by [`Frame::resize_zeroed`].
    pub fn resize_for_overwrite(&mut self, len: usize) {
        #[cfg(feature = "dpdk")]
        if let Repr::Mbuf(m) = &mut self.0 {
            if len <= m.room() {
                m.set_data_len(len);
                return;
            }
        }
        self.resize_zeroed(len)
    }

    /// The frame's bytes followed by spare room, `window` bytes in all, for
    /// an XDP-style program that may rewrite, shorten or lengthen the frame
    /// in place (`xdp`); the caller sets the final length with
    /// [`Frame::truncate`]. None when the frame is longer than `window`.
    /// Heap frames are zero-filled past their length; an mbuf shows its
    /// buffer's earlier bytes there (one too small becomes a heap frame).
    pub fn window(&mut self, window: usize) -> Option<&mut [u8]> {
        if self.len() > window {
            return None;
        }
        #[cfg(feature = "dpdk")]
        if let Repr::Mbuf(m) = &self.0 {
            if m.room() < window {
                self.heap(window);
            }
        }
        match &mut self.0 {
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => {
                m.set_data_len(window);
                Some(m.data_mut())
            }
            Repr::Heap(v) => {
                v.resize(window, 0);
                Some(&mut v[..])
            }
        }
    }

    /// Appends `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        match &mut self.0 {
            Repr::Heap(v) => v.extend_from_slice(data),
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) if m.data().len() + data.len() <= m.room() => {
                let old = m.data().len();
                m.set_data_len(old + data.len());
                m.data_mut()[old..].copy_from_slice(data);
            }
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(_) => self.heap(data.len()).extend_from_slice(data),
        }
    }
}

impl FrameBuf for Frame {
    fn clear(&mut self) {
        Frame::clear(self)
    }

    fn truncate(&mut self, len: usize) {
        Frame::truncate(self, len)
    }

    fn resize_zeroed(&mut self, len: usize) {
        Frame::resize_zeroed(self, len)
    }

    fn extend_from_slice(&mut self, data: &[u8]) {
        Frame::extend_from_slice(self, data)
    }

    fn request_tx_checksums(&mut self, l2_len: u8, l3_len: u16) -> bool {
        match &mut self.0 {
            Repr::Heap(_) => false,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => {
                m.request_tx_checksums(l2_len, l3_len);
                true
            }
        }
    }

    fn request_tso(&mut self, l2_len: u8, l3_len: u16, l4_len: u8, segment: u16) -> bool {
        let _ = (l2_len, l3_len, l4_len);
        match &mut self.0 {
            Repr::Heap(_) => {
                // The 64 KiB buffers ran out: cut in software at the port.
                self.1 = segment;
                false
            }
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => {
                m.request_tso(l2_len, l3_len, l4_len, segment);
                true
            }
        }
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::new()
    }
}

impl From<Vec<u8>> for Frame {
    fn from(v: Vec<u8>) -> Self {
        Frame(Repr::Heap(v), 0)
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Heap(v) => v,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.data(),
        }
    }
}

impl DerefMut for Frame {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Repr::Heap(v) => v,
            #[cfg(feature = "dpdk")]
            Repr::Mbuf(m) => m.data_mut(),
        }
    }
}

/// A copy in a heap buffer (ARP frames shown to other owners, duplicates
/// of the impairment layer): NIC buffers are not shared.
impl Clone for Frame {
    fn clone(&self) -> Self {
        let mut bytes = self.to_vec();
        if self.tx_checksums_pending() {
            crate::wire::checksum::fill_ipv4_tcp(&mut bytes);
        }
        Frame(Repr::Heap(bytes), self.tso_segment().unwrap_or(0))
    }
}

impl core::fmt::Debug for Frame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = if self.is_nic_buffer() { "nic" } else { "heap" };
        write!(f, "Frame({kind}, {} bytes)", self.len())
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Frame {}

impl PartialEq<[u8]> for Frame {
    fn eq(&self, other: &[u8]) -> bool {
        self[..] == *other
    }
}

impl PartialEq<Vec<u8>> for Frame {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self[..] == other[..]
    }
}

/// Where fresh frames for transmitted segments come from: the heap, or the
/// port's mbuf pool so that a data segment is built where the NIC sends it
/// from. Cheap to copy; any worker may allocate from it.
#[derive(Clone, Copy, Debug, Default)]
pub enum FrameSource {
    #[default]
    Heap,
    /// The port's pool, and its pool of 64 KiB buffers for segments the
    /// port cuts (TSO) when it has one.
    #[cfg(feature = "dpdk")]
    Mbufs {
        pool: &'static Mempool,
        large: Option<&'static Mempool>,
    },
}

impl FrameSource {
    /// An empty frame; a heap frame when the mbuf pool is exhausted (the
    /// port then copies it into an mbuf at TX, or counts it dropped).
    pub fn alloc(&self) -> Frame {
        match self {
            FrameSource::Heap => Frame::with_heap_capacity(),
            #[cfg(feature = "dpdk")]
            FrameSource::Mbufs { pool, .. } => match pool.alloc() {
                Some(m) => Frame(Repr::Mbuf(m), 0),
                None => Frame::with_heap_capacity(),
            },
        }
    }

    /// An empty frame for a segment the port cuts (TSO): a 64 KiB buffer
    /// when the port has them, else (exhausted, or none) as [`Self::alloc`].
    pub fn alloc_large(&self) -> Frame {
        if let FrameSource::Heap = self {
            // One size for all of them, so that a freed one serves the next
            // (sizes that vary with the segment fragment the heap).
            return Frame(Repr::Heap(Vec::with_capacity(LARGE_HEAP_FRAME)), 0);
        }
        #[cfg(feature = "dpdk")]
        if let FrameSource::Mbufs {
            large: Some(large), ..
        } = self
        {
            if let Some(m) = large.alloc() {
                return Frame(Repr::Mbuf(m), 0);
            }
        }
        self.alloc()
    }
}

/// Capacity of a heap frame for a segment longer than the MSS: the
/// longest IPv4 datagram and its Ethernet header.
const LARGE_HEAP_FRAME: usize = 65_536 + 14;

/// Prefetches the cache line holding `p` (a hint).
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and reads or writes
    // nothing the program can observe; SSE is baseline on x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above (`prfm` is a hint, it never faults).
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_frames_behave_like_vecs() {
        let mut f = FrameSource::Heap.alloc();
        assert!(f.is_empty() && !f.is_nic_buffer());
        f.extend_from_slice(b"abc");
        f.resize_zeroed(5);
        assert_eq!(f, b"abc\0\0".to_vec());
        f.truncate(2);
        assert_eq!(&f[..], b"ab");
        f[0] = b'x';
        assert_eq!(f.clone().into_vec(), b"xb");
        f.clear();
        assert!(f.is_empty());
        assert_eq!(Frame::from(vec![1, 2]), Frame::from(vec![1, 2]));
        assert_eq!(
            format!("{:?}", Frame::from(vec![1])),
            "Frame(heap, 1 bytes)"
        );
    }
}
