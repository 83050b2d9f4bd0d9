//! Wiring: builds every ring and task from the plan, places the tasks on
//! workers, starts them, and takes them back at shutdown.

use super::items::{EgressItem, IngressItem, PostItem, PreItem, ShardIn, StampedWork};
use super::reorder::Reorder;
use super::ring::{channel, Consumer, Producer};
use super::task::{LiveCounters, PipelineReport, Publisher, ShardApp, StatsBoard, Task};
use super::tasks::{
    dma::DmaTask, egress::EgressTask, ingress::IngressTask, ingress_reorder::IngressReorderTask,
    owner::OwnerTask, post::PostTask, pre::PreTask, SpareFrames, StageDelay,
};
use super::timing::{StageTimer, TimingSlot};
use super::topology::{Plan, TaskKind};
use super::worker::{self, IdlePolicy, WorkerStatus};
use super::Clock;
use crate::engine::work::Commit;
use crate::engine::{Engine, EngineConfig};
use crate::io::Nic;
use crate::pre::LocalAddrs;
use crate::stats::Stats;
use crossbeam_queue::ArrayQueue;
use pipeline_config::Topology;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the pipeline runs (besides the topology).
#[derive(Clone, Copy, Debug)]
pub struct PipelineOptions {
    /// Owners take time from frame timestamps (deterministic replays).
    pub virtual_clock: bool,
    /// Test-only: random busy-wait up to this many ns per item in `pre`,
    /// `dma` and `post` (stress for ordering); 0 in production.
    pub stage_delay_max_ns: u64,
    pub seed: u64,
    /// Pin workers to `topology.cores`.
    pub pin: bool,
    /// Sample per-stage processing times (`pipeline::timing`) and publish
    /// them on the stats board: on when `metrics.enabled`.
    pub stage_timing: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            virtual_clock: false,
            stage_delay_max_ns: 0,
            seed: 1,
            pin: true,
            stage_timing: false,
        }
    }
}

struct Worker {
    name: String,
    status: Arc<WorkerStatus>,
    handle: JoinHandle<Vec<Box<dyn Task>>>,
}

/// A running pipeline.
pub struct Pipeline {
    plan: Plan,
    nic: Arc<dyn Nic>,
    stop: Arc<AtomicBool>,
    /// Set at shutdown: ingress stops taking frames so the rest can drain.
    draining: Arc<AtomicBool>,
    workers: Vec<Worker>,
    board: Arc<StatsBoard>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("plan", &self.plan)
            .finish()
    }
}

fn unzip<A, B>(v: impl Iterator<Item = (A, B)>) -> (Vec<A>, Vec<B>) {
    v.unzip()
}

