//! The whole ingress parse: Ethernet → ARP | IPv4 → TCP | ICMP echo, in one call.

use core::fmt;

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use super::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use super::ipv4::{IpProtocol, Ipv4Error, Ipv4Packet, Ipv4Repr};
use super::tcp::{TcpError, TcpPacket};
use super::tcp_repr::TcpRepr;

/// Which checksums software handles (the rest are trusted to / left for the NIC).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct ChecksumCaps {
    /// Verify IPv4, TCP and ICMP checksums on receive.
    pub verify_rx: bool,
    /// Compute them on transmit (otherwise they are written as 0).
    pub fill_tx: bool,
    /// With `fill_tx`: the port computes the IPv4 and TCP checksums of the
    /// frames that ask it to (TX checksum offload); `post` then writes only
    /// the pseudo-header sum into frames whose buffer can carry the request
    /// (`io::FrameBuf::request_tx_checksums`), and computes the rest.
    pub tx_offload: bool,
}

impl Default for ChecksumCaps {
    fn default() -> Self {
        ChecksumCaps {
            verify_rx: true,
            fill_tx: true,
            tx_offload: false,
        }
    }
}

/// Why a received frame was dropped; one engine counter per variant.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum ParseError {
    EthTruncated,
    UnsupportedEthertype,
    ArpMalformed,
    IpTruncated,
    IpBadVersion,
    IpBadHeaderLen,
    IpBadTotalLen,
    IpBadChecksum,
    IpFragment,
    UnsupportedIpProtocol,
    IcmpMalformed,
    TcpTruncated,
    TcpBadDataOffset,
    TcpBadChecksum,
    TcpBadOptions,
}

impl ParseError {
    /// Every variant, in declaration order (for counter tables).
    pub const ALL: [ParseError; 15] = [
        ParseError::EthTruncated,
        ParseError::UnsupportedEthertype,
        ParseError::ArpMalformed,
        ParseError::IpTruncated,
        ParseError::IpBadVersion,
        ParseError::IpBadHeaderLen,
        ParseError::IpBadTotalLen,
        ParseError::IpBadChecksum,
        ParseError::IpFragment,
        ParseError::UnsupportedIpProtocol,
        ParseError::IcmpMalformed,
        ParseError::TcpTruncated,
        ParseError::TcpBadDataOffset,
        ParseError::TcpBadChecksum,
        ParseError::TcpBadOptions,
    ];

