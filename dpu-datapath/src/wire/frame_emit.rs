//! Whole-frame emitters for the engine's transmit path. They size-check the buffer (returning
//! [`Error`] instead of panicking) and fill the length / type fields that follow from the
//! layers below.

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use super::frame::ChecksumCaps;
use super::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use super::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use super::tcp::TcpPacket;
use super::tcp_repr::TcpRepr;
use super::{Error, Result};

/// Splits the first `l2 + l3 + l4` bytes of `buf` into the three layers.
fn carve(
    buf: &mut [u8],
    l2: usize,
    l3: usize,
    l4: usize,
) -> Result<(&mut [u8], &mut [u8], &mut [u8])> {
    let frame = buf.get_mut(..l2 + l3 + l4).ok_or(Error)?;
    let (l2_buf, rest) = frame.split_at_mut(l2);
    let (l3_buf, l4_buf) = rest.split_at_mut(l3);
    Ok((l2_buf, l3_buf, l4_buf))
}

/// IPv4 header for a payload of `payload_len` bytes of `protocol`, or Error if the datagram
/// would exceed 65535 bytes.
fn ip_for(ip: &Ipv4Repr, protocol: IpProtocol, payload_len: usize) -> Result<Ipv4Repr> {
    let ip = Ipv4Repr {
        protocol,
        payload_len,
        ..*ip
    };
    if ip.buffer_len() > usize::from(u16::MAX) {
        return Err(Error);
    }
    Ok(ip)
}

/// Writes Ethernet + IPv4 + TCP header + payload into `buf`; returns the bytes written.
/// The EtherType, IP protocol and `payload_len` are set here (callers may pass 0).
/// Err if `buf` is too small or the segment does not fit one datagram.
pub fn emit_tcp_frame(
    buf: &mut [u8],
    eth: &EthernetRepr,
    ip: &Ipv4Repr,
    tcp: &TcpRepr<'_>,
    caps: &ChecksumCaps,
) -> Result<usize> {
    let eth = EthernetRepr {
        ethertype: EtherType::Ipv4,
        ..*eth
    };
    let ip = ip_for(ip, IpProtocol::Tcp, tcp.buffer_len())?;
    let (l2, l3, l4) = carve(buf, eth.header_len(), ip.header_len(), tcp.buffer_len())?;
    eth.emit(&mut EthernetFrame::new_unchecked(l2));
    ip.emit(&mut Ipv4Packet::new_unchecked(l3), caps.fill_tx);
    tcp.emit(
        &mut TcpPacket::new_unchecked(l4),
        ip.src,
        ip.dst,
        caps.fill_tx,
    );
    Ok(eth.header_len() + ip.buffer_len())
}

/// Writes Ethernet + ARP into `buf`; returns the bytes written (no padding to 60).
pub fn emit_arp_frame(buf: &mut [u8], eth: &EthernetRepr, arp: &ArpRepr) -> Result<usize> {
    let eth = EthernetRepr {
        ethertype: EtherType::Arp,
        ..*eth
    };
    let (l2, l3, _) = carve(buf, eth.header_len(), arp.buffer_len(), 0)?;
    eth.emit(&mut EthernetFrame::new_unchecked(l2));
    arp.emit(&mut ArpPacket::new_unchecked(l3));
    Ok(eth.header_len() + arp.buffer_len())
}

