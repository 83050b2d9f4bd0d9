//! What the exporter renders: a copy of the counters, taken by the service
//! loop (never by the hot path) and handed to [`super::Exporter::publish`].

use crate::engine::Engine;
use crate::hostif::{HostIfCounters, VIOLATION_KINDS};
use crate::pipeline::timing::StageHistogram;
use crate::pipeline::worker::WorkerStatus;
use crate::pipeline::{OwnerSnapshot, Plan, StatsBoard, TaskCounters};
use crate::stats::Stats;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Which kind of engine counted a [`EngineSample`] (its `stage` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineStage {
    /// A whole run-to-completion engine (the sim backend's service engine).
    Engine,
    /// A pipeline flow-group owner (`proto` and the control plane).
    Proto,
    /// A pipeline `pre` worker: it only counts drops of malformed frames.
    Pre,
}

impl EngineStage {
    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineStage::Engine => "engine",
            EngineStage::Proto => "proto",
            EngineStage::Pre => "pre",
        }
    }
}

/// Connection-table sizes of one engine (gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineGauges {
    /// Connections installed in the data path.
    pub flows: u64,
    /// Application connections alive.
    pub app_connections: u64,
    /// Handshakes in progress.
    pub handshakes: u64,
    /// TIME-WAIT entries.
    pub time_wait: u64,
}

impl EngineGauges {
    /// The gauges of an engine.
    pub fn of(engine: &Engine) -> Self {
        let (handshakes, time_wait) = engine.control_counts();
        Self {
            flows: engine.flow_count() as u64,
            app_connections: engine.app_conn_count() as u64,
            handshakes: handshakes as u64,
            time_wait: time_wait as u64,
        }
    }
}

/// The counters of one engine (or `pre` worker), labelled
/// `replica`/`stage`/`worker`.
#[derive(Clone, Debug)]
pub struct EngineSample {
    pub replica: usize,
    pub stage: EngineStage,
    /// Index of the worker within its stage and replica.
    pub worker: usize,
    pub stats: Stats,
    /// `None` for `pre` workers, which hold no connections.
    pub gauges: Option<EngineGauges>,
}

impl EngineSample {
    /// A whole engine (stage `engine`), e.g. the sim backend's service.
    pub fn engine(replica: usize, worker: usize, engine: &Engine) -> Self {
        Self {
            replica,
            stage: EngineStage::Engine,
            worker,
            stats: engine.stats().clone(),
            gauges: Some(EngineGauges::of(engine)),
        }
    }

    /// What a pipeline owner published on the [`StatsBoard`].
    pub fn owner(replica: usize, worker: usize, snap: &OwnerSnapshot) -> Self {
        Self {
            replica,
            stage: EngineStage::Proto,
            worker,
            stats: snap.stats.clone(),
            gauges: Some(EngineGauges {
                flows: snap.flows as u64,
                app_connections: snap.app_conns as u64,
                handshakes: snap.handshakes as u64,
                time_wait: snap.time_wait as u64,
            }),
        }
    }

    /// A `pre` worker's drop counters.
    pub fn pre(replica: usize, worker: usize, stats: &Stats) -> Self {
        Self {
            replica,
            stage: EngineStage::Pre,
            worker,
            stats: stats.clone(),
            gauges: None,
        }
    }
}

/// One pipeline task's counters, labelled `stage`/`replica`/`worker`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSample {
    /// Stage label, e.g. `pre`, `owner`, `ingress_reorder`, `egress`.
    pub stage: String,
    pub replica: usize,
    /// Index within the stage and replica (0 for one-per-replica tasks).
    pub worker: usize,
    pub items: u64,
    pub full_events: u64,
    pub reorder_holds: u64,
}

impl TaskSample {
    /// Labels a task from its name (`r<replica>-<stage><index>` or
    /// `owner<global index>`; `proto_per_replica` maps an owner's global
    /// index to its replica). `None` for a name of neither form.
    pub fn from_counters(t: &TaskCounters, proto_per_replica: usize) -> Option<Self> {
        let (stage, replica, worker) = match t.name.strip_prefix("owner") {
            Some(index) => {
                let k: usize = index.parse().ok()?;
                let q = proto_per_replica.max(1);
                ("owner".to_owned(), k / q, k % q)
            }
            None => parse_worker_name(&t.name)?,
        };
        Some(Self {
            stage,
            replica,
            worker,
            items: t.items,
            full_events: t.full_events,
            reorder_holds: t.reorder_holds,
        })
    }
}

