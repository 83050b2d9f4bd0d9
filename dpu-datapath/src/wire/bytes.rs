//! Big-endian field access shared by the views. Callers guarantee the range is in bounds
//! (each view's `check_len`), so these index directly.

use core::ops::Range;

/// Byte range of a fixed-position header field.
pub(crate) type Field = Range<usize>;

pub(crate) fn get_u16(buf: &[u8], field: Field) -> u16 {
    u16::from_be_bytes([buf[field.start], buf[field.start + 1]])
}

pub(crate) fn get_u32(buf: &[u8], field: Field) -> u32 {
    let at = field.start;
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

pub(crate) fn get_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

pub(crate) fn put_u16(buf: &mut [u8], field: Field, value: u16) {
    buf[field.start..field.start + 2].copy_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_u32(buf: &mut [u8], field: Field, value: u32) {
    buf[field.start..field.start + 4].copy_from_slice(&value.to_be_bytes());
}
