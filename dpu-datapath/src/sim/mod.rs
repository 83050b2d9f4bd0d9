//! A deterministic, seeded simulated wire for tests and the demo: two
//! engines joined by a link with latency, bandwidth, loss, reordering,
//! duplication and bit corruption, on a virtual clock, optionally recording
//! everything that crosses it to a pcap file. `ShardedPair` puts one
//! engine against a host made of several owners, whose flow groups move.

#![forbid(unsafe_code)]

mod harness;
mod pcap;
mod sharded;
mod wire;
pub mod workload;

pub use harness::{sim_engine_config, SimPair};
pub use pcap::PcapWriter;
pub use sharded::ShardedPair;
pub use wire::{Direction, LinkParams, SimWire, WireCounters};
