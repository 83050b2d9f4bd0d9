//! `dma`: moves payload between packet buffers and the application's RX/TX
//! circular buffers at the positions `proto` computed. On a BlueField these
//! are PCIe DMA transfers to host memory; here they are copies into
//! [`HostBuffer`]s.

mod host_buffer;

pub use host_buffer::HostBuffer;

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

/// TX: like [`fetch_tx`], placing the bytes after `offset` bytes of room in
/// `out` (the frame's headers go there).
pub fn fetch_tx_at<B: crate::io::FrameBuf>(
    tx: &HostBuffer,
    buf_pos: u32,
    len: usize,
    out: &mut B,
    offset: usize,
) {
    out.clear();
    out.resize_zeroed(offset + len);
    // SAFETY: as for `fetch_tx`.
    unsafe { tx.read_wrapping(buf_pos, &mut out[offset..]) }
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
