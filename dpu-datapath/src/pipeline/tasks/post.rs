//! `post` workers (data-parallel): final headers from the protocol snapshot
//! and the flow's template (the received frame's buffer becomes its ACK),
//! then on to the egress reorder.

use super::SpareFrames;
use crate::pipeline::items::{EgressItem, PostItem};
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{
    LiveCounters, PipelineReport, Publisher, StatsBoard, Task, TaskCounters,
};
use crate::pipeline::timing::StageTimer;
use crate::wire::ChecksumCaps;
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct PostTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) name: String,
    pub(crate) inputs: Vec<Consumer<PostItem>>,
    pub(crate) out: Producer<EgressItem>,
    pub(crate) caps: ChecksumCaps,
    pub(crate) burst: usize,
    pub(crate) pending: VecDeque<EgressItem>,
    pub(crate) batch: Vec<PostItem>,
    pub(crate) delay: super::StageDelay,
    pub(crate) items: u64,
    /// Sampled processing time of building one frame.
    pub(crate) timer: StageTimer,
    pub(crate) board: Arc<StatsBoard>,
    pub(crate) publisher: Publisher,
    /// Where frames that leave no ACK go, for `dma` to reuse.
    pub(crate) spare: Arc<SpareFrames>,
}

impl PostTask {
    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: self.name.clone(),
            items: self.items,
            full_events: self.out.full_events,
            ..Default::default()
        }
    }
}

impl Task for PostTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        self.out.push_burst(&mut self.pending);
        if !self.pending.is_empty() {
            return 0;
        }
        let mut n = 0;
        for input in self.inputs.iter_mut() {
            self.batch.clear();
            n += input.pop_burst(&mut self.batch, self.burst);
            for item in self.batch.drain(..) {
                self.delay.apply();
                let t = self.timer.start();
                let out = match item {
                    PostItem::Rx { stamp, frame, work } => EgressItem {
                        stamp,
                        frame: self.spare.post_rx(&work, frame, &self.caps),
                        commit: (!work.commit.is_empty()).then_some(work.commit),
                        fence: false,
                    },
                    PostItem::Tx {
                        stamp,
                        mut frame,
                        room,
                        work,
                    } => {
                        self.spare.post_tx(&work, &mut frame, room, &self.caps);
                        EgressItem {
                            stamp,
                            frame: Some(frame),
                            commit: None,
                            fence: false,
                        }
                    }
                    PostItem::Commit { stamp, commit } => EgressItem {
                        stamp,
                        frame: None,
                        commit: Some(commit),
                        fence: false,
                    },
                };
                self.timer.stop(t);
                self.pending.push_back(out);
            }
        }
        self.out.push_burst(&mut self.pending);
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
