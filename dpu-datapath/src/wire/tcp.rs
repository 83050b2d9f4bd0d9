//! TCP segment view (RFC 9293 §3.1) and the TCP checksum.

use core::fmt;
use std::net::Ipv4Addr;

use super::bytes::{get_u16, get_u32, put_u16, put_u32, Field};
use super::checksum;
use super::seq::SeqNumber;
use super::tcp_flags::TcpFlags;
use super::Error;

/// Fixed header length (data offset 5).
pub const TCP_HEADER_LEN: usize = 20;
/// Largest header (data offset 15).
pub const TCP_MAX_HEADER_LEN: usize = 60;

const PROTOCOL_TCP: u8 = 6;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Why a TCP segment was rejected; the engine counts each kind separately.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum TcpError {
    /// Fewer than 20 bytes.
    Truncated,
    /// Data offset below 5 or past the end of the segment.
    BadDataOffset,
    BadChecksum,
    /// Malformed option list (see `TcpOptions::parse`).
    BadOptions,
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpError::Truncated => "truncated TCP segment",
            TcpError::BadDataOffset => "bad TCP data offset",
            TcpError::BadChecksum => "bad TCP checksum",
            TcpError::BadOptions => "malformed TCP options",
        })
    }
}

impl std::error::Error for TcpError {}

impl From<TcpError> for Error {
    fn from(_: TcpError) -> Self {
        Error
    }
}

/// The checksum over the IPv4 pseudo header and `segment` as it stands: the value to store
/// when the checksum field is zero, and 0 when the stored checksum is correct.
pub fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    // A segment longer than u32::MAX cannot exist in an IPv4 datagram; saturate rather than
    // truncate so such a call cannot verify.
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    let total = checksum::pseudo_header_v4(src, dst, PROTOCOL_TCP, len) + checksum::sum(segment);
    !checksum::fold(total)
}

/// Zero-copy view of a TCP segment. The buffer is exactly the segment (the IP payload):
/// the payload runs to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, TcpError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the fixed header is present and the data offset is at least 5 and within the
    /// buffer. Does not look at the checksum or options.
    pub fn check_len(&self) -> Result<(), TcpError> {
        let len = self.buffer.as_ref().len();
        if len < TCP_HEADER_LEN {
            return Err(TcpError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < TCP_HEADER_LEN || header_len > len {
            return Err(TcpError::BadDataOffset);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the whole segment (the underlying buffer).
    pub fn buffer_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(get_u32(self.buffer.as_ref(), field::SEQ_NUM))
    }

    /// The raw acknowledgement field (meaningful only with ACK set).
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(get_u32(self.buffer.as_ref(), field::ACK_NUM))
    }

    /// Data offset in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option area between the fixed header and the data offset.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[TCP_HEADER_LEN..self.header_len()]
    }

    /// Checks the whole buffer against the pseudo header; needs only the 20-byte header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        tcp_checksum(src, dst, self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// Bytes after the header; borrows the buffer, not `self`.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    pub fn set_seq_number(&mut self, value: SeqNumber) {
        put_u32(self.buffer.as_mut(), field::SEQ_NUM, value.0);
    }

    pub fn set_ack_number(&mut self, value: SeqNumber) {
        put_u32(self.buffer.as_mut(), field::ACK_NUM, value.0);
    }

    /// Sets the data offset from a header length in bytes (a multiple of 4, at most 60); the
    /// reserved bits are cleared.
    pub fn set_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((header_len / 4) as u8 & 0x0f) << 4;
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    pub fn set_window_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[TCP_HEADER_LEN..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let value = tcp_checksum(src, dst, self.buffer.as_ref());
        self.set_checksum(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn syn_view() {
        let packet = TcpPacket::new_checked(&test_frames::SYN[34..]).unwrap();
        assert_eq!((packet.src_port(), packet.dst_port()), (54321, 80));
        assert_eq!(packet.seq_number(), SeqNumber(0x3a5c_1f20));
        assert_eq!(packet.flags(), TcpFlags::SYN);
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.options().len(), 20);
        assert!(packet.payload().is_empty());
        assert!(packet.verify_checksum(CLIENT, SERVER));
        // The pseudo header binds the segment to its addresses.
        assert!(!packet.verify_checksum(CLIENT, Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn fill_checksum_matches_capture() {
        let mut segment = [0u8; 59];
        segment.copy_from_slice(&test_frames::DATA[34..]);
        let mut packet = TcpPacket::new_unchecked(&mut segment[..]);
        let stored = packet.checksum();
        packet.set_checksum(0xdead);
        packet.fill_checksum(CLIENT, SERVER);
        assert_eq!(packet.checksum(), stored);
    }

    #[test]
    fn data_offset_checks() {
        let mut segment = [0u8; 40];
        segment.copy_from_slice(&test_frames::SYN[34..]);
        assert_eq!(
            TcpPacket::new_checked(&segment[..19]).err(),
            Some(TcpError::Truncated)
        );
        // Offset 10 words = 40 bytes, but only 39 present.
        assert_eq!(
            TcpPacket::new_checked(&segment[..39]).err(),
            Some(TcpError::BadDataOffset)
        );
        segment[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&segment[..]).err(),
            Some(TcpError::BadDataOffset)
        );
        segment[12] = 0x50;
        let packet = TcpPacket::new_checked(&segment[..]).unwrap();
        assert_eq!(packet.payload().len(), 20);
    }
}
