//! The pieces fused tasks are made of: a replica's NIC RX side with `pre`
//! and the routing check ([`Intake`]), and its `dma` + `post` + NIC TX side
//! ([`Finisher`]). When a replica has one task of each kind, the tasks that
//! share a worker call these in order instead of passing items through
//! rings: run to completion (`rtc.rs`: all on one worker) and the split
//! placement (`split.rs`: intake and finisher on one worker, the owner on
//! another). The stage functions are the ones the separate tasks call.

#![forbid(unsafe_code)]

use super::dma::{copy_failed, stage, AfterDma};
use super::SpareFrames;
use crate::dma::DmaQueue;
use crate::engine::work::{push_commit, Commit, Work};
use crate::engine::Engine;
use crate::flow::group_of_hash;
use crate::io::{Frame, Nic};
use crate::pipeline::items::ShardIn;
use crate::pipeline::moves::Accepting;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{PipelineReport, Publisher, ShardApp, StatsBoard, TaskCounters};
use crate::pipeline::timing::StageTimer;
use crate::pipeline::topology::Plan;
use crate::pipeline::Clock;
use crate::pre::{validate_hashed, LocalAddrs, Verdict};
use crate::proto::Nanos;
use crate::stats::{DropReason, Stats};
use crate::wire::ChecksumCaps;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// NIC RX, `pre` and the ingress reorder's routing check for one replica
/// with a single owner.
pub(crate) struct Intake {
    pub(crate) replica: usize,
    /// Global index of the replica's owner.
    pub(crate) owner: usize,
    pub(crate) plan: Plan,
    pub(crate) nic: Arc<dyn Nic>,
    /// Shutdown in progress: take no more frames from the NIC.
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) local: LocalAddrs,
    pub(crate) caps: ChecksumCaps,
    /// Every owner's learn-only ARP queue (all replicas).
    pub(crate) arp_learn: Vec<Arc<ArrayQueue<ShardIn>>>,
    /// Which replicas take each flow group's frames (moves change it).
    pub(crate) accepting: Arc<Accepting>,
    pub(crate) timer: StageTimer,
    /// Drops counted by `pre` (malformed frames never reach the engine).
    pub(crate) stats: Stats,
    pub(crate) arp_learn_dropped: u64,
    /// Frames taken from the NIC.
    pub(crate) items: u64,
}

impl Intake {
    /// Appends up to a burst of received frames to `rx` (none while the
    /// pipeline drains), their first cache lines prefetched.
    pub(crate) fn rx_burst(&mut self, rx: &mut Vec<(Nanos, Frame)>) -> usize {
        if self.draining.load(Ordering::Relaxed) {
            return 0;
        }
        let first = rx.len();
        let n = self.nic.rx_burst(self.replica, self.plan.burst, rx);
        // Start loading the burst's headers before the first is parsed.
        for (_, frame) in &rx[first..] {
            frame.prefetch();
        }
        self.items += n as u64;
        n
    }

    /// `pre` and the routing check for one frame: its verdict when it is
    /// for this replica's owner, None when it was dropped (and counted).
    pub(crate) fn check(&mut self, time: Nanos, frame: &Frame) -> Option<Verdict> {
        let t = self.timer.start();
        let caps = frame.rx_caps(&self.caps);
        let verdict = validate_hashed(frame, &self.local, &caps, frame.nic_rss_hash());
        self.timer.stop(t);
        match &verdict {
            Verdict::Drop(reason) => {
                self.stats.drop(*reason);
                return None;
            }
            Verdict::Tcp { rss, .. } => {
                let g = group_of_hash(*rss, self.plan.flow_groups);
                if !self.accepting.accepts(g, self.replica) {
                    // The port's RSS disagrees with the plan.
                    self.stats.drop(DropReason::Misrouted);
                    return None;
                }
            }
            Verdict::Control => {
                // Our owner answers ARP; the others learn from a copy.
                self.arp_learn_dropped +=
                    super::ingress_reorder::share_arp(&self.arp_learn, self.owner, time, frame);
            }
        }
        Some(verdict)
    }

