//! `capture`: packet capture of offloaded traffic for `flextoe-dpu capture`
//! (the operator's tcpdump): a tap in the NIC wrapper that sees every frame
//! the pipeline receives from the wire and every frame it sends (including
//! frames looped back to the engine itself), a tcpdump-style filter, and
//! pcap output with nanosecond timestamps (`sim::PcapWriter`).

#![forbid(unsafe_code)]

mod filter;
mod tap;

pub use filter::Filter;
pub use tap::{CaptureTap, Session, SESSION_QUEUE};
