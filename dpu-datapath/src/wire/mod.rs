//! Packet formats on the wire: zero-copy views (`*Packet<T>` / `EthernetFrame<T>`) over byte
//! buffers plus semantic `*Repr` types that parse from and emit into those views.
//!
//! Rules every file here follows:
//! - no `unsafe`, no allocation, and no panic on any input: each view's `check_len` (or the
//!   `Repr::parse` that calls it) proves every accessor in bounds before it is used;
//! - emitting into a buffer shorter than `buffer_len()` is a caller bug and panics, which is why
//!   the frame-level `emit_*_frame` helpers check sizes and return [`Error`] instead.
#![forbid(unsafe_code)]

mod arp;
mod bytes;
pub mod checksum;
mod ethernet;
mod frame;
mod frame_emit;
mod icmpv4;
mod ipv4;
mod seq;
mod tcp;
mod tcp_flags;
mod tcp_options;
mod tcp_repr;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_frames;

use core::fmt;

pub use arp::{ArpOperation, ArpPacket, ArpRepr, ARP_IPV4_LEN};
pub use ethernet::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag, ETHERNET_HEADER_LEN,
    ETHERNET_VLAN_HEADER_LEN,
};
pub use frame::{parse_ingress, ChecksumCaps, IngressFrame, ParseError, L3, L4};
pub use frame_emit::{emit_arp_frame, emit_icmp_frame, emit_tcp_frame};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr, ICMPV4_HEADER_LEN};
pub use ipv4::{
    IpProtocol, Ipv4Error, Ipv4Packet, Ipv4Repr, ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT,
    IPV4_HEADER_LEN,
};
pub use seq::SeqNumber;
pub use tcp::{tcp_checksum, TcpError, TcpPacket, TCP_HEADER_LEN, TCP_MAX_HEADER_LEN};
pub use tcp_flags::TcpFlags;
pub use tcp_options::{TcpOptions, TCP_MAX_SACK_BLOCKS};
pub use tcp_repr::TcpRepr;

/// A buffer is too short or a field holds a value this module cannot represent.
///
/// Deliberately carries no detail: the layers that need a reason (IPv4, TCP, the ingress path)
/// have their own error enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed packet")
    }
}

impl std::error::Error for Error {}

/// Result with the detail-free wire [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
