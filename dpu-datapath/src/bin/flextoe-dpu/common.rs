//! What the pipeline services (DPDK and loopback backends) share: the ISN
//! secret, the counters as JSON, the host interface with its `stat`
//! document, and the `/metrics` endpoint (also used by the sim backend).

use dpu_datapath::dma::DmaConfig;
use dpu_datapath::hostif::{HostIfCounters, HostIfOptions, HostInterface, StatsFn};
use dpu_datapath::io::{IoStats, Nic};
use dpu_datapath::metrics::{Exporter, MetricsServer, Snapshot};
use dpu_datapath::pipeline::worker::WorkerStatus;
use dpu_datapath::pipeline::{Pipeline, PipelineOptions, Plan, StatsBoard};
use dpu_datapath::stats::{DropReason, Stats};
use pipeline_config::Config;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often (wall time) a service loop publishes its counters to
/// `/metrics`.
pub const METRICS_PERIOD: Duration = Duration::from_millis(250);

/// Starts the `/metrics` endpoint on `metrics.listen` if `metrics.enabled`
/// (and says where).
pub fn start_metrics(config: &Config) -> Result<Option<(Arc<Exporter>, MetricsServer)>, String> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let addr = config.metrics.listen_addr().map_err(|e| e.to_string())?;
    let exporter = Arc::new(Exporter::new());
    let server = MetricsServer::start(addr, exporter.clone()).map_err(|e| {
        format!(
            "metrics.listen {addr}: cannot serve metrics there: {e} (is another \
                 flextoe-dpu running? choose a free port, or set metrics.enabled to false)"
        )
    })?;
    println!(
        "flextoe-dpu: metrics on http://{}/metrics",
        server.local_addr()
    );
    Ok(Some((exporter, server)))
}

/// `/metrics` of a pipeline backend: the owners' and `pre` workers'
/// counters and the stage-time histograms from the stats board, the
/// workers' live polls and the host interface's counters, published by
/// the service loop every [`METRICS_PERIOD`].
pub struct PipelineMetrics {
    exporter: Arc<Exporter>,
    server: MetricsServer,
    board: Arc<StatsBoard>,
    plan: Plan,
    workers: Vec<(String, Arc<WorkerStatus>)>,
    hostif: Arc<HostIfCounters>,
    xdp: Option<Arc<dpu_datapath::xdp::XdpHooks>>,
    port: Option<Arc<dyn Nic>>,
    last: Instant,
}

impl PipelineMetrics {
    /// Serves `pipeline`'s counters on the endpoint from [`start_metrics`].
    pub fn new(
        (exporter, server): (Arc<Exporter>, MetricsServer),
        pipeline: &Pipeline,
        hostif: Arc<HostIfCounters>,
    ) -> Self {
        let mut m = Self {
            exporter,
            server,
            board: pipeline.stats_board(),
            plan: pipeline.plan().clone(),
            workers: pipeline.worker_statuses(),
            hostif,
            xdp: None,
            port: None,
            last: Instant::now(),
        };
        m.publish();
        m
    }

    /// Also exports the port's XDP verdict counters.
    pub fn with_xdp(mut self, hooks: Arc<dpu_datapath::xdp::XdpHooks>) -> Self {
        self.xdp = Some(hooks);
        self.publish();
        self
    }

    /// Also exports the port's counters.
    pub fn with_port(mut self, port: Arc<dyn Nic>) -> Self {
        self.port = Some(port);
        self.publish();
        self
    }

    /// Publishes if [`METRICS_PERIOD`] has passed (call from the loop).
    pub fn tick(&mut self) {
        if self.last.elapsed() >= METRICS_PERIOD {
            self.publish();
        }
    }

    /// Publishes now (also after the pipeline's shutdown: the board then
    /// holds the final counters).
    pub fn publish(&mut self) {
        let mut snap = Snapshot::from_board(&self.board, &self.plan)
            .with_worker_statuses(&self.workers)
            .with_hostif(&self.hostif);
        if let Some(h) = &self.xdp {
            snap = snap.with_xdp(h);
        }
        if let Some(p) = &self.port {
            snap = snap.with_port(p.stats());
        }
        self.exporter.publish(snap);
        self.last = Instant::now();
    }

    /// A last publication, then stops the endpoint.
    pub fn shutdown(mut self) {
        self.publish();
        self.server.shutdown();
    }
}

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
        acks_coalesced,
        retransmit_segments,
        retransmit_bytes,
        tso_segments,
        fast_retransmits,
        timeout_retransmits,
        zero_window_probes,
        keepalive_probes,
        keepalive_timeouts,
        window_updates,
        rx_out_of_order_segments,
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
        handshakes_expired,
        syn_cookies_sent,
        syn_cookies_validated,
        syn_cookies_failed,
        ecn_ce_received,
        ecn_ece_received,
        ecn_reductions,
        ecn_cwr_sent,
        pacing_waits,
        rate_changes,
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
        "contexts": c.contexts.load(Ordering::Relaxed),
        "violations": c.violations_total(),
        "conns_moved": c.conns_moved.load(Ordering::Relaxed),
        "commands_bounced": c.commands_bounced.load(Ordering::Relaxed),
    })
}

