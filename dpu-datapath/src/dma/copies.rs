//! Which copy a work item needs: the received payload to the application's
//! RX buffer, or the payload to send out of its TX buffer into a packet
//! buffer, after the room its headers take. The pipeline submits these to
//! its DMA engine; the engine alone (simulator, unit benches) copies at
//! once with [`rx_now`] and [`tx_now`].

#![forbid(unsafe_code)]

use super::{Copy, DmaDir};
use crate::engine::work::{RxWork, TxWork};
use crate::io::Frame;

/// The copy placing a received segment's payload (None when it has none
/// or nobody reads it). Takes the work's buffer handle: `post` does not
/// need it.
pub fn rx_copy(work: &mut RxWork) -> Option<Copy> {
    let place = work.place?;
    let host = work.rx_buf.take()?;
    Some(Copy {
        dir: DmaDir::ToHost,
        host,
        pos: place.buf_pos,
        at: work.payload_offset as usize + place.skip as usize,
        len: place.len as usize,
    })
}

/// Sizes `frame` for a segment to send (its payload lands after the room
/// its headers need, so `post` writes them in front without another copy)
/// and returns that room, 0 when the segment's shape needs the generic
/// emitter, with the copy fetching the payload.
pub fn tx_copy(work: &mut TxWork, frame: &mut Frame) -> (usize, Option<Copy>) {
    let room = crate::post::fast_header_len(&work.template, &work.header).unwrap_or(0);
    frame.clear();
    match work.tx_buf.take() {
        Some(host) if work.len > 0 => {
            // The copy fills the payload and `post` the headers.
            frame.resize_for_overwrite(room + work.len as usize);
            let copy = Copy {
                dir: DmaDir::FromHost,
                host,
                pos: work.buf_pos,
                at: room,
                len: work.len as usize,
            };
            (room, Some(copy))
        }
        _ => {
            frame.resize_zeroed(room);
            (room, None)
        }
    }
}

/// [`rx_copy`] done at once.
pub fn rx_now(work: &RxWork, frame: &[u8]) {
    if let (Some(place), Some(buf)) = (work.place, work.rx_buf.as_ref()) {
        let start = work.payload_offset as usize + place.skip as usize;
        if let Some(data) = frame.get(start..start + place.len as usize) {
            super::place_rx(buf, place.buf_pos, data);
        }
    }
}

/// The payload of a segment to send, fetched at once into `payload`.
pub fn tx_now(work: &TxWork, payload: &mut Vec<u8>) {
    match work.tx_buf.as_ref() {
        Some(buf) if work.len > 0 => super::fetch_tx(buf, work.buf_pos, work.len as usize, payload),
        _ => payload.clear(),
    }
}
