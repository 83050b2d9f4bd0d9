//! `logging`: log verbosity and output format.

use serde::{Deserialize, Serialize};

/// `logging`: what is logged and how it is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `logging.level`: `"error"`, `"warn"`, `"info"`, `"debug"` or
    /// `"trace"`. Default `"info"`.
    pub level: LogLevel,
    /// `logging.format`: `"text"` or `"json"`. Default `"text"`.
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

/// Least severe level that is logged, written in lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `"error"`: failures only.
    Error,
    /// `"warn"`: failures and anomalies.
    Warn,
    /// `"info"`: lifecycle events.
    Info,
    /// `"debug"`: per-connection events.
    Debug,
    /// `"trace"`: per-packet events.
    Trace,
}

/// Log line format, written in lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `"text"`: human-readable lines.
    Text,
    /// `"json"`: one JSON object per line.
    Json,
}
