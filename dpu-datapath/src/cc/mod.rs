//! Rate-based congestion control, as FlexTOE and TAS split it: the control
//! side turns per-connection feedback (RTT samples, losses) into a sending
//! rate ([`timely`], [`dctcp_rate`]); the flow scheduler enforces that rate by spacing the
//! connection's segments ([`pacer`]). Window-based NewReno and DCTCP live
//! in `proto` and need neither.

#![forbid(unsafe_code)]

pub mod dctcp_rate;
pub mod pacer;
pub mod timely;

pub use dctcp_rate::DctcpRate;
pub use pacer::Pacer;
pub use timely::{Timely, TimelyParams};
