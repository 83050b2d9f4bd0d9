//! The XDP-style hook: eBPF programs, written in C and compiled with clang,
//! that see every frame from the port before the stack does (`ingress`)
//! and every frame the stack sends before the port does (`egress`), and
//! decide: pass (as rewritten), drop, send back out, or hand to another
//! replica. Programs share state with the service and operators through
//! maps. This is the F of FlexTOE; docs/xdp.md is the guide.
//!
//! - `object`: reads a program object (maps, sections, external names);
//! - `maps`: array, hash and per-replica array maps;
//! - `capture`: the ring programs capture frames to (`bpf capture`);
//! - `program`: what the hooks need of a runtime (two traits), `Md`;
//! - `runtime`: DPDK's librte_bpf (validator, JIT), the only unsafe file;
//! - `hooks`: which program runs where, loading and replacing, faults;
//! - `nic`: the hooks as a wrapper of the port;
//! - `ops`: the control-socket operations behind `flextoe-dpu bpf`.

pub mod capture;
mod hash_table;
pub mod hooks;
pub mod maps;
pub mod nic;
pub mod object;
pub mod ops;

pub mod program;
pub use program::{Md, Program, Runtime, WINDOW};

#[cfg(feature = "dpdk")]
mod runtime;
#[cfg(feature = "dpdk")]
pub use runtime::{Instance, RteBpf};
/// The runtime the service uses.
#[cfg(feature = "dpdk")]
pub type DefaultRuntime = RteBpf;

#[cfg(not(feature = "dpdk"))]
mod no_runtime;
#[cfg(not(feature = "dpdk"))]
pub use no_runtime::NoRuntime;
#[cfg(not(feature = "dpdk"))]
pub type DefaultRuntime = NoRuntime;

pub use hooks::{Attached, HookPoint, VerdictCounters, XdpHooks};
pub use maps::{Map, MapDef, MapKind};
pub use nic::XdpNic;

#[cfg(all(test, feature = "dpdk"))]
mod tests;