    /// Stable snake_case label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ParseError::EthTruncated => "eth_truncated",
            ParseError::UnsupportedEthertype => "unsupported_ethertype",
            ParseError::ArpMalformed => "arp_malformed",
            ParseError::IpTruncated => "ip_truncated",
            ParseError::IpBadVersion => "ip_bad_version",
            ParseError::IpBadHeaderLen => "ip_bad_header_len",
            ParseError::IpBadTotalLen => "ip_bad_total_len",
            ParseError::IpBadChecksum => "ip_bad_checksum",
            ParseError::IpFragment => "ip_fragment",
            ParseError::UnsupportedIpProtocol => "unsupported_ip_protocol",
            ParseError::IcmpMalformed => "icmp_malformed",
            ParseError::TcpTruncated => "tcp_truncated",
            ParseError::TcpBadDataOffset => "tcp_bad_data_offset",
            ParseError::TcpBadChecksum => "tcp_bad_checksum",
            ParseError::TcpBadOptions => "tcp_bad_options",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ParseError {}

impl From<Ipv4Error> for ParseError {
    fn from(err: Ipv4Error) -> Self {
        match err {
            Ipv4Error::Truncated => ParseError::IpTruncated,
            Ipv4Error::BadVersion => ParseError::IpBadVersion,
            Ipv4Error::BadHeaderLen => ParseError::IpBadHeaderLen,
            Ipv4Error::BadTotalLen => ParseError::IpBadTotalLen,
            Ipv4Error::BadChecksum => ParseError::IpBadChecksum,
            Ipv4Error::Fragment => ParseError::IpFragment,
        }
    }
}

impl From<TcpError> for ParseError {
    fn from(err: TcpError) -> Self {
        match err {
            TcpError::Truncated => ParseError::TcpTruncated,
            TcpError::BadDataOffset => ParseError::TcpBadDataOffset,
            TcpError::BadChecksum => ParseError::TcpBadChecksum,
            TcpError::BadOptions => ParseError::TcpBadOptions,
        }
    }
}

/// A received frame the engine can act on; payloads borrow the frame.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct IngressFrame<'a> {
    pub eth: EthernetRepr,
    pub l3: L3<'a>,
}

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub enum L3<'a> {
    Arp(ArpRepr),
    Ipv4 { ip: Ipv4Repr, l4: L4<'a> },
}

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub enum L4<'a> {
    Tcp(TcpRepr<'a>),
    Icmp(Icmpv4Repr<'a>),
}

/// Parses a received Ethernet frame down to TCP or ICMP echo. Checks format only: flag
/// combinations, addresses and ports are the engine's policy. Bytes after the IPv4 total
/// length (Ethernet padding) are ignored.
pub fn parse_ingress<'a>(
    frame: &'a [u8],
    caps: &ChecksumCaps,
) -> Result<IngressFrame<'a>, ParseError> {
    let eth_frame = EthernetFrame::new_checked(frame).map_err(|_| ParseError::EthTruncated)?;
    let eth = EthernetRepr::parse(&eth_frame).map_err(|_| ParseError::EthTruncated)?;
    let l3 = match eth.ethertype {
        EtherType::Arp => {
            let packet = ArpPacket::new_unchecked(eth_frame.payload());
            L3::Arp(ArpRepr::parse(&packet).map_err(|_| ParseError::ArpMalformed)?)
        }
        EtherType::Ipv4 => parse_ipv4(eth_frame.payload(), caps)?,
        _ => return Err(ParseError::UnsupportedEthertype),
    };
    Ok(IngressFrame { eth, l3 })
}