/// Starts the host interface (control socket + front) for `owners` owners.
/// How the service runs its pipeline: workers pinned where the placement
/// names a core, stage timing with metrics, the DMA engine of `host.dma_*`.
/// Applies the placement chosen from the CPUs this process may use
/// (`topology.auto`, or the default on enough CPUs: see
/// `Topology::chosen_for`), with at most `max_replicas` replicas, and says
/// so.
pub fn choose_placement(config: &mut Config, max_replicas: usize) {
    let cpus = pipeline_config::CpuSet::allowed();
    let (topology, chosen) = config.topology.chosen_for(&cpus.cpus(), max_replicas);
    if !chosen {
        return;
    }
    let why = match config.topology.auto {
        Some(true) => "topology.auto",
        _ => "the default placement",
    };
    config.topology = topology;
    let t = &config.topology;
    println!(
        "flextoe-dpu: {why} on CPUs {cpus}: {} run-to-completion replica(s), {} flow groups, \
         pinned to {:?}",
        t.replicas, t.flow_groups, t.cores
    );
}

pub fn pipeline_options(config: &Config) -> PipelineOptions {
    PipelineOptions {
        pin: true,
        stage_timing: config.metrics.enabled,
        dma: DmaConfig {
            latency_ns: config.host.dma_latency_ns,
            max_outstanding: config.host.dma_max_outstanding as usize,
            reorder: config.host.dma_reorder,
            seed: isn_seed(),
            jobs: config.host.dma_engine == pipeline_config::DmaEngineKind::MemcpyJobs,
            fail_every: 0,
        },
        ..PipelineOptions::default()
    }
}

pub fn start_host_interface(config: &Config, owners: usize) -> Result<HostInterface, String> {
    HostInterface::start(HostIfOptions::from_config(config)?, owners)
}

/// Connects a started pipeline to its observers and operators: the
/// control socket's `stat` document, `groups` and `move-group`, and, when
/// `endpoint` is set, `/metrics`.
pub fn observe(
    hostif: &HostInterface,
    pipeline: &Pipeline,
    endpoint: Option<(Arc<Exporter>, MetricsServer)>,
    port: Option<Arc<dyn Nic>>,
) -> Option<PipelineMetrics> {
    hostif.set_group_mover(pipeline.group_mover());
    hostif.set_stats(stat_source(
        pipeline.stats_board(),
        hostif.counters(),
        pipeline.worker_statuses(),
        port.clone(),
    ));
    endpoint.map(|m| {
        let metrics = PipelineMetrics::new(m, pipeline, hostif.counters());
        match port {
            Some(p) => metrics.with_port(p),
            None => metrics,
        }
    })
}

/// The port's counters as the summary, `stat` and `--stats-json` show them.
pub fn io_json(s: &IoStats) -> Value {
    json!({
        "rx_frames": s.rx_frames,
        "rx_bytes": s.rx_bytes,
        "rx_csum_bad": s.rx_csum_bad,
        "rx_nombuf": s.rx_nombuf,
        "rx_missed": s.rx_missed,
        "rx_errors": s.rx_errors,
        "rx_dropped_kernel": s.rx_dropped_kernel,
        "tx_frames": s.tx_frames,
        "tx_bytes": s.tx_bytes,
        "tx_csum_offloaded": s.tx_csum_offloaded,
        "tx_dropped": s.tx_dropped(),
        // Why, as every drop is counted by its reason.
        "tx_dropped_ring_full": s.tx_dropped_full,
        "tx_dropped_no_buffer": s.tx_dropped_nombuf,
        "tx_dropped_oversize": s.tx_dropped_oversize,
        "tx_dropped_bad_queue": s.tx_dropped_bad_queue,
        "tx_errors": s.tx_errors,
        "pool_in_use": s.pool_in_use,
        "pool_free": s.pool_free,
    })
}

/// What `stat` on the control socket returns: engine and host-interface
/// counters and table sizes, refreshed by the pipeline every 100 ms.
fn stat_source(
    board: Arc<StatsBoard>,
    hostif: Arc<HostIfCounters>,
    workers: Vec<(String, Arc<WorkerStatus>)>,
    port: Option<Arc<dyn Nic>>,
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
                    "busy_ns": s.busy_ns.load(Ordering::Relaxed),
                })
            })
            .collect();
        let tasks: Vec<Value> = board
            .tasks
            .lock()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "items": t.items,
                    "full_events": t.full_events,
                    "reorder_holds": t.reorder_holds,
                })
            })
            .collect();
        json!({
            "port": port.as_ref().map(|p| io_json(&p.stats())),
            "tasks": tasks,
            "workers": workers,
            "engine": stats_json(&t.stats),
            "flows": t.flows,
            "app_conns": t.app_conns,
            "handshakes": t.handshakes,
            "time_wait": t.time_wait,
            "refreshes": t.refreshes,
            "hostif": hostif_json(&hostif),
        })
    })
}
