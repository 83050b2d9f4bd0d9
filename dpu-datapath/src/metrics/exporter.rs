//! [`Exporter`]: owns the `prometheus::Registry`, takes snapshots from the
//! service loop and renders the text exposition format for scrapes.

use super::catalog;
use super::collector::{Latest, SnapshotCollector};
use super::snapshot::Snapshot;
use parking_lot::Mutex;
use prometheus::{IntGauge, Opts, Registry, TextEncoder};
use std::sync::Arc;
use std::time::SystemTime;

/// The metrics of one service. Shared (`Arc`) between the service loop,
/// which calls [`Exporter::publish`], and the HTTP server, which calls
/// [`Exporter::render`].
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    latest: Arc<Mutex<Latest>>,
}

impl Exporter {
    /// `Content-Type` of [`Exporter::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// A registry with the snapshot collector and `flextoe_build_info`.
    pub fn new() -> Self {
        let registry = Registry::new();
        let latest = Arc::new(Mutex::new(Latest::default()));
        let collector = SnapshotCollector::new(latest.clone())
            .expect("the metric catalog has valid names and help");
        registry
            .register(Box::new(collector))
            .expect("the catalog registers once");
        let info = IntGauge::with_opts(
            Opts::new(catalog::BUILD_INFO_NAME, catalog::BUILD_INFO_HELP)
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid build_info options");
        info.set(1);
        registry
            .register(Box::new(info))
            .expect("build_info registers once");
        Self { registry, latest }
    }

    /// The registry, e.g. to add more collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Replaces what scrapes show with `snapshot` (counters are totals:
    /// each series is set to the value in the snapshot).
    pub fn publish(&self, snapshot: Snapshot) {
        let mut latest = self.latest.lock();
        latest.snapshot = snapshot;
        latest.published = Some(SystemTime::now());
    }

    /// The text exposition format (version 0.0.4) of everything registered.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = String::with_capacity(32 * 1024);
        // Cannot fail: the families are built from the validated catalog and
        // the output is an in-memory buffer.
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

impl Default for Exporter {
    fn default() -> Self {
        Self::new()
    }
}