fn parse_ipv4<'a>(bytes: &'a [u8], caps: &ChecksumCaps) -> Result<L3<'a>, ParseError> {
    let packet = Ipv4Packet::new_unchecked(bytes);
    let ip = Ipv4Repr::parse(&packet, caps.verify_rx)?;
    let payload = packet.payload();
    let l4 = match ip.protocol {
        IpProtocol::Tcp => {
            let segment = TcpPacket::new_unchecked(payload);
            L4::Tcp(TcpRepr::parse(&segment, ip.src, ip.dst, caps.verify_rx)?)
        }
        IpProtocol::Icmp => {
            let message = Icmpv4Packet::new_unchecked(payload);
            let icmp = Icmpv4Repr::parse(&message, caps.verify_rx)
                .map_err(|_| ParseError::IcmpMalformed)?;
            L4::Icmp(icmp)
        }
        _ => return Err(ParseError::UnsupportedIpProtocol),
    };
    Ok(L3::Ipv4 { ip, l4 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;
    use crate::wire::{ArpOperation, TcpFlags};

    const VERIFY: ChecksumCaps = ChecksumCaps {
        verify_rx: true,
        fill_tx: true,
        tx_offload: false,
    };

    fn tcp_flags_of(frame: &[u8]) -> TcpFlags {
        match parse_ingress(frame, &VERIFY) {
            Ok(IngressFrame {
                l3: L3::Ipv4 {
                    l4: L4::Tcp(tcp), ..
                },
                ..
            }) => tcp.flags,
            other => panic!("not TCP: {other:?}"),
        }
    }

    #[test]
    fn tcp_frames() {
        assert_eq!(tcp_flags_of(&test_frames::SYN), TcpFlags::SYN);
        assert_eq!(
            tcp_flags_of(&test_frames::SYNACK_ALL_OPTIONS),
            TcpFlags::SYN | TcpFlags::ACK
        );
        assert_eq!(
            tcp_flags_of(&test_frames::DATA),
            TcpFlags::PSH | TcpFlags::ACK
        );
        assert_eq!(tcp_flags_of(&test_frames::SACK_ACK), TcpFlags::ACK);
        assert_eq!(
            tcp_flags_of(&test_frames::FIN),
            TcpFlags::FIN | TcpFlags::ACK
        );
        assert_eq!(
            tcp_flags_of(&test_frames::RST),
            TcpFlags::RST | TcpFlags::ACK
        );
    }

    #[test]
    fn arp_and_icmp_frames() {
        let arp = parse_ingress(&test_frames::ARP, &VERIFY).unwrap();
        assert!(arp.eth.dst.is_broadcast());
        assert!(matches!(
            arp.l3,
            L3::Arp(ArpRepr {
                operation: ArpOperation::Request,
                ..
            })
        ));

        let icmp = parse_ingress(&test_frames::ICMP, &VERIFY).unwrap();
        assert!(matches!(
            icmp.l3,
            L3::Ipv4 {
                l4: L4::Icmp(Icmpv4Repr::EchoRequest {
                    ident: 0x1234,
                    seq_no: 1,
                    ..
                }),
                ..
            }
        ));

        let tagged = parse_ingress(&test_frames::VLAN_ICMP_REPLY, &VERIFY).unwrap();
        assert_eq!(tagged.eth.vlan.map(|tag| tag.vid), Some(100));
        assert!(matches!(
            tagged.l3,
            L3::Ipv4 {
                l4: L4::Icmp(Icmpv4Repr::EchoReply { .. }),
                ..
            }
        ));
    }

    #[test]
    fn error_kinds() {
        let parse = |bytes: &[u8]| parse_ingress(bytes, &VERIFY).err();
        assert_eq!(
            parse(&test_frames::SYN[..13]),
            Some(ParseError::EthTruncated)
        );
        assert_eq!(
            parse(&test_frames::IP_FRAGMENT),
            Some(ParseError::IpFragment)
        );
        assert_eq!(
            parse(&test_frames::IP_FRAGMENT_TAIL),
            Some(ParseError::IpFragment)
        );
        assert_eq!(
            parse(&test_frames::ARP[..40]),
            Some(ParseError::ArpMalformed)
        );
        assert_eq!(
            parse(&test_frames::SYN[..30]),
            Some(ParseError::IpTruncated)
        );
        assert_eq!(
            parse(&test_frames::SYN[..73]),
            Some(ParseError::IpBadTotalLen)
        );

        let mut frame = test_frames::SYN;
        frame[12] = 0x86; // IPv6
        frame[13] = 0xdd;
        assert_eq!(parse(&frame), Some(ParseError::UnsupportedEthertype));

        let mut frame = test_frames::SYN;
        frame[73] ^= 0x01; // last option byte
        assert_eq!(parse(&frame), Some(ParseError::TcpBadChecksum));
        assert!(parse_ingress(
            &frame,
            &ChecksumCaps {
                verify_rx: false,
                fill_tx: true,
                tx_offload: false,
            }
        )
        .is_ok());

        let mut frame = test_frames::SYN;
        frame[23] = 17; // UDP: also breaks the IP checksum, so check without verification
        let no_verify = ChecksumCaps {
            verify_rx: false,
            fill_tx: false,
            tx_offload: false,
        };
        assert_eq!(
            parse_ingress(&frame, &no_verify).err(),
            Some(ParseError::UnsupportedIpProtocol)
        );
        assert_eq!(parse(&frame), Some(ParseError::IpBadChecksum));

        let mut frame = test_frames::ICMP;
        frame[34] = 13; // timestamp request
        assert_eq!(
            parse_ingress(&frame, &no_verify).err(),
            Some(ParseError::IcmpMalformed)
        );
    }

    #[test]
    fn labels_are_unique_snake_case() {
        for (i, a) in ParseError::ALL.iter().enumerate() {
            let label = a.as_str();
            assert!(
                label.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
                "{label}"
            );
            assert_eq!(a.to_string(), label);
            for b in &ParseError::ALL[i + 1..] {
                assert_ne!(label, b.as_str());
            }
        }
        assert_eq!(ParseError::TcpBadChecksum.as_str(), "tcp_bad_checksum");
    }
}
