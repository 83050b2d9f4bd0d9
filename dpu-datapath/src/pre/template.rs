//! The header template of a flow: everything in an outgoing frame that does
//! not change per segment. Written once by the control plane at install.

use crate::flow::FourTuple;
use crate::wire::{EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, VlanTag};

/// Per-flow constant header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderTemplate {
    pub local_mac: EthernetAddress,
    pub remote_mac: EthernetAddress,
    pub vlan: Option<VlanTag>,
    pub tuple: FourTuple,
    /// Timestamps were negotiated: every segment carries TSopt.
    pub timestamps: bool,
}

impl HeaderTemplate {
    pub fn ethernet(&self) -> EthernetRepr {
        EthernetRepr {
            src: self.local_mac,
            dst: self.remote_mac,
            vlan: self.vlan,
            ethertype: EtherType::Ipv4,
        }
    }

    pub fn ipv4(&self) -> Ipv4Repr {
        Ipv4Repr {
            src: self.tuple.local_ip,
            dst: self.tuple.remote_ip,
            protocol: IpProtocol::Tcp,
            payload_len: 0,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        }
    }
}