impl Pipeline {
    /// Builds and starts the pipeline. `make_app(owner)` gives each
    /// flow-group owner its co-located application.
    pub fn start(
        cfg: &EngineConfig,
        topology: &Topology,
        opts: PipelineOptions,
        nic: Arc<dyn Nic>,
        mut make_app: impl FnMut(usize) -> Box<dyn ShardApp>,
    ) -> Self {
        let plan = Plan::new(topology);
        let (ring, burst) = (plan.ring_size, plan.burst);
        let (p_n, q_n, d_n, s_n) = (plan.pre, plan.proto, plan.dma, plan.post);
        let local = LocalAddrs {
            mac: cfg.mac,
            ip: cfg.ip,
        };
        let arp_learn: Vec<Arc<ArrayQueue<ShardIn>>> = (0..plan.owners())
            .map(|_| Arc::new(ArrayQueue::new(1024)))
            .collect();
        let start = Instant::now();
        // Timing slots, per replica: pre workers, owners, dma, post.
        let per_replica = p_n + q_n + d_n + s_n;
        let slot = |r: usize, stage: usize, i: usize| {
            r * per_replica + [0, p_n, p_n + q_n, p_n + q_n + d_n][stage] + i
        };
        let timer = |r: usize, stage: usize, i: usize| {
            StageTimer::new(opts.stage_timing, slot(r, stage, i))
        };
        let mut board = StatsBoard::new(plan.owners(), plan.replicas * p_n);
        if opts.stage_timing {
            for r in 0..plan.replicas {
                for (stage, n) in [("pre", p_n), ("proto", q_n), ("dma", d_n), ("post", s_n)] {
                    board
                        .timings
                        .extend((0..n).map(|_| TimingSlot::new(stage, r)));
                }
            }
        }
        let board = Arc::new(board);
        // Windows hold everything that can be in flight between a sequencer
        // and its reorder point, so a gap never blocks the rings behind it.
        let ingress_window = (2 * p_n * ring + 4 * burst).next_power_of_two();
        let egress_window = ((q_n * d_n + d_n * s_n + s_n + q_n) * ring + 64 * burst)
            .next_power_of_two()
            .min(1 << 20);

        let draining = Arc::new(AtomicBool::new(false));
        let mut slots: Vec<Vec<(TaskKind, Box<dyn Task>)>> = Vec::new();
        for r in 0..plan.replicas {
            let mut tasks: Vec<(TaskKind, Box<dyn Task>)> = Vec::new();
            let (ing_out, pre_in): (Vec<Producer<IngressItem>>, Vec<Consumer<IngressItem>>) =
                unzip((0..p_n).map(|_| channel(ring)));
            let (pre_out, reo_in): (Vec<Producer<PreItem>>, Vec<Consumer<PreItem>>) =
                unzip((0..p_n).map(|_| channel(ring)));
            let (reo_out, owner_in): (Vec<Producer<ShardIn>>, Vec<Consumer<ShardIn>>) =
                unzip((0..q_n).map(|_| channel(ring)));
            let (commit_out, commit_in): (Vec<Producer<Commit>>, Vec<Consumer<Commit>>) =
                unzip((0..q_n).map(|_| channel(4 * ring)));
            let (direct_out, direct_in): (Vec<Producer<EgressItem>>, Vec<Consumer<EgressItem>>) =
                unzip((0..q_n).map(|_| channel(ring)));
            let mut owner_dma: Vec<Vec<Producer<StampedWork>>> =
                (0..q_n).map(|_| Vec::new()).collect();
            let mut dma_in: Vec<Vec<Consumer<StampedWork>>> =
                (0..d_n).map(|_| Vec::new()).collect();
            for outs in owner_dma.iter_mut() {
                for ins in dma_in.iter_mut() {
                    let (p, c) = channel(ring);
                    outs.push(p);
                    ins.push(c);
                }
            }
            let mut dma_post: Vec<Vec<Producer<PostItem>>> = (0..d_n).map(|_| Vec::new()).collect();
            let mut post_in: Vec<Vec<Consumer<PostItem>>> = (0..s_n).map(|_| Vec::new()).collect();
            for outs in dma_post.iter_mut() {
                for ins in post_in.iter_mut() {
                    let (p, c) = channel(ring);
                    outs.push(p);
                    ins.push(c);
                }
            }
            let spare = Arc::new(SpareFrames::new(4 * ring, nic.frame_source()));
            let (post_out, post_egress_in): (Vec<Producer<EgressItem>>, Vec<Consumer<EgressItem>>) =
                unzip((0..s_n).map(|_| channel(ring)));

            tasks.push((
                TaskKind::Ingress,
                Box::new(IngressTask {
                    live: LiveCounters::new(board.clone()),
                    replica: r,
                    nic: nic.clone(),
                    outs: ing_out,
                    burst,
                    rx: Vec::new(),
                    draining: draining.clone(),
                    next_seq: 0,
                    rr: 0,
                    pending: VecDeque::new(),
                    items: 0,
                }),
            ));
            for (i, (input, output)) in pre_in.into_iter().zip(pre_out).enumerate() {
                tasks.push((
                    TaskKind::Pre(i),
                    Box::new(PreTask {
                        live: LiveCounters::new(board.clone()),
                        name: format!("r{r}-pre{i}"),
                        input,
                        output,
                        local,
                        caps: cfg.caps,
                        burst,
                        batch: Vec::new(),
                        held: None,
                        stats: Stats::default(),
                        delay: StageDelay::new(
                            opts.stage_delay_max_ns,
                            opts.seed ^ (r * 100 + i) as u64,
                        ),
                        items: 0,
                        board: board.clone(),
                        board_slot: r * p_n + i,
                        publisher: Publisher::default(),
                        timer: timer(r, 0, i),
                    }),
                ));
            }
            tasks.push((
                TaskKind::IngressReorder,
                Box::new(IngressReorderTask {
                    live: LiveCounters::new(board.clone()),
                    replica: r,
                    plan: plan.clone(),
                    backlog: (0..reo_in.len()).map(|_| VecDeque::new()).collect(),
                    inputs: reo_in,
                    window: Reorder::new(ingress_window),
                    owners: reo_out,
                    pending: (0..q_n).map(|_| VecDeque::new()).collect(),
                    arp_learn: arp_learn.clone(),
                    burst,
                    batch: Vec::new(),
                    items: 0,
                    arp_learn_dropped: 0,
                    misrouted: 0,
                }),
            ));
            let owners = owner_in
                .into_iter()
                .zip(commit_in)
                .zip(owner_dma)
                .zip(direct_out);
            for (q, (((input, commits), dma_outs), egress_out)) in owners.enumerate() {
                let index = r * q_n + q;
                let mut engine = Engine::new(cfg.clone());
                engine.set_staged(true);
                engine.set_owned_groups(plan.groups_of_owner(index));
                let mut app = make_app(index);
                app.start(&mut engine);
                tasks.push((
                    TaskKind::Proto(q),
                    Box::new(OwnerTask {
                        live: LiveCounters::new(board.clone()),
                        index,
                        engine,
                        app,
                        input,
                        commits,
                        arp_learn: arp_learn[index].clone(),
                        dma_outs,
                        egress_out,
                        clock: if opts.virtual_clock {
                            Clock::Virtual { last: 0 }
                        } else {
                            Clock::Real { start }
                        },
                        burst,
                        rr: q,
                        next_seq: 0,
                        pending_dma: VecDeque::new(),
                        pending_egress: VecDeque::new(),
                        work: Vec::new(),
                        batch: Vec::new(),
                        commit_batch: Vec::new(),
                        items: 0,
                        board: board.clone(),
                        publisher: Publisher::default(),
                        timer: timer(r, 1, q),
                        spare: spare.clone(),
                    }),
                ));
            }
            for (k, (inputs, outs)) in dma_in.into_iter().zip(dma_post).enumerate() {
                tasks.push((
                    TaskKind::Dma(k),
                    Box::new(DmaTask {
                        spare: spare.clone(),
                        live: LiveCounters::new(board.clone()),
                        name: format!("r{r}-dma{k}"),
                        inputs,
                        outs,
                        burst,
                        rr: k,
                        pending: VecDeque::new(),
                        batch: Vec::new(),
                        delay: StageDelay::new(
                            opts.stage_delay_max_ns,
                            opts.seed ^ (r * 100 + 50 + k) as u64,
                        ),
                        items: 0,
                        timer: timer(r, 2, k),
                        board: board.clone(),
                        publisher: Publisher::default(),
                    }),
                ));
            }
            for (m, (inputs, out)) in post_in.into_iter().zip(post_out).enumerate() {
                tasks.push((
                    TaskKind::Post(m),
                    Box::new(PostTask {
                        spare: spare.clone(),
                        live: LiveCounters::new(board.clone()),
                        name: format!("r{r}-post{m}"),
                        inputs,
                        out,
                        caps: cfg.caps,
                        burst,
                        pending: VecDeque::new(),
                        batch: Vec::new(),
                        delay: StageDelay::new(
                            opts.stage_delay_max_ns,
                            opts.seed ^ (r * 100 + 80 + m) as u64,
                        ),
                        items: 0,
                        timer: timer(r, 3, m),
                        board: board.clone(),
                        publisher: Publisher::default(),
                    }),
                ));
            }
            let mut egress_inputs = post_egress_in;
            egress_inputs.extend(direct_in);
            tasks.push((
                TaskKind::Egress,
                Box::new(EgressTask {
                    live: LiveCounters::new(board.clone()),
                    replica: r,
                    first_owner: r * q_n,
                    backlog: (0..egress_inputs.len()).map(|_| VecDeque::new()).collect(),
                    inputs: egress_inputs,
                    windows: (0..q_n).map(|_| Reorder::new(egress_window)).collect(),
                    overflow: (0..q_n).map(|_| Default::default()).collect(),
                    nic: nic.clone(),
                    commit_outs: commit_out,
                    pending_commits: (0..q_n).map(|_| VecDeque::new()).collect(),
                    tx: Vec::new(),
                    burst,
                    batch: Vec::new(),
                    items: 0,
                    frames: 0,
                }),
            ));
            slots.push(tasks);
        }

        let stop = Arc::new(AtomicBool::new(false));
        let policy = IdlePolicy {
            spin_polls: topology.idle.spin_polls,
            park_after: Duration::from_micros(topology.idle.park_after_us as u64),
        };
        let mut workers = Vec::new();
        for w in &plan.workers {
            let mine: Vec<Box<dyn Task>> = w
                .tasks
                .iter()
                .filter_map(|(r, kind)| {
                    let replica = slots.get_mut(*r)?;
                    let at = replica.iter().position(|(k, _)| k == kind)?;
                    Some(replica.swap_remove(at).1)
                })
                .collect();
            let status = Arc::new(WorkerStatus::default());
            let (st, sp) = (status.clone(), stop.clone());
            let core = if opts.pin { w.core } else { None };
            let port = nic.clone();
            let handle = std::thread::Builder::new()
                .name(w.name.clone())
                .spawn(move || {
                    port.attach_thread();
                    let tasks = worker::run(mine, core, policy, st, sp);
                    port.detach_thread();
                    tasks
                })
                .expect("spawning a worker thread");
            workers.push(Worker {
                name: w.name.clone(),
                status,
                handle,
            });
        }
        // A plan from a validated topology places every task; a task left
        // here would stall the pipeline, so it is a programming error.
        for (r, left) in slots.iter().enumerate() {
            if let Some((kind, _)) = left.first() {
                panic!("task r{r}.{} is placed on no worker", kind.label());
            }
        }
        Self {
            plan,
            nic,
            stop,
            draining,
            workers,
            board,
        }
    }

