//! Property tests: no panic on arbitrary or mutated input, emit → parse round trips for
//! every header, and incremental checksum updates equal a full recompute.

use std::net::Ipv4Addr;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;

use super::test_frames;
use super::*;

const VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: true,
    fill_tx: true,
    tx_offload: false,
};
const NO_VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: false,
    fill_tx: false,
    tx_offload: false,
};

const FRAMES: [&[u8]; 11] = [
    &test_frames::SYN,
    &test_frames::SYNACK_ALL_OPTIONS,
    &test_frames::DATA,
    &test_frames::SACK_ACK,
    &test_frames::FIN,
    &test_frames::RST,
    &test_frames::ARP,
    &test_frames::ICMP,
    &test_frames::VLAN_ICMP_REPLY,
    &test_frames::IP_FRAGMENT,
    &test_frames::IP_FRAGMENT_TAIL,
];

/// (frame, source, destination) of every TCP frame.
const TCP_FRAMES: [(&[u8], [u8; 4], [u8; 4]); 6] = [
    (&test_frames::SYN, [10, 0, 0, 1], [10, 0, 0, 2]),
    (
        &test_frames::SYNACK_ALL_OPTIONS,
        [10, 0, 0, 2],
        [10, 0, 0, 1],
    ),
    (&test_frames::DATA, [10, 0, 0, 1], [10, 0, 0, 2]),
    (&test_frames::SACK_ACK, [10, 0, 0, 2], [10, 0, 0, 1]),
    (&test_frames::FIN, [10, 0, 0, 1], [10, 0, 0, 2]),
    (&test_frames::RST, [10, 0, 0, 2], [10, 0, 0, 1]),
];

/// Interprets `bytes` as every header: each view that passes `new_checked` gets every
/// accessor called (they must all be in bounds), and every `Repr::parse` runs.
fn exercise(bytes: &[u8]) {
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let dst = Ipv4Addr::new(10, 0, 0, 2);

    if let Ok(f) = EthernetFrame::new_checked(bytes) {
        let _ = (
            f.dst_addr(),
            f.src_addr(),
            f.outer_ethertype(),
            f.vlan_tag(),
            f.ethertype(),
        );
        let _ = (f.header_len(), f.payload(), EthernetRepr::parse(&f));
    }
    let _ = EthernetRepr::parse(&EthernetFrame::new_unchecked(bytes));

    if let Ok(p) = ArpPacket::new_checked(bytes) {
        let _ = (
            p.hardware_type(),
            p.protocol_type(),
            p.hardware_len(),
            p.protocol_len(),
        );
        let _ = (
            p.operation(),
            p.source_hardware_addr(),
            p.source_protocol_addr(),
        );
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    }
    let _ = ArpRepr::parse(&ArpPacket::new_unchecked(bytes));

    if let Ok(p) = Ipv4Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp_ecn(),
            p.total_len(),
            p.ident(),
        );
        let _ = (
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.ttl(),
            p.protocol(),
        );
        let _ = (
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
            p.options(),
            p.payload(),
        );
        let _ = p.verify_checksum();
    }
    let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(bytes), true);
    let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(bytes), false);

    if let Ok(p) = Icmpv4Packet::new_checked(bytes) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
        );
        let _ = (p.data(), p.verify_checksum());
    }
    let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(bytes), true);
    let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(bytes), false);

    if let Ok(p) = TcpPacket::new_checked(bytes) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.header_len(),
        );
        let _ = (
            p.flags(),
            p.window_len(),
            p.checksum(),
            p.urgent_at(),
            p.options(),
        );
        let _ = (p.payload(), p.verify_checksum(src, dst), p.buffer_len());
    }
    let _ = TcpRepr::parse(&TcpPacket::new_unchecked(bytes), src, dst, true);
    let _ = TcpRepr::parse(&TcpPacket::new_unchecked(bytes), src, dst, false);
    let _ = TcpOptions::parse(bytes);

    let _ = parse_ingress(bytes, &VERIFY);
    let _ = parse_ingress(bytes, &NO_VERIFY);
}

/// A valid frame with some bits flipped, some bytes overwritten, then possibly truncated.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0..FRAMES.len(),
        vec((any::<Index>(), 0u8..8), 0..4),
        vec((any::<Index>(), any::<u8>()), 0..3),
        option::of(any::<Index>()),
    )
        .prop_map(|(which, flips, stores, cut)| {
            let mut frame = FRAMES[which].to_vec();
            for (at, bit) in flips {
                let i = at.index(frame.len());
                frame[i] ^= 1 << bit;
            }
            for (at, value) in stores {
                let i = at.index(frame.len());
                frame[i] = value;
            }
            if let Some(cut) = cut {
                frame.truncate(cut.index(frame.len() + 1));
            }
            frame
        })
}

