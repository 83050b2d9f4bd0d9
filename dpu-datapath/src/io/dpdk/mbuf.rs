//! Owned mbufs: [`Mbuf`] (one) and `MbufBurst` (the array a burst call fills or drains).

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

const RX_IP_CKSUM_GOOD: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD as u64;
const RX_IP_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
const RX_L4_CKSUM_GOOD: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD as u64;
const RX_L4_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;
/// IPv4 frame, IPv4 header checksum and TCP checksum by the port at TX.
const TX_CKSUM_FLAGS: u64 = dpdk_sys::RTE_MBUF_F_TX_IPV4
    | dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM
    | dpdk_sys::RTE_MBUF_F_TX_TCP_CKSUM;
/// The port cuts the TCP payload into `tso_segsz` pieces (TSO).
const TX_TCP_SEG: u64 = dpdk_sys::RTE_MBUF_F_TX_TCP_SEG;

use dpdk_sys::rte_mbuf;

use super::mempool::Mempool;
use super::MAX_BURST;

/// One packet buffer (possibly a chain of segments) that we own. Dropping it returns it
/// to its pool (`rte_pktmbuf_free`); [`Mbuf::into_raw`] hands ownership to DPDK
/// (`rte_eth_tx_burst` frees what it sends).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf<'pool> {
    raw: NonNull<rte_mbuf>,
    _pool: PhantomData<&'pool Mempool>,
}

impl<'pool> Mbuf<'pool> {
    /// Takes ownership of `raw`; `None` for NULL.
    ///
    /// # Safety
    /// A non-null `raw` must be a valid mbuf that nobody else owns or references, from a
    /// pool that outlives `'pool`.
    pub unsafe fn from_raw(raw: *mut rte_mbuf) -> Option<Self> {
        NonNull::new(raw).map(|raw| Mbuf {
            raw,
            _pool: PhantomData,
        })
    }

    /// Gives up ownership without freeing (for `rte_eth_tx_burst`).
    pub fn into_raw(self) -> *mut rte_mbuf {
        let raw = self.raw.as_ptr();
        core::mem::forget(self);
        raw
    }

