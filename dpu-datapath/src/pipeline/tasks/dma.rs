//! `dma` workers (data-parallel): RX payload into the application's buffer
//! at the position `proto` computed, TX payload out of it, as copies
//! submitted to the replica's DMA engine; an item goes on to `post` once
//! its copy completed (the egress reorder restores stamp order).

use super::SpareFrames;
use crate::app::ConnError;
use crate::dma::{rx_copy, tx_copy, Copy, DmaQueue};
use crate::engine::work::{Commit, RxWork, TxWork, Work};
use crate::io::Frame;
use crate::pipeline::items::{PostItem, Stamp, StampedWork};
use crate::pipeline::ring::{Consumer, Producer};
use crate::pipeline::task::{
    LiveCounters, PipelineReport, Publisher, StatsBoard, Task, TaskCounters,
};
use crate::pipeline::timing::StageTimer;
use std::collections::VecDeque;
use std::sync::Arc;

/// What an item does once its copy completed.
pub(crate) enum AfterDma {
    /// `post` turns the received frame into its ACK (or frees it).
    Rx(RxWork),
    /// `post` writes the headers in the `room` before the fetched payload.
    Tx { room: usize, work: TxWork },
    /// A frame the owner built, sent as it is.
    Frame,
    /// Notifications for the application.
    Commit(Commit),
}

/// An owner's work item as the DMA queue takes it: its packet buffer (a
/// spare one, sized, for a segment to send), what follows, its copy.
pub(crate) fn stage(work: Work, spare: &SpareFrames) -> (Option<Frame>, AfterDma, Option<Copy>) {
    match work {
        Work::Rx { frame, mut work } => {
            let copy = rx_copy(&mut work);
            (Some(frame), AfterDma::Rx(work), copy)
        }
        Work::Tx(mut work) => {
            let mut frame = if work.segment_size > 0 {
                spare.take_large()
            } else {
                spare.take()
            };
            let (room, copy) = tx_copy(&mut work, &mut frame);
            (Some(frame), AfterDma::Tx { room, work }, copy)
        }
        Work::Frame(frame) => (Some(frame), AfterDma::Frame, None),
        Work::Commit(c) => (None, AfterDma::Commit(c), None),
    }
}

/// What an item whose copy failed becomes: its bytes did not move, so its
/// ACK or segment must not leave (the peer would take stale bytes as
/// data, or learn that bytes the application never got were received);
/// instead its connection is reset, by the owner on this commit.
pub(crate) fn copy_failed(next: AfterDma) -> AfterDma {
    let conn = match &next {
        AfterDma::Rx(work) => work.commit.conn,
        AfterDma::Tx { work, .. } => work.conn,
        AfterDma::Frame | AfterDma::Commit(_) => return next,
    };
    AfterDma::Commit(Commit {
        conn,
        error: Some(ConnError::DmaFailed),
        ..Commit::default()
    })
}

pub(crate) struct DmaTask {
    /// Live counters for `stat` and `/metrics`.
    pub(crate) live: LiveCounters,
    pub(crate) name: String,
    pub(crate) inputs: Vec<Consumer<StampedWork>>,
    pub(crate) outs: Vec<Producer<PostItem>>,
    pub(crate) burst: usize,
    pub(crate) rr: usize,
    pub(crate) pending: VecDeque<PostItem>,
    /// Items waiting for their copies.
    pub(crate) dma: DmaQueue<(Stamp, AfterDma)>,
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
                // The owner sends frames and commits straight to egress.
                if matches!(work, Work::Frame(_) | Work::Commit(_)) {
                    continue;
                }
                let (frame, next, copy) = stage(work, &self.spare);
                let pending = &mut self.pending;
                self.dma.push(frame, (stamp, next), copy, &mut |f, w, ok| {
                    release(f, w, ok, pending, &self.spare)
                });
                self.timer.stop(t);
            }
        }
        let pending = &mut self.pending;
        let spare = &self.spare;
        self.dma
            .poll(&mut |f, w, ok| release(f, w, ok, pending, spare));
        super::flush(&mut self.outs, &mut self.rr, &mut self.pending);
        self.items += n as u64;
        if self.timer.enabled() && self.publisher.due(false) {
            self.timer.publish(&self.board);
        }
        n
    }

    fn idle(&mut self) -> bool {
        self.pending.is_empty() && self.dma.is_empty()
    }

    fn finish(mut self: Box<Self>, report: &mut PipelineReport) {
        let pending = &mut self.pending;
        let spare = &self.spare;
        self.dma
            .drain(&mut |f, w, ok| release(f, w, ok, pending, spare));
        self.timer.publish(&self.board);
        report.tasks.push(self.counters());
    }
}

/// An item whose copy completed goes on to `post` (as the commit that
/// resets its connection when the copy failed).
fn release(
    frame: Option<Frame>,
    (stamp, next): (Stamp, AfterDma),
    copied: bool,
    pending: &mut VecDeque<PostItem>,
    spare: &SpareFrames,
) {
    if !copied {
        if let Some(frame) = frame {
            spare.give(frame);
        }
        if let AfterDma::Commit(commit) = copy_failed(next) {
            pending.push_back(PostItem::Commit { stamp, commit });
        }
        return;
    }
    match (next, frame) {
        (AfterDma::Rx(work), Some(frame)) => pending.push_back(PostItem::Rx { stamp, frame, work }),
        (AfterDma::Tx { room, work }, Some(frame)) => pending.push_back(PostItem::Tx {
            stamp,
            frame,
            room,
            work,
        }),
        // Frames and commits go from the owner to egress, not through here.
        _ => {}
    }
}
