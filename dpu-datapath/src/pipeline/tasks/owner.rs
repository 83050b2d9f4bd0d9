//! A flow-group owner: the `proto` worker for its groups, running the
//! engine's protocol stage and control plane for exactly those groups, plus
//! any co-located application. Everything it emits is stamped by its own
//! egress sequencer; `dma`/`post` work goes out round-robin (so one
//! connection's segments spread over several workers), frames from the
//! control plane and bare commits go straight to the egress reorder. It
//! hands flow groups to the other owners of its replica and takes theirs
//! (`pipeline/moves.rs`).

use crate::engine::work::Work;
use crate::engine::Engine;
use crate::pipeline::items::{EgressItem, Returned, ShardIn, Stamp, StampedWork};
use crate::pipeline::moves::{MoveRequest, OwnerMoves};
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{
    LiveCounters, PipelineReport, Publisher, ShardApp, StatsBoard, Task, TaskCounters,
};
use crate::pipeline::timing::StageTimer;
use crate::pipeline::Clock;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct OwnerTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) index: usize,
    pub(crate) engine: Engine,
    pub(crate) app: Box<dyn ShardApp>,
    pub(crate) input: Consumer<ShardIn>,
    pub(crate) commits: Consumer<Returned>,
    pub(crate) arp_learn: Arc<ArrayQueue<ShardIn>>,
    pub(crate) dma_outs: Vec<Producer<StampedWork>>,
    pub(crate) egress_out: Producer<EgressItem>,
    pub(crate) clock: Clock,
    pub(crate) burst: usize,
    pub(crate) rr: usize,
    pub(crate) next_seq: u64,
    pub(crate) pending_dma: VecDeque<StampedWork>,
    pub(crate) pending_egress: VecDeque<EgressItem>,
    pub(crate) work: Vec<Work>,
    pub(crate) batch: Vec<ShardIn>,
    pub(crate) commit_batch: Vec<Returned>,
    pub(crate) items: u64,
    /// Live counters for monitoring (refreshed every `StatsBoard::PERIOD`).
    pub(crate) board: Arc<StatsBoard>,
    pub(crate) publisher: Publisher,
    /// Sampled processing time of one received segment by `proto` and
    /// the control plane (`after_validate_owned`).
    pub(crate) timer: StageTimer,
    /// Where received frames nothing kept go, for `dma` to reuse.
    pub(crate) spare: Arc<super::SpareFrames>,
    /// Flow groups leaving and arriving.
    pub(crate) moves: OwnerMoves,
}

impl OwnerTask {
    fn publish(&mut self, force: bool) {
        if !self.publisher.due(force) {
            return;
        }
        self.timer.publish(&self.board);
        self.board.publish_owner(self.index, &self.engine);
    }

    fn flush(&mut self) -> bool {
        let dma_done = super::flush(&mut self.dma_outs, &mut self.rr, &mut self.pending_dma);
        self.egress_out.push_burst(&mut self.pending_egress);
        dma_done && self.pending_egress.is_empty()
    }