    fn head(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf (from_raw's contract) for as long as `self` lives.
        unsafe { self.raw.as_ref() }
    }

    /// True when the packet is one segment (every frame stage reads one slice).
    pub fn is_contiguous(&self) -> bool {
        self.head().nb_segs == 1 && self.head().next.is_null()
    }

    /// The first segment's data: the whole packet when [`Mbuf::is_contiguous`].
    pub fn data(&self) -> &[u8] {
        let m = self.head();
        // SAFETY: DPDK keeps buf_addr + data_off .. + data_len inside the segment's
        // buffer, which we own; nothing writes it while we hold `&self`.
        unsafe {
            let data = m.buf_addr.cast::<u8>().add(usize::from(m.data_off));
            core::slice::from_raw_parts(data, usize::from(m.data_len))
        }
    }

    /// The first segment's data, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let m = self.head();
            (m.buf_addr, m.data_off, m.data_len)
        };
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe {
            let data = addr.cast::<u8>().add(usize::from(off));
            core::slice::from_raw_parts_mut(data, usize::from(len))
        }
    }

    /// Bytes the first segment can hold from its data start (data + tailroom).
    pub fn room(&self) -> usize {
        let m = self.head();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off))
    }

    /// Sets the length of a one-segment packet to `len` (at most [`Mbuf::room`];
    /// clamped). Bytes past the old length keep whatever the buffer held: the
    /// caller writes them.
    pub fn set_data_len(&mut self, len: usize) {
        let len = len.min(self.room()).min(usize::from(u16::MAX)) as u16;
        // SAFETY: we own the mbuf exclusively (`&mut self`); the new length stays inside
        // the segment's buffer (clamped to `room`).
        let m = unsafe { self.raw.as_mut() };
        m.data_len = len;
        m.pkt_len = u32::from(len);
    }

    /// Forgets the NIC's RSS hash (a port that does not run RSS with our key).
    pub fn clear_rss_hash(&mut self) {
        // SAFETY: we own the mbuf exclusively (`&mut self`); only a flag bit changes.
        let m = unsafe { self.raw.as_mut() };
        m.ol_flags &= !u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH);
    }

    /// Asks the port to compute this IPv4/TCP frame's IPv4 header checksum
    /// and TCP checksum at TX, the headers being `l2_len` and `l3_len` bytes
    /// (the TCP checksum field must hold the pseudo-header sum, the IPv4 one
    /// zero). Only for a port with both TX checksum offloads enabled.
    pub fn request_tx_checksums(&mut self, l2_len: u8, l3_len: u16) {
        // SAFETY: we own the mbuf exclusively (`&mut self`); only the offload
        // flags and the header lengths the driver reads at TX change.
        let m = unsafe { self.raw.as_mut() };
        m.ol_flags |= TX_CKSUM_FLAGS;
        // `tx_offload` packs l2_len (7 bits) then l3_len (9 bits), the
        // rest (l4_len, TSO, outer lengths) zero.
        m.__bindgen_anon_3.tx_offload = u64::from(l2_len & 0x7f) | (u64::from(l3_len & 0x1ff) << 7);
    }

    /// Asks the port to cut this IPv4/TCP frame's payload into segments of
    /// `segment` bytes (TSO) and compute every piece's checksums, the
    /// headers being `l2_len`, `l3_len` and `l4_len` bytes (the TCP checksum
    /// field must hold the pseudo-header sum without the length, the IPv4
    /// one zero). Only for a port with TSO enabled.
    pub fn request_tso(&mut self, l2_len: u8, l3_len: u16, l4_len: u8, segment: u16) {
        // SAFETY: we own the mbuf exclusively (`&mut self`); only the offload
        // flags and the header lengths the driver reads at TX change.
        let m = unsafe { self.raw.as_mut() };
        m.ol_flags |= TX_CKSUM_FLAGS | TX_TCP_SEG;
        // `tx_offload` packs l2_len (7 bits), l3_len (9), l4_len (8), then
        // tso_segsz (16); the outer lengths zero.
        m.__bindgen_anon_3.tx_offload = u64::from(l2_len & 0x7f)
            | (u64::from(l3_len & 0x1ff) << 7)
            | (u64::from(l4_len) << 16)
            | (u64::from(segment) << 24);
    }

    /// The segment size [`Mbuf::request_tso`] asked for, if it did.
    pub fn tso_segment(&self) -> Option<u16> {
        let m = self.head();
        if m.ol_flags & TX_TCP_SEG == 0 {
            return None;
        }
        // SAFETY: reading the packed offload word of an mbuf we own.
        let packed = unsafe { m.__bindgen_anon_3.tx_offload };
        Some((packed >> 24) as u16)
    }

    /// Whether [`Mbuf::request_tx_checksums`] (or [`Mbuf::request_tso`])
    /// asked the port for them.
    pub fn tx_checksums_requested(&self) -> bool {
        self.head().ol_flags & TX_CKSUM_FLAGS != 0
    }

    /// Withdraws [`Mbuf::request_tx_checksums`] and [`Mbuf::request_tso`]
    /// (the checksums were computed in software, or the buffer is being
    /// reused).
    pub fn clear_tx_checksums(&mut self) {
        // SAFETY: we own the mbuf exclusively (`&mut self`); only flag bits change.
        let m = unsafe { self.raw.as_mut() };
        m.ol_flags &= !(TX_CKSUM_FLAGS | TX_TCP_SEG);
    }

    /// Whether the NIC checked the IPv4 header checksum and the L4 checksum
    /// and found both good (the stages then skip their own check).
    pub fn checksums_good(&self) -> bool {
        let f = self.head().ol_flags;
        f & RX_IP_CKSUM_MASK == RX_IP_CKSUM_GOOD && f & RX_L4_CKSUM_MASK == RX_L4_CKSUM_GOOD
    }

    /// Forgets the NIC's checksum verdicts: the bytes changed after it
    /// checked them (fault injection, an eBPF program).
    pub fn clear_checksum_flags(&mut self) {
        // SAFETY: we own the mbuf exclusively (`&mut self`); only flag bits change.
        let m = unsafe { self.raw.as_mut() };
        m.ol_flags &= !(RX_IP_CKSUM_MASK | RX_L4_CKSUM_MASK);
    }

    /// The NIC's RSS hash of the packet, when it computed one.
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.head();
        if m.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: with RTE_MBUF_F_RX_RSS_HASH set the driver wrote `hash.rss`; every
        // bit pattern is a valid u32.
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// Bytes in the whole packet (all segments).
    pub fn pkt_len(&self) -> usize {
        self.head().pkt_len as usize
    }

    /// The `RTE_MBUF_F_*` offload flags (RX checksum status, ...).
    pub fn ol_flags(&self) -> u64 {
        self.head().ol_flags
    }

    /// The data of each segment in order.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut seg: *const rte_mbuf = self.raw.as_ptr();
        core::iter::from_fn(move || {
            // SAFETY: `seg` is the head we own or a `next` link of the chain we own; the
            // chain ends with NULL. DPDK keeps buf_addr + data_off .. + data_len inside
            // the segment's buffer, and nothing writes it while we hold `&self`.
            unsafe {
                let m = seg.as_ref()?;
                seg = m.next;
                let data = m.buf_addr.cast::<u8>().add(usize::from(m.data_off));
                Some(core::slice::from_raw_parts(data, usize::from(m.data_len)))
            }
        })
    }

    /// Appends the whole packet to `out`.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.pkt_len());
        for seg in self.segments() {
            out.extend_from_slice(seg);
        }
    }

    /// Grows the packet by `len` bytes at the end (`rte_pktmbuf_append`) and returns
    /// them; `None` when the last segment lacks tailroom.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: we own the mbuf chain exclusively (`&mut self`).
        let tail = unsafe { dpdk_sys::rte_pktmbuf_append(self.raw.as_ptr(), len16) };
        let tail = NonNull::new(tail.cast::<u8>())?;
        // SAFETY: rte_pktmbuf_append returned `len` writable bytes inside the last
        // segment's buffer, which we own and which `&mut self` keeps exclusive.
        Some(unsafe { core::slice::from_raw_parts_mut(tail.as_ptr(), len) })
    }
}

