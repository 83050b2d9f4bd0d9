//! Flow-group moves into and out of a run-to-completion replica
//! (`pipeline/moves.rs` has the protocol). The replica's one task takes
//! the NIC's frames and runs the owner, so it plays the ingress, the
//! ingress reorder and the owner's parts at once:
//!
//! - **Leaving**: once the NIC queue has given out every frame of the group
//!   it got before the steering changed ([`Nic::steer_passed`]), every one
//!   of them has been through the engine (a burst is handled whole). The
//!   task then stops taking frames, finishes the engine's output (copies
//!   complete, frames leave, commits apply, the work they cause too), and
//!   exports the group to the new owner's mailbox.
//! - **Arriving**: frames of a group this replica accepts but its engine
//!   does not own yet wait here; when the group lands they go through the
//!   engine first, in order.

#![forbid(unsafe_code)]

use crate::engine::Engine;
use crate::flow::group_of_hash;
use crate::io::{Frame, Nic};
use crate::pipeline::moves::{send_group, take_group, Accepting, Arrival, SteeredAway};
use crate::pipeline::task::ShardApp;
use crate::pre::Verdict;
use crate::proto::Nanos;
use crossbeam_queue::SegQueue;
use std::collections::VecDeque;
use std::sync::Arc;

/// A frame waiting for its group to land.
pub(crate) type HeldFrame = (Nanos, Frame, Verdict);

/// See the module documentation.
pub(crate) struct FusedMoves {
    pub(crate) replica: usize,
    /// Global index of the replica's owner.
    pub(crate) index: usize,
    pub(crate) flow_groups: u32,
    pub(crate) mailboxes: Vec<Arc<SegQueue<Arrival>>>,
    pub(crate) steered_away: Arc<SegQueue<SteeredAway>>,
    pub(crate) leaving: VecDeque<SteeredAway>,
    pub(crate) accepting: Arc<Accepting>,
    pub(crate) arriving: Vec<(u32, VecDeque<HeldFrame>)>,
}

impl FusedMoves {
    /// Whether a frame that passed the intake's check (this replica
    /// accepts its group) must wait for its group to land: the engine does
    /// not own the group yet. By reference, so the common case moves
    /// nothing.
    pub(crate) fn must_hold(&self, engine: &Engine, verdict: &Verdict) -> bool {
        match verdict {
            Verdict::Tcp { rss, .. } => !engine.owns_group(group_of_hash(*rss, self.flow_groups)),
            _ => false,
        }
    }

    /// Keeps a frame whose group is on its way here (see
    /// [`FusedMoves::must_hold`]).
    pub(crate) fn hold(&mut self, time: Nanos, frame: Frame, verdict: Verdict) {
        let Verdict::Tcp { rss, .. } = verdict else {
            return;
        };
        let g = group_of_hash(rss, self.flow_groups);
        match self.arriving.iter_mut().find(|(h, _)| *h == g) {
            Some((_, held)) => held.push_back((time, frame, verdict)),
            None => self
                .arriving
                .push((g, VecDeque::from([(time, frame, verdict)]))),
        }
    }

    /// The first group steered away whose every frame the NIC queue has
    /// given out, if any: it may leave now.
    pub(crate) fn due_to_leave(&mut self, nic: &dyn Nic) -> Option<SteeredAway> {
        while let Some(away) = self.steered_away.pop() {
            self.leaving.push_back(away);
        }
        let front = self.leaving.front()?;
        if !nic.steer_passed(self.replica, &front.positions) {
            return None;
        }
        self.leaving.pop_front()
    }

    /// Puts back a group that could not leave yet (first in line).
    pub(crate) fn not_yet(&mut self, away: SteeredAway) {
        self.leaving.push_front(away);
    }

    /// Exports the group of `away` to its new owner (the engine's output
    /// for it must be finished); frames of it here now are misrouted.
    pub(crate) fn hand_over(&self, away: SteeredAway, engine: &mut Engine, app: &mut dyn ShardApp) {
        self.accepting.remove(away.request.group, self.replica);
        send_group(&self.mailboxes, away.request, engine, app);
    }

    /// Imports the groups that arrived; their held frames, in order, are
    /// appended to `release` for the engine.
    pub(crate) fn adopt(
        &mut self,
        engine: &mut Engine,
        app: &mut dyn ShardApp,
        release: &mut Vec<HeldFrame>,
    ) -> usize {
        let mut n = 0;
        while let Some(arrival) = self.mailboxes[self.index].pop() {
            let arriving = &mut self.arriving;
            take_group(arrival, engine, app, |group| {
                if let Some(at) = arriving.iter().position(|(g, _)| *g == group) {
                    release.extend(arriving.swap_remove(at).1);
                }
            });
            n += 1;
        }
        n
    }

    /// Frames held for groups not landed yet (at shutdown: lost).
    pub(crate) fn held_frames(&self) -> usize {
        self.arriving.iter().map(|(_, f)| f.len()).sum()
    }

    /// Nothing of a move is under way here. While the pipeline drains
    /// (no frame is taken any more) a group steered away cannot leave:
    /// that does not keep the task busy.
    pub(crate) fn idle(&self, draining: bool) -> bool {
        (draining || (self.leaving.is_empty() && self.steered_away.is_empty()))
            && self.arriving.is_empty()
            && self.mailboxes[self.index].is_empty()
    }
}
