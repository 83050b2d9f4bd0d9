//! The capture filter (`flextoe-dpu capture`, whose filter text comes from
//! any client of the control socket) fed arbitrary text and frames (issue
//! 21: every untrusted input fuzzed). The input is the filter text up to
//! the first NUL byte (read lossily as UTF-8), then the frame it is matched
//! against.
//!
//! Checks: parsing and matching never panic (nesting and length are
//! bounded, so neither exhausts the stack); a parse error says what was
//! wrong; matching is consistent with the filter's algebra (`not`, `and`,
//! `or` and parentheses around the parsed text); and for a frame the ingress
//! parser accepts, the primitives agree with what it parsed (`ip`, `arp`,
//! `tcp`, `icmp`, the frame's own addresses and TCP ports, and a port it
//! does not carry).
#![no_main]

use dpu_datapath::capture::Filter;
use dpu_datapath::wire::{parse_ingress, ChecksumCaps, L3, L4};
use libfuzzer_sys::fuzz_target;

const NO_VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: false,
    fill_tx: false,
    tx_offload: false,
};

fn matches(text: &str, frame: &[u8]) -> bool {
    match Filter::parse(text) {
        Ok(f) => f.matches(frame),
        Err(e) => panic!("{text:?} does not parse: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..split]);
    let frame = data.get(split + 1..).unwrap_or_default();

    if let Ok(filter) = Filter::parse(&text) {
        let m = filter.matches(frame);
        // Wrapping the parsed text (one level of nesting and three words
        // more) keeps it within the parser's limits unless it was at them.
        if let Ok(negated) = Filter::parse(&format!("not ({text})")) {
            assert_eq!(negated.matches(frame), !m, "not ({text})");
        }
        if let Ok(both) = Filter::parse(&format!("({text}) and ({text})")) {
            assert_eq!(both.matches(frame), m, "({text}) and ({text})");
        }
        if let Ok(either) = Filter::parse(&format!("({text}) or not ({text})")) {
            assert!(either.matches(frame), "({text}) or not ({text})");
        }
    } else if let Err(e) = Filter::parse(&text) {
        assert!(!e.is_empty(), "a parse error without a message");
    }

    // The primitives against the ingress parser's view of the frame.
    let Ok(parsed) = parse_ingress(frame, &NO_VERIFY) else {
        return;
    };
    match parsed.l3 {
        L3::Arp(_) => {
            assert!(matches("arp", frame) && !matches("ip", frame) && !matches("tcp", frame));
        }
        L3::Ipv4 { ip, l4 } => {
            assert!(matches("ip", frame) && !matches("arp", frame));
            let (src, dst) = (ip.src, ip.dst);
            assert!(matches(
                &format!("src host {src} and dst host {dst}"),
                frame
            ));
            assert!(matches(&format!("host {src} and host {dst}"), frame));
            match l4 {
                L4::Tcp(t) => {
                    assert!(matches("tcp", frame) && !matches("icmp", frame));
                    let (sp, dp) = (t.src_port, t.dst_port);
                    assert!(matches(&format!("src port {sp} and dst port {dp}"), frame));
                    let other = (0..=u16::MAX).find(|p| *p != sp && *p != dp).unwrap_or(0);
                    assert!(!matches(&format!("port {other}"), frame));
                }
                L4::Icmp(_) => {
                    assert!(matches("icmp", frame) && !matches("tcp", frame));
                    assert!(!matches("port 0 or port 1", frame));
                }
            }
        }
    }
});
