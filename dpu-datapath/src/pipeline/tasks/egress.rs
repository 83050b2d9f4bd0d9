//! Egress reorder: releases each owner's output strictly in stamp order,
//! whichever `dma`/`post` worker finished first. Frames go to the NIC,
//! commits back to the owner (the application learns of data only after
//! its DMA completed and in order). Every stamp is released exactly once,
//! with or without a frame.

use crate::io::{Frame, Nic};
use crate::pipeline::items::{EgressItem, Returned};
use crate::pipeline::reorder::Reorder;
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{LiveCounters, PipelineReport, Task, TaskCounters};
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct EgressTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) replica: usize,
    /// Global index of this replica's first owner.
    pub(crate) first_owner: usize,
    pub(crate) inputs: Vec<Consumer<EgressItem>>,
    pub(crate) backlog: Vec<VecDeque<EgressItem>>,
    /// One window per owner (sequencer) of this replica.
    pub(crate) windows: Vec<Reorder<EgressItem>>,
    /// Items beyond an owner's window, parked instead of blocking a ring
    /// that other owners' items share.
    pub(crate) overflow: Vec<std::collections::BTreeMap<u64, EgressItem>>,
    pub(crate) nic: Arc<dyn Nic>,
    pub(crate) commit_outs: Vec<Producer<Returned>>,
    pub(crate) pending_commits: Vec<VecDeque<Returned>>,
    pub(crate) tx: Vec<Frame>,
    pub(crate) burst: usize,
    pub(crate) batch: Vec<EgressItem>,
    pub(crate) items: u64,
    pub(crate) frames: u64,
}

impl EgressTask {
    /// What this task has done so far.
    fn counters(&self) -> TaskCounters {
        TaskCounters {
            name: format!("r{}-egress", self.replica),
            items: self.items,
            full_events: self.commit_outs.iter().map(|o| o.full_events).sum(),
            reorder_holds: self.windows.iter().map(|w| w.hold_events).sum(),
            reorder_leftover: self.windows.iter().map(|w| w.held() as u64).sum::<u64>()
                + self.overflow.iter().map(|o| o.len() as u64).sum::<u64>()
                + self.backlog.iter().map(|b| b.len() as u64).sum::<u64>(),
        }
    }

    /// Item `item` of owner `w`, in stamp order: its frame to the NIC, its
    /// commit back to the owner.
    fn release(&mut self, w: usize, item: EgressItem) {
        if let Some(frame) = item.frame {
            self.tx.push(frame);
        }
        if let Some(c) = item.commit {
            self.pending_commits[w].push_back(Returned::Commit(c));
        }
        if item.fence {
            self.pending_commits[w].push_back(Returned::Fence);
        }
    }
}

impl Task for EgressTask {
    fn poll(&mut self) -> usize {
        if self.live.due() {
            let c = self.counters();
            self.live.publish(c);
        }
        let mut n = 0;
        let mut batch = std::mem::take(&mut self.batch);
        for i in 0..self.inputs.len() {
            if self.backlog[i].is_empty() {
                batch.clear();
                n += self.inputs[i].pop_burst(&mut batch, self.burst);
                for item in batch.drain(..) {
                    let w = (item.stamp.seqr as usize).saturating_sub(self.first_owner);
                    // In order with nothing held: released now, not via
                    // the window.
                    if self.backlog[i].is_empty()
                        && w < self.windows.len()
                        && self.windows[w].pass(item.stamp.seq)
                    {
                        self.release(w, item);
                    } else {
                        self.backlog[i].push_back(item);
                    }
                }
            }
            while let Some(item) = self.backlog[i].pop_front() {
                let w = (item.stamp.seqr as usize).saturating_sub(self.first_owner);
                if w >= self.windows.len() {
                    debug_assert!(false, "stamp from a foreign sequencer");
                    continue;
                }
                if let Err(e) = self.windows[w].insert(item.stamp.seq, item) {
                    self.overflow[w].insert(e.0, e.1);
                }
            }
        }
        // Parked items re-enter as their windows advance.
        for (w, window) in self.windows.iter_mut().enumerate() {
            while let Some(entry) = self.overflow[w].first_entry() {
                let seq = *entry.key();
                if seq > window.next_seq() + window.capacity() - 1 {
                    break;
                }
                let item = entry.remove();
                if let Err(e) = window.insert(seq, item) {
                    self.overflow[w].insert(e.0, e.1);
                    break;
                }
            }
        }
        self.batch = batch;
        for w in 0..self.windows.len() {
            while let Some(item) = self.windows[w].pop_ready() {
                self.release(w, item);
            }
        }
        if !self.tx.is_empty() {
            self.frames += self.tx.len() as u64;
            self.nic.tx_burst(self.replica, &mut self.tx);
        }
        for (out, pending) in self
            .commit_outs
            .iter_mut()
            .zip(self.pending_commits.iter_mut())
        {
            out.push_burst(pending);
        }
        self.items += n as u64;
        n
    }

    fn idle(&mut self) -> bool {
        self.windows.iter().all(|w| w.held() == 0)
            && self.overflow.iter().all(|o| o.is_empty())
            && self.backlog.iter().all(VecDeque::is_empty)
            && self.pending_commits.iter().all(VecDeque::is_empty)
    }

    fn finish(self: Box<Self>, report: &mut PipelineReport) {
        report.tasks.push(self.counters());
    }
}
