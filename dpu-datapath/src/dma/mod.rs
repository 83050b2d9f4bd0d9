//! `dma`: moves payload between packet buffers and the application's RX/TX
//! circular buffers at the positions `proto` computed. On a BlueField these
//! are PCIe DMA transfers to host memory; here they are copies into the
//! buffers of [`crate::app::AppConn`].

/// Copies `data` into the circular buffer `ring` starting at `pos`, wrapping.
pub fn write_wrapping(ring: &mut [u8], pos: u32, data: &[u8]) {
    let pos = pos as usize % ring.len().max(1);
    let first = data.len().min(ring.len() - pos);
    ring[pos..pos + first].copy_from_slice(&data[..first]);
    let rest = &data[first..];
    ring[..rest.len()].copy_from_slice(rest);
}

/// Reads `len` bytes at `pos` of a circular buffer: borrowed when contiguous,
/// otherwise copied into `scratch`.
pub fn read_wrapping<'a>(
    ring: &'a [u8],
    pos: u32,
    len: usize,
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    let pos = pos as usize % ring.len().max(1);
    if pos + len <= ring.len() {
        return &ring[pos..pos + len];
    }
    let first = ring.len() - pos;
    scratch.clear();
    scratch.extend_from_slice(&ring[pos..]);
    scratch.extend_from_slice(&ring[..len - first]);
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_both_ways() {
        let mut ring = vec![0u8; 8];
        write_wrapping(&mut ring, 6, &[1, 2, 3, 4]);
        assert_eq!(ring, [3, 4, 0, 0, 0, 0, 1, 2]);
        let mut scratch = Vec::new();
        assert_eq!(read_wrapping(&ring, 6, 4, &mut scratch), &[1, 2, 3, 4]);
        assert_eq!(read_wrapping(&ring, 0, 2, &mut scratch), &[3, 4]);
    }
}
