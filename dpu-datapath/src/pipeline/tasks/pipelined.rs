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

use super::fused::{FusedOwner, Intake, RingFinisher, StagePublisher};
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
    pub(crate) out: RingFinisher,
    pub(crate) stages: StagePublisher,
}

impl Task for PipelinedOutTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.out.finisher.counters() {
                self.live.publish(c);
            }
        }
        let n = self.out.poll();
        self.stages.publish(false, None, Some(&self.out.finisher));
        n
    }

    fn idle(&mut self) -> bool {
        self.out.from_owner.is_empty() && self.out.idle()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        self.out.drain();
        self.stages.publish(true, None, Some(&self.out.finisher));
        report.tasks.extend(self.out.finisher.counters());
    }
}