/// Busy and idle polls of one worker thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSample {
    /// The worker's main stage (`pre`, `proto`, `post`, `dma`, `rtc`).
    pub stage: String,
    pub replica: usize,
    pub worker: usize,
    pub busy_polls: u64,
    pub idle_polls: u64,
    /// Time in polls that moved something (0 where not measured).
    pub busy_ns: u64,
}

impl WorkerSample {
    /// From a worker name as the pipeline gives it (`r0-pre1`, `r1-rtc`).
    pub fn from_name(name: &str, busy_polls: u64, idle_polls: u64) -> Option<Self> {
        let (stage, replica, worker) = parse_worker_name(name)?;
        Some(Self {
            stage,
            replica,
            worker,
            busy_polls,
            idle_polls,
            busy_ns: 0,
        })
    }

    pub fn with_busy_ns(mut self, busy_ns: u64) -> Self {
        self.busy_ns = busy_ns;
        self
    }
}

/// The sampled processing-time histogram of one stage in one replica (its
/// workers merged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageTimeSample {
    /// `pre`, `proto`, `dma` or `post`.
    pub stage: String,
    pub replica: usize,
    pub hist: StageHistogram,
}

/// The host interface's counters (see `hostif::HostIfCounters`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostIfSample {
    /// Applications registered since start.
    pub apps_registered: u64,
    /// Control-socket clients registered now.
    pub apps_connected: u64,
    /// Applications the front serves now (not closed for a violation).
    pub apps_active: u64,
    /// Contexts of the active applications.
    pub contexts: u64,
    /// Request descriptors taken from applications' request rings.
    pub requests: u64,
    /// Event descriptors posted to applications' event rings.
    pub events: u64,
    /// Times the front went to sleep on its doorbells.
    pub front_sleeps: u64,
    /// Host connections that moved with their flow group.
    pub conns_moved: u64,
    /// Commands sent on after their connection moved.
    pub commands_bounced: u64,
    /// Protocol violations, indexed by `VIOLATION_*` (0 unused).
    pub violations: [u64; VIOLATION_KINDS],
}

impl HostIfSample {
    /// Reads the live counters.
    pub fn of(c: &HostIfCounters) -> Self {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Self {
            apps_registered: load(&c.apps_registered),
            apps_connected: load(&c.apps_connected),
            apps_active: load(&c.apps_active),
            contexts: load(&c.contexts),
            requests: load(&c.requests),
            events: load(&c.events),
            front_sleeps: load(&c.sleeps),
            conns_moved: load(&c.conns_moved),
            commands_bounced: load(&c.commands_bounced),
            violations: std::array::from_fn(|i| load(&c.violations[i])),
        }
    }
}

/// `r<replica>-<stage>[<index>]` -> (stage with `-` as `_`, replica, index).
fn parse_worker_name(name: &str) -> Option<(String, usize, usize)> {
    let rest = name.strip_prefix('r')?;
    let (replica, rest) = rest.split_once('-')?;
    let replica = replica.parse().ok()?;
    let stage = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    if stage.is_empty() {
        return None;
    }
    let index = &rest[stage.len()..];
    let worker = if index.is_empty() {
        0
    } else {
        index.parse().ok()?
    };
    Some((stage.replace('-', "_"), replica, worker))
}

/// Everything one scrape shows. Counters are totals since start: the
/// exporter sets each series to the value here (no deltas).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub engines: Vec<EngineSample>,
    pub tasks: Vec<TaskSample>,
    pub workers: Vec<WorkerSample>,
    /// Sampled per-stage processing times (pipeline with stage timing on).
    pub stage_times: Vec<StageTimeSample>,
    /// The host interface (pipeline backends).
    pub hostif: Option<HostIfSample>,
    /// The XDP hooks' verdicts: (hook, verdict, frames), services with a
    /// port.
    pub xdp: Vec<(&'static str, &'static str, u64)>,
    /// The port's counters (services with a port).
    pub port: Option<crate::io::IoStats>,
}

impl Snapshot {
    /// A single run-to-completion engine: replica 0, worker 0.
    pub fn single_engine(engine: &Engine) -> Self {
        Self {
            engines: vec![EngineSample::engine(0, 0, engine)],
            ..Self::default()
        }
    }