    /// Counters under the separate tasks' names.
    pub(crate) fn counters(&self) -> [TaskCounters; 2] {
        let r = self.replica;
        [
            counters(format!("r{r}-ingress"), self.items),
            counters(format!("r{r}-pre0"), self.items),
        ]
    }
}

/// `dma` and `post` for the owner's output, in its order, then NIC TX.
/// Copies go to the replica's DMA engine; an item moves on to `post` and
/// TX (and its commit to the application) once its copy and every earlier
/// item's have completed.
pub(crate) struct Finisher {
    pub(crate) dma: DmaQueue<AfterDma>,
    pub(crate) dma_timer: StageTimer,
    pub(crate) out: FinishOut,
}

/// What a finished item turns into: frames to send, commits to apply.
pub(crate) struct FinishOut {
    pub(crate) replica: usize,
    pub(crate) nic: Arc<dyn Nic>,
    pub(crate) caps: ChecksumCaps,
    pub(crate) spare: Arc<SpareFrames>,
    pub(crate) post_timer: StageTimer,
    pub(crate) tx: Vec<Frame>,
    /// Segments through `dma` and `post`.
    pub(crate) segments: u64,
    /// Work items finished (segments, control frames, commits).
    pub(crate) items: u64,
}

impl FinishOut {
    /// `post` for an item whose copy completed: its frame queued for TX,
    /// its notifications appended to `commits`.
    fn release(
        &mut self,
        frame: Option<Frame>,
        next: AfterDma,
        copied: bool,
        commits: &mut Vec<Commit>,
    ) {
        self.items += 1;
        let (next, frame) = if copied {
            (next, frame)
        } else {
            // The bytes did not move: nothing leaves for this item, its
            // connection is reset (`copy_failed`).
            if let Some(frame) = frame {
                self.spare.give(frame);
            }
            (copy_failed(next), None)
        };
        match (next, frame) {
            (AfterDma::Rx(work), Some(frame)) => {
                let t = self.post_timer.start();
                let ack = self.spare.post_rx(&work, frame, &self.caps);
                self.post_timer.stop(t);
                self.segments += 1;
                self.tx.extend(ack);
                if !work.commit.is_empty() {
                    push_commit(commits, work.commit);
                }
            }
            (AfterDma::Tx { room, work }, Some(mut frame)) => {
                let t = self.post_timer.start();
                self.spare.post_tx(&work, &mut frame, room, &self.caps);
                self.post_timer.stop(t);
                self.segments += 1;
                self.tx.push(frame);
            }
            (AfterDma::Frame, Some(frame)) => self.tx.push(frame),
            (AfterDma::Commit(c), _) => push_commit(commits, c),
            // Every other item is pushed with its frame.
            (_, None) => {}
        }
    }
}

impl Finisher {
    /// One work item: its copy submitted (waiting for room in the engine
    /// if need be), then whatever completed released to `post`.
    pub(crate) fn finish(&mut self, work: Work, commits: &mut Vec<Commit>) {
        let t = self.dma_timer.start();
        let (frame, next, copy) = stage(work, &self.out.spare);
        let out = &mut self.out;
        self.dma.push(frame, next, copy, &mut |f, n, ok| {
            out.release(f, n, ok, commits)
        });
        self.dma_timer.stop(t);
    }

    /// Releases the items whose copies completed; how many.
    pub(crate) fn poll_dma(&mut self, commits: &mut Vec<Commit>) -> usize {
        let out = &mut self.out;
        self.dma
            .poll(&mut |f, n, ok| out.release(f, n, ok, commits))
    }

    /// Waits for every copy in flight and releases everything (shutdown).
    pub(crate) fn drain(&mut self, commits: &mut Vec<Commit>) {
        let out = &mut self.out;
        self.dma
            .drain(&mut |f, n, ok| out.release(f, n, ok, commits));
    }

