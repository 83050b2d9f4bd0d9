//! Real packet I/O: the NIC queue pairs the engine polls.
//!
//! [`PacketIo`] is the burst interface the engine drives; frames are plain
//! Ethernet frames in `Vec<u8>`s, the same currency as `Engine::drain_tx` and
//! `Engine::recycle`. Backends:
//! - [`dpdk`] (feature `dpdk`): a DPDK poll-mode driver port.
//!
//! [`impair`] wraps any backend with seeded fault injection (loss,
//! duplication, reordering, corruption, delay) for interoperability tests.
//!
//! Copying between NIC buffers and `Vec<u8>`s costs one memcpy per frame; the
//! [`FramePool`] keeps those `Vec`s allocated so the steady state does not hit
//! the allocator. Zero-copy mbuf ownership can come later behind the same
//! trait.

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod impair;
mod pool;

pub use impair::{ImpairCounters, ImpairedIo};
pub use pool::FramePool;

/// A NIC queue pair as the engine sees it: bursts in, bursts out.
pub trait PacketIo {
    /// Appends up to `max` received frames to `out` (frame bytes are copied into reused
    /// `Vec<u8>`s from the backend's pool); returns how many.
    fn rx_burst(&mut self, queue: u16, max: usize, out: &mut Vec<Vec<u8>>) -> usize;

    /// Sends frames (drains `frames`); frames the NIC would not take after retrying while
    /// it makes progress are dropped and counted. Returns frames sent.
    fn tx_burst(&mut self, queue: u16, frames: &mut Vec<Vec<u8>>) -> usize;

    /// Counters since the port was opened.
    fn stats(&self) -> IoStats;

    /// The port's own MAC address.
    fn mac(&self) -> [u8; 6];
}

impl<P: PacketIo + ?Sized> PacketIo for Box<P> {
    fn rx_burst(&mut self, queue: u16, max: usize, out: &mut Vec<Vec<u8>>) -> usize {
        (**self).rx_burst(queue, max, out)
    }

    fn tx_burst(&mut self, queue: u16, frames: &mut Vec<Vec<u8>>) -> usize {
        (**self).tx_burst(queue, frames)
    }

    fn stats(&self) -> IoStats {
        (**self).stats()
    }

    fn mac(&self) -> [u8; 6] {
        (**self).mac()
    }
}

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
    /// Frames the NIC accepted in `tx_burst`.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
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
    /// All frames `tx_burst` dropped, whatever the reason.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_dropped_full
            + self.tx_dropped_nombuf
            + self.tx_dropped_oversize
            + self.tx_dropped_bad_queue
    }
}
