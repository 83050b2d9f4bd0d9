//! `pre`: the first stage. Parses and validates a frame, looks the flow up by
//! its 4-tuple, and either summarises an established-path segment for
//! `proto` or hands the packet to the control plane (exception path).
//!
//! State owned: the flow table (4-tuple -> flow id) and each flow's header
//! template, written only by the control plane at install and removal.

mod summary;
mod table;
mod template;

pub use summary::{SackBlocks, Summary};
pub use table::{PreFlow, PreTable};
pub use template::HeaderTemplate;

use crate::flow::FourTuple;
use crate::stats::DropReason;
use crate::wire::{parse_ingress, ChecksumCaps, EthernetAddress, IngressFrame, TcpFlags, L3, L4};
use std::net::Ipv4Addr;

/// Our identity as far as `pre` is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddrs {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
}

/// What `pre` decided about one frame.
#[derive(Debug)]
pub enum PreOutcome<'a> {
    /// Dropped and counted under this reason.
    Drop(DropReason),
    /// An established-path segment for `proto`.
    Fast(Summary),
    /// Something unusual: the control plane decides.
    Exception(IngressFrame<'a>),
}

/// Flags allowed on the established fast path; anything else is an exception.
const FAST_PATH_FLAGS: u8 = TcpFlags::ACK.0
    | TcpFlags::PSH.0
    | TcpFlags::FIN.0
    | TcpFlags::ECE.0
    | TcpFlags::CWR.0
    | TcpFlags::URG.0;

/// Classifies one received frame.
pub fn classify<'a>(
    frame: &'a [u8],
    local: &LocalAddrs,
    table: &PreTable,
    caps: &ChecksumCaps,
) -> PreOutcome<'a> {
    let parsed = match parse_ingress(frame, caps) {
        Ok(p) => p,
        Err(e) => return PreOutcome::Drop(e.into()),
    };
    let dst = parsed.eth.dst;
    if dst != local.mac && !dst.is_broadcast() && !dst.is_multicast() {
        return PreOutcome::Drop(DropReason::NotForUs);
    }
    let (ip, tcp) = match &parsed.l3 {
        L3::Arp(_) => return PreOutcome::Exception(parsed),
        L3::Ipv4 { ip, l4 } => {
            if ip.dst != local.ip || dst != local.mac {
                return PreOutcome::Drop(DropReason::NotForUs);
            }
            match l4 {
                L4::Icmp(_) => return PreOutcome::Exception(parsed),
                L4::Tcp(tcp) => (ip, tcp),
            }
        }
    };
    let flags = tcp.flags;
    let syn = flags.contains(TcpFlags::SYN);
    if (syn && (flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST))) || flags.0 == 0 {
        return PreOutcome::Drop(DropReason::BadFlags);
    }
    let tuple = FourTuple {
        local_ip: ip.dst,
        local_port: tcp.dst_port,
        remote_ip: ip.src,
        remote_port: tcp.src_port,
    };
    let Some(flow) = table.lookup(&tuple) else {
        return PreOutcome::Exception(parsed);
    };
    if !flags.contains(TcpFlags::ACK) || flags.0 & !FAST_PATH_FLAGS != 0 {
        return PreOutcome::Exception(parsed);
    }
    let payload_offset =
        frame.len() - tcp.payload.len() - trailing_padding(frame, ip.payload_len, tcp);
    let opts = &tcp.options;
    let sack = SackBlocks {
        blocks: opts.sack_blocks,
        count: opts.sack_count.min(4),
    };
    PreOutcome::Fast(Summary {
        flow,
        seq: tcp.seq,
        ack: tcp.ack,
        window: tcp.window,
        flags,
        ts: opts.timestamps,
        sack,
        payload_offset: payload_offset as u16,
        payload_len: tcp.payload.len() as u16,
        ecn_ce: ip.dscp_ecn & 0b11 == 0b11,
    })
}

/// Bytes after the TCP payload (Ethernet padding of short frames).
fn trailing_padding(frame: &[u8], _ip_payload_len: usize, tcp: &crate::wire::TcpRepr<'_>) -> usize {
    // The payload is a sub-slice of `frame`; find where it ends.
    let frame_start = frame.as_ptr() as usize;
    let payload_end = tcp.payload.as_ptr() as usize + tcp.payload.len();
    frame_start + frame.len() - payload_end
}
