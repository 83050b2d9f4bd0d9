//! The split placement, fused: one replica's data-parallel side (NIC RX,
//! `pre`, `dma`, `post`, NIC TX) on one worker and its owner (`proto` and
//! the control plane) on another, joined by three rings: validated frames
//! to the owner, the owner's output (in its order) back, and commits after
//! the frames left. With one task of each kind everything on a ring is
//! already in order, so no stamp or reorder window is needed; each item
//! crosses between the cores once each way.

#![forbid(unsafe_code)]

use super::fused::{FusedOwner, Intake, RingFinisher, StagePublisher};
use super::SpareFrames;
use crate::engine::work::{Commit, Work};
use crate::io::Frame;
use crate::pipeline::items::ShardIn;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use crate::proto::Nanos;
use std::collections::VecDeque;
use std::sync::Arc;

/// The data side: intake and finisher on one worker.
pub(crate) struct SplitDataTask {
    pub(crate) live: LiveCounters,
    pub(crate) intake: Intake,
    pub(crate) out: RingFinisher,
    pub(crate) stages: StagePublisher,
    pub(crate) to_owner: Producer<ShardIn>,
    /// Validated frames the owner's ring had no room for yet.
    pub(crate) pending_in: VecDeque<ShardIn>,
    pub(crate) rx: Vec<(Nanos, Frame)>,
}

impl SplitDataTask {
    fn counters(&self) -> Vec<TaskCounters> {
        let mut all = Vec::with_capacity(5);
        all.extend(self.intake.counters());
        all.extend(self.out.finisher.counters());
        all
    }
}

impl Task for SplitDataTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.counters() {
                self.live.publish(c);
            }
        }
        // The owner's output: frames out, then its commits back.
        let mut n = self.out.poll();
        // New frames, while the owner keeps up (else they wait in the NIC).
        self.to_owner.push_burst(&mut self.pending_in);
        if self.pending_in.is_empty() {
            self.rx.clear();
            n += self.intake.rx_burst(&mut self.rx);
            for (time, frame) in self.rx.drain(..) {
                match self.intake.check(time, &frame) {
                    Some(verdict) => self.pending_in.push_back(ShardIn::Rx {
                        time,
                        frame,
                        verdict,
                    }),
                    None => self.out.finisher.spare().give(frame),
                }
            }
            self.to_owner.push_burst(&mut self.pending_in);
        }
        self.stages
            .publish(false, Some(&self.intake), Some(&self.out.finisher));
        n
    }

    fn idle(&mut self) -> bool {
        self.pending_in.is_empty() && self.out.idle()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        self.out.drain();
        self.stages
            .publish(true, Some(&self.intake), Some(&self.out.finisher));
        report.pre_stats.merge(&self.intake.stats);
        report.tasks.extend(self.counters());
    }
}

/// The owner side.
pub(crate) struct SplitOwnerTask {
    pub(crate) live: LiveCounters,
    pub(crate) replica: usize,
    pub(crate) owner: FusedOwner,
    pub(crate) input: Consumer<ShardIn>,
    pub(crate) commits: Consumer<Commit>,
    pub(crate) to_data: Producer<Work>,
    /// Output the data side's ring had no room for yet.
    pub(crate) pending: VecDeque<Work>,
    pub(crate) spare: Arc<SpareFrames>,
    pub(crate) burst: usize,
    pub(crate) batch: Vec<ShardIn>,
    pub(crate) commit_batch: Vec<Commit>,
    pub(crate) work: Vec<Work>,
    /// Frames taken from the data side.
    pub(crate) received: u64,
}

impl Task for SplitOwnerTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            for c in self.owner.counters(self.replica, self.received) {
                self.live.publish(c);
            }
        }
        // Commits never wait: they only update the application side.
        self.commit_batch.clear();
        let mut n = self
            .commits
            .pop_burst(&mut self.commit_batch, self.burst * 4);
        for c in self.commit_batch.drain(..) {
            self.owner.commit(c);
        }
        n += self.owner.learn_arp();
        let burst_now = self.owner.clock.burst_now();
        // Back-pressure: while the data side's ring is full, take nothing new.
        self.to_data.push_burst(&mut self.pending);
        if self.pending.is_empty() {
            self.batch.clear();
            let got = self.input.pop_burst(&mut self.batch, self.burst);
            self.received += got as u64;
            n += got;
            for item in self.batch.drain(..) {
                match item {
                    ShardIn::Rx {
                        time,
                        frame,
                        verdict,
                    } => {
                        if let Some(unused) = self.owner.receive(verdict, frame, time, burst_now) {
                            self.spare.give(unused);
                        }
                    }
                    ShardIn::ArpLearn { time, frame } => {
                        let now = self.owner.clock.now(time);
                        self.owner.engine.learn_arp(&frame, now);
                    }
                    // A fused replica has one owner: nothing moves
                    // (`Pipeline::move_group` refuses).
                    ShardIn::MoveOut(_) => {}
                }
            }
        }
        self.owner.run(burst_now, &mut self.work);
        n += self.work.len();
        self.pending.extend(self.work.drain(..));
        self.to_data.push_burst(&mut self.pending);
        self.owner.publish(false);
        n
    }

    fn idle(&mut self) -> bool {
        self.pending.is_empty()
            && self.input.is_empty()
            && self.commits.is_empty()
            && self.owner.arp_learn.is_empty()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        self.owner.publish(true);
        report
            .tasks
            .extend(self.owner.counters(self.replica, self.received));
        self.owner.finish(report);
    }
}
