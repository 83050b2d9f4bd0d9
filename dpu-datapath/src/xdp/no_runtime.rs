//! Without the `dpdk` feature there is no eBPF runtime (librte_bpf comes
//! with DPDK): loading a program says so, and nothing ever runs.

#![forbid(unsafe_code)]

use super::maps::Map;
use std::path::Path;
use std::sync::Arc;

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

/// Never constructed in this build.
#[derive(Debug)]
pub struct Instance(());

impl Instance {
    pub fn load(
        _path: &Path,
        _section: &str,
        _map_names: &[String],
        _maps: Vec<Arc<Map>>,
        _capture: Arc<super::capture::CaptureRing>,
    ) -> Result<Instance, String> {
        Err(
            "this build has no eBPF runtime (built without the `dpdk` feature, which brings \
             librte_bpf)"
                .into(),
        )
    }

    pub fn interpreted(self) -> Instance {
        self
    }

    pub fn jitted(&self) -> bool {
        false
    }

    pub fn run(&mut self, _window: &mut [u8], md: Md) -> (u64, Md) {
        (2, md)
    }
}
