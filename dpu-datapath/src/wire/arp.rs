//! ARP (RFC 826). The view handles any address sizes; the `Repr` only Ethernet + IPv4.

use core::ops::Range;
use std::net::Ipv4Addr;

use super::bytes::{get_u16, put_u16, Field};
use super::ethernet::{EtherType, EthernetAddress};
use super::{Error, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_IPV4_LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    // Addresses follow; their sizes come from HLEN / PLEN.
    pub const ADDRS: usize = 8;
}

/// The ARP opcode.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// Zero-copy view of an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the fixed part and all four addresses (sized by HLEN / PLEN) are in the buffer.
    /// Trailing bytes (Ethernet padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::ADDRS || len < self.target_protocol_range().end {
            return Err(Error);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> EtherType {
        get_u16(self.buffer.as_ref(), field::PTYPE).into()
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> ArpOperation {
        get_u16(self.buffer.as_ref(), field::OPER).into()
    }

    fn source_hardware_range(&self) -> Range<usize> {
        field::ADDRS..field::ADDRS + usize::from(self.hardware_len())
    }

    fn source_protocol_range(&self) -> Range<usize> {
        let start = self.source_hardware_range().end;
        start..start + usize::from(self.protocol_len())
    }

    fn target_hardware_range(&self) -> Range<usize> {
        let start = self.source_protocol_range().end;
        start..start + usize::from(self.hardware_len())
    }

    fn target_protocol_range(&self) -> Range<usize> {
        let start = self.target_hardware_range().end;
        start..start + usize::from(self.protocol_len())
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.source_hardware_range()]
    }

    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.source_protocol_range()]
    }

    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.target_hardware_range()]
    }

    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.target_protocol_range()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    pub fn set_protocol_type(&mut self, value: EtherType) {
        put_u16(self.buffer.as_mut(), field::PTYPE, value.into());
    }

    /// Set before the addresses: it moves them.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Set before the addresses: it moves them.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    pub fn set_operation(&mut self, value: ArpOperation) {
        put_u16(self.buffer.as_mut(), field::OPER, value.into());
    }

    /// `addr` must be `hardware_len()` bytes long.
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let range = self.source_hardware_range();
        self.buffer.as_mut()[range].copy_from_slice(addr);
    }

    /// `addr` must be `protocol_len()` bytes long.
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let range = self.source_protocol_range();
        self.buffer.as_mut()[range].copy_from_slice(addr);
    }

    /// `addr` must be `hardware_len()` bytes long.
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let range = self.target_hardware_range();
        self.buffer.as_mut()[range].copy_from_slice(addr);
    }

    /// `addr` must be `protocol_len()` bytes long.
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let range = self.target_protocol_range();
        self.buffer.as_mut()[range].copy_from_slice(addr);
    }
}

/// Semantic Ethernet/IPv4 ARP packet.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Fails unless the packet is complete and is Ethernet (1, len 6) over IPv4 (0x0800, len 4).
    /// Unknown opcodes parse; what to do with them is the engine's business.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error);
        }
        let mac = |bytes: &[u8]| {
            <[u8; 6]>::try_from(bytes)
                .map(EthernetAddress)
                .map_err(|_| Error)
        };
        let ip = |bytes: &[u8]| {
            <[u8; 4]>::try_from(bytes)
                .map(Ipv4Addr::from)
                .map_err(|_| Error)
        };
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr())?,
            source_protocol_addr: ip(packet.source_protocol_addr())?,
            target_hardware_addr: mac(packet.target_hardware_addr())?,
            target_protocol_addr: ip(packet.target_protocol_addr())?,
        })
    }

    pub const fn buffer_len(&self) -> usize {
        ARP_IPV4_LEN
    }

    /// Writes all 28 bytes; the buffer must be at least that long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;

    fn arp_bytes() -> &'static [u8] {
        &test_frames::ARP[14..]
    }

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn parse_padded_request() {
        // 28 bytes of ARP followed by 18 bytes of Ethernet padding.
        let packet = ArpPacket::new_checked(arp_bytes()).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!(ArpRepr::parse(&packet).unwrap(), request());
    }

    #[test]
    fn emit_matches_capture() {
        let mut out = [0u8; ARP_IPV4_LEN];
        request().emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out[..], arp_bytes()[..ARP_IPV4_LEN]);
    }

    #[test]
    fn rejects_truncated_and_foreign() {
        assert!(ArpPacket::new_checked(&arp_bytes()[..27]).is_err());
        assert!(ArpPacket::new_checked(&arp_bytes()[..7]).is_err());
        let mut other = [0u8; 28];
        other.copy_from_slice(&arp_bytes()[..28]);
        other[1] = 6; // IEEE 802 hardware type
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&other[..])),
            Err(Error)
        );
        other[1] = 1;
        other[4] = 8; // hardware length 8: addresses now overrun the 28 bytes
        assert!(ArpPacket::new_checked(&other[..]).is_err());
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&other[..])),
            Err(Error)
        );
    }
}