    /// Live counters, refreshed by the owners and `pre` workers every
    /// [`StatsBoard::PERIOD`] while the pipeline runs.
    /// Each worker's name and live poll counters (busy / idle).
    pub fn worker_statuses(&self) -> Vec<(String, Arc<WorkerStatus>)> {
        self.workers
            .iter()
            .map(|w| (w.name.clone(), w.status.clone()))
            .collect()
    }

    pub fn stats_board(&self) -> Arc<StatsBoard> {
        self.board.clone()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn nic(&self) -> &Arc<dyn Nic> {
        &self.nic
    }

    fn all_idle(&self) -> bool {
        self.nic.rx_pending() == 0
            && self
                .workers
                .iter()
                .all(|w| w.status.idle.load(Ordering::Acquire))
    }

    /// Waits until no frame is queued and every worker has been idle, with
    /// no work done, across two complete passes of every worker after the
    /// check began (an idle flag from before is stale: on a busy machine a
    /// worker may not have run since work reached its rings). False on
    /// timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let load = |f: fn(&WorkerStatus) -> &std::sync::atomic::AtomicU64| -> Vec<u64> {
            self.workers
                .iter()
                .map(|w| f(&w.status).load(Ordering::Acquire))
                .collect()
        };
        while Instant::now() < deadline {
            if !self.all_idle() {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let busy = load(|s| &s.busy_polls);
            let passes = load(|s| &s.passes);
            // Two more passes each: the first may have begun before.
            while load(|s| &s.passes)
                .iter()
                .zip(&passes)
                .any(|(now, then)| *now < then + 2)
            {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if load(|s| &s.busy_polls) == busy && self.all_idle() {
                return true;
            }
        }
        false
    }

    /// Stops taking frames from the NIC, lets the pipeline drain (up to
    /// 5 s), then stops the workers, joins them and reports.
    pub fn shutdown(self) -> PipelineReport {
        self.draining.store(true, Ordering::Release);
        self.wait_idle(Duration::from_secs(5));
        self.stop.store(true, Ordering::Release);
        let mut report = PipelineReport::default();
        for w in self.workers {
            w.handle.thread().unpark();
            let busy = w.status.busy_polls.load(Ordering::Relaxed);
            let idle = w.status.idle_polls.load(Ordering::Relaxed);
            match w.handle.join() {
                Ok(tasks) => {
                    for t in tasks {
                        t.finish(&mut report);
                    }
                }
                Err(_) => tracing::error!(worker = %w.name, "worker panicked"),
            }
            report.workers.push((w.name, busy, idle));
        }
        report.engines.sort_by_key(|(i, _)| *i);
        report.apps.sort_by_key(|(i, _)| *i);
        report
    }
}
