//! What a worker polls, and what each task reports at shutdown.

use crate::engine::Engine;
use crate::stats::Stats;
use std::any::Any;

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
