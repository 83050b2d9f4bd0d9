//! `post` workers (data-parallel): final headers from the protocol snapshot
//! and the flow's template (the received frame's buffer becomes its ACK),
//! then on to the egress reorder.

use super::SpareFrames;
use crate::engine::work::{post_rx, post_tx, post_tx_in_place};
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
                    PostItem::Rx {
                        stamp,
                        mut frame,
                        work,
                    } => {
                        post_rx(&work, &mut frame, &self.caps);
                        let frame = if frame.is_empty() {
                            self.spare.give(frame);
                            None
                        } else {
                            Some(frame)
                        };
                        EgressItem {
                            stamp,
                            frame,
                            commit: (!work.commit.is_empty()).then_some(work.commit),
                        }
                    }
                    PostItem::Tx {
                        stamp,
                        mut frame,
                        room,
                        work,
                    } => {
                        if room == 0 || !post_tx_in_place(&work, &mut frame, &self.caps) {
                            // The generic emitter, from the payload alone.
                            let mut out = self.spare.take();
                            post_tx(&work, &frame[room.min(frame.len())..], &mut out, &self.caps);
                            let payload = std::mem::replace(&mut frame, out);
                            self.spare.give(payload);
                        }
                        EgressItem {
                            stamp,
                            frame: Some(frame),
                            commit: None,
                        }
                    }
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
