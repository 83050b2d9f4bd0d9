//! A whole replica on one worker, fused: NIC RX, `pre`, the flow-group
//! owner (`proto` and the control plane), `dma`, `post` and NIC TX called
//! one after the other on each burst, with no ring, stamp or reorder window
//! between them. Used when a replica has one task of each kind and the
//! placement puts all seven on the same worker: there a single in-order
//! path has nothing to reorder, and moving every item through six rings
//! cost a third of the worker's time (docs/benchmarks.md).

#![forbid(unsafe_code)]

use super::fused::{Finisher, FusedOwner, Intake, StagePublisher};
use super::fused_moves::{FusedMoves, HeldFrame};
use crate::engine::work::{Commit, Work};
use crate::io::Frame;
use crate::pipeline::moves::SteeredAway;
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use crate::proto::Nanos;

pub(crate) struct RtcTask {
    pub(crate) live: LiveCounters,
    pub(crate) intake: Intake,
    pub(crate) owner: FusedOwner,
    pub(crate) finisher: Finisher,
    pub(crate) stages: StagePublisher,
    /// Flow groups moving in and out (`fused_moves.rs`).
    pub(crate) moves: FusedMoves,
    /// Frames of groups that just landed, for the engine first.
    pub(crate) held: Vec<HeldFrame>,
    pub(crate) rx: Vec<(Nanos, Frame)>,
    pub(crate) work: Vec<Work>,
    pub(crate) commits: Vec<Commit>,
}

impl RtcTask {
    fn counters(&self) -> Vec<TaskCounters> {
        let mut all = Vec::with_capacity(7);
        all.extend(self.intake.counters());
        all.extend(self.owner.counters(self.intake.replica, self.intake.items));
        all.extend(self.finisher.counters());
        // Frames of groups on their way here, as an ingress reorder's.
        all[2].reorder_leftover = self.moves.held_frames() as u64;
        all
    }

    /// One validated frame through the owner (its buffer back to the
    /// spares if nothing kept it).
    fn receive(
        &mut self,
        time: Nanos,
        frame: Frame,
        verdict: crate::pre::Verdict,
        now: Option<Nanos>,
    ) {
        if let Some(frame) = self.owner.receive(verdict, frame, time, now) {
            self.finisher.spare().give(frame);
        }
    }

    /// Runs the owner (application, timers) and sends its output into
    /// `dma`, `post` and TX; returns the work items.
    fn finish_work(&mut self, burst_now: Option<Nanos>) -> usize {
        self.owner.run(burst_now, &mut self.work);
        let n = self.work.len();
        for work in self.work.drain(..) {
            self.finisher.finish(work, &mut self.commits);
        }
        n
    }

    /// A group leaves: every frame of it has been through the engine, so
    /// once the engine's output is out (copies complete, frames sent,
    /// commits applied, and the work those cause likewise) it goes to its
    /// new owner. Neither the application nor the timers run meanwhile, so
    /// this settles in a round or two; if it has not after a few, the
    /// group tries again at the next poll. Returns whether it left.
    fn leave(&mut self, away: SteeredAway) -> bool {
        for _ in 0..8 {
            self.owner.take_work(&mut self.work);
            let n = self.work.len();
            for work in self.work.drain(..) {
                self.finisher.finish(work, &mut self.commits);
            }
            self.finisher.drain(&mut self.commits);
            self.finisher.transmit();
            let committed = !self.commits.is_empty();
            for c in self.commits.drain(..) {
                self.owner.commit(c);
            }
            if n == 0 && !committed {
                self.moves
                    .hand_over(away, &mut self.owner.engine, &mut *self.owner.app);
                return true;
            }
        }
        self.moves.not_yet(away);
        false
    }

    fn publish(&mut self, force: bool) {
        self.owner.publish(force);
        self.stages
            .publish(force, Some(&self.intake), Some(&self.finisher));
    }
}

impl Task for RtcTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.counters() {
                self.live.publish(c);
            }
        }
        let mut n = self.owner.learn_arp();
        // Groups that landed here: their held frames first.
        n += self
            .moves
            .adopt(&mut self.owner.engine, &mut *self.owner.app, &mut self.held);
        let mut held = std::mem::take(&mut self.held);
        for (time, frame, verdict) in held.drain(..) {
            self.receive(time, frame, verdict, None);
        }
        self.held = held;
        if let Some(away) = self.moves.due_to_leave(&*self.intake.nic) {
            self.leave(away);
            n += 1;
        }
        let burst_now = self.owner.clock.burst_now();
        self.rx.clear();
        n += self.intake.rx_burst(&mut self.rx);
        let mut rx = std::mem::take(&mut self.rx);
        for (time, frame) in rx.drain(..) {
            let Some(verdict) = self.intake.check(time, &frame) else {
                self.finisher.spare().give(frame);
                continue;
            };
            if self.moves.must_hold(&self.owner.engine, &verdict) {
                self.moves.hold(time, frame, verdict);
                continue;
            }
            self.receive(time, frame, verdict, burst_now);
        }
        self.rx = rx;
        n += self.finish_work(burst_now);
        n += self.finisher.poll_dma(&mut self.commits);
        self.finisher.transmit();
        // After the frames left, as the egress reorder releases them: the
        // application learns of data once its DMA and ACK are done.
        for c in self.commits.drain(..) {
            self.owner.commit(c);
        }
        self.publish(false);
        n
    }

    fn idle(&mut self) -> bool {
        let draining = self
            .intake
            .draining
            .load(std::sync::atomic::Ordering::Relaxed);
        self.owner.arp_learn.is_empty() && self.finisher.idle() && self.moves.idle(draining)
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        // Copies still in flight (a stop after the grace period) complete
        // and go out, and their commits apply.
        self.finisher.drain(&mut self.commits);
        self.finisher.transmit();
        for c in self.commits.drain(..) {
            self.owner.commit(c);
        }
        self.publish(true);
        report.pre_stats.merge(&self.intake.stats);
        report.tasks.extend(self.counters());
        self.owner.finish(report);
    }
}
