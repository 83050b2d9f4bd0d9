//! ICMP: echo requests are answered, anything else is counted and dropped.

use super::*;
use crate::control::test_util::*;
use crate::wire::{EtherType, IpProtocol, VlanTag};

/// The peer's ICMP message to us, VLAN-tagged or not.
fn icmp_frame(icmp: &Icmpv4Repr<'_>, vlan: Option<VlanTag>) -> Vec<u8> {
    let eth = EthernetRepr {
        src: PEER_MAC,
        dst: OUR_MAC,
        vlan,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src: PEER_IP,
        dst: OUR_IP,
        protocol: IpProtocol::Icmp,
        payload_len: 0,
        ttl: 55,
        dscp_ecn: 0x10,
        ident: 0x4242,
        dont_frag: true,
    };
    let mut buf = vec![0u8; 18 + 20 + icmp.buffer_len()];
    let n = emit_icmp_frame(&mut buf, &eth, &ip, icmp, &Default::default()).expect("emit icmp");
    buf.truncate(n);
    buf
}

/// Our reply to the peer: TTL 64, no DF, ident 0, same VLAN.
fn reply(vlan: Option<VlanTag>, ident: u16, seq_no: u16, data: &[u8]) -> Sent {
    Sent::IcmpEchoReply {
        eth: EthernetRepr {
            src: OUR_MAC,
            dst: PEER_MAC,
            vlan,
            ethertype: EtherType::Ipv4,
        },
        ip: Ipv4Repr {
            src: OUR_IP,
            dst: PEER_IP,
            protocol: IpProtocol::Icmp,
            payload_len: 8 + data.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        },
        ident,
        seq_no,
        data: data.to_vec(),
    }
}

#[test]
fn an_echo_request_is_answered_with_its_identifier_sequence_and_data() {
    let mut eng = engine(|_| {});
    let vlan = VlanTag {
        pcp: 3,
        dei: false,
        vid: 100,
    };
    for tag in [None, Some(vlan)] {
        let request = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 7,
            data: b"ping payload",
        };
        exception(&mut eng, &icmp_frame(&request, tag));
    }
    assert_eq!(
        sent(&mut eng),
        vec![
            reply(None, 0x1234, 7, b"ping payload"),
            reply(Some(vlan), 0x1234, 7, b"ping payload"),
        ]
    );
    assert_eq!(eng.stats.icmp_echo_replies, 2);
}

#[test]
fn other_icmp_is_counted_and_dropped() {
    let mut eng = engine(|_| {});
    let other = Icmpv4Repr::EchoReply {
        ident: 1,
        seq_no: 1,
        data: b"",
    };
    exception(&mut eng, &icmp_frame(&other, None));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::IcmpUnsupported), 1);
    assert_eq!(eng.stats.icmp_echo_replies, 0);
}
