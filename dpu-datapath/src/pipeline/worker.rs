//! A pinned worker thread: polls its tasks in bursts; when idle it spins,
//! then yields, then parks briefly, so idle workers leave a small machine's
//! cores to the busy ones. A worker that moved something wakes the parked
//! workers of its replicas ([`Wakers`]): the next stage of an item must not
//! sleep out its park while the item waits in its ring.

use super::task::Task;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Longest park: an item pushed just as its consumer parked (after its
/// last empty poll, before its flag was up, so no wakeup reached it) waits
/// at most this.
const PARK: Duration = Duration::from_micros(100);

/// The workers of one pipeline, so that one that produced work can wake
/// the sleeping workers of its replicas (one of them consumes it). Workers
/// of other replicas are left alone: a run-to-completion replica wakes
/// nobody.
#[derive(Debug, Default)]
pub struct Wakers {
    workers: Vec<(OnceLock<Thread>, AtomicBool)>,
    /// Per worker, the other workers that run a task of one of its
    /// replicas.
    peers: Vec<Vec<usize>>,
}

impl Wakers {
    /// For workers running tasks of `replicas[i]` (worker i's replicas).
    pub fn new(replicas: &[Vec<usize>]) -> Self {
        let peers = (0..replicas.len())
            .map(|i| {
                (0..replicas.len())
                    .filter(|&j| j != i && replicas[j].iter().any(|r| replicas[i].contains(r)))
                    .collect()
            })
            .collect();
        Self {
            workers: (0..replicas.len())
                .map(|_| (OnceLock::new(), AtomicBool::new(false)))
                .collect(),
            peers,
        }
    }

    /// Wakes the parked peers of worker `me`. Called after a pass that
    /// moved something; an unpark happens before the woken thread's park
    /// returns, so what the pass pushed is visible to it.
    fn wake_parked(&self, me: usize) {
        let Some(peers) = self.peers.get(me) else {
            return;
        };
        for &i in peers {
            let (thread, parked) = &self.workers[i];
            if parked.load(Ordering::Relaxed) && parked.swap(false, Ordering::AcqRel) {
                if let Some(t) = thread.get() {
                    t.unpark();
                }
            }
        }
    }

    /// Parks worker `me` for at most [`PARK`].
    fn park(&self, me: usize) {
        let Some((thread, parked)) = self.workers.get(me) else {
            std::thread::park_timeout(PARK);
            return;
        };
        thread.get_or_init(std::thread::current);
        parked.store(true, Ordering::Release);
        std::thread::park_timeout(PARK);
        parked.store(false, Ordering::Relaxed);
    }
}

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

impl IdlePolicy {
    /// Empty polls before parking when workers outnumber CPUs.
    const OVERSUBSCRIBED_SPIN: u32 = 64;

    /// `topology.idle`, for a machine `oversubscribed` by the placement
    /// (see [`oversubscribed`]): then (with `when_oversubscribed_park`) a
    /// short spin and straight to park, since yielding keeps CPUs from the
    /// workers (and applications) that have work.
    pub fn chosen(idle: &pipeline_config::Idle, oversubscribed: bool) -> Self {
        if idle.when_oversubscribed_park && oversubscribed {
            return Self {
                spin_polls: idle.spin_polls.min(Self::OVERSUBSCRIBED_SPIN),
                park_after: Duration::ZERO,
            };
        }
        Self {
            spin_polls: idle.spin_polls,
            park_after: Duration::from_micros(u64::from(idle.park_after_us)),
        }
    }
}

/// Whether worker threads pinned to `cores` (None: not pinned) must share
/// CPUs: two pinned to one core, or more of them than `cpus`.
pub fn oversubscribed(cores: &[Option<usize>], cpus: usize) -> bool {
    let pinned: Vec<usize> = cores.iter().flatten().copied().collect();
    if pinned.len() == cores.len() {
        let distinct: std::collections::HashSet<usize> = pinned.iter().copied().collect();
        return distinct.len() < pinned.len() || cores.len() > cpus;
    }
    cores.len() > cpus
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

/// Where a worker is among its pipeline's, to be woken and to wake others.
#[derive(Clone, Debug)]
pub struct WorkerSeat {
    pub wakers: Arc<Wakers>,
    pub index: usize,
}

pub fn run(
    mut tasks: Vec<Box<dyn Task>>,
    core: Option<usize>,
    policy: IdlePolicy,
    status: Arc<WorkerStatus>,
    stop: Arc<AtomicBool>,
    seat: WorkerSeat,
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
            seat.wakers.wake_parked(seat.index);
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
            seat.wakers.park(seat.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_outnumbering_cpus_park_at_once_unless_told_not_to() {
        let idle = pipeline_config::Idle::default();
        let spread = IdlePolicy::chosen(&idle, false);
        assert_eq!(
            (spread.spin_polls, spread.park_after),
            (1024, Duration::from_micros(200))
        );
        let crowded = IdlePolicy::chosen(&idle, true);
        assert_eq!(
            (crowded.spin_polls, crowded.park_after),
            (64, Duration::ZERO)
        );
        let told = pipeline_config::Idle {
            when_oversubscribed_park: false,
            ..idle
        };
        assert_eq!(IdlePolicy::chosen(&told, true), spread);
    }

    #[test]
    fn oversubscribed_when_threads_outnumber_cpus_or_share_a_pinned_core() {
        assert!(!oversubscribed(&[None, None], 2));
        assert!(oversubscribed(&[None, None, None], 2));
        assert!(!oversubscribed(&[Some(0), Some(1)], 4));
        assert!(oversubscribed(&[Some(1), Some(1)], 4), "two on one core");
        assert!(!oversubscribed(&[Some(0), None], 2));
    }

    #[test]
    fn workers_wake_only_the_workers_of_their_replicas() {
        // Worker 0 and 1: replica 0 split; worker 2: replica 1 alone;
        // worker 3 polls tasks of both.
        let w = Wakers::new(&[vec![0], vec![0], vec![1], vec![0, 1]]);
        assert_eq!(
            w.peers,
            vec![vec![1, 3], vec![0, 3], vec![3], vec![0, 1, 2]]
        );
        let rtc = Wakers::new(&[vec![0], vec![1]]);
        assert!(rtc.peers.iter().all(Vec::is_empty));
    }

    #[test]
    fn a_busy_worker_wakes_the_parked_ones_but_not_itself() {
        let wakers = Arc::new(Wakers::new(&[vec![0], vec![0], vec![0]]));
        let (tx, rx) = std::sync::mpsc::channel();
        let w = wakers.clone();
        let sleeper = std::thread::spawn(move || {
            // Parks until woken, at most PARK at a time.
            w.workers[1].0.get_or_init(std::thread::current);
            w.workers[1].1.store(true, Ordering::SeqCst);
            tx.send(()).unwrap();
            while w.workers[1].1.load(Ordering::SeqCst) {
                std::thread::park_timeout(PARK);
            }
        });
        rx.recv().unwrap();
        wakers.wake_parked(1);
        assert!(
            wakers.workers[1].1.load(Ordering::SeqCst),
            "a worker does not wake itself"
        );
        wakers.wake_parked(0);
        assert!(!wakers.workers[1].1.load(Ordering::SeqCst));
        sleeper.join().unwrap();
    }
}
