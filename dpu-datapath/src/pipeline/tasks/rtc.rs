//! A whole replica on one worker, fused: NIC RX, `pre`, the flow-group
//! owner (`proto` and the control plane), `dma`, `post` and NIC TX called
//! one after the other on each burst, with no ring, stamp or reorder window
//! between them. Used when a replica has one task of each kind and the
//! placement puts all seven on the same worker: there a single in-order
//! path has nothing to reorder, and moving every item through six rings
//! cost two thirds of the worker's time (docs/benchmarks.md). The stage
//! functions are the ones the separate tasks call.

#![forbid(unsafe_code)]

use super::SpareFrames;
use crate::engine::work::{
    dma_rx, dma_tx_into_frame, post_rx, post_tx, post_tx_in_place, Commit, Work,
};
use crate::engine::Engine;
use crate::flow::group_of_hash;
use crate::io::{Frame, Nic};
use crate::pipeline::items::ShardIn;
use crate::pipeline::task::{
    LiveCounters, OwnerSnapshot, PipelineReport, Publisher, ShardApp, StatsBoard, Task,
    TaskCounters,
};
use crate::pipeline::timing::StageTimer;
use crate::pipeline::topology::Plan;
use crate::pipeline::Clock;
use crate::pre::{validate_hashed, LocalAddrs, Verdict};
use crate::proto::Nanos;
use crate::stats::Stats;
use crate::wire::ChecksumCaps;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Per-stage timers of the fused replica (the same histogram slots the
/// separate tasks would publish to).
pub(crate) struct RtcTimers {
    pub(crate) pre: StageTimer,
    pub(crate) proto: StageTimer,
    pub(crate) dma: StageTimer,
    pub(crate) post: StageTimer,
}

/// Items each logical stage handled, published under the separate tasks'
/// names so `stat` and `/metrics` read the same whatever the placement.
#[derive(Debug, Default)]
struct StageItems {
    ingress: u64,
    pre: u64,
    owner: u64,
    dma: u64,
    post: u64,
    egress: u64,
}

pub(crate) struct RtcTask {
    pub(crate) live: LiveCounters,
    pub(crate) replica: usize,
    /// Global index of the replica's only owner.
    pub(crate) owner: usize,
    pub(crate) plan: Plan,
    pub(crate) nic: Arc<dyn Nic>,
    /// Shutdown in progress: take no more frames from the NIC.
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) local: LocalAddrs,
    pub(crate) caps: ChecksumCaps,
    pub(crate) burst: usize,
    pub(crate) engine: Engine,
    pub(crate) app: Box<dyn ShardApp>,
    pub(crate) clock: Clock,
    /// Every owner's learn-only ARP queue (all replicas); ours is
    /// `arp_learn[owner]`.
    pub(crate) arp_learn: Vec<Arc<ArrayQueue<ShardIn>>>,
    pub(crate) spare: Arc<SpareFrames>,
    pub(crate) board: Arc<StatsBoard>,
    /// This replica's slot in `board.pre`.
    pub(crate) pre_slot: usize,
    pub(crate) publisher: Publisher,
    pub(crate) timers: RtcTimers,
    /// Drops counted by `pre` (malformed frames never reach the engine).
    pub(crate) pre_stats: Stats,
    pub(crate) rx: Vec<(Nanos, Frame)>,
    pub(crate) work: Vec<Work>,
    pub(crate) tx: Vec<Frame>,
    pub(crate) commits: Vec<Commit>,
    pub(crate) arp_learn_dropped: u64,
    /// Frames of flow groups this replica does not own (dropped).
    pub(crate) misrouted: u64,
    items: StageItems,
}

