//! Flow identity shared by every stage: the 4-tuple, the flow id the control
//! plane allocates at install, and the flow-group hash that shards `proto`.

#![forbid(unsafe_code)]

mod hash;

pub use hash::{
    flow_group, frame_rss_hash, group_of_hash, rss_hash, rss_hash_with, select_hash_key,
    selected_hash_key, toeplitz_hash, HashKey, NET_TAP_RSS_KEY, RSS_KEY,
};

use std::net::Ipv4Addr;

/// A connection's 4-tuple, from the point of view of this engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    pub local_ip: Ipv4Addr,
    pub local_port: u16,
    pub remote_ip: Ipv4Addr,
    pub remote_port: u16,
}

impl FourTuple {
    /// The same connection as the other end sees it.
    pub fn reversed(&self) -> FourTuple {
        FourTuple {
            local_ip: self.remote_ip,
            local_port: self.remote_port,
            remote_ip: self.local_ip,
            remote_port: self.local_port,
        }
    }
}

impl std::fmt::Display for FourTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} <-> {}:{}",
            self.local_ip, self.local_port, self.remote_ip, self.remote_port
        )
    }
}

/// Index of an installed connection in every stage's flow table. Allocated by
/// the control plane at install time and freed when the flow leaves the data
/// path; the data path never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u32);

impl FlowId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
