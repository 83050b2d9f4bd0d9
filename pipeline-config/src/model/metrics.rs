//! `metrics`: the metrics endpoint.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// `metrics`: where counters are served for scraping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// `metrics.enabled`: serve metrics. Default `true`.
    pub enabled: bool,
    /// `metrics.listen`: socket address to listen on, `IP:port` such as
    /// `"127.0.0.1:9464"` or `"[::1]:9464"` (validated even when disabled).
    /// Default `"127.0.0.1:9464"`.
    pub listen: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            listen: "127.0.0.1:9464".to_owned(),
        }
    }
}

impl Metrics {
    /// The parsed `listen`; the error names `metrics.listen` and the expected
    /// form.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::new(
                "metrics.listen",
                format!(
                    "{:?} is not a socket address; expected IP:port like \"127.0.0.1:9464\" \
                     or \"[::1]:9464\"",
                    self.listen
                ),
            )
        })
    }
}
