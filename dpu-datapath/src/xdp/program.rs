//! What the hooks need of an eBPF runtime: load a program copy, run it on
//! a frame. One implementation today (`runtime.rs`, DPDK's librte_bpf, the
//! only one with a JIT on arm64); another (rbpf, ubpf) would implement the
//! same two traits. docs/xdp.md says why librte_bpf.

#![forbid(unsafe_code)]

use super::capture::CaptureRing;
use super::maps::Map;
use std::path::Path;
use std::sync::Arc;

/// Bytes of a frame's buffer a program sees (`FLEXTOE_WINDOW`).
pub const WINDOW: usize = 2048;

/// `struct flextoe_md` of `flextoe_xdp.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Md {
    pub len: u32,
    pub replica: u32,
    pub hook: u32,
    pub redirect: u32,
    pub rss: u32,
    pub reserved: u32,
    pub now_ns: u64,
}

/// One loaded copy of a program, run by one queue's poller at a time.
pub trait Program: Send + std::fmt::Debug {
    /// Runs on `window` (the frame, then spare room: [`WINDOW`] bytes)
    /// with `md`; the verdict and the metadata the program left.
    fn run(&mut self, window: &mut [u8], md: Md) -> (u64, Md);
    /// True when the program runs as machine code.
    fn jitted(&self) -> bool;
}

/// Loads programs.
pub trait Runtime: Send + Sync + std::fmt::Debug {
    /// A copy of section `section` of the object at `path` (already
    /// checked by `object::inspect`), with `maps` in the object's order
    /// and the ring `flextoe_capture` writes to.
    fn load(
        &self,
        path: &Path,
        section: &str,
        map_names: &[String],
        maps: Vec<Arc<Map>>,
        capture: Arc<CaptureRing>,
    ) -> Result<Box<dyn Program>, String>;
}
