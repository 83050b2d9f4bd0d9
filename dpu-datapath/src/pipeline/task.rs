//! What a worker polls, and what each task reports at shutdown.

use super::moves::AppParcel;
use crate::app::ConnId;
use crate::engine::{Engine, HandleMoves};
use crate::stats::Stats;
use std::any::Any;
use std::sync::Arc;

/// One stage task: polled by its worker, returns how many items it moved.
pub trait Task: Send {
    fn poll(&mut self) -> usize;
    /// Nothing is buffered inside the task (rings may still hold items).
    fn idle(&mut self) -> bool;
    /// Adds this task's counters and state to the report.
    fn finish(self: Box<Self>, report: &mut PipelineReport);
}

/// An application co-located with a flow-group owner (a DPU-resident
/// service, or a test/benchmark workload). Host applications will reach
/// the owner through the host interface instead.
pub trait ShardApp: Send {
    /// Called once before traffic (e.g. to listen).
    fn start(&mut self, engine: &mut Engine);
    /// Called on every owner poll, after input and commits were processed.
    fn poll(&mut self, engine: &mut Engine);
    /// For retrieving results after shutdown.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;

    /// Whether it can hand its connections to another owner's instance
    /// (flow-group moves, `pipeline/moves.rs`); a pipeline whose
    /// applications cannot refuses moves.
    fn movable(&self) -> bool {
        false
    }

    /// Takes out its state for connections `conns` (handles in this
    /// owner's engine), which leave with their flow group.
    fn export_conns(&mut self, conns: &[ConnId]) -> AppParcel {
        let _ = conns;
        Box::new(())
    }

    /// Adopts connections moved here from another owner's instance:
    /// `parcel` from its [`ShardApp::export_conns`], `moves` each old
    /// handle with its new one in this owner's engine, which holds them
    /// already.
    fn import_conns(&mut self, engine: &mut Engine, parcel: AppParcel, moves: &HandleMoves) {
        let _ = (engine, parcel, moves);
    }
}

/// What an owner last published for live monitoring (see [`StatsBoard`]).
#[derive(Clone, Debug, Default)]
pub struct OwnerSnapshot {
    pub stats: Stats,
    /// Connections installed in the data path.
    pub flows: usize,
    /// Application connections alive.
    pub app_conns: usize,
    /// Handshakes in progress.
    pub handshakes: usize,
    /// TIME-WAIT entries.
    pub time_wait: usize,
    /// How many times this owner has published; in [`StatsBoard::total`],
    /// the fewest of any owner. A reader that needs counters taken after
    /// some moment waits until this has grown by two.
    pub refreshes: u64,
}

impl OwnerSnapshot {
    /// What `engine` holds now.
    pub fn of(engine: &Engine) -> Self {
        let (handshakes, time_wait) = engine.control_counts();
        Self {
            stats: engine.stats().clone(),
            flows: engine.flow_count(),
            app_conns: engine.app_conn_count(),
            handshakes,
            time_wait,
            refreshes: 0,
        }
    }
}

/// Live counters of a running pipeline: each owner and each `pre` worker
/// publishes a copy of its counters every [`StatsBoard::PERIOD`] (the
/// engines themselves are only handed back at shutdown). Cheap: one clone
/// of a few dozen integers per task per period. With stage timing on, the
/// `pre`, owner, `dma` and `post` tasks also publish their sampled
/// processing-time histograms to `timings` (see [`super::timing`]).
#[derive(Debug, Default)]
pub struct StatsBoard {
    pub owners: Vec<parking_lot::Mutex<OwnerSnapshot>>,
    pub pre: Vec<parking_lot::Mutex<Stats>>,
    /// One slot per timed task (empty when stage timing is off).
    pub timings: Vec<super::timing::TimingSlot>,
    /// Every task's counters as last published (items, full rings, reorder
    /// holds), for `stat` and `/metrics` while the pipeline runs.
    pub tasks: parking_lot::Mutex<Vec<TaskCounters>>,
}

impl StatsBoard {
    /// How often tasks publish.
    pub const PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

