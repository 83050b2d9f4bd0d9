//! Checks of `host` and `metrics` (`logging` has only enums: nothing to check).

use super::report::Report;
use crate::{Host, Metrics};

/// `sun_path` holds 108 bytes including the terminating NUL.
const SUN_PATH_LEN: usize = 108;

pub(crate) fn check_host(host: &Host, report: &mut Report) {
    let path = &host.control_socket;
    if !path.starts_with('/') {
        report.error(
            "host.control_socket",
            format!(
                "{path:?} is not an absolute path; expected one like \"/run/flextoe/control.sock\""
            ),
        );
    } else if path.len() >= SUN_PATH_LEN {
        report.error(
            "host.control_socket",
            format!(
                "{path:?} is {} bytes long; a Unix socket path must be shorter than {SUN_PATH_LEN} bytes",
                path.len()
            ),
        );
    } else if path.contains('\0') {
        report.error(
            "host.control_socket",
            format!("{path:?} contains a NUL byte"),
        );
    }
    report.range("host.max_apps", host.max_apps, 1..=4096);
    report.range(
        "host.max_contexts_per_app",
        host.max_contexts_per_app,
        1..=256,
    );
    report.range("host.fork_contexts", host.fork_contexts, 0..=255);
    if host.max_contexts_per_app <= 256
        && host.fork_contexts <= 255
        && host.max_contexts_per_app + host.fork_contexts > 256
    {
        report.error(
            "host.fork_contexts",
            format!(
                "{} plus host.max_contexts_per_app {} is {}; a region holds at most 256 contexts",
                host.fork_contexts,
                host.max_contexts_per_app,
                host.max_contexts_per_app + host.fork_contexts
            ),
        );
    }
    report.power_of_two("host.ring_entries", u64::from(host.ring_entries), 8..=65536);
    report.range(
        "host.connections_per_app",
        host.connections_per_app,
        1..=65536,
    );
    report.range("host.dma_latency_ns", host.dma_latency_ns, 0..=1_000_000);
    report.range(
        "host.dma_max_outstanding",
        host.dma_max_outstanding,
        1..=65536,
    );
    // The front sleeps after 2,048 idle passes: more would never yield.
    report.range("host.front_yield_every", host.front_yield_every, 1..=2048);
}

pub(crate) fn check_metrics(metrics: &Metrics, report: &mut Report) {
    report.take(metrics.listen_addr());
}
