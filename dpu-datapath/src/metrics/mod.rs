//! Prometheus metrics: the counters of `stats::Stats`, the connection-table
//! gauges, the pipeline's task and worker counters, the sampled per-stage
//! processing-time histogram and the host interface's counters, served as
//! the text exposition format on `GET /metrics`.
//!
//! The data path never touches shared state for metrics: engines keep plain
//! per-worker integers, the service loop copies them into a [`Snapshot`] a
//! few times a second ([`Exporter::publish`]), and a scrape renders the
//! last snapshot through a custom `prometheus::core::Collector`.
//!
//! - `snapshot`: what is published (engines, tasks, workers) and how the
//!   pipeline's names become `replica`/`stage`/`worker` labels;
//! - `catalog`: every metric's name, type, labels and help;
//! - `family`: turns values into `MetricFamily`s;
//! - `collector`: the `Collector` over the latest snapshot;
//! - `exporter`: the registry and the text rendering;
//! - `server`: the HTTP endpoint.

mod catalog;
mod collector;
mod exporter;
mod family;
mod server;
mod snapshot;

pub use exporter::Exporter;
pub use server::MetricsServer;
pub use snapshot::{
    EngineGauges, EngineSample, EngineStage, HostIfSample, Snapshot, StageTimeSample, TaskSample,
    WorkerSample,
};

/// Names of every metric family exported (build info included), for
/// documentation checks and tests.
pub fn metric_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = catalog::ALL.iter().map(|s| s.name).collect();
    names.push(catalog::BUILD_INFO_NAME);
    names
}
