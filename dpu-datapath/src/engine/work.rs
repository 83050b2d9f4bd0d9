//! Work items that leave `proto` for the data-parallel stages (`dma`, then
//! `post`), and the commit that comes back after the egress reorder. They
//! carry everything those stages need (header template, buffer handles), so
//! `dma` and `post` never read flow state and can run on any worker.

use crate::app::{ConnError, ConnId};
use crate::dma::{self, HostBuffer};
use crate::pre::HeaderTemplate;
use crate::proto::{HeaderFields, Placement};
use crate::wire::ChecksumCaps;
use std::sync::Arc;

/// Application notifications, applied in stamp order once the DMA is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    pub conn: Option<ConnId>,
    /// New in-order bytes readable.
    pub delivered: u32,
    /// TX bytes acknowledged.
    pub tx_freed: u32,
    pub peer_fin: bool,
    /// The connection left the data path (with an error if abnormal).
    pub finished: bool,
    pub error: Option<ConnError>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.delivered == 0 && self.tx_freed == 0 && !self.peer_fin && !self.finished
    }
}

/// A received segment after `proto`: payload to place, ACK to build.
#[derive(Clone, Debug)]
pub struct RxWork {
    pub template: HeaderTemplate,
    pub ack: Option<HeaderFields>,
    pub place: Option<Placement>,
    /// Offset of the segment's payload in the frame.
    pub payload_offset: u16,
    pub rx_buf: Option<Arc<HostBuffer>>,
    pub ts_val: u32,
    pub commit: Commit,
}

/// A segment to transmit after `proto`: payload to fetch, header to build.
#[derive(Clone, Debug)]
pub struct TxWork {
    pub template: HeaderTemplate,
    pub header: HeaderFields,
    pub buf_pos: u32,
    pub len: u32,
    pub tx_buf: Option<Arc<HostBuffer>>,
    pub ts_val: u32,
}

/// What one engine produced for the later stages, in order.
#[derive(Debug)]
pub enum Work {
    /// A received frame and what to do with it.
    Rx { frame: Vec<u8>, work: RxWork },
    /// A segment to send.
    Tx(TxWork),
    /// A complete frame from the control plane.
    Frame(Vec<u8>),
    /// Only notifications (no frame).
    Commit(Commit),
}

/// `dma` for a received segment: payload to its place in the RX buffer.
pub fn dma_rx(work: &RxWork, frame: &[u8]) {
    if let (Some(place), Some(buf)) = (work.place, work.rx_buf.as_ref()) {
        let start = work.payload_offset as usize + place.skip as usize;
        if let Some(data) = frame.get(start..start + place.len as usize) {
            dma::place_rx(buf, place.buf_pos, data);
        }
    }
}

/// `post` for a received segment: turns the frame buffer into the ACK (or
/// empties it when no ACK is due).
pub fn post_rx(work: &RxWork, frame: &mut Vec<u8>, caps: &ChecksumCaps) {
    match &work.ack {
        Some(h) => crate::post::build_frame(frame, &work.template, h, work.ts_val, &[], caps),
        None => frame.clear(),
    }
}

/// `dma` then `post` for a transmitted segment, into `frame`.
pub fn dma_post_tx(work: &TxWork, scratch: &mut Vec<u8>, frame: &mut Vec<u8>, caps: &ChecksumCaps) {
    dma_tx(work, scratch);
    post_tx(work, scratch, frame, caps);
}

/// `dma` for a transmitted segment: fetch the payload from the TX buffer.
pub fn dma_tx(work: &TxWork, payload: &mut Vec<u8>) {
    match work.tx_buf.as_ref() {
        Some(buf) if work.len > 0 => dma::fetch_tx(buf, work.buf_pos, work.len as usize, payload),
        _ => payload.clear(),
    }
}

/// `dma` for a transmitted segment straight into the frame: the payload
/// lands after the room its headers need, so `post` writes them in front
/// without another copy. Returns that room, or 0 when the segment's shape
/// needs the generic emitter (then `frame` holds the payload alone).
pub fn dma_tx_into_frame(work: &TxWork, frame: &mut Vec<u8>) -> usize {
    let room = crate::post::fast_header_len(&work.template, &work.header).unwrap_or(0);
    match work.tx_buf.as_ref() {
        Some(buf) if work.len > 0 => {
            dma::fetch_tx_at(buf, work.buf_pos, work.len as usize, frame, room)
        }
        _ => {
            frame.clear();
            frame.resize(room, 0);
        }
    }
    room
}

/// `post` for a segment `dma_tx_into_frame` prepared with `room` > 0:
/// headers written in place. False when the shape does not apply (the
/// caller then builds the frame with [`post_tx`] from the payload).
pub fn post_tx_in_place(work: &TxWork, frame: &mut [u8], caps: &ChecksumCaps) -> bool {
    crate::post::write_headers_in_place(frame, &work.template, &work.header, work.ts_val, caps)
}

/// `post` for a transmitted segment: headers around the fetched payload.
pub fn post_tx(work: &TxWork, payload: &[u8], frame: &mut Vec<u8>, caps: &ChecksumCaps) {
    crate::post::build_frame(
        frame,
        &work.template,
        &work.header,
        work.ts_val,
        payload,
        caps,
    );
}
