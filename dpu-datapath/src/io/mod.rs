//! Packet I/O: the [`Frame`] buffers every stage passes along and the one
//! burst interface of every port, [`Nic`]. Backends:
//! - [`dpdk`] (feature `dpdk`): a DPDK poll-mode driver port, whose mbufs are
//!   the frames (no copy from RX burst to TX burst);
//! - `pipeline::MemNic` (tests, benchmarks) and `pipeline::LoopbackNic`
//!   (connections to our own address, or no wire at all).
//!
//! [`impair`] wraps any port with seeded fault injection (loss,
//! duplication, reordering, corruption, delay) for interoperability tests;
//! `pipeline::SteeredNic` does RSS in software for ports that cannot.
//! [`gso`] cuts a frame the port was to segment (TSO) where something
//! handles it before the port or instead of it.

#[cfg(feature = "dpdk")]
pub mod dpdk;
mod frame;
pub mod gso;
pub mod impair;
mod nic;

pub use frame::{Frame, FrameBuf, FrameSource, HEAP_FRAME_CAPACITY};
pub use impair::{ImpairCounters, ImpairedNic};
pub use nic::Nic;

/// Packet I/O counters. Software counters are kept by the backend; the `rx_nombuf`,
/// `rx_missed`, `rx_errors` and `tx_errors` ones come from the NIC (0 when it has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Frames handed to the caller by `rx_burst`.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Received frames the NIC flagged with a bad IPv4 or L4 checksum (still delivered:
    /// the engine's parser decides and counts the drop).
    pub rx_csum_bad: u64,
    /// NIC: receive-buffer allocation failures (mempool empty).
    pub rx_nombuf: u64,
    /// NIC: frames dropped because the RX ring was full.
    pub rx_missed: u64,
    /// NIC: erroneous received frames.
    pub rx_errors: u64,
    /// Frames the Linux interface under a software port dropped before the
    /// PMD could take them (`io::dpdk::KernelDrops`; 0 for other ports).
    pub rx_dropped_kernel: u64,
    /// Frames the NIC accepted in `tx_burst`.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Of those, frames whose IPv4 and TCP checksums the port computed (TX
    /// checksum offload, `ChecksumCaps::tx_offload`).
    pub tx_csum_offloaded: u64,
    /// Frames dropped because the TX ring stayed full (no progress on retry).
    pub tx_dropped_full: u64,
    /// Frames dropped because no transmit buffer could be allocated.
    pub tx_dropped_nombuf: u64,
    /// Frames dropped because they do not fit one transmit buffer.
    pub tx_dropped_oversize: u64,
    /// Frames dropped because `queue` was not a configured queue.
    pub tx_dropped_bad_queue: u64,
    /// NIC: failed transmissions.
    pub tx_errors: u64,
    /// Packet buffers of the port's pool held now (NIC rings, in flight),
    /// and free ones; both 0 for backends without a pool.
    pub pool_in_use: u64,
    pub pool_free: u64,
}

impl IoStats {
    /// Adds `other`'s counters (per-queue counters into a port's).
    pub fn add(&mut self, other: &IoStats) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.rx_csum_bad += other.rx_csum_bad;
        self.rx_nombuf += other.rx_nombuf;
        self.rx_missed += other.rx_missed;
        self.rx_errors += other.rx_errors;
        self.rx_dropped_kernel += other.rx_dropped_kernel;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
        self.tx_csum_offloaded += other.tx_csum_offloaded;
        self.tx_dropped_full += other.tx_dropped_full;
        self.tx_dropped_nombuf += other.tx_dropped_nombuf;
        self.tx_dropped_oversize += other.tx_dropped_oversize;
        self.tx_dropped_bad_queue += other.tx_dropped_bad_queue;
        self.tx_errors += other.tx_errors;
        self.pool_in_use += other.pool_in_use;
        self.pool_free += other.pool_free;
    }

    /// All frames `tx_burst` dropped, whatever the reason.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_dropped_full
            + self.tx_dropped_nombuf
            + self.tx_dropped_oversize
            + self.tx_dropped_bad_queue
    }
}