    /// No item waits for its copy.
    pub(crate) fn idle(&self) -> bool {
        self.dma.is_empty()
    }

    pub(crate) fn spare(&self) -> &SpareFrames {
        &self.out.spare
    }

    /// Sends what was released.
    pub(crate) fn transmit(&mut self) {
        if !self.out.tx.is_empty() {
            self.out.nic.tx_burst(self.out.replica, &mut self.out.tx);
        }
    }

    /// Counters under the separate tasks' names.
    pub(crate) fn counters(&self) -> [TaskCounters; 3] {
        let r = self.out.replica;
        [
            counters(format!("r{r}-dma0"), self.out.segments),
            counters(format!("r{r}-post0"), self.out.segments),
            counters(format!("r{r}-egress"), self.out.items),
        ]
    }
}

/// The flow-group owner as fused tasks run it: the engine, its
/// application and clock, and the board it publishes to.
pub(crate) struct FusedOwner {
    /// Global owner index.
    pub(crate) index: usize,
    pub(crate) engine: Engine,
    pub(crate) app: Box<dyn ShardApp>,
    pub(crate) clock: Clock,
    pub(crate) timer: StageTimer,
    /// Our learn-only ARP queue (other replicas' owners push to it).
    pub(crate) arp_learn: Arc<ArrayQueue<ShardIn>>,
    pub(crate) board: Arc<StatsBoard>,
    pub(crate) publisher: Publisher,
    /// Work items the engine produced.
    pub(crate) items: u64,
}

impl FusedOwner {
    /// Learns from the ARP frames other replicas saw.
    pub(crate) fn learn_arp(&mut self) -> usize {
        let mut n = 0;
        while let Some(item) = self.arp_learn.pop() {
            if let ShardIn::ArpLearn { time, frame } = item {
                let now = self.clock.now(time);
                self.engine.learn_arp(&frame, now);
            }
            n += 1;
        }
        n
    }

    /// One validated frame through `proto` or the control plane; a frame
    /// nothing kept is returned for reuse.
    pub(crate) fn receive(
        &mut self,
        verdict: crate::pre::Verdict,
        frame: Frame,
        time: Nanos,
        burst_now: Option<Nanos>,
    ) -> Option<Frame> {
        let now = burst_now.unwrap_or_else(|| self.clock.now(time));
        let t = self.timer.start();
        let unused = self.engine.after_validate_owned(verdict, frame, now);
        self.timer.stop(t);
        unused
    }

    /// The application, timers and the TX scheduler; then the engine's
    /// output, in order, into `work`.
    pub(crate) fn run(&mut self, burst_now: Option<Nanos>, work: &mut Vec<Work>) {
        self.app.poll(&mut self.engine);
        let now = burst_now.unwrap_or_else(|| self.clock.now(0));
        self.engine.poll(now);
        let before = work.len();
        self.engine.take_work(work);
        self.items += (work.len() - before) as u64;
    }

    /// The engine's output so far, without running the application or
    /// timers (a group leaving: nothing new should be made).
    pub(crate) fn take_work(&mut self, work: &mut Vec<Work>) {
        let before = work.len();
        self.engine.take_work(work);
        self.items += (work.len() - before) as u64;
    }

    pub(crate) fn commit(&mut self, c: Commit) {
        self.engine.commit(c);
    }

    /// Publishes the engine's counters and `proto`'s timer every period,
    /// or now if `force`.
    pub(crate) fn publish(&mut self, force: bool) {
        if !self.publisher.due(force) {
            return;
        }
        self.timer.publish(&self.board);
        self.board.publish_owner(self.index, &self.engine);
    }

    /// Counters under the separate tasks' names.
    pub(crate) fn counters(&self, replica: usize, received: u64) -> [TaskCounters; 2] {
        [
            counters(format!("r{replica}-ingress-reorder"), received),
            counters(format!("owner{}", self.index), self.items),
        ]
    }

    /// Hands the engine and application to the report.
    pub(crate) fn finish(self, report: &mut PipelineReport) {
        report.engines.push((self.index, self.engine));
        report.apps.push((self.index, self.app.into_any()));
    }
}

