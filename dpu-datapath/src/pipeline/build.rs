//! Wiring: builds every ring and task from the plan, places the tasks on
//! workers, starts them, and takes them back at shutdown.

use super::items::{EgressItem, IngressItem, PostItem, PreItem, Returned, ShardIn, StampedWork};
use super::moves::{
    Accepting, Arrival, GroupMover, MoveControl, OwnerMoves, ReplicaControl, RouteCtl, Routes,
    SteeredAway,
};
use super::reorder::Reorder;
use super::ring::{channel, Consumer, Producer};
use super::task::{LiveCounters, PipelineReport, Publisher, ShardApp, StatsBoard, Task};
use super::tasks::fused_moves::FusedMoves;
use super::tasks::{
    dma::DmaTask,
    egress::EgressTask,
    fused::{FinishOut, Finisher, FusedOwner, Intake, RingFinisher, StagePublisher},
    ingress::IngressTask,
    ingress_reorder::IngressReorderTask,
    owner::OwnerTask,
    pipelined::{PipelinedInTask, PipelinedOutTask},
    post::PostTask,
    pre::PreTask,
    rtc::RtcTask,
    split::{SplitDataTask, SplitOwnerTask},
    SpareFrames, StageDelay,
};
use super::timing::{StageTimer, TimingSlot};
use super::topology::{Plan, TaskKind};
use super::worker::{self, IdlePolicy, WorkerStatus};
use super::Clock;
use crate::dma::{DmaConfig, DmaEngine, DmaQueue};
use crate::engine::work::{Commit, Work};
use crate::engine::{Engine, EngineConfig};
use crate::io::Nic;
use crate::pre::LocalAddrs;
use crate::stats::Stats;
use crossbeam_queue::ArrayQueue;
use crossbeam_queue::SegQueue;
use pipeline_config::Topology;
use std::cell::Cell;
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
    /// Run a replica with one task of each kind placed as run to
    /// completion or as the split as fused tasks, without rings between
    /// co-located stages (on by default; off to measure or test the ring
    /// path in those placements).
    pub fuse: bool,
    /// The emulated DMA engine each replica's `dma` submits to (latency,
    /// copies in flight, reordering); `DmaConfig::immediate()` for
    /// benchmarks of the data path alone.
    pub dma: DmaConfig,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            virtual_clock: false,
            stage_delay_max_ns: 0,
            seed: 1,
            pin: true,
            stage_timing: false,
            fuse: true,
            dma: DmaConfig::default(),
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
    /// Flow-group moves (`pipeline/moves.rs`).
    pub(super) moves: GroupMover,
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

/// What every replica's tasks share: the plan, the port, the stats board,
/// the ARP queues, the clock's origin and the shutdown flag.
struct Wiring<'a> {
    cfg: &'a EngineConfig,
    plan: Plan,
    opts: PipelineOptions,
    nic: Arc<dyn Nic>,
    local: LocalAddrs,
    board: Arc<StatsBoard>,
    arp_learn: Vec<Arc<ArrayQueue<ShardIn>>>,
    start: Instant,
    draining: Arc<AtomicBool>,
    /// Every owner's mailbox for groups moved to it.
    mailboxes: Vec<Arc<SegQueue<Arrival>>>,
    /// Per replica, its ingress's and ingress reorder's move requests
    /// (staged replicas).
    routes: Vec<Option<ReplicaControl>>,
    /// Which replicas take each flow group's frames.
    accepting: Arc<Accepting>,
    /// Every application started so far can move its connections.
    movable: Cell<bool>,
}

/// How a replica's tasks are built (see [`Wiring::shape`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One fused task (`tasks/rtc.rs`).
    RunToCompletion,
    /// Two fused tasks, data side and owner (`tasks/split.rs`).
    Split,
    /// Two fused tasks cut in packet order, RX + `pre` + owner and `dma` +
    /// `post` + TX (`tasks/pipelined.rs`).
    Pipelined,
    /// Separate tasks joined by rings, with the reorder windows.
    Staged,
}

