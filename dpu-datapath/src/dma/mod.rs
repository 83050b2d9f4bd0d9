//! `dma`: moves payload between packet buffers and the application's RX/TX
//! circular buffers at the positions `proto` computed. On a BlueField these
//! are PCIe DMA transfers to host memory, submitted to a [`DmaEngine`] and
//! completed later ([`DmaQueue`] releases the work in order once they
//! have); here the engine is [`EmulatedDma`], CPU copies into
//! [`HostBuffer`]s with a DPU's latency and ordering.

mod copies;
mod engine;
mod event_ring;
mod host_buffer;
mod job_engine;
mod queue;
pub mod rdma;
mod request_ring;
mod ring_index;
#[cfg(test)]
mod ring_tests;

pub use copies::{rx_copy, rx_now, tx_copy, tx_now};
pub use engine::{DmaConfig, DmaDir, DmaEngine, DmaOp, DmaStats, EmulatedDma, HostRef};
pub use event_ring::EventRing;
pub use host_buffer::HostBuffer;
pub use job_engine::JobDma;
pub use queue::{Copy, DmaQueue};
pub use request_ring::RequestRing;

/// RX: places received payload at its final position in the RX buffer.
pub fn place_rx(rx: &HostBuffer, buf_pos: u32, payload: &[u8]) {
    // SAFETY: `proto` assigned [buf_pos, buf_pos + len) from the receive
    // window, which the application does not touch until this payload is
    // committed, and no other segment in flight covers the same bytes.
    unsafe { rx.write_wrapping(buf_pos, payload) }
}

/// TX: fetches `len` bytes of unacknowledged data at `buf_pos` into `out`.
pub fn fetch_tx(tx: &HostBuffer, buf_pos: u32, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(len, 0);
    // SAFETY: the range is unacknowledged data, which the application never
    // rewrites before the ACK frees it.
    unsafe { tx.read_wrapping(buf_pos, out) }
}

/// TX: fills `out` with the unacknowledged data at `buf_pos`.
pub fn fetch_tx_into(tx: &HostBuffer, buf_pos: u32, out: &mut [u8]) {
    // SAFETY: as for `fetch_tx`.
    unsafe { tx.read_wrapping(buf_pos, out) }
}

/// Application side: copies `data` into the TX buffer at `pos` (free space).
pub fn app_write(tx: &HostBuffer, pos: u32, data: &[u8]) {
    // SAFETY: free TX space (past everything written, below the acknowledged
    // edge plus the size) is owned by the application until it publishes it.
    unsafe { tx.write_wrapping(pos, data) }
}

/// Application side: copies committed RX data at `pos` into `out`.
pub fn app_read(rx: &HostBuffer, pos: u32, out: &mut [u8]) {
    // SAFETY: committed, unconsumed RX data is never written by the DMA
    // stage (it lies below RCV.NXT and above the consumed edge).
    unsafe { rx.read_wrapping(pos, out) }
}
