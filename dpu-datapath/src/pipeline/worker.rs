//! A pinned worker thread: polls its tasks in bursts; when idle it spins,
//! then yields, then parks briefly, so idle workers leave a small machine's
//! cores to the busy ones.

use super::task::Task;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stopping worker keeps draining before it leaves anyway.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Idle policy, from `topology.idle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Empty polls spent spinning before yielding.
    pub spin_polls: u32,
    /// Continuous idle time after which the worker parks between polls.
    pub park_after: Duration,
}

/// Shared view of a worker, for quiescence detection and stats.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    pub busy_polls: AtomicU64,
    pub idle_polls: AtomicU64,
    /// Time spent in polls that moved something: its rate is the worker's
    /// busy share of its core (polls that find nothing count as idle).
    pub busy_ns: AtomicU64,
    /// The last pass moved nothing and no task buffers anything.
    pub idle: AtomicBool,
    /// Passes over the tasks so far: `idle` is only news once this moved
    /// on (a worker the scheduler has not run for a while still shows the
    /// `idle` of its last pass, before work reached its input rings).
    pub passes: AtomicU64,
}

/// Busy passes between two publications of a worker's counters.
const PUBLISH_EVERY: u64 = 32;

/// A worker's own copy of its [`WorkerStatus`] counters.
#[derive(Debug, Default)]
struct LocalCounts {
    busy_polls: u64,
    idle_polls: u64,
    busy_ns: u64,
    passes: u64,
}

impl LocalCounts {
    fn publish(&self, status: &WorkerStatus) {
        status.busy_polls.store(self.busy_polls, Ordering::Relaxed);
        status.idle_polls.store(self.idle_polls, Ordering::Relaxed);
        status.busy_ns.store(self.busy_ns, Ordering::Relaxed);
        status.passes.store(self.passes, Ordering::Release);
    }
}

pub fn run(
    mut tasks: Vec<Box<dyn Task>>,
    core: Option<usize>,
    policy: IdlePolicy,
    status: Arc<WorkerStatus>,
    stop: Arc<AtomicBool>,
) -> Vec<Box<dyn Task>> {
    if let Some(id) = core {
        // Pinning failures (e.g. a restricted cpuset) leave the thread
        // floating; the configuration already checked the core exists.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let mut empty_polls = 0u32;
    let mut idle_since: Option<Instant> = None;
    let mut stop_seen: Option<Instant> = None;
    // Counted here and published to `status` on every idle pass and every
    // PUBLISH_EVERY busy passes: atomics and a second clock read per pass
    // cost a fused worker a fifth of its time when its bursts are small.
    let mut local = LocalCounts::default();
    let mut pass_start = Instant::now();
    let mut last_busy = false;
    loop {
        // Once stopping, a worker that still has work gets a grace period
        // (its neighbours drain first); after it, it leaves regardless so
        // shutdown can never hang on a stuck neighbour.
        if stop.load(Ordering::Relaxed)
            && stop_seen.get_or_insert_with(Instant::now).elapsed() > STOP_GRACE
        {
            local.publish(&status);
            return tasks;
        }
        // One clock read per pass: the previous pass ended where this one
        // starts.
        let now = Instant::now();
        if last_busy {
            local.busy_ns += now.duration_since(pass_start).as_nanos() as u64;
        }
        pass_start = now;
        let mut moved = 0;
        for t in tasks.iter_mut() {
            moved += t.poll();
        }
        local.passes += 1;
        if moved > 0 {
            local.busy_polls += 1;
            // Published at once when work starts (`idle` goes false), then
            // in batches.
            if !last_busy || local.passes.is_multiple_of(PUBLISH_EVERY) {
                local.publish(&status);
                status.idle.store(false, Ordering::Release);
            }
            last_busy = true;
            empty_polls = 0;
            idle_since = None;
            continue;
        }
        // (The busy pass before this one was counted as this one began.)
        last_busy = false;
        local.idle_polls += 1;
        let quiet = tasks.iter_mut().all(|t| t.idle());
        status.idle.store(quiet, Ordering::Release);
        // `passes` last, with Release: a reader that sees it sees the rest.
        local.publish(&status);
        if quiet && stop.load(Ordering::Acquire) {
            return tasks;
        }
        empty_polls = empty_polls.saturating_add(1);
        if empty_polls < policy.spin_polls {
            std::hint::spin_loop();
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        // A task that is not quiet (copies in flight on its DMA engine)
        // completes within microseconds: never park on it.
        if !quiet || since.elapsed() < policy.park_after {
            std::thread::yield_now();
        } else {
            std::thread::park_timeout(Duration::from_micros(100));
        }
    }
}