    /// The live counters of a running pipeline: one sample per owner and
    /// per `pre` worker, the stage-time histograms merged by stage and
    /// replica, and every task's counters as last published (tasks publish
    /// every 100 ms; the final values come with
    /// [`Snapshot::with_report_counters`]); live worker polls with
    /// [`Snapshot::with_worker_statuses`].
    pub fn from_board(board: &StatsBoard, plan: &Plan) -> Self {
        let q = plan.proto.max(1);
        let p = plan.pre.max(1);
        let mut engines: Vec<EngineSample> = board
            .owners
            .iter()
            .enumerate()
            .map(|(k, o)| EngineSample::owner(k / q, k % q, &o.lock()))
            .collect();
        engines.extend(
            board
                .pre
                .iter()
                .enumerate()
                .map(|(s, st)| EngineSample::pre(s / p, s % p, &st.lock())),
        );
        let mut stage_times: Vec<StageTimeSample> = Vec::new();
        for slot in &board.timings {
            let hist = *slot.hist.lock();
            match stage_times
                .iter_mut()
                .find(|t| t.stage == slot.stage && t.replica == slot.replica)
            {
                Some(t) => t.hist.merge(&hist),
                None => stage_times.push(StageTimeSample {
                    stage: slot.stage.to_owned(),
                    replica: slot.replica,
                    hist,
                }),
            }
        }
        let tasks = board
            .tasks
            .lock()
            .iter()
            .filter_map(|t| TaskSample::from_counters(t, plan.proto))
            .collect();
        Self {
            engines,
            stage_times,
            tasks,
            ..Self::default()
        }
    }

    /// Adds the live busy/idle polls of the pipeline's workers (as
    /// `Pipeline::worker_statuses` gives them).
    pub fn with_worker_statuses(mut self, workers: &[(String, Arc<WorkerStatus>)]) -> Self {
        self.workers = workers
            .iter()
            .filter_map(|(name, s)| {
                WorkerSample::from_name(
                    name,
                    s.busy_polls.load(Ordering::Relaxed),
                    s.idle_polls.load(Ordering::Relaxed),
                )
                .map(|w| w.with_busy_ns(s.busy_ns.load(Ordering::Relaxed)))
            })
            .collect();
        self
    }

    /// Adds the XDP hooks' verdict counters.
    pub fn with_xdp(mut self, hooks: &crate::xdp::XdpHooks) -> Self {
        for (hook, counters) in ["ingress", "egress"].into_iter().zip(&hooks.counters) {
            for (verdict, n) in counters.pairs() {
                self.xdp.push((hook, verdict, n));
            }
        }
        self
    }

    /// Adds the port's counters.
    pub fn with_port(mut self, stats: crate::io::IoStats) -> Self {
        self.port = Some(stats);
        self
    }

    /// Adds the host interface's counters.
    pub fn with_hostif(mut self, counters: &HostIfCounters) -> Self {
        self.hostif = Some(HostIfSample::of(counters));
        self
    }

    /// Adds the task and worker counters of a pipeline report (tasks named
    /// in neither known form are left out).
    pub fn with_report_counters(
        mut self,
        tasks: &[TaskCounters],
        workers: &[(String, u64, u64)],
        plan: &Plan,
    ) -> Self {
        self.tasks = tasks
            .iter()
            .filter_map(|t| TaskSample::from_counters(t, plan.proto))
            .collect();
        self.workers = workers
            .iter()
            .filter_map(|(n, b, i)| WorkerSample::from_name(n, *b, *i))
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_names_parse_into_labels() {
        assert_eq!(parse_worker_name("r0-pre1"), Some(("pre".into(), 0, 1)));
        assert_eq!(parse_worker_name("r12-rtc"), Some(("rtc".into(), 12, 0)));
        assert_eq!(
            parse_worker_name("r1-ingress-reorder"),
            Some(("ingress_reorder".into(), 1, 0))
        );
        assert_eq!(parse_worker_name("owner3"), None);
        assert_eq!(parse_worker_name("r-pre0"), None);
        assert_eq!(parse_worker_name("r0-7"), None);
    }

    #[test]
    fn owner_tasks_map_to_their_replica() {
        let t = TaskCounters {
            name: "owner5".into(),
            items: 9,
            ..Default::default()
        };
        let s = TaskSample::from_counters(&t, 2).unwrap();
        assert_eq!(
            (s.stage.as_str(), s.replica, s.worker, s.items),
            ("owner", 2, 1, 9)
        );
    }
}
