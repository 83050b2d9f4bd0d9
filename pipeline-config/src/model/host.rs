//! `host`: the control interface host applications connect to.

use serde::{Deserialize, Serialize};

/// `host`: the control socket and limits on attached applications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Host {
    /// `host.control_socket`: Unix socket applications connect to; an
    /// absolute path shorter than 108 bytes. Default
    /// `"/run/flextoe/control.sock"`.
    pub control_socket: String,
    /// `host.max_apps`: applications attached at once, `1..=4096`.
    /// Default `64`.
    pub max_apps: u32,
    /// `host.max_contexts_per_app`: queue contexts per application,
    /// `1..=256`. Default `16`.
    pub max_contexts_per_app: u32,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            control_socket: "/run/flextoe/control.sock".to_owned(),
            max_apps: 64,
            max_contexts_per_app: 16,
        }
    }
}
