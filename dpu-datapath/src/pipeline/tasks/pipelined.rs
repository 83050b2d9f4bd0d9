//! The pipelined placement, fused: one replica's stages cut in packet
//! order across two workers. The first takes frames from the NIC and runs
//! `pre` and the flow-group owner (`proto` and the control plane); the
//! second runs `dma`, `post` and NIC TX. One ring carries the owner's
//! output (already in its order) forward, one carries the commits back
//! after the frames left. Each item crosses between the cores once, where
//! the split (`split.rs`: data side | owner) moves every frame to the
//! owner and its work back. With one task of each kind nothing needs a
//! stamp or a reorder window.

#![forbid(unsafe_code)]

use super::fused::{prefetch_frames, Finisher, FusedOwner, Intake, StagePublisher};
use super::SpareFrames;
use crate::engine::work::{Commit, Work};
use crate::io::Frame;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use crate::proto::Nanos;
use std::collections::VecDeque;
use std::sync::Arc;

/// NIC RX, `pre` and the owner.
pub(crate) struct PipelinedInTask {
    pub(crate) live: LiveCounters,
    pub(crate) intake: Intake,
    pub(crate) owner: FusedOwner,
    pub(crate) stages: StagePublisher,
    pub(crate) to_out: Producer<Work>,
    pub(crate) commits: Consumer<Commit>,
    /// Output the ring had no room for yet.
    pub(crate) pending: VecDeque<Work>,
    pub(crate) rx: Vec<(Nanos, Frame)>,
    pub(crate) work: Vec<Work>,
    pub(crate) commit_batch: Vec<Commit>,
    /// The replica's spare frames (shared with the output task).
    pub(crate) spare: Arc<SpareFrames>,
    pub(crate) burst: usize,
}

impl PipelinedInTask {
    fn counters(&self) -> Vec<TaskCounters> {
        let mut all = Vec::with_capacity(4);
        all.extend(self.intake.counters());
        all.extend(self.owner.counters(self.intake.replica, self.intake.items));
        all
    }

    fn publish(&mut self, force: bool) {
        self.owner.publish(force);
        self.stages.publish(force, Some(&self.intake), None);
    }
}

impl Task for PipelinedInTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.counters() {
                self.live.publish(c);
            }
        }
        // Commits first: they only update the application side.
        self.commit_batch.clear();
        let mut n = self
            .commits
            .pop_burst(&mut self.commit_batch, 4 * self.burst);
        for c in self.commit_batch.drain(..) {
            self.owner.commit(c);
        }
        n += self.owner.learn_arp();
        let burst_now = self.owner.clock.burst_now();
        // While the output ring is full, take nothing new from the NIC.
        self.to_out.push_burst(&mut self.pending);
        if self.pending.is_empty() {
            self.rx.clear();
            n += self.intake.rx_burst(&mut self.rx);
            let mut rx = std::mem::take(&mut self.rx);
            for (time, frame) in rx.drain(..) {
                let unused = match self.intake.check(time, &frame) {
                    Some(verdict) => self.owner.receive(verdict, frame, time, burst_now),
                    None => Some(frame),
                };
                if let Some(frame) = unused {
                    self.spare.give(frame);
                }
            }
            self.rx = rx;
        }
        self.owner.run(burst_now, &mut self.work);
        n += self.work.len();
        self.pending.extend(self.work.drain(..));
        self.to_out.push_burst(&mut self.pending);
        self.publish(false);
        n
    }

    fn idle(&mut self) -> bool {
        self.pending.is_empty() && self.commits.is_empty() && self.owner.arp_learn.is_empty()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        // Commits already sent back apply (the pipeline is idle at stop).
        self.commit_batch.clear();
        self.commits.pop_burst(&mut self.commit_batch, usize::MAX);
        for c in self.commit_batch.drain(..) {
            self.owner.commit(c);
        }
        self.publish(true);
        report.pre_stats.merge(&self.intake.stats);
        report.tasks.extend(self.counters());
        self.owner.finish(report);
    }
}

/// `dma`, `post` and NIC TX for the owner's output, in its order; the
/// commits back once their frames left.
pub(crate) struct PipelinedOutTask {
    pub(crate) live: LiveCounters,
    pub(crate) finisher: Finisher,
    pub(crate) stages: StagePublisher,
    pub(crate) from_in: Consumer<Work>,
    pub(crate) commits_out: Producer<Commit>,
    /// Commits the ring had no room for yet.
    pub(crate) pending_commits: VecDeque<Commit>,
    pub(crate) batch: Vec<Work>,
    pub(crate) commits: Vec<Commit>,
    pub(crate) burst: usize,
}

impl Task for PipelinedOutTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.finisher.counters() {
                self.live.publish(c);
            }
        }
        let mut n = 0;
        // While the commit ring is full, take no more work (it would add
        // commits).
        self.commits_out.push_burst(&mut self.pending_commits);
        if self.pending_commits.is_empty() {
            self.batch.clear();
            n += self.from_in.pop_burst(&mut self.batch, self.burst);
            prefetch_frames(&self.batch);
            for work in self.batch.drain(..) {
                self.finisher.finish(work, &mut self.commits);
            }
        }
        n += self.finisher.poll_dma(&mut self.commits);
        self.finisher.transmit();
        // After the frames left, as the egress reorder releases them.
        self.pending_commits.extend(self.commits.drain(..));
        self.commits_out.push_burst(&mut self.pending_commits);
        self.stages.publish(false, None, Some(&self.finisher));
        n
    }

    fn idle(&mut self) -> bool {
        self.pending_commits.is_empty() && self.from_in.is_empty() && self.finisher.idle()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        // Copies still in flight (a stop after the grace period) complete
        // and their frames go out.
        self.finisher.drain(&mut self.commits);
        self.finisher.transmit();
        self.stages.publish(true, None, Some(&self.finisher));
        report.tasks.extend(self.finisher.counters());
    }
}
