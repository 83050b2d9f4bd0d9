//! The document model: one struct per JSON object, with its defaults.

mod host;
mod identity;
mod logging;
mod metrics;
mod placement;
mod port;
mod tcp;
mod topology;
mod xdp;

use serde::{Deserialize, Serialize};

pub use host::{DmaEngineKind, Host};
pub use identity::Identity;
pub use logging::{LogFormat, LogLevel, Logging};
pub use metrics::Metrics;
pub use placement::{Stage, TaskName, WorkerPlacement, TASK_SYNTAX};
pub use port::{Backend, Dpdk, Impairment, Impairments, Port};
pub use tcp::{CongestionControl, RateControl, SynCookies, Tcp, Timely};
pub use topology::{Idle, Topology};
pub use xdp::{Xdp, XdpProgram};

/// The whole service configuration: one JSON object with these sections.
///
/// Every section and field is optional in the document; missing ones take
/// the defaults documented on each field, which run on a 2-core machine
/// with the DPDK backend on a TAP interface (root), or with
/// `port.backend: "sim"` anywhere. Unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `identity`: the port's MAC and IPv4 addresses.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub identity: Identity,
    /// `port`: packet I/O backend, MTU, DPDK settings and fault injection.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub port: Port,
    /// `topology`: replicas, workers, CPU pinning and rings.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub topology: Topology,
    /// `tcp`: protocol parameters.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub tcp: Tcp,
    /// `host`: the control socket for host applications.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub host: Host,
    /// `metrics`: the metrics endpoint.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub metrics: Metrics,
    /// `logging`: log level and format.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub logging: Logging,
    /// `xdp`: eBPF programs attached at start.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub xdp: Xdp,
}
