//! The data-parallel half of `pre`: parse, validate, checksum and summarise
//! (no flow state), then on to the ingress reorder.

use crate::flow::group_of_hash;
use crate::pipeline::items::{IngressItem, PreItem};
use crate::pipeline::moves::Accepting;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{
    LiveCounters, PipelineReport, Publisher, StatsBoard, Task, TaskCounters,
};
use crate::pipeline::timing::StageTimer;
use crate::pipeline::Plan;
use crate::pre::{validate_hashed, LocalAddrs, Verdict};
use crate::stats::DropReason;
use crate::stats::Stats;
use crate::wire::ChecksumCaps;
use std::sync::Arc;

pub(crate) struct PreTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) name: String,
    /// Frames of flow groups other replicas own are dropped as misrouted.
    pub(crate) replica: usize,
    pub(crate) accepting: Arc<Accepting>,
    pub(crate) plan: Plan,
    pub(crate) input: Consumer<IngressItem>,
    pub(crate) output: Producer<PreItem>,
    pub(crate) local: LocalAddrs,
    pub(crate) caps: ChecksumCaps,
    pub(crate) burst: usize,
    pub(crate) batch: Vec<IngressItem>,
    pub(crate) held: Option<PreItem>,
    pub(crate) stats: Stats,
    pub(crate) delay: super::StageDelay,
    pub(crate) items: u64,
    /// Live drop counters (slot `board_slot` of `board.pre`).
    pub(crate) board: Arc<StatsBoard>,
    pub(crate) board_slot: usize,
    pub(crate) publisher: Publisher,
    /// Sampled processing time of `validate` and the push.
    pub(crate) timer: StageTimer,
}

impl PreTask {
    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: self.name.clone(),
            items: self.items,
            full_events: self.output.full_events,
            ..Default::default()
        }
    }
}

impl Task for PreTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        if let Some(item) = self.held.take() {
            if let Err(back) = self.output.push(item) {
                self.held = Some(back);
                return 0;
            }
        }
        if self.batch.is_empty() {
            self.input.pop_burst(&mut self.batch, self.burst);
            self.batch.reverse(); // pop() from the back takes them in order
        }
        let mut n = 0;
        while let Some(it) = self.batch.pop() {
            n += 1;
            self.delay.apply();
            let t = self.timer.start();
            let caps = it.frame.rx_caps(&self.caps);
            let mut verdict =
                validate_hashed(&it.frame, &self.local, &caps, it.frame.nic_rss_hash());
            if let Verdict::Tcp { rss, .. } = verdict {
                let group = group_of_hash(rss, self.plan.flow_groups);
                if !self.accepting.accepts(group, self.replica) {
                    // The port's RSS disagrees with the plan.
                    verdict = Verdict::Drop(DropReason::Misrouted);
                }
            }
            if let Verdict::Drop(reason) = verdict {
                // Counted here; the item still travels so its sequence
                // number is released in order.
                self.stats.drop(reason);
            }
            let out = PreItem {
                seq: it.seq,
                time: it.time,
                frame: it.frame,
                verdict,
            };
            let pushed = self.output.push(out);
            self.timer.stop(t);
            if let Err(back) = pushed {
                self.held = Some(back);
                break;
            }
        }
        self.items += n as u64;
        if self.publisher.due(false) {
            *self.board.pre[self.board_slot].lock() = self.stats.clone();
            self.timer.publish(&self.board);
        }
        n
    }

    fn idle(&mut self) -> bool {
        self.held.is_none() && self.batch.is_empty()
    }

    fn finish(self: Box<Self>, report: &mut PipelineReport) {
        *self.board.pre[self.board_slot].lock() = self.stats.clone();
        self.timer.publish(&self.board);
        report.pre_stats.merge(&self.stats);
        report.tasks.push(self.counters());
    }
}
