//! `post`: finalises outgoing headers from a protocol snapshot and the flow's
//! template (ACK number, window, timestamps, SACK), and keeps the
//! congestion-control counters the control plane reads (acked bytes,
//! ECN-marked bytes, RTT).
//!
//! State owned: the flow's application handle and CC counters.

#![forbid(unsafe_code)]

mod fast;
mod work;

pub use fast::{header_len as fast_header_len, write_headers_in_place};
pub use work::{post_rx, post_tx, post_tx_in_place};

use crate::app::ConnId;
use crate::io::FrameBuf;
use crate::pre::HeaderTemplate;
use crate::proto::{CcFeedback, HeaderFields};
use crate::wire::{emit_tcp_frame, ChecksumCaps, TcpOptions, TcpRepr};

/// Congestion-control counters, updated by `post`, read by the control plane.
/// The byte counters wrap (32 bits, as TAS keeps them): the control plane
/// reads them every control interval and takes the difference with
/// `wrapping_sub`, which is exact while less than 4 GiB is acked per
/// interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CcCounters {
    pub acked_bytes: u32,
    pub ecn_marked_bytes: u32,
    /// Exponentially weighted RTT (7/8 old + 1/8 new), microseconds.
    pub rtt_ewma_us: u32,
}

/// `post`'s per-flow state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostFlow {
    pub conn: ConnId,
    pub cc: CcCounters,
}

impl PostFlow {
    pub fn account(&mut self, fb: &CcFeedback) {
        self.cc.acked_bytes = self.cc.acked_bytes.wrapping_add(fb.acked_bytes);
        if fb.ecn_marked {
            self.cc.ecn_marked_bytes = self.cc.ecn_marked_bytes.wrapping_add(fb.acked_bytes);
        }
        if let Some(rtt) = fb.rtt_sample_us {
            self.cc.rtt_ewma_us = if self.cc.rtt_ewma_us == 0 {
                rtt
            } else {
                ((7 * self.cc.rtt_ewma_us as u64 + rtt as u64) / 8) as u32
            };
        }
    }
}

/// Writes a complete frame (headers and `payload`) into `buf`, which is
/// resized to the frame length: the established-path writer when the
/// segment has its shape, the generic emitter otherwise.
pub fn build_frame<B: FrameBuf>(
    buf: &mut B,
    template: &HeaderTemplate,
    fields: &HeaderFields,
    ts_val: u32,
    payload: &[u8],
    caps: &ChecksumCaps,
) {
    if !fast::write_segment(buf, template, fields, ts_val, payload, caps) {
        build_generic(buf, template, fields, ts_val, payload, caps);
    }
}

/// [`build_frame`] through the generic emitter (any options, VLAN).
pub fn build_generic<B: FrameBuf>(
    buf: &mut B,
    template: &HeaderTemplate,
    fields: &HeaderFields,
    ts_val: u32,
    payload: &[u8],
    caps: &ChecksumCaps,
) {
    let mut options = TcpOptions::default();
    if let Some(ecr) = fields.ts_ecr {
        options.timestamps = Some((ts_val, ecr));
    }
    options.sack_blocks = fields.sack.blocks;
    options.sack_count = fields.sack.count;
    let tcp = TcpRepr {
        src_port: template.tuple.local_port,
        dst_port: template.tuple.remote_port,
        seq: fields.seq,
        ack: fields.ack,
        flags: fields.flags,
        window: fields.window,
        urgent: 0,
        options,
        payload,
    };
    let mut ip = template.ipv4();
    if fields.ect {
        ip.dscp_ecn = crate::wire::ECN_ECT0;
    }
    emit_frame(buf, &template.ethernet(), &ip, &tcp, caps);
}

/// Emits any TCP frame into `buf` (sized to fit).
pub fn emit_frame<B: FrameBuf>(
    buf: &mut B,
    eth: &crate::wire::EthernetRepr,
    ip: &crate::wire::Ipv4Repr,
    tcp: &TcpRepr<'_>,
    caps: &ChecksumCaps,
) {
    let len = eth.header_len() + 20 + tcp.buffer_len();
    buf.clear();
    buf.resize_zeroed(len);
    let written = emit_tcp_frame(buf, eth, ip, tcp, caps).unwrap_or(0);
    buf.truncate(written);
}
