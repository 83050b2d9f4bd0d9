//! A `prometheus::core::Collector` that builds the metric families from the
//! latest published [`Snapshot`] at scrape time. The data path keeps plain
//! per-worker integers (no shared atomics per packet); the service loop
//! copies them into a snapshot a few times a second, and a scrape reads the
//! last copy under a short lock.

use super::catalog as c;
use super::family::{FamilyBuilder, Spec};
use super::snapshot::{EngineGauges, EngineStage, HostIfSample, Snapshot};
use crate::stats::{DropReason, Stats};
use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use std::sync::Arc;
use std::time::SystemTime;

/// Reads one counter of a `Stats`.
type StatsField = fn(&Stats) -> u64;
/// Reads one gauge of an engine.
type GaugeField = fn(&EngineGauges) -> u64;
/// Reads one host-interface value.
type HostField = fn(&HostIfSample) -> u64;

/// The latest snapshot and when it was published.
#[derive(Debug, Default)]
pub(crate) struct Latest {
    pub(crate) snapshot: Snapshot,
    pub(crate) published: Option<SystemTime>,
}

/// Renders [`Latest`] as metric families.
#[derive(Debug)]
pub(crate) struct SnapshotCollector {
    latest: Arc<Mutex<Latest>>,
    descs: Vec<Desc>,
}

impl SnapshotCollector {
    pub(crate) fn new(latest: Arc<Mutex<Latest>>) -> prometheus::Result<Self> {
        let descs = c::ALL.iter().map(|s| s.desc()).collect::<Result<_, _>>()?;
        Ok(Self { latest, descs })
    }
}

impl Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let latest = self.latest.lock();
        families(&latest.snapshot, latest.published)
    }
}

