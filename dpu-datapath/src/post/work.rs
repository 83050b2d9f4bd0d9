//! `post` for the work items `proto` hands on: a received segment's frame
//! turned into its ACK, a transmitted segment's headers around its payload.

#![forbid(unsafe_code)]

use crate::engine::work::{RxWork, TxWork};
use crate::io::FrameBuf;
use crate::wire::ChecksumCaps;

/// `post` for a received segment: turns the frame buffer into the ACK (or
/// empties it when no ACK is due).
pub fn post_rx<B: FrameBuf>(work: &RxWork, frame: &mut B, caps: &ChecksumCaps) {
    match &work.ack {
        Some(h) => super::build_frame(frame, &work.template, h, work.ts_val, &[], caps),
        None => frame.clear(),
    }
}

/// `post` for a segment `dma::tx_copy` prepared with `room` > 0:
/// headers written in place. False when the shape does not apply (the
/// caller then builds the frame with [`post_tx`] from the payload).
pub fn post_tx_in_place<B: FrameBuf>(work: &TxWork, frame: &mut B, caps: &ChecksumCaps) -> bool {
    super::write_headers_in_place(
        frame,
        &work.template,
        &work.header,
        work.ts_val,
        caps,
        work.segment_size,
    )
}

/// `post` for a transmitted segment: headers around the fetched payload.
pub fn post_tx<B: FrameBuf>(work: &TxWork, payload: &[u8], frame: &mut B, caps: &ChecksumCaps) {
    super::build_frame(
        frame,
        &work.template,
        &work.header,
        work.ts_val,
        payload,
        caps,
    );
}
