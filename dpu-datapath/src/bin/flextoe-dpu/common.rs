//! What the pipeline services (DPDK and loopback backends) share: the ISN
//! secret, the counters as JSON, and the host interface with its `stat`
//! document.

use dpu_datapath::hostif::{HostIfCounters, HostIfOptions, HostInterface, StatsFn};
use dpu_datapath::pipeline::worker::WorkerStatus;
use dpu_datapath::pipeline::StatsBoard;
use dpu_datapath::stats::{DropReason, Stats};
use pipeline_config::Config;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A fresh RFC 6528 ISN secret per run (the sim backend seeds it from the
/// configuration for replays; a real service must not be predictable).
pub fn isn_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

macro_rules! counters_json {
    ($s:expr, $($field:ident),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $(m.insert(stringify!($field).to_owned(), Value::from($s.$field));)*
        m
    }};
}

pub fn stats_json(s: &Stats) -> Value {
    let mut m = counters_json!(
        s,
        rx_frames,
        rx_bytes,
        tx_frames,
        tx_bytes,
        fast_path_segments,
        exceptions,
        rx_payload_bytes,
        tx_payload_bytes,
        pure_acks_sent,
        retransmit_segments,
        retransmit_bytes,
        fast_retransmits,
        timeout_retransmits,
        zero_window_probes,
        window_updates,
        challenge_acks,
        rst_sent,
        rst_received,
        arp_replies_sent,
        arp_requests_sent,
        icmp_echo_replies,
        connections_accepted,
        connections_opened,
        connections_reset,
        connections_closed,
        connect_failures,
    );
    let drops: serde_json::Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), Value::from(s.drops(*r))))
        .collect();
    m.insert("drops_total".to_owned(), Value::from(s.total_drops()));
    m.insert("drops".to_owned(), Value::Object(drops));
    Value::Object(m)
}

/// The host interface's counters as JSON.
pub fn hostif_json(c: &HostIfCounters) -> Value {
    json!({
        "apps_registered": c.apps_registered.load(Ordering::Relaxed),
        "apps_connected": c.apps_connected.load(Ordering::Relaxed),
        "apps_active": c.apps_active.load(Ordering::Relaxed),
        "requests": c.requests.load(Ordering::Relaxed),
        "events": c.events.load(Ordering::Relaxed),
        "sleeps": c.sleeps.load(Ordering::Relaxed),
        "violations": c.violations_total(),
    })
}

/// Starts the host interface (control socket + front) for `owners` owners.
pub fn start_host_interface(config: &Config, owners: usize) -> Result<HostInterface, String> {
    HostInterface::start(HostIfOptions::from_config(config)?, owners)
}

/// What `stat` on the control socket returns: engine and host-interface
/// counters and table sizes, refreshed by the pipeline every 100 ms.
pub fn stat_source(
    board: Arc<StatsBoard>,
    hostif: Arc<HostIfCounters>,
    workers: Vec<(String, Arc<WorkerStatus>)>,
) -> StatsFn {
    Box::new(move || {
        let t = board.total();
        let workers: Vec<Value> = workers
            .iter()
            .map(|(name, s)| {
                json!({
                    "name": name,
                    "busy_polls": s.busy_polls.load(Ordering::Relaxed),
                    "idle_polls": s.idle_polls.load(Ordering::Relaxed),
                })
            })
            .collect();
        json!({
            "workers": workers,
            "engine": stats_json(&t.stats),
            "flows": t.flows,
            "app_conns": t.app_conns,
            "handshakes": t.handshakes,
            "time_wait": t.time_wait,
            "hostif": hostif_json(&hostif),
        })
    })
}
