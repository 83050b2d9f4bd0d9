//! `pre`: the first stage. Parses and validates a frame, looks the flow up by
//! its 4-tuple, and either summarises an established-path segment for
//! `proto` or hands the packet to the control plane (exception path).
//!
//! State owned: the flow table (4-tuple -> flow id) and each flow's header
//! template, written only by the control plane at install and removal.

#![forbid(unsafe_code)]

mod fast_parse;
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

/// What the stateless half of `pre` (parse, validate, summarise, route)
/// decided; owned, so it can travel to the flow group's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop(DropReason),
    /// ARP or ICMP for the control plane.
    Control,
    /// A valid TCP segment for us. `fast` says its flags allow the
    /// established fast path (if the flow exists); `summary.flow` is set by
    /// the lookup.
    Tcp {
        tuple: FourTuple,
        summary: Summary,
        fast: bool,
        /// The tuple's RSS hash, computed once by [`validate`] (on a
        /// data-parallel worker) for the flow-group routing after the
        /// ingress reorder; 0 from [`classify`], which needs none.
        rss: u32,
    },
}

/// Flags allowed on the established fast path; anything else is an exception.
const FAST_PATH_FLAGS: u8 = TcpFlags::ACK.0
    | TcpFlags::PSH.0
    | TcpFlags::FIN.0
    | TcpFlags::ECE.0
    | TcpFlags::CWR.0
    | TcpFlags::URG.0;

/// Classifies one received frame (both halves of `pre`).
pub fn classify<'a>(
    frame: &'a [u8],
    local: &LocalAddrs,
    table: &PreTable,
    caps: &ChecksumCaps,
) -> PreOutcome<'a> {
    if let Some(Verdict::Tcp {
        tuple, mut summary, ..
    }) = fast_parse::verdict(frame, &local.mac.0, local.ip, caps)
    {
        if let Some(flow) = table.lookup(&tuple) {
            summary.flow = flow;
            return PreOutcome::Fast(summary);
        }
    }
    let parsed = match parse_ingress(frame, caps) {
        Ok(p) => p,
        Err(e) => return PreOutcome::Drop(e.into()),
    };
    match verdict(frame, &parsed, local) {
        Verdict::Drop(r) => PreOutcome::Drop(r),
        Verdict::Control => PreOutcome::Exception(parsed),
        Verdict::Tcp {
            tuple,
            mut summary,
            fast,
            ..
        } => match table.lookup(&tuple) {
            Some(flow) if fast => {
                summary.flow = flow;
                PreOutcome::Fast(summary)
            }
            _ => PreOutcome::Exception(parsed),
        },
    }
}

/// The stateless half of `pre`: parse, validate and summarise, no table;
/// a TCP verdict carries the tuple's RSS hash for flow-group routing.
pub fn validate(frame: &[u8], local: &LocalAddrs, caps: &ChecksumCaps) -> Verdict {
    validate_hashed(frame, local, caps, None)
}

/// [`validate`] with the RSS hash the NIC computed for the frame, when it
/// did (the same Toeplitz hash and key: ports only report it when they run
/// RSS with ours), so the hash is not computed twice.
pub fn validate_hashed(
    frame: &[u8],
    local: &LocalAddrs,
    caps: &ChecksumCaps,
    nic_rss: Option<u32>,
) -> Verdict {
    let mut v = fast_parse::verdict(frame, &local.mac.0, local.ip, caps)
        .unwrap_or_else(|| validate_generic(frame, local, caps));
    if let Verdict::Tcp { tuple, rss, .. } = &mut v {
        *rss = nic_rss.unwrap_or_else(|| crate::flow::rss_hash(tuple));
    }
    v
}

/// [`validate`] by the generic parser alone (no RSS hash): the reference
/// the fixed-offset parse of the established shape is checked against.
pub fn validate_generic(frame: &[u8], local: &LocalAddrs, caps: &ChecksumCaps) -> Verdict {
    match parse_ingress(frame, caps) {
        Ok(parsed) => verdict(frame, &parsed, local),
        Err(e) => Verdict::Drop(e.into()),
    }
}

fn verdict(frame: &[u8], parsed: &IngressFrame<'_>, local: &LocalAddrs) -> Verdict {
    let dst = parsed.eth.dst;
    if dst != local.mac && !dst.is_broadcast() && !dst.is_multicast() {
        return Verdict::Drop(DropReason::NotForUs);
    }
    let (ip, tcp) = match &parsed.l3 {
        L3::Arp(_) => return Verdict::Control,
        L3::Ipv4 { ip, l4 } => {
            if ip.dst != local.ip || dst != local.mac {
                return Verdict::Drop(DropReason::NotForUs);
            }
            match l4 {
                L4::Icmp(_) => return Verdict::Control,
                L4::Tcp(tcp) => (ip, tcp),
            }
        }
    };
    let flags = tcp.flags;
    let syn = flags.contains(TcpFlags::SYN);
    if (syn && (flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST))) || flags.0 == 0 {
        return Verdict::Drop(DropReason::BadFlags);
    }
    let tuple = FourTuple {
        local_ip: ip.dst,
        local_port: tcp.dst_port,
        remote_ip: ip.src,
        remote_port: tcp.src_port,
    };
    let fast = flags.contains(TcpFlags::ACK) && flags.0 & !FAST_PATH_FLAGS == 0;
    let opts = &tcp.options;
    let sack = SackBlocks {
        blocks: opts.sack_blocks,
        count: opts.sack_count.min(4),
    };
    Verdict::Tcp {
        rss: 0,
        tuple,
        fast,
        summary: Summary {
            flow: crate::flow::FlowId(u32::MAX),
            seq: tcp.seq,
            ack: tcp.ack,
            window: tcp.window,
            flags,
            ts: opts.timestamps,
            sack,
            payload_offset: payload_offset(frame, tcp.payload) as u16,
            payload_len: tcp.payload.len() as u16,
            ecn_ce: ip.dscp_ecn & 0b11 == crate::wire::ECN_CE,
        },
    }
}

/// Offset of `payload` (a sub-slice of `frame`) within `frame`.
fn payload_offset(frame: &[u8], payload: &[u8]) -> usize {
    (payload.as_ptr() as usize).saturating_sub(frame.as_ptr() as usize)
}
