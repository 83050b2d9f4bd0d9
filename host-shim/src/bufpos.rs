//! Stream positions in the per-connection circular buffers.
//!
//! Byte `x` of a stream (RX or TX, counted from the connection's start) lives
//! at `buffer + (x & (size - 1))`, `size` a power of two. A run of bytes
//! therefore occupies at most two contiguous pieces of the buffer.

use doca_bindings::region::{OutOfBounds, Region};

/// The (offset in the buffer, length) pieces holding `len` bytes starting at
/// stream position `pos` in a circular buffer of `size` bytes (a power of
/// two, `len <= size`). The second piece is empty unless the run wraps.
pub(crate) fn pieces(pos: u64, len: usize, size: usize) -> [(usize, usize); 2] {
    debug_assert!(size.is_power_of_two() && len <= size);
    let start = (pos & (size as u64 - 1)) as usize;
    let first = len.min(size - start);
    [(start, first), (0, len - first)]
}

/// Copies `out.len()` bytes at stream position `pos` out of the circular
/// buffer at region offset `base` (of `size` bytes).
pub(crate) fn copy_out(
    region: &Region,
    base: usize,
    size: usize,
    pos: u64,
    out: &mut [u8],
) -> Result<(), OutOfBounds> {
    let [(o1, l1), (o2, l2)] = pieces(pos, out.len(), size);
    let (a, b) = out.split_at_mut(l1);
    region.read(base + o1, a)?;
    if l2 > 0 {
        region.read(base + o2, &mut b[..l2])?;
    }
    Ok(())
}

/// Copies `data` into the circular buffer at region offset `base` (of `size`
/// bytes) at stream position `pos`.
pub(crate) fn copy_in(
    region: &Region,
    base: usize,
    size: usize,
    pos: u64,
    data: &[u8],
) -> Result<(), OutOfBounds> {
    let [(o1, l1), (o2, l2)] = pieces(pos, data.len(), size);
    region.write(base + o1, &data[..l1])?;
    if l2 > 0 {
        region.write(base + o2, &data[l1..l1 + l2])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_without_and_with_wrap() {
        assert_eq!(pieces(0, 10, 16), [(0, 10), (0, 0)]);
        assert_eq!(pieces(10, 6, 16), [(10, 6), (0, 0)]);
        assert_eq!(pieces(10, 7, 16), [(10, 6), (0, 1)]);
        assert_eq!(pieces(16, 16, 16), [(0, 16), (0, 0)]);
        assert_eq!(pieces(17, 16, 16), [(1, 15), (0, 1)]);
        assert_eq!(pieces(u64::MAX, 2, 16), [(15, 1), (0, 1)]);
        assert_eq!(pieces(5, 0, 16), [(5, 0), (0, 0)]);
    }

    #[test]
    fn copies_wrap_around_the_buffer_end() {
        let r = Region::create("bufpos", 4096).unwrap();
        let (base, size) = (1024, 16);
        // Sentinels around the buffer must stay untouched.
        r.write(base - 1, &[0xEE]).unwrap();
        r.write(base + size, &[0xEE]).unwrap();
        let data: Vec<u8> = (0..12).collect();
        for pos in [0u64, 4, 10, 15, 16, 1 << 40] {
            copy_in(&r, base, size, pos, &data).unwrap();
            let mut out = vec![0u8; 12];
            copy_out(&r, base, size, pos, &mut out).unwrap();
            assert_eq!(out, data, "pos {pos}");
            // Byte i of the run is at (pos + i) mod size.
            let mut one = [0u8];
            r.read(base + ((pos as usize + 11) % size), &mut one)
                .unwrap();
            assert_eq!(one[0], 11);
        }
        let mut s = [0u8];
        r.read(base - 1, &mut s).unwrap();
        assert_eq!(s[0], 0xEE);
        r.read(base + size, &mut s).unwrap();
        assert_eq!(s[0], 0xEE);
    }

    #[test]
    fn out_of_region_is_an_error() {
        let r = Region::create("bufpos", 4096).unwrap();
        let mut out = [0u8; 8];
        assert!(copy_out(&r, 4090, 16, 0, &mut out).is_err());
        assert!(copy_in(&r, 4090, 16, 0, &out).is_err());
    }
}