fn options_strategy() -> impl Strategy<Value = TcpOptions> {
    (
        option::of(any::<u16>()),
        option::of(any::<u8>()),
        any::<bool>(),
        option::of(any::<(u32, u32)>()),
        vec(any::<(u32, u32)>(), 0..=4),
    )
        .prop_map(|(mss, window_scale, sack_permitted, timestamps, blocks)| {
            let mut options = TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                timestamps,
                ..TcpOptions::default()
            };
            for (left, right) in blocks {
                options.push_sack_block((SeqNumber(left), SeqNumber(right)));
            }
            options
        })
}

/// The options a parse of the emitted bytes must give back: the SACK blocks that fit
/// next to the other options within 40 bytes, found by trying counts from the top.
fn expected_after_emit(options: &TcpOptions) -> TcpOptions {
    let mut fixed = 0;
    fixed += if options.mss.is_some() { 4 } else { 0 };
    fixed += if options.sack_permitted { 2 } else { 0 };
    fixed += if options.timestamps.is_some() { 10 } else { 0 };
    fixed += if options.window_scale.is_some() { 3 } else { 0 };
    let held = options.sack_blocks().len();
    let fits = (0..=held)
        .rev()
        .find(|&n| n == 0 || fixed + 2 + 8 * n <= 40)
        .unwrap_or(0);
    let mut expected = TcpOptions {
        sack_count: 0,
        ..*options
    };
    for block in &options.sack_blocks()[..fits] {
        expected.push_sack_block(*block);
    }
    expected
}

fn tcp_repr_strategy(payload: &[u8]) -> impl Strategy<Value = TcpRepr<'_>> {
    (
        any::<(u16, u16, u32, u32, u8, u16, u16)>(),
        options_strategy(),
        0..=payload.len(),
    )
        .prop_map(
            move |((src_port, dst_port, seq, ack, flags, window, urgent), options, len)| TcpRepr {
                src_port,
                dst_port,
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                flags: TcpFlags(flags),
                window,
                urgent,
                options,
                payload: &payload[..len],
            },
        )
}

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn ipv4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn eth_strategy() -> impl Strategy<Value = EthernetRepr> {
    let tag =
        (0u8..8, any::<bool>(), 0u16..4096).prop_map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid });
    (mac(), mac(), option::of(tag), any::<u16>()).prop_map(|(src, dst, vlan, ethertype)| {
        EthernetRepr {
            src,
            dst,
            vlan,
            ethertype: ethertype.into(),
        }
    })
}

fn ip_strategy() -> impl Strategy<Value = Ipv4Repr> {
    (ipv4_addr(), ipv4_addr(), any::<(u8, u8, u8, u16, bool)>()).prop_map(
        |(src, dst, (protocol, ttl, dscp_ecn, ident, dont_frag))| Ipv4Repr {
            src,
            dst,
            protocol: protocol.into(),
            payload_len: 0,
            ttl,
            dscp_ecn,
            ident,
            dont_frag,
        },
    )
}

static PAYLOAD: [u8; 100] = {
    let mut bytes = [0u8; 100];
    let mut i = 0;
    while i < bytes.len() {
        bytes[i] = (i as u8).wrapping_mul(37);
        i += 1;
    }
    bytes
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn bytes_behind_valid_headers_never_panic(
        which in 0..FRAMES.len(),
        tail in vec(any::<u8>(), 0..120),
    ) {
        // Keep a valid Ethernet + IPv4 header so random bytes reach the deeper parsers.
        let mut frame = FRAMES[which][..FRAMES[which].len().min(34)].to_vec();
        frame.extend_from_slice(&tail);
        exercise(&frame);
        exercise(&frame[14..]);
        exercise(&frame[frame.len().min(34)..]);
    }

    #[test]
    fn mutated_frames_never_panic(frame in mutated_frame()) {
        exercise(&frame);
        exercise(frame.get(14..).unwrap_or(&[]));
        exercise(frame.get(34..).unwrap_or(&[]));
    }
}

