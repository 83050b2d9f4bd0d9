//! Without the `dpdk` feature there is no eBPF runtime (librte_bpf comes
//! with DPDK): loading a program says so, and nothing ever runs.

#![forbid(unsafe_code)]

use super::maps::Map;
use std::path::Path;
use std::sync::Arc;

use super::program::{Program, Runtime};

/// No runtime: every load is refused with the reason.
#[derive(Debug, Default)]
pub struct NoRuntime;

impl Runtime for NoRuntime {
    fn load(
        &self,
        _path: &Path,
        _section: &str,
        _map_names: &[String],
        _maps: Vec<Arc<Map>>,
        _capture: Arc<super::capture::CaptureRing>,
    ) -> Result<Box<dyn Program>, String> {
        Err(
            "this build has no eBPF runtime (built without the `dpdk` feature, which brings \
             librte_bpf)"
                .into(),
        )
    }
}
