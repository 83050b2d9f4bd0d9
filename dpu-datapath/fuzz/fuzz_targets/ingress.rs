//! Feeds arbitrary frames to the ingress parser, with checksum verification on (what the
//! engine runs) and off (so mutated headers reach the deeper parsers). Whatever parses is
//! emitted again and must parse back with checksums verified.
#![no_main]

use dpu_datapath::wire::{
    emit_arp_frame, emit_icmp_frame, emit_tcp_frame, parse_ingress, ChecksumCaps, L3, L4,
};
use libfuzzer_sys::fuzz_target;

const VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: true,
    fill_tx: true,
};
const NO_VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: false,
    fill_tx: false,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_ingress(data, &VERIFY);
    let Ok(frame) = parse_ingress(data, &NO_VERIFY) else {
        return;
    };

    // Re-emitting never needs more room than the input plus a VLAN tag and padding.
    let mut out = vec![0u8; data.len() + 64];
    let written = match frame.l3 {
        L3::Arp(arp) => emit_arp_frame(&mut out, &frame.eth, &arp),
        L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } => emit_tcp_frame(&mut out, &frame.eth, &ip, &tcp, &VERIFY),
        L3::Ipv4 {
            ip,
            l4: L4::Icmp(icmp),
        } => emit_icmp_frame(&mut out, &frame.eth, &ip, &icmp, &VERIFY),
    };
    let len = written.expect("a parsed frame fits its own size");
    if let Err(err) = parse_ingress(&out[..len], &VERIFY) {
        panic!("re-emitted frame does not parse: {err}");
    }
});
