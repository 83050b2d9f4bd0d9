//! [`Nic`]: the one burst interface of every port (DPDK, loopback, the
//! in-memory NIC of tests and benchmarks, the impairment layer and software
//! steering as wrappers).

use super::{Frame, FrameSource, IoStats};
use crate::proto::Nanos;

/// A multi-queue NIC shared by the pipeline's workers. Queue `q`'s RX side
/// is polled by one task (replica `q`'s ingress) and its TX side fed by one
/// task (replica `q`'s egress), so a backend keeps per-queue state and
/// needs no lock shared between queues.
pub trait Nic: Send + Sync {
    /// Appends up to `max` received frames of queue `q`, with their receive
    /// time (0 when the pipeline's own clock should be used); returns how
    /// many.
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize;

    /// Transmits (drains) `frames` on queue `q`; what the NIC would not take
    /// is dropped and counted.
    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>);

    /// Frames received but not yet taken (for quiescence; 0 if unknown).
    fn rx_pending(&self) -> usize {
        0
    }

    /// Where the pipeline allocates frames for transmitted segments: the
    /// port's own buffers when it has them, so a frame is sent without a copy.
    fn frame_source(&self) -> FrameSource {
        FrameSource::Heap
    }

    /// Port counters (zeros for ports that keep none).
    fn stats(&self) -> IoStats {
        IoStats::default()
    }

    /// Called by each worker thread before its first burst and after its
    /// last: a port whose buffers have per-thread caches (DPDK's mempool)
    /// registers the thread so that freeing and allocating a buffer stays
    /// on that thread's cache.
    fn attach_thread(&self) {}
    fn detach_thread(&self) {}

    /// Sends flow group `group`'s received frames to queue `to` from now
    /// on (a flow-group move across replicas). Returns the positions
    /// [`Nic::steer_passed`] compares with (one per layer that queues
    /// frames, innermost first), or None when this port cannot move a
    /// group: its queues are the hardware's RSS, or a layer (an XDP program
    /// that redirects) could still deliver the group's frames elsewhere.
    fn steer(&self, _group: u32, _to: usize) -> Option<Vec<u64>> {
        None
    }

    /// Whether queue `q`'s consumer (the caller) has taken every frame
    /// that was on its way to it when [`Nic::steer`] returned `positions`:
    /// then no frame of the moved group reaches `q` any more.
    fn steer_passed(&self, _q: usize, _positions: &[u64]) -> bool {
        true
    }
}

impl<N: Nic + ?Sized> Nic for std::sync::Arc<N> {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        (**self).rx_burst(q, max, out)
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        (**self).tx_burst(q, frames)
    }

    fn rx_pending(&self) -> usize {
        (**self).rx_pending()
    }

    fn frame_source(&self) -> FrameSource {
        (**self).frame_source()
    }

    fn stats(&self) -> IoStats {
        (**self).stats()
    }

    fn attach_thread(&self) {
        (**self).attach_thread()
    }

    fn detach_thread(&self) {
        (**self).detach_thread()
    }

    fn steer(&self, group: u32, to: usize) -> Option<Vec<u64>> {
        (**self).steer(group, to)
    }

    fn steer_passed(&self, q: usize, positions: &[u64]) -> bool {
        (**self).steer_passed(q, positions)
    }
}
