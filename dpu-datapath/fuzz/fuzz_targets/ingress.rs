//! Feeds arbitrary frames to the ingress parser, with checksum verification on (what the
//! engine runs) and off (so mutated headers reach the deeper parsers), and checks that
//! parsing and emitting agree:
//!
//! - verification only adds checks: a frame that parses verified parses unverified to the
//!   same representation;
//! - parse -> emit -> parse gives back the first representation, with checksums filled
//!   (re-parsed verified) and left for offload (re-parsed unverified);
//! - emit is a function of the representation: emitting the re-parsed frame writes the same
//!   bytes again, of the length its headers announce.
//!
//! What the representation leaves out cannot come back and is not compared: IPv4 options,
//! the reserved IPv4 flag, the IPv4 and TCP checksums, the TCP data offset's reserved bits,
//! unknown TCP options, NOP/EOL padding and bytes after EOL, the ICMP code, and Ethernet
//! padding after the IPv4 total length. Two fields of the representation are normalised by
//! the emitter, so the re-parse must show the normalised value (see `expected`):
//! - the acknowledgment number is written as 0 without ACK (RFC 9293 §3.1);
//! - the IPv4 payload length of a TCP frame is the emitted segment's, whose option area
//!   is the canonical layout of the options understood (never longer than what was read).
//!
//! It also checks `pre`'s fixed-offset parse of the established shape against the generic
//! parser: addressed to the frame's own destination, `pre::validate` gives the generic
//! verdict (both checksum settings).
#![no_main]

use dpu_datapath::wire::{
    emit_arp_frame, emit_icmp_frame, emit_tcp_frame, parse_ingress, ChecksumCaps, IngressFrame,
    Ipv4Repr, SeqNumber, TcpFlags, TcpRepr, ARP_IPV4_LEN, IPV4_HEADER_LEN, L3, L4,
};
use dpu_datapath::pre::{validate, validate_generic, LocalAddrs, Verdict};
use dpu_datapath::wire::EthernetAddress;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

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

/// Emits `frame` into a fresh buffer; the bytes written.
fn emit(frame: &IngressFrame<'_>, caps: &ChecksumCaps) -> Vec<u8> {
    // Emitting never needs more room than the payloads plus the largest headers.
    let payload = match frame.l3 {
        L3::Arp(_) => 0,
        L3::Ipv4 { l4: L4::Tcp(t), .. } => t.payload.len(),
        L3::Ipv4 {
            l4: L4::Icmp(i), ..
        } => i.buffer_len(),
    };
    let mut out = vec![0u8; payload + 18 + 60 + 60];
    let written = match frame.l3 {
        L3::Arp(arp) => emit_arp_frame(&mut out, &frame.eth, &arp),
        L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } => emit_tcp_frame(&mut out, &frame.eth, &ip, &tcp, caps),
        L3::Ipv4 {
            ip,
            l4: L4::Icmp(icmp),
        } => emit_icmp_frame(&mut out, &frame.eth, &ip, &icmp, caps),
    };
    let len = written.expect("a parsed frame fits the room its own headers need");
    let l3_len = match frame.l3 {
        L3::Arp(_) => ARP_IPV4_LEN,
        L3::Ipv4 { l4: L4::Tcp(t), .. } => IPV4_HEADER_LEN + t.buffer_len(),
        L3::Ipv4 {
            l4: L4::Icmp(i), ..
        } => IPV4_HEADER_LEN + i.buffer_len(),
    };
    assert_eq!(len, frame.eth.header_len() + l3_len, "emitted length");
    out.truncate(len);
    out
}

/// What parsing the emitted `frame` must give (see the module comment).
fn expected<'a>(frame: &IngressFrame<'a>) -> IngressFrame<'a> {
    let l3 = match frame.l3 {
        L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } => {
            let ack = if tcp.flags.contains(TcpFlags::ACK) {
                tcp.ack
            } else {
                SeqNumber(0)
            };
            let tcp = TcpRepr { ack, ..tcp };
            L3::Ipv4 {
                ip: Ipv4Repr {
                    payload_len: tcp.buffer_len(),
                    ..ip
                },
                l4: L4::Tcp(tcp),
            }
        }
        other => other,
    };
    IngressFrame { l3, ..*frame }
}

/// `pre::validate` (its RSS hash cleared) agrees with the generic parser, for a stack whose
/// addresses are the frame's destination ones (so the fast parse can apply).
fn fast_parse_agrees(data: &[u8]) {
    let Some(head) = data.get(..34) else {
        return;
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&head[..6]);
    let local = LocalAddrs {
        mac: EthernetAddress(mac),
        ip: Ipv4Addr::new(head[30], head[31], head[32], head[33]),
    };
    for caps in [VERIFY, NO_VERIFY] {
        let mut fast = validate(data, &local, &caps);
        if let Verdict::Tcp { rss, .. } = &mut fast {
            *rss = 0;
        }
        assert_eq!(fast, validate_generic(data, &local, &caps), "{caps:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    fast_parse_agrees(data);
    let verified = parse_ingress(data, &VERIFY);
    let Ok(frame) = parse_ingress(data, &NO_VERIFY) else {
        assert!(
            verified.is_err(),
            "parses with checksums verified but not without"
        );
        return;
    };
    if let Ok(v) = verified {
        assert_eq!(v, frame, "verifying checksums changed what was parsed");
    }
    if let L3::Ipv4 { l4: L4::Tcp(t), .. } = frame.l3 {
        // Every SACK block read is written back: options never grow when re-emitted.
        assert_eq!(
            t.options.emitted_sack_blocks(),
            t.options.sack_blocks().len()
        );
    }

    let want = expected(&frame);
    for caps in [VERIFY, NO_VERIFY] {
        let bytes = emit(&frame, &caps);
        let again = match parse_ingress(&bytes, &caps) {
            Ok(again) => again,
            Err(err) => panic!("re-emitted frame ({caps:?}) does not parse: {err}"),
        };
        assert_eq!(
            again, want,
            "parse -> emit -> parse changed the frame ({caps:?})"
        );
        assert_eq!(
            emit(&again, &caps),
            bytes,
            "emitting the re-parsed frame wrote other bytes ({caps:?})"
        );
    }
});
