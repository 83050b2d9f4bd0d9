//! The established-path shape read at fixed offsets, as FlexTOE's and TAS's
//! fast paths do: Ethernet without VLAN, IPv4 without options or fragments,
//! TCP with no options or exactly `NOP NOP TS` / `TS NOP NOP`, flags an
//! established segment may carry. Anything else (and any checksum failure)
//! answers `None` and takes the generic parser, which stays the reference:
//! whenever this answers, the generic verdict is the same (property test
//! below, and the `ingress` fuzz target).

use super::{SackBlocks, Summary, Verdict, FAST_PATH_FLAGS};
use crate::flow::{FlowId, FourTuple};
use crate::wire::{checksum, tcp_checksum, ChecksumCaps, SeqNumber, TcpFlags, ECN_CE};
use std::net::Ipv4Addr;

const ETH: usize = 14;
const IP: usize = 20;
const TCP: usize = 20;
const NOP_NOP_TS: [u8; 4] = [1, 1, 8, 10];

/// The verdict for a frame of the common shape addressed to `mac`/`ip`, or
/// `None` for the generic parser to decide.
pub(super) fn verdict(
    frame: &[u8],
    mac: &[u8; 6],
    ip: Ipv4Addr,
    caps: &ChecksumCaps,
) -> Option<Verdict> {
    let (head, _) = frame.split_first_chunk::<{ ETH + IP + TCP }>()?;
    if head[..6] != mac[..] || head[12..14] != [0x08, 0x00] {
        return None;
    }
    let iph = &head[ETH..ETH + IP];
    let total = usize::from(u16::from_be_bytes([iph[2], iph[3]]));
    // Version 4 with a 20-byte header; no MF bit, fragment offset 0; TCP.
    if iph[0] != 0x45 || iph[6] & 0x3f != 0 || iph[7] != 0 || iph[9] != 6 {
        return None;
    }
    if total < IP + TCP || total > frame.len() - ETH {
        return None;
    }
    let dst = Ipv4Addr::new(iph[16], iph[17], iph[18], iph[19]);
    if dst != ip {
        return None;
    }
    let flags = TcpFlags(head[ETH + IP + 13]);
    if !flags.contains(TcpFlags::ACK) || flags.0 & !FAST_PATH_FLAGS != 0 {
        return None;
    }
    let segment = &frame[ETH + IP..ETH + total];
    let header_len = usize::from(segment[12] >> 4) * 4;
    let ts = match header_len {
        TCP => None,
        32 => {
            let opts = segment.get(TCP..32)?;
            let at = if opts[..4] == NOP_NOP_TS {
                4
            } else if opts[..2] == NOP_NOP_TS[2..] && opts[10..] == NOP_NOP_TS[..2] {
                2
            } else {
                return None;
            };
            let word =
                |i: usize| u32::from_be_bytes([opts[i], opts[i + 1], opts[i + 2], opts[i + 3]]);
            Some((word(at), word(at + 4)))
        }
        _ => return None,
    };
    let src = Ipv4Addr::new(iph[12], iph[13], iph[14], iph[15]);
    if caps.verify_rx
        && (checksum::fold(checksum::sum(iph)) != 0xffff || tcp_checksum(src, dst, segment) != 0)
    {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([segment[i], segment[i + 1]]);
    let u32_at =
        |i: usize| u32::from_be_bytes([segment[i], segment[i + 1], segment[i + 2], segment[i + 3]]);
    Some(Verdict::Tcp {
        rss: 0,
        tuple: FourTuple {
            local_ip: dst,
            local_port: u16_at(2),
            remote_ip: src,
            remote_port: u16_at(0),
        },
        fast: true,
        summary: Summary {
            flow: FlowId(u32::MAX),
            seq: SeqNumber(u32_at(4)),
            ack: SeqNumber(u32_at(8)),
            window: u16_at(14),
            flags,
            ts,
            sack: SackBlocks::default(),
            payload_offset: (ETH + header_len) as u16 + IP as u16,
            payload_len: (total - IP - header_len) as u16,
            ecn_ce: iph[1] & 0b11 == ECN_CE,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::{validate, validate_generic, LocalAddrs, Verdict};
    use crate::wire::{
        emit_tcp_frame, ChecksumCaps, EtherType, EthernetAddress, EthernetRepr, IpProtocol,
        Ipv4Repr, SeqNumber, TcpFlags, TcpOptions, TcpRepr,
    };
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::net::Ipv4Addr;

    const LOCAL: LocalAddrs = LocalAddrs {
        mac: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
        ip: Ipv4Addr::new(198, 18, 0, 2),
    };

    /// An established-path segment to `LOCAL`, with or without timestamps.
    fn segment(ts: bool, flags: TcpFlags, payload: &[u8], ecn: u8) -> Vec<u8> {
        let eth = EthernetRepr {
            src: EthernetAddress([2, 0, 0xc6, 0x12, 0, 1]),
            dst: LOCAL.mac,
            vlan: None,
            ethertype: EtherType::Ipv4,
        };
        let tcp = TcpRepr {
            src_port: 40_000,
            dst_port: 7,
            seq: SeqNumber(0xfff0_0000),
            ack: SeqNumber(12_345),
            flags,
            window: 1024,
            urgent: 0,
            options: TcpOptions {
                timestamps: ts.then_some((77, 88)),
                ..TcpOptions::default()
            },
            payload,
        };
        let ip = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: LOCAL.ip,
            protocol: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            ttl: 64,
            dscp_ecn: ecn,
            ident: 1,
            dont_frag: true,
        };
        let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len() + 6];
        let n = emit_tcp_frame(&mut buf, &eth, &ip, &tcp, &ChecksumCaps::default())
            .expect("room for the frame");
        buf.truncate(n);
        buf
    }

    /// `validate` with its RSS hash cleared, to compare with the generic verdict.
    fn validate_unhashed(frame: &[u8], caps: &ChecksumCaps) -> Verdict {
        let mut v = validate(frame, &LOCAL, caps);
        if let Verdict::Tcp { rss, .. } = &mut v {
            *rss = 0;
        }
        v
    }

    fn both_caps() -> [ChecksumCaps; 2] {
        [
            ChecksumCaps::default(),
            ChecksumCaps {
                verify_rx: false,
                fill_tx: false,
                tx_offload: false,
            },
        ]
    }

    #[test]
    fn the_established_shapes_take_the_fast_parse() {
        for (ts, payload, ecn) in [
            (true, &b"hello"[..], 0),
            (false, &[][..], 3),
            (true, &[][..], 2),
        ] {
            let frame = segment(ts, TcpFlags::ACK | TcpFlags::PSH, payload, ecn);
            for caps in both_caps() {
                let fast = super::verdict(&frame, &LOCAL.mac.0, LOCAL.ip, &caps);
                assert!(fast.is_some(), "ts {ts} payload {}", payload.len());
                assert_eq!(fast, Some(validate_generic(&frame, &LOCAL, &caps)));
            }
        }
        // Our emitter writes `TS NOP NOP`; Linux writes `NOP NOP TS` (the
        // checksum does not change: the same 16-bit words, moved by one).
        let mut frame = segment(true, TcpFlags::ACK, b"x", 0);
        let opts = 14 + 20 + 20;
        frame[opts..opts + 12].rotate_right(2);
        assert_eq!(frame[opts..opts + 4], [1, 1, 8, 10]);
        for caps in both_caps() {
            let fast = super::verdict(&frame, &LOCAL.mac.0, LOCAL.ip, &caps);
            assert!(fast.is_some());
            assert_eq!(fast, Some(validate_generic(&frame, &LOCAL, &caps)));
        }
    }

    #[test]
    fn unusual_segments_go_to_the_generic_parser() {
        let caps = ChecksumCaps::default();
        let syn = segment(true, TcpFlags::SYN, &[], 0);
        assert_eq!(super::verdict(&syn, &LOCAL.mac.0, LOCAL.ip, &caps), None);
        let rst = segment(false, TcpFlags::RST | TcpFlags::ACK, &[], 0);
        assert_eq!(super::verdict(&rst, &LOCAL.mac.0, LOCAL.ip, &caps), None);
        let mut bad_sum = segment(true, TcpFlags::ACK, b"abc", 0);
        let last = bad_sum.len() - 1;
        bad_sum[last] ^= 1;
        assert_eq!(
            super::verdict(&bad_sum, &LOCAL.mac.0, LOCAL.ip, &caps),
            None
        );
        assert_eq!(
            validate_unhashed(&bad_sum, &caps),
            validate_generic(&bad_sum, &LOCAL, &caps)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever the bytes, the fast parse answers only what the generic
        /// parser answers, and `validate` agrees with the generic path.
        #[test]
        fn the_fast_parse_agrees_with_the_generic_parser(
            ts in any::<bool>(),
            flags in any::<u8>(),
            payload in vec(any::<u8>(), 0..40),
            stores in vec((any::<Index>(), any::<u8>()), 0..3),
            cut in proptest::option::of(any::<Index>()),
            extra in vec(any::<u8>(), 0..8),
        ) {
            let mut frame = segment(ts, TcpFlags(flags), &payload, 0);
            frame.extend_from_slice(&extra);
            for (at, value) in stores {
                let i = at.index(frame.len());
                frame[i] = value;
            }
            if let Some(cut) = cut {
                frame.truncate(cut.index(frame.len() + 1));
            }
            for caps in both_caps() {
                let generic = validate_generic(&frame, &LOCAL, &caps);
                if let Some(fast) = super::verdict(&frame, &LOCAL.mac.0, LOCAL.ip, &caps) {
                    prop_assert_eq!(fast, generic);
                }
                prop_assert_eq!(validate_unhashed(&frame, &caps), generic);
            }
        }
    }
}