/// Publishes `pre`'s drops and the data-side stage timers of a fused task
/// every period.
pub(crate) struct StagePublisher {
    pub(crate) board: Arc<StatsBoard>,
    /// The replica's slot in `board.pre`.
    pub(crate) pre_slot: usize,
    pub(crate) publisher: Publisher,
}

impl StagePublisher {
    pub(crate) fn publish(
        &mut self,
        force: bool,
        intake: Option<&Intake>,
        finisher: Option<&Finisher>,
    ) {
        if !self.publisher.due(force) {
            return;
        }
        if let Some(i) = intake {
            *self.board.pre[self.pre_slot].lock() = i.stats.clone();
            i.timer.publish(&self.board);
        }
        if let Some(f) = finisher {
            f.dma_timer.publish(&self.board);
            f.out.post_timer.publish(&self.board);
        }
    }
}

/// A [`Finisher`] fed by a ring from an owner on another worker: `dma`,
/// `post` and TX for the owner's output, in its order, and the commits
/// back on a ring once their frames left. The split's data side and the
/// pipelined placement's second worker are built on it.
pub(crate) struct RingFinisher {
    pub(crate) finisher: Finisher,
    pub(crate) from_owner: Consumer<Work>,
    pub(crate) commits_out: Producer<Commit>,
    /// Commits the ring had no room for yet.
    pub(crate) pending_commits: VecDeque<Commit>,
    pub(crate) batch: Vec<Work>,
    pub(crate) commits: Vec<Commit>,
    pub(crate) burst: usize,
}

impl RingFinisher {
    pub(crate) fn new(
        finisher: Finisher,
        from_owner: Consumer<Work>,
        commits_out: Producer<Commit>,
        burst: usize,
    ) -> Self {
        Self {
            finisher,
            from_owner,
            commits_out,
            pending_commits: VecDeque::new(),
            batch: Vec::with_capacity(burst),
            commits: Vec::with_capacity(2 * burst),
            burst,
        }
    }

    /// The owner's output through `dma`, `post` and TX, then the commits
    /// back. While the commit ring is full it takes no more output (that
    /// would add commits). Returns how much moved.
    pub(crate) fn poll(&mut self) -> usize {
        let mut n = 0;
        self.commits_out.push_burst(&mut self.pending_commits);
        if self.pending_commits.is_empty() {
            self.batch.clear();
            n += self.from_owner.pop_burst(&mut self.batch, self.burst);
            prefetch_frames(&self.batch);
            for work in self.batch.drain(..) {
                self.finisher.finish(work, &mut self.commits);
            }
        }
        // Copies that completed: their frames out, their commits back
        // (after the frames left, as the egress reorder releases them).
        n += self.finisher.poll_dma(&mut self.commits);
        self.finisher.transmit();
        self.pending_commits.extend(self.commits.drain(..));
        self.commits_out.push_burst(&mut self.pending_commits);
        n
    }

    /// Nothing waits for a copy or for room in the commit ring.
    pub(crate) fn idle(&self) -> bool {
        self.pending_commits.is_empty() && self.finisher.idle()
    }

    /// At stop: copies still in flight (a stop after the grace period)
    /// complete and their frames go out.
    pub(crate) fn drain(&mut self) {
        self.finisher.drain(&mut self.commits);
        self.finisher.transmit();
    }
}

/// Starts loading the received frames of a batch of the owner's output
/// before `dma` reads their payload and `post` writes their ACK: when the
/// owner ran on another core those lines sit in its cache, and the misses
/// then overlap instead of stalling one after another.
fn prefetch_frames(batch: &[Work]) {
    for work in batch {
        if let Work::Rx { frame, .. } = work {
            frame.prefetch();
        }
    }
}

/// A task's counters with only its item count.
pub(crate) fn counters(name: String, items: u64) -> TaskCounters {
    TaskCounters {
        name,
        items,
        ..Default::default()
    }
}
