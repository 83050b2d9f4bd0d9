//! Messages between pipeline tasks.

use crate::engine::work::{Commit, RxWork, TxWork, Work};
use crate::io::Frame;
use crate::pre::Verdict;
use crate::proto::Nanos;

use super::moves::MoveRequest;

/// Egress stamp: (sequencer, sequence). Each flow-group owner (`proto`
/// worker) is a sequencer for everything it emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub seqr: u16,
    pub seq: u64,
}

/// NIC -> `pre`: a received frame with its ingress sequence number.
#[derive(Debug)]
pub struct IngressItem {
    pub seq: u64,
    pub time: Nanos,
    pub frame: Frame,
}

/// `pre` -> ingress reorder.
#[derive(Debug)]
pub struct PreItem {
    pub seq: u64,
    pub time: Nanos,
    pub frame: Frame,
    pub verdict: Verdict,
}

/// Into a flow-group owner.
#[derive(Debug)]
pub enum ShardIn {
    Rx {
        time: Nanos,
        frame: Frame,
        verdict: Verdict,
    },
    /// An ARP frame seen on another queue: learn from it, do not answer.
    ArpLearn { time: Nanos, frame: Frame },
    /// Hand flow group `request.group` to another owner: the ingress
    /// reorder holds the group's later frames, so every frame of it before
    /// this one has reached the owner already (`pipeline/moves.rs`).
    MoveOut(MoveRequest),
}

/// Owner -> `dma` (and, for frames and commits, straight to egress).
#[derive(Debug)]
pub struct StampedWork {
    pub stamp: Stamp,
    pub work: Work,
}

/// `dma` -> `post`.
#[derive(Debug)]
pub enum PostItem {
    Rx {
        stamp: Stamp,
        frame: Frame,
        work: RxWork,
    },
    /// `frame` holds the payload after `room` bytes for the headers, or
    /// the payload alone when `room` is 0 (generic emitter).
    Tx {
        stamp: Stamp,
        frame: Frame,
        room: usize,
        work: TxWork,
    },
    /// An item whose copy failed, as the commit that resets its
    /// connection (no frame leaves for it).
    Commit { stamp: Stamp, commit: Commit },
}

/// `post` (or the owner) -> egress reorder: a frame to send and/or
/// notifications to commit, or nothing (the stamp is still released).
#[derive(Debug)]
pub struct EgressItem {
    pub stamp: Stamp,
    pub frame: Option<Frame>,
    pub commit: Option<Commit>,
    /// Returned to the owner as [`Returned::Fence`] once everything it
    /// stamped before has left (a flow-group move waits for it).
    pub fence: bool,
}

/// Egress reorder -> owner, in stamp order.
#[derive(Debug)]
pub enum Returned {
    Commit(Commit),
    /// Everything the owner stamped before its fence has been released:
    /// frames sent, commits ahead of this in the ring.
    Fence,
}
