//! The FlexTOE-rs service configuration: one JSON document for the whole
//! service.
//!
//! Every section and field may be left out; it then takes the default
//! documented on the field, and [`Config::default`] runs on a 2-core machine
//! with the DPDK backend on a TAP interface (as root; `port.backend: "sim"`
//! runs anywhere). Unknown fields are errors, so typos do not pass
//! silently. [`Config::from_json_str`] and [`Config::from_file`] parse and
//! then [validate](Config::validate); validation reports every problem at
//! once, each naming the JSON path and what is allowed:
//!
//! ```
//! use pipeline_config::Config;
//!
//! let errors = Config::from_json_str(r#"{"topology": {"replicas": 0}, "tcp": {"mss": 9000}}"#)
//!     .unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "topology.replicas: 0 is out of range 1..=64\n\
//!      tcp.mss: 9000 + 40 header bytes exceeds port.mtu 1500; at most 1460 fits"
//! );
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod addr;
mod cpus;
mod error;
mod load;
mod model;
mod object;
mod validate;

pub use cpus::CpuSet;
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    Backend, Config, CongestionControl, DmaEngineKind, Dpdk, Host, Identity, Idle, Impairment,
    Impairments, LogFormat, LogLevel, Logging, Metrics, Port, RateControl, Stage, SynCookies,
    TaskName, Tcp, Timely, Topology, WorkerPlacement, Xdp, XdpProgram, TASK_SYNTAX,
};
