//! NIC RX and the ingress sequencer: every received frame gets the next
//! sequence number of its replica, then goes to a `pre` worker round-robin.
//! When every `pre` ring is full the frame stays in the NIC queue, which
//! drops and counts when it overflows: the only place the pipeline drops.

use crate::io::{Frame, Nic};
use crate::pipeline::items::IngressItem;
use crate::pipeline::ring::Producer;
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
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
}

impl IngressTask {
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
        if !super::flush(&mut self.outs, &mut self.rr, &mut self.pending) {
            return 0;
        }
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return 0;
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
        n
    }

    fn idle(&mut self) -> bool {
        self.pending.is_empty()
    }

    fn finish(self: Box<Self>, report: &mut PipelineReport) {
        report.tasks.push(self.counters());
    }
}
