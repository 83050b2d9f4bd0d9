//! A whole replica on one worker, fused: NIC RX, `pre`, the flow-group
//! owner (`proto` and the control plane), `dma`, `post` and NIC TX called
//! one after the other on each burst, with no ring, stamp or reorder window
//! between them. Used when a replica has one task of each kind and the
//! placement puts all seven on the same worker: there a single in-order
//! path has nothing to reorder, and moving every item through six rings
//! cost a third of the worker's time (docs/benchmarks.md).

#![forbid(unsafe_code)]

use super::fused::{Finisher, FusedOwner, Intake, StagePublisher};
use crate::engine::work::{Commit, Work};
use crate::io::Frame;
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use crate::proto::Nanos;

pub(crate) struct RtcTask {
    pub(crate) live: LiveCounters,
    pub(crate) intake: Intake,
    pub(crate) owner: FusedOwner,
    pub(crate) finisher: Finisher,
    pub(crate) stages: StagePublisher,
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
        all
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
        let burst_now = self.owner.clock.burst_now();
        self.rx.clear();
        n += self.intake.rx_burst(&mut self.rx);
        let mut rx = std::mem::take(&mut self.rx);
        for (time, frame) in rx.drain(..) {
            let unused = match self.intake.check(time, &frame) {
                Some(verdict) => self.owner.receive(verdict, frame, time, burst_now),
                None => Some(frame),
            };
            if let Some(frame) = unused {
                self.finisher.spare().give(frame);
            }
        }
        self.rx = rx;
        self.owner.run(burst_now, &mut self.work);
        n += self.work.len();
        for work in self.work.drain(..) {
            self.finisher.finish(work, &mut self.commits);
        }
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
        self.owner.arp_learn.is_empty() && self.finisher.idle()
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
