//! IPv4 (RFC 791). Options are skipped, fragments are recognised but not reassembled.

use core::fmt;
use std::net::Ipv4Addr;

use super::bytes::{get_array, get_u16, put_u16, Field};
use super::checksum;
use super::Error;

/// Length of a header without options (what `Ipv4Repr::emit` writes).
/// ECN codepoints (RFC 3168 5): the low two bits of the DSCP/ECN byte.
pub const ECN_NOT_ECT: u8 = 0b00;
pub const ECN_ECT1: u8 = 0b01;
pub const ECN_ECT0: u8 = 0b10;
pub const ECN_CE: u8 = 0b11;

pub const IPV4_HEADER_LEN: usize = 20;

const FLAG_DONT_FRAG: u16 = 0x4000;
const FLAG_MORE_FRAGS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// The protocol field.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

/// Why an IPv4 packet was rejected; the engine counts each kind separately.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum Ipv4Error {
    /// Shorter than 20 bytes, or than the header length IHL announces.
    Truncated,
    BadVersion,
    /// IHL < 5.
    BadHeaderLen,
    /// Total length smaller than the header, or larger than the buffer.
    BadTotalLen,
    BadChecksum,
    /// More-fragments set or a non-zero offset.
    Fragment,
}

impl fmt::Display for Ipv4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ipv4Error::Truncated => "truncated IPv4 packet",
            Ipv4Error::BadVersion => "IP version is not 4",
            Ipv4Error::BadHeaderLen => "IPv4 header length below 20",
            Ipv4Error::BadTotalLen => "IPv4 total length inconsistent with the buffer",
            Ipv4Error::BadChecksum => "bad IPv4 header checksum",
            Ipv4Error::Fragment => "IPv4 fragment",
        })
    }
}

impl std::error::Error for Ipv4Error {}

impl From<Ipv4Error> for Error {
    fn from(_: Ipv4Error) -> Self {
        Error
    }
}