/// Writes Ethernet + IPv4 + ICMP echo into `buf`; returns the bytes written. As for TCP, the
/// EtherType, protocol and `payload_len` are set here.
pub fn emit_icmp_frame(
    buf: &mut [u8],
    eth: &EthernetRepr,
    ip: &Ipv4Repr,
    icmp: &Icmpv4Repr<'_>,
    caps: &ChecksumCaps,
) -> Result<usize> {
    let eth = EthernetRepr {
        ethertype: EtherType::Ipv4,
        ..*eth
    };
    let ip = ip_for(ip, IpProtocol::Icmp, icmp.buffer_len())?;
    let (l2, l3, l4) = carve(buf, eth.header_len(), ip.header_len(), icmp.buffer_len())?;
    eth.emit(&mut EthernetFrame::new_unchecked(l2));
    ip.emit(&mut Ipv4Packet::new_unchecked(l3), caps.fill_tx);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(l4), caps.fill_tx);
    Ok(eth.header_len() + ip.buffer_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{parse_ingress, IngressFrame, L3, L4};
    use crate::wire::test_frames;

    const CAPS: ChecksumCaps = ChecksumCaps {
        verify_rx: true,
        fill_tx: true,
        tx_offload: false,
    };

    #[test]
    fn rst_frame_is_byte_exact() {
        let parsed = parse_ingress(&test_frames::RST, &CAPS).unwrap();
        let L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } = parsed.l3
        else {
            panic!("{parsed:?}")
        };
        let mut buf = [0u8; 64];
        let ip_without_len = Ipv4Repr {
            payload_len: 0,
            ..ip
        };
        let len = emit_tcp_frame(&mut buf, &parsed.eth, &ip_without_len, &tcp, &CAPS).unwrap();
        assert_eq!(len, 54);
        assert_eq!(buf[..54], test_frames::RST[..54]);
        assert_eq!(
            emit_tcp_frame(&mut buf[..53], &parsed.eth, &ip, &tcp, &CAPS),
            Err(Error)
        );
    }

    #[test]
    fn arp_and_icmp_frames_are_byte_exact() {
        let parsed = parse_ingress(&test_frames::ARP, &CAPS).unwrap();
        let L3::Arp(arp) = parsed.l3 else {
            panic!("{parsed:?}")
        };
        let mut buf = [0u8; 128];
        assert_eq!(emit_arp_frame(&mut buf, &parsed.eth, &arp), Ok(42));
        assert_eq!(buf[..42], test_frames::ARP[..42]);
        assert_eq!(
            emit_arp_frame(&mut buf[..41], &parsed.eth, &arp),
            Err(Error)
        );

        for frame in [&test_frames::ICMP[..], &test_frames::VLAN_ICMP_REPLY[..]] {
            let parsed = parse_ingress(frame, &CAPS).unwrap();
            let L3::Ipv4 {
                ip,
                l4: L4::Icmp(icmp),
            } = parsed.l3
            else {
                panic!("{parsed:?}")
            };
            let len = emit_icmp_frame(&mut buf, &parsed.eth, &ip, &icmp, &CAPS).unwrap();
            assert_eq!(buf[..len], frame[..]);
        }
    }

    #[test]
    fn tcp_frames_round_trip() {
        for frame in [
            &test_frames::SYN[..],
            &test_frames::SYNACK_ALL_OPTIONS[..],
            &test_frames::DATA[..],
            &test_frames::SACK_ACK[..],
            &test_frames::FIN[..],
        ] {
            let parsed = parse_ingress(frame, &CAPS).unwrap();
            let L3::Ipv4 {
                ip,
                l4: L4::Tcp(tcp),
            } = parsed.l3
            else {
                panic!("{parsed:?}")
            };
            let mut buf = [0u8; 128];
            let len = emit_tcp_frame(&mut buf, &parsed.eth, &ip, &tcp, &CAPS).unwrap();
            // Linux pads options differently (so lengths may shrink): compare meaning.
            let again: IngressFrame<'_> = parse_ingress(&buf[..len], &CAPS).unwrap();
            let expected_ip = Ipv4Repr {
                payload_len: tcp.buffer_len(),
                ..ip
            };
            assert_eq!(
                again,
                IngressFrame {
                    l3: L3::Ipv4 {
                        ip: expected_ip,
                        l4: L4::Tcp(tcp)
                    },
                    ..parsed
                }
            );
        }
    }

    #[test]
    fn checksums_left_zero_for_offload() {
        let parsed = parse_ingress(&test_frames::DATA, &CAPS).unwrap();
        let L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } = parsed.l3
        else {
            panic!("{parsed:?}")
        };
        let offload = ChecksumCaps {
            verify_rx: false,
            fill_tx: false,
            tx_offload: false,
        };
        let mut buf = [0xaau8; 128];
        let len = emit_tcp_frame(&mut buf, &parsed.eth, &ip, &tcp, &offload).unwrap();
        assert_eq!(buf[24..26], [0, 0]); // IPv4 checksum
        assert_eq!(buf[50..52], [0, 0]); // TCP checksum
        assert!(parse_ingress(&buf[..len], &offload).is_ok());
        assert_eq!(
            parse_ingress(&buf[..len], &CAPS).err().map(|e| e.as_str()),
            Some("ip_bad_checksum")
        );
    }

    #[test]
    fn oversized_segment_is_refused() {
        let payload = [0u8; 65_600];
        let parsed = parse_ingress(&test_frames::DATA, &CAPS).unwrap();
        let L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } = parsed.l3
        else {
            panic!("{parsed:?}")
        };
        let big = TcpRepr {
            payload: &payload,
            ..tcp
        };
        let mut buf = vec![0u8; 70_000];
        assert_eq!(
            emit_tcp_frame(&mut buf, &parsed.eth, &ip, &big, &CAPS),
            Err(Error)
        );
    }
}