impl RtcTask {
    /// The fused task; `live`, `board` and the rest as for the separate
    /// tasks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        replica: usize,
        plan: Plan,
        nic: Arc<dyn Nic>,
        draining: Arc<AtomicBool>,
        local: LocalAddrs,
        caps: ChecksumCaps,
        engine: Engine,
        app: Box<dyn ShardApp>,
        clock: Clock,
        arp_learn: Vec<Arc<ArrayQueue<ShardIn>>>,
        spare: Arc<SpareFrames>,
        board: Arc<StatsBoard>,
        timers: RtcTimers,
    ) -> Self {
        let burst = plan.burst;
        Self {
            live: LiveCounters::new(board.clone()),
            replica,
            owner: replica * plan.proto,
            pre_slot: replica * plan.pre,
            plan,
            nic,
            draining,
            local,
            caps,
            burst,
            engine,
            app,
            clock,
            arp_learn,
            spare,
            board,
            publisher: Publisher::default(),
            timers,
            pre_stats: Stats::default(),
            rx: Vec::with_capacity(burst),
            work: Vec::with_capacity(2 * burst),
            tx: Vec::with_capacity(2 * burst),
            commits: Vec::with_capacity(2 * burst),
            arp_learn_dropped: 0,
            misrouted: 0,
            items: StageItems::default(),
        }
    }

    /// `pre` and the routing check of the ingress reorder for one frame;
    /// the verdict when the frame is for this replica's owner.
    fn pre(&mut self, time: Nanos, frame: &Frame) -> Option<Verdict> {
        let t = self.timers.pre.start();
        let verdict = validate_hashed(frame, &self.local, &self.caps, frame.nic_rss_hash());
        self.timers.pre.stop(t);
        match &verdict {
            Verdict::Drop(reason) => {
                self.pre_stats.drop(*reason);
                return None;
            }
            Verdict::Tcp { rss, .. } => {
                let g = group_of_hash(*rss, self.plan.flow_groups);
                if self.plan.owner_of_group(g) != self.owner {
                    // The NIC's indirection table disagrees with the plan.
                    self.misrouted += 1;
                    return None;
                }
            }
            Verdict::Control => {
                // ARP teaches every owner the neighbour; this one answers.
                if super::ingress_reorder::is_arp(frame) {
                    for (i, q) in self.arp_learn.iter().enumerate() {
                        if i != self.owner
                            && q.push(ShardIn::ArpLearn {
                                time,
                                frame: frame.clone(),
                            })
                            .is_err()
                        {
                            self.arp_learn_dropped += 1;
                        }
                    }
                }
            }
        }
        Some(verdict)
    }

    /// `dma` and `post` for the owner's output, in order: frames to `tx`,
    /// notifications to `commits`.
    fn finish_work(&mut self) {
        self.engine.take_work(&mut self.work);
        self.items.owner += self.work.len() as u64;
        for work in self.work.drain(..) {
            match work {
                Work::Rx { mut frame, work } => {
                    let t = self.timers.dma.start();
                    dma_rx(&work, &frame);
                    self.timers.dma.stop(t);
                    let t = self.timers.post.start();
                    post_rx(&work, &mut frame, &self.caps);
                    self.timers.post.stop(t);
                    self.items.dma += 1;
                    self.items.post += 1;
                    if frame.is_empty() {
                        self.spare.give(frame);
                    } else {
                        self.tx.push(frame);
                    }
                    if !work.commit.is_empty() {
                        self.commits.push(work.commit);
                    }
                }
                Work::Tx(work) => {
                    let t = self.timers.dma.start();
                    let mut frame = self.spare.take();
                    let room = dma_tx_into_frame(&work, &mut frame);
                    self.timers.dma.stop(t);
                    let t = self.timers.post.start();
                    if room == 0 || !post_tx_in_place(&work, &mut frame, &self.caps) {
                        // The generic emitter, from the payload alone.
                        let mut out = self.spare.take();
                        post_tx(&work, &frame[room.min(frame.len())..], &mut out, &self.caps);
                        self.spare.give(std::mem::replace(&mut frame, out));
                    }
                    self.timers.post.stop(t);
                    self.items.dma += 1;
                    self.items.post += 1;
                    self.tx.push(frame);
                }
                Work::Frame(frame) => self.tx.push(frame),
                Work::Commit(c) => self.commits.push(c),
            }
            self.items.egress += 1;
        }
    }

    fn publish(&mut self, force: bool) {
        if !self.publisher.due(force) {
            return;
        }
        *self.board.pre[self.pre_slot].lock() = self.pre_stats.clone();
        for t in [
            &self.timers.pre,
            &self.timers.proto,
            &self.timers.dma,
            &self.timers.post,
        ] {
            t.publish(&self.board);
        }
        let (handshakes, time_wait) = self.engine.control_counts();
        *self.board.owners[self.owner].lock() = OwnerSnapshot {
            stats: self.engine.stats().clone(),
            flows: self.engine.flow_count(),
            app_conns: self.engine.app_conn_count(),
            handshakes,
            time_wait,
        };
    }

    /// The separate tasks' counters, as if they had run.
    fn counters(&self) -> Vec<TaskCounters> {
        let r = self.replica;
        let c = |name: String, items: u64| TaskCounters {
            name,
            items,
            ..Default::default()
        };
        vec![
            c(format!("r{r}-ingress"), self.items.ingress),
            c(format!("r{r}-pre0"), self.items.pre),
            c(format!("r{r}-ingress-reorder"), self.items.pre),
            c(format!("owner{}", self.owner), self.items.owner),
            c(format!("r{r}-dma0"), self.items.dma),
            c(format!("r{r}-post0"), self.items.post),
            c(format!("r{r}-egress"), self.items.egress),
        ]
    }
}

impl Task for RtcTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.counters() {
                self.live.publish(c);
            }
        }
        let mut n = 0;
        while let Some(item) = self.arp_learn[self.owner].pop() {
            if let ShardIn::ArpLearn { time, frame } = item {
                let now = self.clock.now(time);
                self.engine.learn_arp(&frame, now);
            }
            n += 1;
        }
        let burst_now = self.clock.burst_now();
        if !self.draining.load(Ordering::Relaxed) {
            self.rx.clear();
            let got = self.nic.rx_burst(self.replica, self.burst, &mut self.rx);
            self.items.ingress += got as u64;
            self.items.pre += got as u64;
            n += got;
            let mut rx = std::mem::take(&mut self.rx);
            for (time, frame) in rx.drain(..) {
                let Some(verdict) = self.pre(time, &frame) else {
                    self.spare.give(frame);
                    continue;
                };
                let now = burst_now.unwrap_or_else(|| self.clock.now(time));
                let t = self.timers.proto.start();
                if let Some(unused) = self.engine.after_validate_owned(verdict, frame, now) {
                    self.spare.give(unused);
                }
                self.timers.proto.stop(t);
            }
            self.rx = rx;
        }
        self.app.poll(&mut self.engine);
        let now = burst_now.unwrap_or_else(|| self.clock.now(0));
        self.engine.poll(now);
        self.finish_work();
        n += self.tx.len() + self.commits.len();
        if !self.tx.is_empty() {
            self.nic.tx_burst(self.replica, &mut self.tx);
        }
        // After the frames left, as the egress reorder releases them: the
        // application learns of data once its DMA and ACK are done.
        for c in self.commits.drain(..) {
            self.engine.commit(c);
        }
        self.publish(false);
        n
    }

    fn idle(&mut self) -> bool {
        self.arp_learn[self.owner].is_empty()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        self.publish(true);
        report.pre_stats.merge(&self.pre_stats);
        report.tasks.extend(self.counters());
        report.engines.push((self.owner, self.engine));
        report.apps.push((self.owner, self.app.into_any()));
    }
}
