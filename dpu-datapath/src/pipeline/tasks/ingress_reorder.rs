//! Ingress reorder: `pre` workers finish out of order; this releases their
//! results in arrival (sequence) order to the flow-group owners, so `proto`
//! sees each connection's segments in the order the NIC received them.
//! Drops release their sequence number here. A flow group on its way to
//! another owner is held here meanwhile (`pipeline/moves.rs`).

use crate::io::Frame;
use crate::pipeline::items::{PreItem, ShardIn};
use crate::pipeline::moves::Routes;
use crate::pipeline::reorder::Reorder;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use crate::pipeline::topology::Plan;
use crate::pre::Verdict;
use crate::wire::{parse_ingress, ArpOperation, ChecksumCaps, L3};
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct IngressReorderTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) replica: usize,
    pub(crate) plan: Plan,
    /// Which owner each flow group goes to, and groups on the move.
    pub(crate) routes: Routes,
    pub(crate) inputs: Vec<Consumer<PreItem>>,
    /// Per input: items taken from the ring but beyond the window for now.
    pub(crate) backlog: Vec<VecDeque<PreItem>>,
    pub(crate) window: Reorder<PreItem>,
    /// This replica's owners, by local index.
    pub(crate) owners: Vec<Producer<ShardIn>>,
    pub(crate) pending: Vec<VecDeque<ShardIn>>,
    /// Every owner's learn-only ARP queue (all replicas).
    pub(crate) arp_learn: Vec<Arc<ArrayQueue<ShardIn>>>,
    pub(crate) burst: usize,
    pub(crate) batch: Vec<PreItem>,
    pub(crate) items: u64,
    pub(crate) arp_learn_dropped: u64,
}

impl IngressReorderTask {
    fn route(&mut self, item: PreItem) {
        let rss = match &item.verdict {
            Verdict::Drop(_) => return,
            Verdict::Tcp { rss, .. } => Some(*rss),
            Verdict::Control => {
                // Owner 0 of the receiving replica answers.
                let answering = self.replica * self.plan.proto;
                self.arp_learn_dropped +=
                    share_arp(&self.arp_learn, answering, item.time, &item.frame);
                None
            }
        };
        let shard_in = ShardIn::Rx {
            time: item.time,
            frame: item.frame,
            verdict: item.verdict,
        };
        let (local, shard_in) = match rss {
            // Held while its group moves, or not this replica's group
            // (`pre` turned those into drops).
            Some(rss) => match self.routes.route(rss, shard_in) {
                Some(routed) => routed,
                None => return,
            },
            None => (0, shard_in),
        };
        // A route past this replica's owners would be a bug: dropped, as
        // `pre` drops frames of other replicas' groups.
        if let Some(pending) = self.pending.get_mut(local) {
            pending.push_back(shard_in);
        }
    }

    fn flush(&mut self) -> bool {
        let mut all = true;
        for (out, pending) in self.owners.iter_mut().zip(self.pending.iter_mut()) {
            out.push_burst(pending);
            all &= pending.is_empty();
        }
        all
    }
}

/// ARP replies and requests teach every owner the neighbour: a copy of an
/// ARP `frame` goes to every owner's learn-only queue but `answering`'s
/// (it gets the frame itself). Returns the copies a full queue refused.
pub(crate) fn share_arp(
    queues: &[Arc<ArrayQueue<ShardIn>>],
    answering: usize,
    time: crate::proto::Nanos,
    frame: &Frame,
) -> u64 {
    if !is_arp(frame) {
        return 0;
    }
    let mut refused = 0;
    for (i, q) in queues.iter().enumerate() {
        let copy = ShardIn::ArpLearn {
            time,
            frame: frame.clone(),
        };
        if i != answering && q.push(copy).is_err() {
            refused += 1;
        }
    }
    refused
}

/// An ARP request or reply (learnt by every owner).
fn is_arp(frame: &[u8]) -> bool {
    let caps = ChecksumCaps {
        verify_rx: false,
        fill_tx: false,
        tx_offload: false,
    };
    matches!(parse_ingress(frame, &caps).map(|p| p.l3), Ok(L3::Arp(a)) if matches!(a.operation, ArpOperation::Request | ArpOperation::Reply))
}

impl IngressReorderTask {
    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: format!("r{}-ingress-reorder", self.replica),
            items: self.items,
            full_events: self.owners.iter().map(|o| o.full_events).sum(),
            reorder_holds: self.window.hold_events,
            reorder_leftover: self.window.held() as u64
                + self.routes.held_frames() as u64
                + self.backlog.iter().map(|b| b.len() as u64).sum::<u64>(),
        }
    }
}

impl Task for IngressReorderTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        self.routes.apply_requests(&mut self.pending);
        // Back-pressure: while an owner's ring is full, or a moving group
        // holds many frames here, take nothing new.
        if !self.flush() || self.routes.full() {
            return 0;
        }
        let mut n = 0;
        let mut batch = std::mem::take(&mut self.batch);
        for i in 0..self.inputs.len() {
            if self.backlog[i].is_empty() {
                batch.clear();
                n += self.inputs[i].pop_burst(&mut batch, self.burst);
                for item in batch.drain(..) {
                    // In order with nothing held (always, with one `pre`
                    // worker): straight to its owner, not via the window.
                    if self.backlog[i].is_empty() && self.window.pass(item.seq) {
                        self.route(item);
                    } else {
                        self.backlog[i].push_back(item);
                    }
                }
            }
            while let Some(item) = self.backlog[i].pop_front() {
                if let Err(e) = self.window.insert(item.seq, item) {
                    // Beyond the window: wait (the ring keeps its order).
                    self.backlog[i].push_front(e.1);
                    break;
                }
            }
        }
        self.batch = batch;
        while let Some(item) = self.window.pop_ready() {
            self.route(item);
        }
        // Groups leaving for another replica, behind their last frames.
        self.routes
            .leave_due(self.window.next_seq(), &mut self.pending);
        self.flush();
        self.items += n as u64;
        n
    }

    fn idle(&mut self) -> bool {
        !self.routes.busy()
            && self.window.held() == 0
            && self.backlog.iter().all(VecDeque::is_empty)
            && self.pending.iter().all(VecDeque::is_empty)
    }

    fn finish(self: Box<Self>, report: &mut PipelineReport) {
        report.tasks.push(self.counters());
    }
}