proptest! {
    #[test]
    fn any_bit_flip_in_a_tcp_segment_is_a_checksum_error(
        which in 0..TCP_FRAMES.len(),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let (frame, _, _) = TCP_FRAMES[which];
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let segment_end = 14 + usize::from(ip.total_len());
        let mut frame = frame.to_vec();
        let i = 34 + at.index(segment_end - 34);
        frame[i] ^= 1 << bit;
        prop_assert_eq!(parse_ingress(&frame, &VERIFY).err(), Some(ParseError::TcpBadChecksum));
    }

    #[test]
    fn any_bit_flip_in_an_ip_header_is_an_ip_error(
        which in 0..TCP_FRAMES.len(),
        at in 0usize..20,
        bit in 0u8..8,
    ) {
        let mut frame = TCP_FRAMES[which].0.to_vec();
        frame[14 + at] ^= 1 << bit;
        let err = parse_ingress(&frame, &VERIFY).unwrap_err();
        prop_assert!(err.as_str().starts_with("ip_"), "{:?}", err);
    }

    #[test]
    fn ethernet_round_trip(repr in eth_strategy()) {
        // Untagged 0x8100 would read back as a tag: not a representable header.
        prop_assume!(repr.vlan.is_some() || repr.ethertype != EtherType::Vlan);
        let mut buf = [0u8; 18];
        let buf = &mut buf[..repr.header_len()];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
        let frame = EthernetFrame::new_checked(&*buf).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
        prop_assert!(frame.payload().is_empty());
    }

    #[test]
    fn arp_round_trip(
        op in any::<u16>(),
        sha in mac(),
        spa in ipv4_addr(),
        tha in mac(),
        tpa in ipv4_addr(),
    ) {
        let repr = ArpRepr {
            operation: op.into(),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut buf = [0u8; ARP_IPV4_LEN];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv4_round_trip(ip in ip_strategy(), payload_len in 0usize..200, fill in any::<bool>()) {
        let repr = Ipv4Repr { payload_len, ..ip };
        let mut buf = [0u8; 220];
        let buf = &mut buf[..repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut *buf), fill);
        prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&*buf), fill), Ok(repr));
    }

    #[test]
    fn icmp_round_trip(
        request in any::<bool>(),
        ident in any::<u16>(),
        seq_no in any::<u16>(),
        len in 0..PAYLOAD.len(),
    ) {
        let data = &PAYLOAD[..len];
        let repr = if request {
            Icmpv4Repr::EchoRequest { ident, seq_no, data }
        } else {
            Icmpv4Repr::EchoReply { ident, seq_no, data }
        };
        let mut buf = [0u8; 120];
        let buf = &mut buf[..repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut *buf), true);
        prop_assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&*buf), true), Ok(repr));
    }

    #[test]
    fn tcp_round_trip(repr in tcp_repr_strategy(&PAYLOAD), src in ipv4_addr(), dst in ipv4_addr()) {
        let mut buf = [0u8; 60 + 100];
        let len = repr.buffer_len();
        let header_len = repr.header_len();
        prop_assert!(header_len <= TCP_MAX_HEADER_LEN && header_len.is_multiple_of(4));
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..len]), src, dst, true);

        let packet = TcpPacket::new_checked(&buf[..len]).unwrap();
        prop_assert_eq!(packet.header_len(), repr.header_len());
        let parsed = TcpRepr::parse(&packet, src, dst, true).unwrap();
        let ack = if repr.flags.contains(TcpFlags::ACK) { repr.ack } else { SeqNumber(0) };
        let expected = TcpRepr { ack, options: expected_after_emit(&repr.options), ..repr };
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn tcp_frame_round_trip(
        eth in eth_strategy(),
        ip in ip_strategy(),
        tcp in tcp_repr_strategy(&PAYLOAD),
        fill in any::<bool>(),
    ) {
        let caps = ChecksumCaps { verify_rx: fill, fill_tx: fill, tx_offload: false };
        let mut buf = [0u8; 18 + 20 + 60 + 100];
        let len = emit_tcp_frame(&mut buf, &eth, &ip, &tcp, &caps).unwrap();
        let parsed = parse_ingress(&buf[..len], &caps).unwrap();
        prop_assert_eq!(parsed.eth, EthernetRepr { ethertype: EtherType::Ipv4, ..eth });
        let L3::Ipv4 { ip: parsed_ip, l4: L4::Tcp(parsed_tcp) } = parsed.l3 else {
            return Err(TestCaseError::fail(format!("{parsed:?}")));
        };
        let payload_len = tcp.buffer_len();
        prop_assert_eq!(parsed_ip, Ipv4Repr { protocol: IpProtocol::Tcp, payload_len, ..ip });
        let ack = if tcp.flags.contains(TcpFlags::ACK) { tcp.ack } else { SeqNumber(0) };
        let options = expected_after_emit(&tcp.options);
        prop_assert_eq!(parsed_tcp, TcpRepr { ack, options, ..tcp });
        // A buffer one byte short is refused, not overrun.
        prop_assert_eq!(emit_tcp_frame(&mut buf[..len - 1], &eth, &ip, &tcp, &caps), Err(Error));
    }

    #[test]
    fn sum_matches_naive_word_loop(data in vec(any::<u8>(), 0..300)) {
        let mut naive: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            naive += u32::from(word);
            naive = (naive & 0xffff) + (naive >> 16);
        }
        prop_assert_eq!(u32::from(checksum::fold(checksum::sum(&data))), naive);
    }

    #[test]
    fn sums_of_even_pieces_add(a in vec(any::<u8>(), 0..100), b in vec(any::<u8>(), 0..100)) {
        let mut a = a;
        a.truncate(a.len() & !1);
        let joined: Vec<u8> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(
            checksum::fold(checksum::sum(&a) + checksum::sum(&b)),
            checksum::fold(checksum::sum(&joined))
        );
    }

    #[test]
    fn incremental_update_equals_recompute(
        words in vec(any::<u16>(), 2..40),
        at in any::<Index>(),
        new16 in any::<u16>(),
        new32 in any::<u32>(),
    ) {
        // Word 0 stays non-zero, as an IPv4 / TCP header's version or offset word does.
        let mut words = words;
        words[0] |= 0x4000;
        let bytes = |words: &[u16]| -> Vec<u8> {
            words.iter().flat_map(|w| w.to_be_bytes()).collect()
        };
        let before = checksum::data(&bytes(&words));

        let i = 1 + at.index(words.len() - 1);
        let mut changed = words.clone();
        changed[i] = new16;
        let recomputed = checksum::data(&bytes(&changed));
        prop_assert_eq!(checksum::update_u16(before, words[i], new16), recomputed);

        let j = at.index(words.len() - 1); // a pair (j, j + 1)
        let old32 = (u32::from(words[j]) << 16) | u32::from(words[j + 1]);
        let mut changed = words.clone();
        changed[j] = (new32 >> 16) as u16 | if j == 0 { 0x4000 } else { 0 };
        changed[j + 1] = new32 as u16;
        let new32 = (u32::from(changed[j]) << 16) | u32::from(changed[j + 1]);
        let recomputed = checksum::data(&bytes(&changed));
        prop_assert_eq!(checksum::update_u32(before, old32, new32), recomputed);
    }

    #[test]
    fn incremental_update_of_real_headers(
        which in 0..TCP_FRAMES.len(),
        ttl in any::<u8>(),
        new_dst in any::<u32>(),
    ) {
        // Rewriting TTL and destination as a NAT / forwarder would.
        let mut header = [0u8; 20];
        header.copy_from_slice(&TCP_FRAMES[which].0[14..34]);
        let stored = u16::from_be_bytes([header[10], header[11]]);
        let old_ttl_word = u16::from_be_bytes([header[8], header[9]]);
        let old_dst = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
        header[8] = ttl;
        header[16..20].copy_from_slice(&new_dst.to_be_bytes());
        let new_ttl_word = u16::from_be_bytes([header[8], header[9]]);
        let after_ttl = checksum::update_u16(stored, old_ttl_word, new_ttl_word);
        let updated = checksum::update_u32(after_ttl, old_dst, new_dst);
        header[10..12].copy_from_slice(&updated.to_be_bytes());
        prop_assert!(Ipv4Packet::new_unchecked(&header[..]).verify_checksum());
        header[10..12].copy_from_slice(&[0, 0]);
        prop_assert_eq!(updated, checksum::data(&header));
    }

    #[test]
    fn seq_distance_and_order(a in any::<u32>(), n in 1u32..(1 << 31)) {
        let a = SeqNumber(a);
        let b = a + n;
        prop_assert_eq!(b - a, n as i32);
        prop_assert_eq!(a - b, -(n as i32));
        prop_assert!(a.lt(b) && a < b && b.gt(a) && a.le(b) && b.ge(a));
        prop_assert_eq!(a.max(b), b);
        prop_assert_eq!(b.min(a), a);
        prop_assert_eq!(b - n, a);
    }
}

