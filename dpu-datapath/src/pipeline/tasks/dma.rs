//! `dma` workers (data-parallel): RX payload into the application's buffer
//! at the position `proto` computed, TX payload out of it.

use super::SpareFrames;
use crate::engine::work::{dma_rx, dma_tx_into_frame, Work};
use crate::pipeline::items::{PostItem, StampedWork};
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{
    LiveCounters, PipelineReport, Publisher, StatsBoard, Task, TaskCounters,
};
use crate::pipeline::timing::StageTimer;
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct DmaTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) name: String,
    pub(crate) inputs: Vec<Consumer<StampedWork>>,
    pub(crate) outs: Vec<Producer<PostItem>>,
    pub(crate) burst: usize,
    pub(crate) rr: usize,
    pub(crate) pending: VecDeque<PostItem>,
    pub(crate) batch: Vec<StampedWork>,
    pub(crate) delay: super::StageDelay,
    pub(crate) items: u64,
    /// Sampled processing time of one work item's copy.
    pub(crate) timer: StageTimer,
    pub(crate) board: Arc<StatsBoard>,
    pub(crate) publisher: Publisher,
    /// Spare frame buffers of the replica (freed received frames), so TX
    /// segments need no allocation in steady state.
    pub(crate) spare: Arc<SpareFrames>,
}

impl DmaTask {
    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: self.name.clone(),
            items: self.items,
            full_events: self.outs.iter().map(|o| o.full_events).sum(),
            ..Default::default()
        }
    }
}

impl Task for DmaTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        if !super::flush(&mut self.outs, &mut self.rr, &mut self.pending) {
            return 0;
        }
        let mut n = 0;
        for input in self.inputs.iter_mut() {
            self.batch.clear();
            n += input.pop_burst(&mut self.batch, self.burst);
            for StampedWork { stamp, work } in self.batch.drain(..) {
                self.delay.apply();
                let t = self.timer.start();
                let item = match work {
                    Work::Rx { frame, work } => {
                        dma_rx(&work, &frame);
                        PostItem::Rx { stamp, frame, work }
                    }
                    Work::Tx(work) => {
                        let mut frame = self.spare.take();
                        let room = dma_tx_into_frame(&work, &mut frame);
                        PostItem::Tx {
                            stamp,
                            frame,
                            room,
                            work,
                        }
                    }
                    // The owner sends these straight to egress.
                    Work::Frame(_) | Work::Commit(_) => continue,
                };
                self.timer.stop(t);
                self.pending.push_back(item);
            }
        }
        super::flush(&mut self.outs, &mut self.rr, &mut self.pending);
        self.items += n as u64;
        if self.timer.enabled() && self.publisher.due(false) {
            self.timer.publish(&self.board);
        }
        n
    }

    fn idle(&mut self) -> bool {
        self.pending.is_empty()
    }

    fn finish(self: Box<Self>, report: &mut PipelineReport) {
        self.timer.publish(&self.board);
        report.tasks.push(self.counters());
    }
}
