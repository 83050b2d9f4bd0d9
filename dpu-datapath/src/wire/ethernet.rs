//! Ethernet II frames with at most one 802.1Q VLAN tag.

use core::fmt;
use core::str::FromStr;

use super::bytes::{get_array, get_u16, put_u16, Field};
use super::{Error, Result};

/// Header length of an untagged frame.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Header length of a frame carrying one 802.1Q tag.
pub const ETHERNET_VLAN_HEADER_LEN: usize = 18;

mod field {
    use super::Field;
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: Field = 12..14;
    // Only present when ETHERTYPE is 0x8100.
    pub const VLAN_TCI: Field = 14..16;
    pub const INNER_ETHERTYPE: Field = 16..18;
}

/// A 48-bit MAC address.
#[derive(Copy, Clone, Eq, PartialEq, Ord, PartialOrd, Hash, Debug, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set (broadcast is a multicast address too).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

/// Parses the colon form `aa:bb:cc:dd:ee:ff` (exactly two hex digits per octet).
impl FromStr for EthernetAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut out {
            let part = parts.next().ok_or(Error)?;
            // from_str_radix alone would accept a sign ("+f").
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| Error)?;
        }
        match parts.next() {
            Some(_) => Err(Error),
            None => Ok(EthernetAddress(out)),
        }
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The EtherType field.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum EtherType {
    Ipv4,
    Arp,
    Vlan,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

/// 802.1Q tag control information.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default)]
pub struct VlanTag {
    /// Priority code point, 3 bits.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 12 bits.
    pub vid: u16,
}

impl VlanTag {
    pub fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// Packs the tag; out-of-range `pcp` / `vid` bits are dropped.
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

/// Zero-copy view of an Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps without checking; accessors may panic unless `check_len` passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the whole header, including a VLAN tag if the outer type announces one, is
    /// within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < ETHERNET_HEADER_LEN || len < self.header_len() {
            return Err(Error);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(get_array(self.buffer.as_ref(), field::DST))
    }

    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(get_array(self.buffer.as_ref(), field::SRC))
    }

    /// The raw type field at offset 12 (0x8100 on tagged frames).
    pub fn outer_ethertype(&self) -> EtherType {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    pub fn is_tagged(&self) -> bool {
        self.outer_ethertype() == EtherType::Vlan
    }

    pub fn vlan_tag(&self) -> Option<VlanTag> {
        self.is_tagged()
            .then(|| VlanTag::from_tci(get_u16(self.buffer.as_ref(), field::VLAN_TCI)))
    }

    /// Type of the payload: the inner type on tagged frames.
    pub fn ethertype(&self) -> EtherType {
        let at = if self.is_tagged() {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        get_u16(self.buffer.as_ref(), at).into()
    }

    /// 14, or 18 on tagged frames.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            ETHERNET_VLAN_HEADER_LEN
        } else {
            ETHERNET_HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the (possibly tagged) header; borrows the underlying buffer, not `self`.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DST..field::DST + 6].copy_from_slice(&addr.0);
    }

    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SRC..field::SRC + 6].copy_from_slice(&addr.0);
    }

    pub fn set_outer_ethertype(&mut self, ethertype: EtherType) {
        put_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    /// Writes the tag control information; the outer type must already be `Vlan`.
    pub fn set_vlan_tci(&mut self, tci: u16) {
        put_u16(self.buffer.as_mut(), field::VLAN_TCI, tci);
    }

    /// Writes the payload type: the inner field on tagged frames (set the outer type first).
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = if self.is_tagged() {
            field::INNER_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        put_u16(self.buffer.as_mut(), at, ethertype.into());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// Semantic Ethernet header.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    pub vlan: Option<VlanTag>,
    /// Payload type (the inner type when `vlan` is present).
    pub ethertype: EtherType,
}

impl EthernetRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src: frame.src_addr(),
            dst: frame.dst_addr(),
            vlan: frame.vlan_tag(),
            ethertype: frame.ethertype(),
        })
    }

    pub fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            ETHERNET_VLAN_HEADER_LEN
        } else {
            ETHERNET_HEADER_LEN
        }
    }

    /// Writes the header; the buffer must hold at least `header_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        match self.vlan {
            Some(tag) => {
                frame.set_outer_ethertype(EtherType::Vlan);
                frame.set_vlan_tci(tag.tci());
                put_u16(
                    frame.buffer.as_mut(),
                    field::INNER_ETHERTYPE,
                    self.ethertype.into(),
                );
            }
            None => frame.set_outer_ethertype(self.ethertype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;

    const CLIENT: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const SERVER: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    #[test]
    fn untagged_frame() {
        let frame = EthernetFrame::new_checked(&test_frames::SYN[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(
            repr,
            EthernetRepr {
                src: CLIENT,
                dst: SERVER,
                vlan: None,
                ethertype: EtherType::Ipv4
            }
        );
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload()[0], 0x45);

        let mut out = [0u8; 14];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(out, test_frames::SYN[..14]);
    }

    #[test]
    fn vlan_tagged_frame() {
        let frame = EthernetFrame::new_checked(&test_frames::VLAN_ICMP_REPLY[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(
            repr.vlan,
            Some(VlanTag {
                pcp: 3,
                dei: false,
                vid: 100
            })
        );
        assert_eq!(repr.ethertype, EtherType::Ipv4);
        assert_eq!(frame.outer_ethertype(), EtherType::Vlan);
        assert_eq!(repr.header_len(), 18);
        assert_eq!(frame.payload()[0], 0x45);

        let mut out = [0u8; 18];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(out, test_frames::VLAN_ICMP_REPLY[..18]);
    }

    #[test]
    fn truncated_headers() {
        assert!(EthernetFrame::new_checked(&test_frames::SYN[..13]).is_err());
        // Announces a tag but ends before the inner type.
        assert!(EthernetFrame::new_checked(&test_frames::VLAN_ICMP_REPLY[..17]).is_err());
        let frame = EthernetFrame::new_checked(&test_frames::VLAN_ICMP_REPLY[..18]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn address_text_and_classes() {
        let addr: EthernetAddress = "52:54:00:ab:cd:EF".parse().unwrap();
        assert_eq!(addr, SERVER);
        assert_eq!(addr.to_string(), "52:54:00:ab:cd:ef");
        assert!(addr.is_unicast() && !addr.is_multicast());
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:00",
            "5:54:00:ab:cd:ef",
            "+f:54:00:ab:cd:ef",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(Error), "{bad:?}");
        }
    }

    #[test]
    fn ethertype_conversions() {
        for raw in [0x0800u16, 0x0806, 0x8100, 0x86dd, 0] {
            assert_eq!(u16::from(EtherType::from(raw)), raw);
        }
        assert_eq!(EtherType::from(0x86dd), EtherType::Unknown(0x86dd));
    }

    #[test]
    fn vlan_tci_bits() {
        let tag = VlanTag {
            pcp: 7,
            dei: true,
            vid: 0xfff,
        };
        assert_eq!(tag.tci(), 0xffff);
        assert_eq!(VlanTag::from_tci(0xffff), tag);
        assert_eq!(
            VlanTag::from_tci(0x6064),
            VlanTag {
                pcp: 3,
                dei: false,
                vid: 100
            }
        );
    }
}