/// Builds every family with at least one sample (the registry drops empty
/// ones: a backend without pipeline tasks shows no task metrics).
pub(crate) fn families(snap: &Snapshot, published: Option<SystemTime>) -> Vec<MetricFamily> {
    let mut out = Vec::with_capacity(c::ALL.len());
    let mut simple = |spec: &'static Spec, value: StatsField| {
        let mut f = FamilyBuilder::new(spec);
        for e in snap.engines.iter().filter(|e| e.stage != EngineStage::Pre) {
            let (r, w) = (e.replica.to_string(), e.worker.to_string());
            f.add(&[&r, e.stage.as_str(), &w], value(&e.stats) as f64);
        }
        out.push(f.build());
    };
    simple(&c::RX_FRAMES, |s| s.rx_frames);
    simple(&c::RX_BYTES, |s| s.rx_bytes);
    simple(&c::TX_FRAMES, |s| s.tx_frames);
    simple(&c::TX_BYTES, |s| s.tx_bytes);
    simple(&c::FAST_PATH_SEGMENTS, |s| s.fast_path_segments);
    simple(&c::EXCEPTIONS, |s| s.exceptions);
    simple(&c::RETRANSMITTED_SEGMENTS, |s| s.retransmit_segments);
    simple(&c::RETRANSMITTED_BYTES, |s| s.retransmit_bytes);
    simple(&c::TSO_SEGMENTS, |s| s.tso_segments);
    simple(&c::PURE_ACKS, |s| s.pure_acks_sent);
    simple(&c::ACKS_COALESCED, |s| s.acks_coalesced);
    simple(&c::CHALLENGE_ACKS, |s| s.challenge_acks);
    simple(&c::ZERO_WINDOW_PROBES, |s| s.zero_window_probes);
    simple(&c::WINDOW_UPDATES, |s| s.window_updates);
    simple(&c::RX_OUT_OF_ORDER, |s| s.rx_out_of_order_segments);
    simple(&c::ICMP_ECHO_REPLIES, |s| s.icmp_echo_replies);

    let mut split = |spec: &'static Spec, parts: &[(&str, StatsField)]| {
        let mut f = FamilyBuilder::new(spec);
        for e in snap.engines.iter().filter(|e| e.stage != EngineStage::Pre) {
            let (r, w) = (e.replica.to_string(), e.worker.to_string());
            for (label, value) in parts {
                f.add(&[&r, e.stage.as_str(), &w, label], value(&e.stats) as f64);
            }
        }
        out.push(f.build());
    };
    split(
        &c::PAYLOAD_BYTES,
        &[
            ("rx", |s| s.rx_payload_bytes),
            ("tx", |s| s.tx_payload_bytes),
        ],
    );
    split(
        &c::RETRANSMITS,
        &[
            ("fast", |s| s.fast_retransmits),
            ("timeout", |s| s.timeout_retransmits),
        ],
    );
    split(
        &c::CONNECTIONS,
        &[
            ("accepted", |s| s.connections_accepted),
            ("opened", |s| s.connections_opened),
            ("closed", |s| s.connections_closed),
            ("reset", |s| s.connections_reset),
            ("connect_failed", |s| s.connect_failures),
            ("handshake_expired", |s| s.handshakes_expired),
        ],
    );
    split(
        &c::KEEPALIVE,
        &[
            ("probes", |s| s.keepalive_probes),
            ("timeouts", |s| s.keepalive_timeouts),
        ],
    );
    split(
        &c::SYN_COOKIES,
        &[
            ("sent", |s| s.syn_cookies_sent),
            ("validated", |s| s.syn_cookies_validated),
            ("failed", |s| s.syn_cookies_failed),
        ],
    );
    split(
        &c::ECN,
        &[
            ("ce_received", |s| s.ecn_ce_received),
            ("ece_received", |s| s.ecn_ece_received),
            ("reductions", |s| s.ecn_reductions),
            ("cwr_sent", |s| s.ecn_cwr_sent),
        ],
    );
    split(
        &c::RATE,
        &[
            ("pacing_waits", |s| s.pacing_waits),
            ("rate_changes", |s| s.rate_changes),
        ],
    );
    split(
        &c::RSTS,
        &[("rx", |s| s.rst_received), ("tx", |s| s.rst_sent)],
    );
    split(
        &c::ARP_SENT,
        &[
            ("reply", |s| s.arp_replies_sent),
            ("request", |s| s.arp_requests_sent),
        ],
    );

    // Drops: every reason, zeros included, for every engine and `pre` worker.
    let mut drops = FamilyBuilder::new(&c::DROPS);
    for e in &snap.engines {
        let (r, w) = (e.replica.to_string(), e.worker.to_string());
        for reason in DropReason::ALL {
            let v = e.stats.drops(*reason) as f64;
            drops.add(&[&r, e.stage.as_str(), &w, reason.as_str()], v);
        }
    }
    out.push(drops.build());

    let gauges: [(&'static Spec, GaugeField); 4] = [
        (&c::FLOWS, |g| g.flows),
        (&c::APP_CONNECTIONS, |g| g.app_connections),
        (&c::HANDSHAKES, |g| g.handshakes),
        (&c::TIME_WAIT, |g| g.time_wait),
    ];
    for (spec, value) in gauges {
        let mut f = FamilyBuilder::new(spec);
        for e in &snap.engines {
            if let Some(g) = &e.gauges {
                let (r, w) = (e.replica.to_string(), e.worker.to_string());
                f.add(&[&r, e.stage.as_str(), &w], value(g) as f64);
            }
        }
        out.push(f.build());
    }

    let (mut items, mut full, mut holds) = (
        FamilyBuilder::new(&c::TASK_ITEMS),
        FamilyBuilder::new(&c::RING_FULL),
        FamilyBuilder::new(&c::REORDER_HOLDS),
    );
    for t in &snap.tasks {
        let (r, w) = (t.replica.to_string(), t.worker.to_string());
        let labels = [r.as_str(), t.stage.as_str(), w.as_str()];
        items.add(&labels, t.items as f64);
        full.add(&labels, t.full_events as f64);
        holds.add(&labels, t.reorder_holds as f64);
    }
    out.extend([items.build(), full.build(), holds.build()]);

    let mut polls = FamilyBuilder::new(&c::WORKER_POLLS);
    for wk in &snap.workers {
        let (r, w) = (wk.replica.to_string(), wk.worker.to_string());
        polls.add(&[&r, &wk.stage, &w, "busy"], wk.busy_polls as f64);
        polls.add(&[&r, &wk.stage, &w, "idle"], wk.idle_polls as f64);
    }
    out.push(polls.build());
    let mut busy = FamilyBuilder::new(&c::WORKER_BUSY);
    for wk in &snap.workers {
        let (r, w) = (wk.replica.to_string(), wk.worker.to_string());
        busy.add(&[&r, &wk.stage, &w], wk.busy_ns as f64 / 1e9);
    }
    out.push(busy.build());

    let mut stage = FamilyBuilder::new(&c::STAGE_PROCESSING);
    for t in &snap.stage_times {
        stage.add_histogram(&[&t.replica.to_string(), &t.stage], &t.hist);
    }
    out.push(stage.build());
    out.extend(hostif_families(snap.hostif.as_ref()));
    let mut xdp = FamilyBuilder::new(&c::XDP_FRAMES);
    for (hook, verdict, n) in &snap.xdp {
        xdp.add(&[hook, verdict], *n as f64);
    }
    out.push(xdp.build());
    out.extend(port_families(snap.port.as_ref()));

    let mut ts = FamilyBuilder::new(&c::SNAPSHOT_TIMESTAMP);
    if let Some(at) = published {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        ts.add(&[], secs);
    }
    out.push(ts.build());
    out
}