    pub fn new(owners: usize, pre: usize) -> Self {
        Self {
            owners: (0..owners).map(|_| Default::default()).collect(),
            pre: (0..pre).map(|_| Default::default()).collect(),
            timings: Vec::new(),
            tasks: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Replaces owner `index`'s published snapshot with what `engine` holds.
    pub fn publish_owner(&self, index: usize, engine: &Engine) {
        let mut snap = OwnerSnapshot::of(engine);
        let mut slot = self.owners[index].lock();
        snap.refreshes = slot.refreshes + 1;
        *slot = snap;
    }

    /// Replaces a task's published counters (matched by name).
    pub fn publish_task(&self, counters: TaskCounters) {
        let mut tasks = self.tasks.lock();
        match tasks.iter_mut().find(|t| t.name == counters.name) {
            Some(t) => *t = counters,
            None => tasks.push(counters),
        }
    }

    /// Sum over owners, with `pre`'s drops merged into the stats.
    pub fn total(&self) -> OwnerSnapshot {
        let mut total = OwnerSnapshot {
            refreshes: u64::MAX,
            ..OwnerSnapshot::default()
        };
        for o in &self.owners {
            let o = o.lock();
            total.refreshes = total.refreshes.min(o.refreshes);
            total.stats.merge(&o.stats);
            total.flows += o.flows;
            total.app_conns += o.app_conns;
            total.handshakes += o.handshakes;
            total.time_wait += o.time_wait;
        }
        for p in &self.pre {
            total.stats.merge(&p.lock());
        }
        if self.owners.is_empty() {
            total.refreshes = 0;
        }
        total
    }
}

/// Rate limiter for publishing to the [`StatsBoard`]: checks the clock
/// only every 64 polls.
#[derive(Debug)]
pub(crate) struct Publisher {
    polls: u32,
    last: std::time::Instant,
}

impl Default for Publisher {
    fn default() -> Self {
        Self {
            polls: 0,
            last: std::time::Instant::now(),
        }
    }
}

impl Publisher {
    /// True when it is time to publish (or `force`).
    pub(crate) fn due(&mut self, force: bool) -> bool {
        self.polls = self.polls.wrapping_add(1);
        if !force && !self.polls.is_multiple_of(64) {
            return false;
        }
        if force || self.last.elapsed() >= StatsBoard::PERIOD {
            self.last = std::time::Instant::now();
            return true;
        }
        false
    }
}

/// Publishes a task's counters to the board every [`StatsBoard::PERIOD`].
#[derive(Debug)]
pub(crate) struct LiveCounters {
    board: Arc<StatsBoard>,
    publisher: Publisher,
}

impl LiveCounters {
    pub(crate) fn new(board: Arc<StatsBoard>) -> Self {
        Self {
            board,
            publisher: Publisher::default(),
        }
    }

    /// Time to publish (checks the clock every 64 polls).
    pub(crate) fn due(&mut self) -> bool {
        self.publisher.due(false)
    }

    pub(crate) fn publish(&self, counters: TaskCounters) {
        self.board.publish_task(counters);
    }
}

/// Counters of one task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskCounters {
    pub name: String,
    pub items: u64,
    /// Pushes refused by a full output ring (back-pressure).
    pub full_events: u64,
    /// Items that waited behind a gap in a reorder window.
    pub reorder_holds: u64,
    /// Items still held by a reorder window at shutdown (must be 0).
    pub reorder_leftover: u64,
}

/// Everything the pipeline hands back at shutdown.
#[derive(Default)]
pub struct PipelineReport {
    /// Flow-group owners' engines (their stats, tables) in owner order.
    pub engines: Vec<(usize, Engine)>,
    pub apps: Vec<(usize, Box<dyn Any + Send>)>,
    /// Drops counted by `pre` workers (malformed frames never reach owners).
    pub pre_stats: Stats,
    pub tasks: Vec<TaskCounters>,
    /// Per worker: (name, busy polls, idle polls).
    pub workers: Vec<(String, u64, u64)>,
}

impl std::fmt::Debug for PipelineReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineReport")
            .field("engines", &self.engines.len())
            .field("tasks", &self.tasks)
            .field("workers", &self.workers)
            .finish()
    }
}

impl PipelineReport {
    /// Stats of all owners plus `pre`'s drops.
    pub fn total_stats(&self) -> Stats {
        let mut total = self.pre_stats.clone();
        for (_, e) in &self.engines {
            total.merge(e.stats());
        }
        total
    }

    /// Items left in reorder windows (a leaked stamp would show here).
    pub fn reorder_leftover(&self) -> u64 {
        self.tasks.iter().map(|t| t.reorder_leftover).sum()
    }

    pub fn reorder_holds(&self) -> u64 {
        self.tasks.iter().map(|t| t.reorder_holds).sum()
    }

    /// The owners' apps, downcast.
    pub fn take_apps<A: 'static>(&mut self) -> Vec<A> {
        std::mem::take(&mut self.apps)
            .into_iter()
            .filter_map(|(_, a)| a.downcast::<A>().ok().map(|b| *b))
            .collect()
    }
}
