//! Software segmentation (`io::gso::pieces`, which cuts a frame the port
//! was to segment when it is looped back, captured, impaired or shown to an
//! egress program) fed arbitrary bytes: the first two are the piece size,
//! the rest the frame.
//!
//! Checks: it never panics; when the frame is one the ingress parser takes
//! (checksums aside) and it is cut, every piece is a valid segment with
//! correct checksums, the pieces' sequence numbers follow each other from
//! the frame's, and their payloads put together are the frame's payload.
#![no_main]

use dpu_datapath::io::gso::pieces;
use dpu_datapath::wire::{parse_ingress, ChecksumCaps, TcpRepr, L3, L4};
use libfuzzer_sys::fuzz_target;

const NO_VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: false,
    fill_tx: false,
    tx_offload: false,
};

fn tcp<'a>(frame: &'a [u8], caps: &ChecksumCaps) -> Option<TcpRepr<'a>> {
    match parse_ingress(frame, caps).ok()?.l3 {
        L3::Ipv4 {
            l4: L4::Tcp(tcp), ..
        } => Some(tcp),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((size, frame)) = data.split_first_chunk::<2>() else {
        return;
    };
    let segment = u16::from_be_bytes(*size);
    let Some(cut) = pieces(frame, segment) else {
        return;
    };
    let Some(whole) = tcp(frame, &NO_VERIFY) else {
        return;
    };
    assert!(cut.len() > 1, "cut into one piece");
    let mut joined = Vec::new();
    for (i, p) in cut.iter().enumerate() {
        let t = tcp(p, &ChecksumCaps::default())
            .unwrap_or_else(|| panic!("piece {i} of {} is not a valid segment", cut.len()));
        assert_eq!(t.seq, whole.seq + joined.len() as u32, "piece {i}");
        assert!(t.payload.len() <= usize::from(segment), "piece {i} too long");
        joined.extend_from_slice(t.payload);
    }
    assert_eq!(joined, whole.payload);
});