/// Zero-copy view of an IPv4 packet. The buffer may extend past the total length
/// (Ethernet padding); `payload` stops at the total length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Ipv4Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks version, header length and total length against the buffer (not the checksum).
    pub fn check_len(&self) -> Result<(), Ipv4Error> {
        let len = self.buffer.as_ref().len();
        if len < IPV4_HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Ipv4Error::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < IPV4_HEADER_LEN {
            return Err(Ipv4Error::BadHeaderLen);
        }
        if header_len > len {
            return Err(Ipv4Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len || total_len > len {
            return Err(Ipv4Error::BadTotalLen);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// IHL in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DONT_FRAG != 0
    }

    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MORE_FRAGS != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK) * 8
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        get_array::<4>(self.buffer.as_ref(), field::SRC).into()
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        get_array::<4>(self.buffer.as_ref(), field::DST).into()
    }

    /// Options bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[IPV4_HEADER_LEN..self.header_len()]
    }

    /// True when the header (including options) sums to 0xffff.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// From the end of the header to the total length; borrows the buffer, not `self`.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Writes version 4 and the header length in bytes (a multiple of 4, at most 60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    pub fn set_total_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    pub fn set_ident(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Writes the flags and the fragment offset (in bytes, a multiple of 8).
    pub fn set_flags_and_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut value = (offset / 8) & FRAG_OFFSET_MASK;
        if dont_frag {
            value |= FLAG_DONT_FRAG;
        }
        if more_frags {
            value |= FLAG_MORE_FRAGS;
        }
        put_u16(self.buffer.as_mut(), field::FLAGS_FRAG, value);
    }

    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let value = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(value);
    }

    /// From the end of the header to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// Semantic IPv4 header of an unfragmented packet.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the header, up to the total length.
    pub payload_len: usize,
    pub ttl: u8,
    /// DSCP in the high six bits, ECN in the low two.
    pub dscp_ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Checks, in order: lengths and version (see `check_len`), the checksum when asked, then
    /// fragmentation. Options are skipped.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Ipv4Packet<T>,
        verify_checksum: bool,
    ) -> Result<Ipv4Repr, Ipv4Error> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Ipv4Error::BadChecksum);
        }
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Ipv4Error::Fragment);
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// ECN codepoint (low two bits of `dscp_ecn`).
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn & 0x03
    }

    pub const fn header_len(&self) -> usize {
        IPV4_HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        IPV4_HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (no options). The buffer must hold at least 20 bytes and
    /// `payload_len` must be at most 65515 (the frame emitters check both).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        fill_checksum: bool,
    ) {
        debug_assert!(self.buffer_len() <= usize::from(u16::MAX));
        packet.set_version_and_header_len(IPV4_HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len(self.buffer_len() as u16);
        packet.set_ident(self.ident);
        packet.set_flags_and_frag(self.dont_frag, false, 0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        if fill_checksum {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;

    fn ip_of(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn parse_syn_header() {
        let packet = Ipv4Packet::new_checked(ip_of(&test_frames::SYN)).unwrap();
        assert!(packet.verify_checksum());
        let repr = Ipv4Repr::parse(&packet, true).unwrap();
        assert_eq!(
            repr,
            Ipv4Repr {
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(10, 0, 0, 2),
                protocol: IpProtocol::Tcp,
                payload_len: 40,
                ttl: 64,
                dscp_ecn: 0,
                ident: 0x1c46,
                dont_frag: true,
            }
        );
        assert_eq!(packet.payload().len(), 40);

        let mut out = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), true);
        assert_eq!(out, ip_of(&test_frames::SYN)[..20]);
    }

    #[test]
    fn padding_after_total_len_is_ignored() {
        // The RST frame carries 6 bytes of Ethernet padding after a 40-byte datagram.
        let bytes = ip_of(&test_frames::RST);
        assert_eq!(bytes.len(), 46);
        let packet = Ipv4Packet::new_checked(bytes).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet, true).unwrap().payload_len, 20);
        assert_eq!(packet.payload().len(), 20);
    }

    #[test]
    fn fragments_are_recognised() {
        for frame in [
            &test_frames::IP_FRAGMENT[..],
            &test_frames::IP_FRAGMENT_TAIL[..],
        ] {
            let packet = Ipv4Packet::new_checked(ip_of(frame)).unwrap();
            assert_eq!(Ipv4Repr::parse(&packet, true), Err(Ipv4Error::Fragment));
        }
        let tail = Ipv4Packet::new_unchecked(ip_of(&test_frames::IP_FRAGMENT_TAIL));
        assert_eq!(tail.frag_offset(), 32);
        assert!(!tail.more_frags());
    }

    #[test]
    fn header_errors() {
        let good = ip_of(&test_frames::SYN);
        let check = |bytes: &[u8]| Ipv4Repr::parse(&Ipv4Packet::new_unchecked(bytes), true);
        assert_eq!(check(&good[..19]), Err(Ipv4Error::Truncated));
        assert_eq!(check(&good[..59]), Err(Ipv4Error::BadTotalLen));

        let mut bytes = [0u8; 60];
        bytes.copy_from_slice(good);
        bytes[0] = 0x65;
        assert_eq!(check(&bytes), Err(Ipv4Error::BadVersion));
        bytes[0] = 0x44;
        assert_eq!(check(&bytes), Err(Ipv4Error::BadHeaderLen));
        bytes[0] = 0x4f; // announces a 60-byte header in a 40-byte buffer
        assert_eq!(check(&bytes[..40]), Err(Ipv4Error::Truncated));
        bytes[0] = 0x45;
        bytes[3] = 19; // total length below the header
        assert_eq!(check(&bytes), Err(Ipv4Error::BadTotalLen));
        bytes[3] = 60;
        bytes[8] = 63; // TTL changed without fixing the checksum
        assert_eq!(check(&bytes), Err(Ipv4Error::BadChecksum));
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..]), false).is_ok());
    }

    #[test]
    fn options_are_skipped() {
        // SYN header grown by one 4-byte option (NOP NOP NOP EOL) with the total length and
        // checksum fixed up.
        let mut bytes = [0u8; 64];
        bytes[..20].copy_from_slice(&ip_of(&test_frames::SYN)[..20]);
        bytes[20..24].copy_from_slice(&[1, 1, 1, 0]);
        bytes[24..].copy_from_slice(&ip_of(&test_frames::SYN)[20..]);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_and_header_len(24);
        packet.set_total_len(64);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        let repr = Ipv4Repr::parse(&packet, true).unwrap();
        assert_eq!(repr.payload_len, 40);
        assert_eq!(packet.payload(), &ip_of(&test_frames::SYN)[20..]);
    }
}
