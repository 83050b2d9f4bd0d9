//! `xdp`: eBPF programs attached at start (docs/xdp.md).

use serde::{Deserialize, Serialize};

/// `xdp`: programs the service loads before it takes traffic. Each can be
/// replaced or unloaded later with `flextoe-dpu bpf`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Xdp {
    /// `xdp.programs`: at most one per hook. Default none.
    pub programs: Vec<XdpProgram>,
}

/// One entry of `xdp.programs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XdpProgram {
    /// `file`: absolute path of the BPF object (`clang -target bpf -O2 -c`).
    pub file: String,
    /// `hook`: `"ingress"` (frames from the port) or `"egress"` (frames to
    /// it). Default `"ingress"`.
    pub hook: String,
    /// `section`: the program's code section. Default `"xdp"`.
    pub section: String,
}

impl Default for XdpProgram {
    fn default() -> Self {
        XdpProgram {
            file: String::new(),
            hook: "ingress".to_owned(),
            section: "xdp".to_owned(),
        }
    }
}