/// The host interface's families (empty without one).
fn hostif_families(h: Option<&HostIfSample>) -> Vec<MetricFamily> {
    let plain: [(&'static Spec, HostField); 7] = [
        (&c::HOST_APPS_REGISTERED, |h| h.apps_registered),
        (&c::HOST_APPS_CONNECTED, |h| h.apps_connected),
        (&c::HOST_APPS_ACTIVE, |h| h.apps_active),
        (&c::HOST_CONTEXTS, |h| h.contexts),
        (&c::HOST_FRONT_SLEEPS, |h| h.front_sleeps),
        (&c::HOST_CONNS_MOVED, |h| h.conns_moved),
        (&c::HOST_COMMANDS_BOUNCED, |h| h.commands_bounced),
    ];
    let mut out = Vec::new();
    for (spec, value) in plain {
        let mut f = FamilyBuilder::new(spec);
        if let Some(h) = h {
            f.add(&[], value(h) as f64);
        }
        out.push(f.build());
    }
    let mut desc = FamilyBuilder::new(&c::HOST_DESCRIPTORS);
    let mut violations = FamilyBuilder::new(&c::HOST_VIOLATIONS);
    if let Some(h) = h {
        desc.add(&["request"], h.requests as f64);
        desc.add(&["event"], h.events as f64);
        for (index, reason) in c::VIOLATION_REASONS {
            let v = h.violations.get(*index as usize).copied().unwrap_or(0);
            violations.add(&[reason], v as f64);
        }
    }
    out.extend([desc.build(), violations.build()]);
    out
}

/// The port's frames, drops by reason and buffers; empty families for
/// services without a port.
fn port_families(p: Option<&crate::io::IoStats>) -> Vec<MetricFamily> {
    let mut frames = FamilyBuilder::new(&c::PORT_FRAMES);
    let mut drops = FamilyBuilder::new(&c::PORT_DROPS);
    let mut buffers = FamilyBuilder::new(&c::PORT_BUFFERS);
    if let Some(p) = p {
        frames.add(&["rx"], p.rx_frames as f64);
        frames.add(&["tx"], p.tx_frames as f64);
        for (reason, n) in [
            ("rx_missed", p.rx_missed),
            ("rx_nombuf", p.rx_nombuf),
            ("rx_errors", p.rx_errors),
            ("rx_kernel", p.rx_dropped_kernel),
            ("tx_ring_full", p.tx_dropped_full),
            ("tx_no_buffer", p.tx_dropped_nombuf),
            ("tx_oversize", p.tx_dropped_oversize),
            ("tx_bad_queue", p.tx_dropped_bad_queue),
            ("tx_errors", p.tx_errors),
        ] {
            drops.add(&[reason], n as f64);
        }
        buffers.add(&["in_use"], p.pool_in_use as f64);
        buffers.add(&["free"], p.pool_free as f64);
    }
    vec![frames.build(), drops.build(), buffers.build()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::{EngineSample, StageTimeSample, TaskSample, WorkerSample};

    fn full_snapshot() -> Snapshot {
        let stats = Stats::default();
        Snapshot {
            engines: vec![
                EngineSample {
                    replica: 0,
                    stage: EngineStage::Proto,
                    worker: 0,
                    stats: stats.clone(),
                    gauges: Some(EngineGauges::default()),
                },
                EngineSample::pre(0, 0, &stats),
            ],
            tasks: vec![TaskSample {
                stage: "pre".into(),
                replica: 0,
                worker: 0,
                items: 1,
                full_events: 2,
                reorder_holds: 3,
            }],
            workers: vec![WorkerSample::from_name("r0-pre0", 5, 6).unwrap()],
            stage_times: vec![StageTimeSample {
                stage: "dma".into(),
                replica: 0,
                hist: Default::default(),
            }],
            hostif: Some(HostIfSample::default()),
            xdp: vec![("ingress", "drop", 3)],
            port: Some(crate::io::IoStats {
                rx_dropped_kernel: 7,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn emitted_families_are_exactly_the_catalog() {
        let fams = families(&full_snapshot(), Some(SystemTime::now()));
        let names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
        let mut expected: Vec<&str> = c::ALL.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn pre_workers_only_report_drops() {
        let fams = families(&full_snapshot(), None);
        let rx = fams
            .iter()
            .find(|f| f.name() == "flextoe_rx_frames_total")
            .unwrap();
        assert_eq!(rx.get_metric().len(), 1);
        let drops = fams
            .iter()
            .find(|f| f.name() == "flextoe_drops_total")
            .unwrap();
        assert_eq!(drops.get_metric().len(), 2 * DropReason::COUNT);
    }
}
