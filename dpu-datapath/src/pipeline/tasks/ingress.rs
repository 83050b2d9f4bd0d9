//! NIC RX and the ingress sequencer: every received frame gets the next
//! sequence number of its replica, then goes to a `pre` worker round-robin.
//! When every `pre` ring is full the frame stays in the NIC queue, which
//! drops and counts when it overflows: the only place the pipeline drops.

use crate::io::{Frame, Nic};
use crate::pipeline::items::IngressItem;
use crate::pipeline::moves::{RouteCtl, SteeredAway};
use crate::pipeline::ring::Producer;
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use crossbeam_queue::SegQueue;
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct IngressTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) replica: usize,
    pub(crate) nic: Arc<dyn Nic>,
    pub(crate) rx: Vec<(crate::proto::Nanos, Frame)>,
    /// Shutdown in progress: take no more frames from the NIC.
    pub(crate) draining: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) outs: Vec<Producer<IngressItem>>,
    pub(crate) burst: usize,
    pub(crate) next_seq: u64,
    pub(crate) rr: usize,
    pub(crate) pending: VecDeque<IngressItem>,
    pub(crate) items: u64,
    /// Flow groups steered to another replica (`pipeline/moves.rs`), and
    /// those whose frames the NIC queue may still give out.
    pub(crate) steered_away: Arc<SegQueue<SteeredAway>>,
    pub(crate) leaving: VecDeque<SteeredAway>,
    /// The replica's ingress reorder.
    pub(crate) routes: Arc<SegQueue<RouteCtl>>,
}

impl IngressTask {
    /// Groups whose every frame the NIC queue has given out leave: the
    /// ingress reorder learns the sequence number all of them are below.
    /// Returns how many.
    fn let_groups_leave(&mut self) -> usize {
        while let Some(away) = self.steered_away.pop() {
            self.leaving.push_back(away);
        }
        let mut n = 0;
        while let Some(away) = self.leaving.front() {
            if !self.nic.steer_passed(self.replica, &away.positions) {
                break;
            }
            let Some(away) = self.leaving.pop_front() else {
                break;
            };
            self.routes.push(RouteCtl::LeaveAt {
                seq: self.next_seq,
                request: away.request,
            });
            n += 1;
        }
        n
    }

    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: format!("r{}-ingress", self.replica),
            items: self.items,
            full_events: self.outs.iter().map(|o| o.full_events).sum(),
            ..Default::default()
        }
    }
}

impl Task for IngressTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        let left = self.let_groups_leave();
        if !super::flush(&mut self.outs, &mut self.rr, &mut self.pending) {
            return left;
        }
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return left;
        }
        self.rx.clear();
        let n = self.nic.rx_burst(self.replica, self.burst, &mut self.rx);
        let mut rx = std::mem::take(&mut self.rx);
        for (time, frame) in rx.drain(..) {
            let item = IngressItem {
                seq: self.next_seq,
                time,
                frame,
            };
            self.next_seq += 1;
            if let Err(back) = super::dispatch(&mut self.outs, &mut self.rr, item) {
                self.pending.push_back(back);
            }
        }
        self.rx = rx;
        self.items += n as u64;
        n + left
    }

    fn idle(&mut self) -> bool {
        // Draining, no frame is taken: a group steered away cannot leave,
        // and that does not keep the worker busy.
        let draining = self.draining.load(std::sync::atomic::Ordering::Relaxed);
        self.pending.is_empty()
            && (draining || (self.leaving.is_empty() && self.steered_away.is_empty()))
    }

    fn finish(self: Box<Self>, report: &mut PipelineReport) {
        report.tasks.push(self.counters());
    }
}