/// One replica's tasks, by kind, until they are placed on workers.
type ReplicaTasks = Vec<(TaskKind, Box<dyn Task>)>;

/// Stage indices of the per-replica timing slots.
const PRE: usize = 0;
const PROTO: usize = 1;
const DMA: usize = 2;
const POST: usize = 3;

impl<'a> Wiring<'a> {
    fn new(cfg: &'a EngineConfig, plan: Plan, opts: PipelineOptions, nic: Arc<dyn Nic>) -> Self {
        let mut board = StatsBoard::new(plan.owners(), plan.replicas * plan.pre);
        if opts.stage_timing {
            for r in 0..plan.replicas {
                for (stage, n) in [
                    ("pre", plan.pre),
                    ("proto", plan.proto),
                    ("dma", plan.dma),
                    ("post", plan.post),
                ] {
                    board
                        .timings
                        .extend((0..n).map(|_| TimingSlot::new(stage, r)));
                }
            }
        }
        Self {
            cfg,
            local: LocalAddrs {
                mac: cfg.mac,
                ip: cfg.ip,
            },
            arp_learn: (0..plan.owners())
                .map(|_| Arc::new(ArrayQueue::new(1024)))
                .collect(),
            mailboxes: (0..plan.owners()).map(|_| Arc::default()).collect(),
            routes: (0..plan.replicas).map(|_| None).collect(),
            accepting: Arc::new(Accepting::new(&plan)),
            movable: Cell::new(true),
            plan,
            opts,
            nic,
            board: Arc::new(board),
            start: Instant::now(),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The sampler of task `i` of `stage` in replica `r`: timing slots go
    /// per replica, `pre` workers, owners, `dma`, then `post`.
    fn timer(&self, r: usize, stage: usize, i: usize) -> StageTimer {
        let p = &self.plan;
        let per_replica = p.pre + p.proto + p.dma + p.post;
        let first = [0, p.pre, p.pre + p.proto, p.pre + p.proto + p.dma][stage];
        StageTimer::new(self.opts.stage_timing, r * per_replica + first + i)
    }

    fn clock(&self) -> Clock {
        if self.opts.virtual_clock {
            Clock::Virtual { last: 0 }
        } else {
            Clock::Real { start: self.start }
        }
    }

    /// A `dma` task's engine (each has its own, as a DPU core its queue).
    fn dma_engine(&self, salt: usize) -> Box<dyn DmaEngine> {
        DmaConfig {
            seed: self.opts.dma.seed ^ salt as u64,
            ..self.opts.dma
        }
        .engine()
    }

    fn delay(&self, salt: usize) -> StageDelay {
        StageDelay::new(self.opts.stage_delay_max_ns, self.opts.seed ^ salt as u64)
    }

    /// A replica's spare frames: one ring's worth. Frames move between
    /// replicas (a segment sent by one is received by another on the
    /// loopback), so a replica's queue fills up to its capacity over time:
    /// four rings' worth held 6.5 MB of idle heap frames per replica.
    fn spare(&self) -> Arc<SpareFrames> {
        Arc::new(SpareFrames::new(
            self.plan.ring_size,
            self.nic.frame_source(),
        ))
    }

    /// Owner `index`'s engine, with its application started.
    fn engine(
        &self,
        index: usize,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> (Engine, Box<dyn ShardApp>) {
        let mut engine = Engine::new(self.cfg.clone());
        engine.set_staged(true);
        engine.set_owned_groups(self.plan.groups_of_owner(index));
        let mut app = make_app(index);
        app.start(&mut engine);
        self.movable.set(self.movable.get() && app.movable());
        (engine, app)
    }

    /// The worker each task of replica `r` is placed on, by kind.
    fn worker_of(&self, r: usize, kind: TaskKind) -> Option<usize> {
        self.plan
            .workers
            .iter()
            .position(|w| w.tasks.contains(&(r, kind)))
    }

    /// How replica `r` runs: fused when it has one task of each kind and
    /// the placement co-locates them as run to completion (all seven on
    /// one worker), as the split (the data-parallel side on one worker,
    /// ingress reorder and owner on another) or pipelined (ingress, `pre`,
    /// ingress reorder and owner on one worker, `dma`, `post` and egress on
    /// another); otherwise as separate tasks.
    fn shape(&self, r: usize) -> Shape {
        let p = &self.plan;
        if !self.opts.fuse || (p.pre, p.proto, p.dma, p.post) != (1, 1, 1, 1) {
            return Shape::Staged;
        }
        let data = [
            TaskKind::Ingress,
            TaskKind::Pre(0),
            TaskKind::Dma(0),
            TaskKind::Post(0),
            TaskKind::Egress,
        ]
        .map(|k| self.worker_of(r, k));
        let owner = [TaskKind::IngressReorder, TaskKind::Proto(0)].map(|k| self.worker_of(r, k));
        let one = |ws: &[Option<usize>]| ws[0].is_some() && ws.iter().all(|w| *w == ws[0]);
        let (front, back) = (&[data[0], data[1], owner[0], owner[1]], &data[2..]);
        match (one(&data), one(&owner)) {
            (true, true) if data[0] == owner[0] => Shape::RunToCompletion,
            (true, true) => Shape::Split,
            _ if one(front) && one(back) => Shape::Pipelined,
            _ => Shape::Staged,
        }
    }

    fn intake(&self, r: usize) -> Intake {
        Intake {
            replica: r,
            owner: r * self.plan.proto,
            plan: self.plan.clone(),
            nic: self.nic.clone(),
            draining: self.draining.clone(),
            local: self.local,
            caps: self.cfg.caps,
            arp_learn: self.arp_learn.clone(),
            accepting: self.accepting.clone(),
            timer: self.timer(r, PRE, 0),
            stats: Stats::default(),
            arp_learn_dropped: 0,
            items: 0,
        }
    }

    fn finisher(&self, r: usize, spare: &Arc<SpareFrames>) -> Finisher {
        Finisher {
            dma: DmaQueue::new(self.dma_engine(r * 100)),
            dma_timer: self.timer(r, DMA, 0),
            out: FinishOut {
                replica: r,
                nic: self.nic.clone(),
                caps: self.cfg.caps,
                spare: spare.clone(),
                post_timer: self.timer(r, POST, 0),
                tx: Vec::with_capacity(2 * self.plan.burst),
                segments: 0,
                items: 0,
            },
        }
    }

    fn fused_owner(
        &self,
        r: usize,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> FusedOwner {
        let index = r * self.plan.proto;
        let (engine, app) = self.engine(index, make_app);
        FusedOwner {
            index,
            engine,
            app,
            clock: self.clock(),
            timer: self.timer(r, PROTO, 0),
            arp_learn: self.arp_learn[index].clone(),
            board: self.board.clone(),
            publisher: Publisher::default(),
            items: 0,
        }
    }

    fn stage_publisher(&self, r: usize) -> StagePublisher {
        StagePublisher {
            board: self.board.clone(),
            pre_slot: r * self.plan.pre,
            publisher: Publisher::default(),
        }
    }

    /// Replica `r` as one fused task (placed where its ingress is).
    fn fused_replica(
        &mut self,
        r: usize,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> ReplicaTasks {
        let burst = self.plan.burst;
        let steered_away: Arc<SegQueue<SteeredAway>> = Arc::default();
        self.routes[r] = Some(ReplicaControl {
            routes: None,
            ingress: steered_away.clone(),
        });
        let task = RtcTask {
            moves: FusedMoves {
                replica: r,
                index: r * self.plan.proto,
                flow_groups: self.plan.flow_groups,
                mailboxes: self.mailboxes.clone(),
                steered_away,
                leaving: VecDeque::new(),
                accepting: self.accepting.clone(),
                arriving: Vec::new(),
            },
            held: Vec::new(),
            live: LiveCounters::new(self.board.clone()),
            intake: self.intake(r),
            owner: self.fused_owner(r, make_app),
            finisher: self.finisher(r, &self.spare()),
            stages: self.stage_publisher(r),
            rx: Vec::with_capacity(burst),
            work: Vec::with_capacity(2 * burst),
            commits: Vec::with_capacity(2 * burst),
        };
        vec![(TaskKind::Ingress, Box::new(task))]
    }

    /// Replica `r` split and fused: the data side placed where its ingress
    /// is, the owner where its `proto` task is.
    fn split_replica(
        &self,
        r: usize,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> ReplicaTasks {
        let (ring, burst) = (self.plan.ring_size, self.plan.burst);
        let (to_owner, input) = channel::<ShardIn>(ring);
        let (to_data, from_owner) = channel::<Work>(ring);
        let (commits_out, commits) = channel::<Commit>(4 * ring);
        let spare = self.spare();
        let data = SplitDataTask {
            live: LiveCounters::new(self.board.clone()),
            intake: self.intake(r),
            out: RingFinisher::new(self.finisher(r, &spare), from_owner, commits_out, burst),
            stages: self.stage_publisher(r),
            to_owner,
            pending_in: VecDeque::new(),
            rx: Vec::with_capacity(burst),
        };
        let owner = SplitOwnerTask {
            live: LiveCounters::new(self.board.clone()),
            replica: r,
            owner: self.fused_owner(r, make_app),
            input,
            commits,
            to_data,
            pending: VecDeque::new(),
            spare,
            burst,
            batch: Vec::with_capacity(burst),
            commit_batch: Vec::with_capacity(4 * burst),
            work: Vec::with_capacity(2 * burst),
            received: 0,
        };
        vec![
            (TaskKind::Ingress, Box::new(data)),
            (TaskKind::Proto(0), Box::new(owner)),
        ]
    }

    /// Replica `r` pipelined and fused: RX, `pre` and the owner placed
    /// where its ingress is, `dma`, `post` and TX where its `dma` task is.
    fn pipelined_replica(
        &self,
        r: usize,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> ReplicaTasks {
        let (ring, burst) = (self.plan.ring_size, self.plan.burst);
        let (to_out, from_in) = channel::<Work>(ring);
        let (commits_out, commits) = channel::<Commit>(4 * ring);
        let spare = self.spare();
        let input = PipelinedInTask {
            live: LiveCounters::new(self.board.clone()),
            intake: self.intake(r),
            owner: self.fused_owner(r, make_app),
            stages: self.stage_publisher(r),
            to_out,
            commits,
            pending: VecDeque::new(),
            rx: Vec::with_capacity(burst),
            work: Vec::with_capacity(2 * burst),
            commit_batch: Vec::with_capacity(4 * burst),
            spare: spare.clone(),
            burst,
        };
        let output = PipelinedOutTask {
            live: LiveCounters::new(self.board.clone()),
            out: RingFinisher::new(self.finisher(r, &spare), from_in, commits_out, burst),
            stages: self.stage_publisher(r),
        };
        vec![
            (TaskKind::Ingress, Box::new(input)),
            (TaskKind::Dma(0), Box::new(output)),
        ]
    }

    /// Replica `r` as separate tasks joined by rings.
    fn staged_replica(
        &mut self,
        r: usize,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> ReplicaTasks {
        let ring = self.plan.ring_size;
        let (p_n, q_n, d_n, s_n) = (
            self.plan.pre,
            self.plan.proto,
            self.plan.dma,
            self.plan.post,
        );
        let (ing_out, pre_in) = unzip((0..p_n).map(|_| channel::<IngressItem>(ring)));
        let (pre_out, reo_in) = unzip((0..p_n).map(|_| channel::<PreItem>(ring)));
        let (reo_out, owner_in) = unzip((0..q_n).map(|_| channel::<ShardIn>(ring)));
        let (commit_out, commit_in) = unzip((0..q_n).map(|_| channel::<Returned>(4 * ring)));
        let requests: Arc<SegQueue<RouteCtl>> = Arc::default();
        let steered_away = Arc::default();
        self.routes[r] = Some(ReplicaControl {
            routes: Some(requests.clone()),
            ingress: Arc::clone(&steered_away),
        });
        let (direct_out, direct_in) = unzip((0..q_n).map(|_| channel::<EgressItem>(ring)));
        let (owner_dma, dma_in) = mesh::<StampedWork>(q_n, d_n, ring);
        let (dma_post, post_in) = mesh::<PostItem>(d_n, s_n, ring);
        let (post_out, mut egress_in) = unzip((0..s_n).map(|_| channel::<EgressItem>(ring)));
        egress_in.extend(direct_in);
        let spare = self.spare();

        let ingress = self.ingress_task(r, ing_out, steered_away, &requests);
        let mut tasks: ReplicaTasks = vec![(TaskKind::Ingress, ingress)];
        for (i, (input, output)) in pre_in.into_iter().zip(pre_out).enumerate() {
            tasks.push((TaskKind::Pre(i), self.pre_task(r, i, input, output)));
        }
        tasks.push((
            TaskKind::IngressReorder,
            self.ingress_reorder_task(r, reo_in, reo_out, &requests),
        ));
        let owners = owner_in
            .into_iter()
            .zip(commit_in)
            .zip(owner_dma)
            .zip(direct_out);
        for (q, (((input, commits), dma_outs), egress_out)) in owners.enumerate() {
            let owner = OwnerRings {
                input,
                commits,
                dma_outs,
                egress_out,
                requests: requests.clone(),
            };
            tasks.push((
                TaskKind::Proto(q),
                self.owner_task(r, q, owner, &spare, make_app),
            ));
        }
        for (k, (inputs, outs)) in dma_in.into_iter().zip(dma_post).enumerate() {
            tasks.push((TaskKind::Dma(k), self.dma_task(r, k, inputs, outs, &spare)));
        }
        for (m, (inputs, out)) in post_in.into_iter().zip(post_out).enumerate() {
            tasks.push((TaskKind::Post(m), self.post_task(r, m, inputs, out, &spare)));
        }
        tasks.push((TaskKind::Egress, self.egress_task(r, egress_in, commit_out)));
        tasks
    }

    fn ingress_task(
        &self,
        r: usize,
        outs: Vec<Producer<IngressItem>>,
        steered_away: Arc<SegQueue<SteeredAway>>,
        routes: &Arc<SegQueue<RouteCtl>>,
    ) -> Box<dyn Task> {
        Box::new(IngressTask {
            steered_away,
            leaving: VecDeque::new(),
            routes: routes.clone(),
            live: LiveCounters::new(self.board.clone()),
            replica: r,
            nic: self.nic.clone(),
            outs,
            burst: self.plan.burst,
            rx: Vec::new(),
            draining: self.draining.clone(),
            next_seq: 0,
            rr: 0,
            pending: VecDeque::new(),
            items: 0,
        })
    }

    fn pre_task(
        &self,
        r: usize,
        i: usize,
        input: Consumer<IngressItem>,
        output: Producer<PreItem>,
    ) -> Box<dyn Task> {
        Box::new(PreTask {
            live: LiveCounters::new(self.board.clone()),
            name: format!("r{r}-pre{i}"),
            replica: r,
            accepting: self.accepting.clone(),
            plan: self.plan.clone(),
            input,
            output,
            local: self.local,
            caps: self.cfg.caps,
            burst: self.plan.burst,
            batch: Vec::new(),
            held: None,
            stats: Stats::default(),
            delay: self.delay(r * 100 + i),
            items: 0,
            board: self.board.clone(),
            board_slot: r * self.plan.pre + i,
            publisher: Publisher::default(),
            timer: self.timer(r, PRE, i),
        })
    }

    fn ingress_reorder_task(
        &self,
        r: usize,
        inputs: Vec<Consumer<PreItem>>,
        owners: Vec<Producer<ShardIn>>,
        requests: &Arc<SegQueue<RouteCtl>>,
    ) -> Box<dyn Task> {
        let p = &self.plan;
        // The window holds everything that can be in flight between the
        // sequencer and here, so a gap never blocks the rings behind it.
        let window = (2 * p.pre * p.ring_size + 4 * p.burst).next_power_of_two();
        Box::new(IngressReorderTask {
            live: LiveCounters::new(self.board.clone()),
            replica: r,
            plan: p.clone(),
            routes: Routes::new(p, r, requests.clone(), self.accepting.clone()),
            backlog: (0..inputs.len()).map(|_| VecDeque::new()).collect(),
            inputs,
            window: Reorder::new(window),
            pending: (0..owners.len()).map(|_| VecDeque::new()).collect(),
            owners,
            arp_learn: self.arp_learn.clone(),
            burst: p.burst,
            batch: Vec::new(),
            items: 0,
            arp_learn_dropped: 0,
        })
    }

    fn owner_task(
        &self,
        r: usize,
        q: usize,
        rings: OwnerRings,
        spare: &Arc<SpareFrames>,
        make_app: &mut dyn FnMut(usize) -> Box<dyn ShardApp>,
    ) -> Box<dyn Task> {
        let index = r * self.plan.proto + q;
        let (engine, app) = self.engine(index, make_app);
        let moves = OwnerMoves::new(index, self.mailboxes.clone(), rings.requests);
        Box::new(OwnerTask {
            live: LiveCounters::new(self.board.clone()),
            index,
            engine,
            app,
            input: rings.input,
            commits: rings.commits,
            arp_learn: self.arp_learn[index].clone(),
            dma_outs: rings.dma_outs,
            egress_out: rings.egress_out,
            clock: self.clock(),
            burst: self.plan.burst,
            rr: q,
            next_seq: 0,
            pending_dma: VecDeque::new(),
            pending_egress: VecDeque::new(),
            work: Vec::new(),
            batch: Vec::new(),
            commit_batch: Vec::new(),
            items: 0,
            board: self.board.clone(),
            publisher: Publisher::default(),
            timer: self.timer(r, PROTO, q),
            spare: spare.clone(),
            moves,
        })
    }

    fn dma_task(
        &self,
        r: usize,
        k: usize,
        inputs: Vec<Consumer<StampedWork>>,
        outs: Vec<Producer<PostItem>>,
        spare: &Arc<SpareFrames>,
    ) -> Box<dyn Task> {
        Box::new(DmaTask {
            spare: spare.clone(),
            live: LiveCounters::new(self.board.clone()),
            name: format!("r{r}-dma{k}"),
            inputs,
            outs,
            burst: self.plan.burst,
            rr: k,
            pending: VecDeque::new(),
            dma: DmaQueue::new(self.dma_engine(r * 100 + k)),
            batch: Vec::new(),
            delay: self.delay(r * 100 + 50 + k),
            items: 0,
            timer: self.timer(r, DMA, k),
            board: self.board.clone(),
            publisher: Publisher::default(),
        })
    }

    fn post_task(
        &self,
        r: usize,
        m: usize,
        inputs: Vec<Consumer<PostItem>>,
        out: Producer<EgressItem>,
        spare: &Arc<SpareFrames>,
    ) -> Box<dyn Task> {
        Box::new(PostTask {
            spare: spare.clone(),
            live: LiveCounters::new(self.board.clone()),
            name: format!("r{r}-post{m}"),
            inputs,
            out,
            caps: self.cfg.caps,
            burst: self.plan.burst,
            pending: VecDeque::new(),
            batch: Vec::new(),
            delay: self.delay(r * 100 + 80 + m),
            items: 0,
            timer: self.timer(r, POST, m),
            board: self.board.clone(),
            publisher: Publisher::default(),
        })
    }

    fn egress_task(
        &self,
        r: usize,
        inputs: Vec<Consumer<EgressItem>>,
        commit_outs: Vec<Producer<Returned>>,
    ) -> Box<dyn Task> {
        let p = &self.plan;
        let q_n = p.proto;
        // Everything in flight between a sequencer and the egress reorder.
        let window = ((q_n * p.dma + p.dma * p.post + p.post + q_n) * p.ring_size + 64 * p.burst)
            .next_power_of_two()
            .min(1 << 20);
        Box::new(EgressTask {
            live: LiveCounters::new(self.board.clone()),
            replica: r,
            first_owner: r * q_n,
            backlog: (0..inputs.len()).map(|_| VecDeque::new()).collect(),
            inputs,
            windows: (0..q_n).map(|_| Reorder::new(window)).collect(),
            overflow: (0..q_n).map(|_| Default::default()).collect(),
            nic: self.nic.clone(),
            pending_commits: (0..commit_outs.len()).map(|_| VecDeque::new()).collect(),
            commit_outs,
            tx: Vec::new(),
            burst: p.burst,
            batch: Vec::new(),
            items: 0,
            frames: 0,
        })
    }
}

/// The rings of one owner.
struct OwnerRings {
    input: Consumer<ShardIn>,
    commits: Consumer<Returned>,
    dma_outs: Vec<Producer<StampedWork>>,
    egress_out: Producer<EgressItem>,
    /// The replica's ingress reorder's move requests.
    requests: Arc<SegQueue<RouteCtl>>,
}

/// A ring from each of `from` producers to each of `to` consumers:
/// per producer its outputs, per consumer its inputs.
#[allow(clippy::type_complexity)]
fn mesh<T: Send>(
    from: usize,
    to: usize,
    ring: usize,
) -> (Vec<Vec<Producer<T>>>, Vec<Vec<Consumer<T>>>) {
    let mut outs: Vec<Vec<Producer<T>>> = (0..from).map(|_| Vec::new()).collect();
    let mut ins: Vec<Vec<Consumer<T>>> = (0..to).map(|_| Vec::new()).collect();
    for o in outs.iter_mut() {
        for i in ins.iter_mut() {
            let (p, c) = channel(ring);
            o.push(p);
            i.push(c);
        }
    }
    (outs, ins)
}

/// Starts one thread per planned worker with the tasks placed on it.
fn spawn_workers(
    plan: &Plan,
    mut replicas: Vec<ReplicaTasks>,
    topology: &Topology,
    opts: PipelineOptions,
    nic: &Arc<dyn Nic>,
    stop: &Arc<AtomicBool>,
) -> Vec<Worker> {
    // CPU quotas (a container's --cpus) count as well as the affinity.
    let cpus = pipeline_config::CpuSet::allowed()
        .cpus()
        .len()
        .min(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cores: Vec<Option<usize>> = plan
        .workers
        .iter()
        .map(|w| if opts.pin { w.core } else { None })
        .collect();
    let crowded = worker::oversubscribed(&cores, cpus);
    let policy = IdlePolicy::chosen(&topology.idle, crowded);
    if crowded && topology.idle.when_oversubscribed_park {
        tracing::info!(
            workers = plan.workers.len(),
            cpus,
            "workers share CPUs: idle workers park after a short spin \
             (topology.idle.when_oversubscribed_park)"
        );
    }
    let mut workers = Vec::new();
    let replicas_of: Vec<Vec<usize>> = plan
        .workers
        .iter()
        .map(|w| w.tasks.iter().map(|(r, _)| *r).collect())
        .collect();
    let wakers = Arc::new(worker::Wakers::new(&replicas_of));
    for (index, w) in plan.workers.iter().enumerate() {
        // A fused replica has only its ingress slot: the other kinds are
        // absent and skipped.
        let mine: Vec<Box<dyn Task>> = w
            .tasks
            .iter()
            .filter_map(|(r, kind)| {
                let replica = replicas.get_mut(*r)?;
                let at = replica.iter().position(|(k, _)| k == kind)?;
                Some(replica.swap_remove(at).1)
            })
            .collect();
        let status = Arc::new(WorkerStatus::default());
        let (st, sp) = (status.clone(), stop.clone());
        let core = if opts.pin { w.core } else { None };
        let port = nic.clone();
        let seat = worker::WorkerSeat {
            wakers: wakers.clone(),
            index,
        };
        let handle = std::thread::Builder::new()
            .name(w.name.clone())
            .spawn(move || {
                port.attach_thread();
                let tasks = worker::run(mine, core, policy, st, sp, seat);
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
    for (r, left) in replicas.iter().enumerate() {
        if let Some((kind, _)) = left.first() {
            panic!("task r{r}.{} is placed on no worker", kind.label());
        }
    }
    workers
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
        let mut wiring = Wiring::new(cfg, plan.clone(), opts, nic.clone());
        let replicas: Vec<ReplicaTasks> = (0..plan.replicas)
            .map(|r| match wiring.shape(r) {
                Shape::RunToCompletion => wiring.fused_replica(r, &mut make_app),
                Shape::Split => wiring.split_replica(r, &mut make_app),
                Shape::Pipelined => wiring.pipelined_replica(r, &mut make_app),
                Shape::Staged => wiring.staged_replica(r, &mut make_app),
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = spawn_workers(&plan, replicas, topology, opts, &nic, &stop);
        let moves = GroupMover::new(MoveControl::new(
            &plan,
            wiring.routes,
            wiring.movable.get(),
            nic.clone(),
            wiring.accepting,
        ));
        Self {
            plan,
            nic,
            stop,
            draining: wiring.draining,
            workers,
            board: wiring.board,
            moves,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::NullNic;
    use crate::sim::sim_engine_config;
    use pipeline_config::WorkerPlacement;

    fn shapes(t: &Topology, fuse: bool) -> Vec<Shape> {
        let cfg = sim_engine_config(2, 1, |_| {});
        let opts = PipelineOptions {
            fuse,
            ..PipelineOptions::default()
        };
        let nic: Arc<dyn Nic> = Arc::new(NullNic::default());
        let wiring = Wiring::new(&cfg, Plan::new(t), opts, nic);
        (0..t.replicas as usize).map(|r| wiring.shape(r)).collect()
    }

    fn topology(replicas: u32, workers: u32, rtc: bool) -> Topology {
        Topology {
            replicas,
            pre_workers: workers,
            dma_workers: workers,
            post_workers: workers,
            run_to_completion: rtc,
            ..Topology::default()
        }
    }

    #[test]
    fn co_located_replicas_with_one_task_of_each_kind_run_fused() {
        use Shape::*;
        let rtc = topology(2, 1, true);
        assert_eq!(shapes(&rtc, true), [RunToCompletion, RunToCompletion]);
        assert_eq!(shapes(&rtc, false), [Staged, Staged]);
        let mut split = topology(2, 1, false);
        split.workers = split.split_placement(&[]);
        assert_eq!(shapes(&split, true), [Split, Split]);
        assert_eq!(shapes(&split, false), [Staged, Staged]);
        let mut piped = topology(2, 1, false);
        piped.workers = piped.pipelined_placement(&[]);
        assert_eq!(shapes(&piped, true), [Pipelined, Pipelined]);
        assert_eq!(shapes(&piped, false), [Staged, Staged]);
        // Two of a data-parallel stage need the reorder windows.
        let mut wide = topology(1, 2, false);
        wide.workers = wide.split_placement(&[]);
        assert_eq!(shapes(&wide, true), [Staged]);
        // One task per thread: nothing is co-located.
        let mut apart = topology(1, 1, false);
        apart.workers = apart
            .tasks()
            .iter()
            .map(|task| WorkerPlacement {
                name: None,
                core: None,
                tasks: vec![task.to_string()],
            })
            .collect();
        assert_eq!(shapes(&apart, true), [Staged]);
        // `pre` away from the rest of the data side.
        let mut odd = split.clone();
        odd.replicas = 1;
        odd.workers = vec![
            WorkerPlacement {
                name: None,
                core: None,
                tasks: vec![
                    "r0.ingress".into(),
                    "r0.dma0".into(),
                    "r0.post0".into(),
                    "r0.egress".into(),
                ],
            },
            WorkerPlacement {
                name: None,
                core: None,
                tasks: vec![
                    "r0.pre0".into(),
                    "r0.ingress_reorder".into(),
                    "r0.proto0".into(),
                ],
            },
        ];
        assert_eq!(shapes(&odd, true), [Staged]);
    }
}