    fn next_stamp(&mut self) -> Stamp {
        let stamp = Stamp {
            seqr: self.index as u16,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        stamp
    }

    /// Stops for flow group `request.group` to leave: stamps what the
    /// engine has produced, then the fence the move waits for.
    fn begin_move_out(&mut self, request: MoveRequest) {
        self.stamp_output();
        let stamp = self.next_stamp();
        let fence = self.moves.begin(request, stamp);
        self.pending_egress.push_back(fence);
    }

    /// With a group leaving: true while the owner must stay still (its
    /// fence is out). Once the fence is back, work the engine queued
    /// meanwhile (a commit can queue a window update) goes out behind
    /// another fence; with none, the group leaves.
    fn hand_over_or_wait(&mut self) -> bool {
        if !self.moves.leaving() {
            return false;
        }
        if !self.moves.fence_back() {
            return true;
        }
        if self.stamp_output() > 0 {
            let stamp = self.next_stamp();
            let fence = self.moves.refence(stamp);
            self.pending_egress.push_back(fence);
            return true;
        }
        self.moves.hand_over(&mut self.engine, &mut *self.app);
        false
    }

    /// Received frames and ARP; stops at a `MoveOut`, the rest of the
    /// batch deferred behind the move.
    fn take_input(&mut self, burst_now: Option<crate::proto::Nanos>) -> usize {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        self.moves.refill(&mut batch, self.burst);
        let room = self.burst - batch.len();
        let n = self.input.pop_burst(&mut batch, room);
        let mut items = batch.drain(..);
        while let Some(item) = items.next() {
            match item {
                ShardIn::Rx {
                    time,
                    frame,
                    verdict,
                } => {
                    let now = burst_now.unwrap_or_else(|| self.clock.now(time));
                    let t = self.timer.start();
                    if let Some(unused) = self.engine.after_validate_owned(verdict, frame, now) {
                        self.spare.give(unused);
                    }
                    self.timer.stop(t);
                }
                ShardIn::ArpLearn { time, frame } => {
                    let now = self.clock.now(time);
                    self.engine.learn_arp(&frame, now);
                }
                ShardIn::MoveOut(request) => {
                    self.moves.defer(items.by_ref());
                    self.begin_move_out(request);
                    break;
                }
            }
        }
        drop(items);
        self.batch = batch;
        n
    }

    /// Stamps the engine's output in order and queues it for its stage.
    /// Returns how many items it stamped.
    fn stamp_output(&mut self) -> usize {
        self.engine.take_work(&mut self.work);
        let produced = self.work.len();
        let mut work = std::mem::take(&mut self.work);
        for w in work.drain(..) {
            let stamp = self.next_stamp();
            match w {
                Work::Frame(frame) => self.pending_egress.push_back(EgressItem {
                    stamp,
                    frame: Some(frame),
                    commit: None,
                    fence: false,
                }),
                Work::Commit(c) => self.pending_egress.push_back(EgressItem {
                    stamp,
                    frame: None,
                    commit: Some(c),
                    fence: false,
                }),
                work => self.pending_dma.push_back(StampedWork { stamp, work }),
            }
        }
        self.work = work;
        produced
    }
}

impl OwnerTask {
    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: format!("owner{}", self.index),
            items: self.items,
            full_events: self.dma_outs.iter().map(|o| o.full_events).sum::<u64>()
                + self.egress_out.full_events,
            reorder_leftover: self.moves.leftover(),
            ..Default::default()
        }
    }
}

impl Task for OwnerTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        let mut n = 0;
        // Commits never wait: they only update the application side.
        self.commit_batch.clear();
        n += self
            .commits
            .pop_burst(&mut self.commit_batch, self.burst * 4);
        for r in self.commit_batch.drain(..) {
            match r {
                Returned::Commit(c) => self.engine.commit(c),
                Returned::Fence => self.moves.fence_returned(),
            }
        }
        if self.hand_over_or_wait() {
            self.flush();
            return n;
        }
        n += self.moves.adopt(&mut self.engine, &mut *self.app);
        let burst_now = self.clock.burst_now();
        if self.flush() {
            while let Some(ShardIn::ArpLearn { time, frame }) = self.arp_learn.pop() {
                let now = self.clock.now(time);
                self.engine.learn_arp(&frame, now);
                n += 1;
            }
            n += self.take_input(burst_now);
            if self.moves.leaving() {
                self.flush();
                self.items += n as u64;
                return n;
            }
        }
        self.app.poll(&mut self.engine);
        let now = burst_now.unwrap_or_else(|| self.clock.now(0));
        self.engine.poll(now);
        n += self.stamp_output();
        self.flush();
        self.items += n as u64;
        self.publish(false);
        n
    }

    fn idle(&mut self) -> bool {
        self.pending_dma.is_empty()
            && self.pending_egress.is_empty()
            && self.input.is_empty()
            && self.commits.is_empty()
            && self.arp_learn.is_empty()
            && self.moves.idle()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        self.publish(true);
        report.tasks.push(self.counters());
        report.engines.push((self.index, self.engine));
        report.apps.push((self.index, self.app.into_any()));
    }
}