/// Every combination of the four single options with 0..=4 SACK blocks.
#[test]
fn every_tcp_option_combination_round_trips() {
    for mask in 0u8..16 {
        for blocks in 0..=4u32 {
            let mut options = TcpOptions {
                mss: (mask & 1 != 0).then_some(1460),
                sack_permitted: mask & 2 != 0,
                timestamps: (mask & 4 != 0).then_some((7, 8)),
                window_scale: (mask & 8 != 0).then_some(7),
                ..TcpOptions::default()
            };
            for b in 0..blocks {
                options.push_sack_block((SeqNumber(b * 1000), SeqNumber(b * 1000 + 500)));
            }
            let mut buf = [0u8; 40];
            let len = options.emit(&mut buf);
            assert_eq!(len, options.emit_len(), "{options:?}");
            assert!(len <= 40 && len.is_multiple_of(4));
            let parsed = TcpOptions::parse(&buf[..len]).unwrap();
            assert_eq!(parsed, expected_after_emit(&options), "{options:?}");
            // With timestamps, at most three blocks fit; all four fit without anything else.
            if mask == 4 {
                assert_eq!(parsed.sack_blocks().len(), blocks.min(3) as usize);
            }
            if mask == 0 {
                assert_eq!(parsed.sack_blocks().len(), blocks as usize);
            }
        }
    }
}