// SAFETY: an owned mbuf is a plain buffer that nobody else references; DPDK lets any
// thread free an mbuf (its pool's ring is multi-producer/consumer safe).
unsafe impl Send for Mbuf<'_> {}

impl Drop for Mbuf<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (from_raw's contract) and drop it exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.raw.as_ptr()) };
    }
}

/// Up to [`MAX_BURST`] owned mbufs laid out as the `struct rte_mbuf **` array that
/// `rte_eth_rx_burst` fills and `rte_eth_tx_burst` drains. Those still owned are freed
/// with one `rte_pktmbuf_free_bulk` call on drop.
pub(crate) struct MbufBurst<'pool> {
    slots: [MaybeUninit<Mbuf<'pool>>; MAX_BURST],
    /// `slots[start..len]` are initialised and owned.
    start: usize,
    len: usize,
}

impl<'pool> MbufBurst<'pool> {
    pub(crate) fn new(_pool: &'pool Mempool) -> Self {
        MbufBurst {
            slots: [const { MaybeUninit::uninit() }; MAX_BURST],
            start: 0,
            len: 0,
        }
    }

    /// Owned mbufs.
    pub(crate) fn as_slice(&self) -> &[Mbuf<'pool>] {
        // SAFETY: slots[start..len] are initialised (the invariant), and MaybeUninit<T>
        // has T's layout.
        unsafe {
            core::slice::from_raw_parts(
                self.slots.as_ptr().add(self.start).cast::<Mbuf<'pool>>(),
                self.len - self.start,
            )
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    pub(crate) fn push(&mut self, mbuf: Mbuf<'pool>) {
        assert!(!self.is_full(), "MbufBurst overflow");
        self.slots[self.len].write(mbuf);
        self.len += 1;
    }

    /// Hands every owned mbuf, oldest first, to `take`.
    pub(crate) fn take_all(&mut self, mut take: impl FnMut(Mbuf<'pool>)) {
        while self.start < self.len {
            // SAFETY: slots[start..len] are initialised and owned (the invariant); the
            // slot leaves the owned range before the value is used, so it is read once.
            let mbuf = unsafe { self.slots[self.start].assume_init_read() };
            self.start += 1;
            take(mbuf);
        }
    }

    /// Fills an empty burst with `fill(array, capacity) -> count`, as `rte_eth_rx_burst`.
    ///
    /// # Safety
    /// `fill` must write `count <= capacity` valid mbuf pointers that become ours, from a
    /// pool that outlives `'pool`.
    pub(crate) unsafe fn fill(
        &mut self,
        capacity: usize,
        fill: impl FnOnce(*mut *mut rte_mbuf, u16) -> u16,
    ) -> usize {
        assert!(
            self.start == self.len,
            "MbufBurst::fill on a non-empty burst"
        );
        self.start = 0;
        self.len = 0;
        let capacity = capacity.min(MAX_BURST);
        // Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout of
        // *mut rte_mbuf; MaybeUninit keeps it.
        let count = fill(self.slots.as_mut_ptr().cast(), capacity as u16);
        self.len = usize::from(count).min(capacity);
        self.len
    }

    /// Passes the owned mbufs, oldest first, to `send(array, count) -> taken` until it
    /// takes all or none; those taken belong to the callee. Returns how many were taken.
    ///
    /// # Safety
    /// `send` must take ownership of exactly the first `taken <= count` mbufs of the array
    /// and leave the array unchanged, as `rte_eth_tx_burst` does.
    pub(crate) unsafe fn drain(
        &mut self,
        mut send: impl FnMut(*mut *mut rte_mbuf, u16) -> u16,
    ) -> usize {
        let before = self.start;
        while self.start < self.len {
            // Owned slots are initialised Mbufs, laid out as *mut rte_mbuf (see `fill`).
            let array = self.slots[self.start..].as_mut_ptr().cast();
            let taken = usize::from(send(array, (self.len - self.start) as u16));
            if taken == 0 {
                break;
            }
            self.start += taken.min(self.len - self.start);
        }
        self.start - before
    }
}

impl Drop for MbufBurst<'_> {
    fn drop(&mut self) {
        let count = self.len - self.start;
        if count == 0 {
            return;
        }
        // SAFETY: slots[start..len] are owned, initialised mbufs laid out as an array of
        // *mut rte_mbuf; rte_pktmbuf_free_bulk frees each once and we never touch them
        // again. `count` <= MAX_BURST fits u32.
        unsafe {
            dpdk_sys::rte_pktmbuf_free_bulk(
                self.slots[self.start..].as_mut_ptr().cast(),
                count as u32,
            );
        }
    }
}
