//! Moving a flow group to another owner of the same replica while the
//! pipeline runs (issue 14: resize without dropping connections).
//!
//! The engines do the state transfer (`engine/migrate.rs`); this is the
//! hand-off around it, so that no segment of the group is lost, handled by
//! the wrong owner, or sent out of order:
//!
//! 1. [`Pipeline::move_group`] asks the replica's ingress reorder to
//!    **hold** the group: its later frames wait there, and the old owner
//!    gets [`ShardIn::MoveOut`] behind every frame of the group it was
//!    already given.
//! 2. The old owner stamps what its engine produced so far, then a
//!    **fence**, and stops (it only applies returned commits) until the
//!    egress reorder gives the fence back: everything it stamped before has
//!    left, and every commit before it is applied.
//! 3. It **exports** the group (engine and application side) into the new
//!    owner's mailbox and goes on with its other groups.
//! 4. The new owner **imports** the group, tells the ingress reorder to
//!    route the group to it and release the held frames, in order, and
//!    answers the caller with the connections' new handles.
//!
//! Across replicas (`from` in replica A, `to` in replica B) the group's
//! frames must also change queue, and the old replica must have routed
//! every frame of it that it received before the change:
//!
//! 1. Replica B's `pre` and ingress reorder start accepting the group
//!    ([`Accepting`]): B's ingress reorder holds its frames until the
//!    group lands, as in step 1 above.
//! 2. [`Nic::steer`] sends the group's frames to B's queue from now on and
//!    says how many frames A's queue had received before.
//! 3. Once A's ingress (the sequencer) has taken that many
//!    ([`Nic::steer_passed`]), it tells A's ingress reorder the sequence
//!    number after them ([`RouteCtl::LeaveAt`]); when the reorder has
//!    routed everything before it, the old owner gets [`ShardIn::MoveOut`]
//!    behind the last frame of the group A will ever see.
//! 4. Steps 2 to 4 above: fence through A's egress, export, import at B,
//!    B's ingress reorder releases the held frames.
//!
//! Refused with an error: a move into or out of a fused replica (one owner,
//! no ingress reorder to hold frames), across replicas on a port whose
//! steering cannot move (hardware RSS, an XDP program that redirects), and
//! for applications that cannot hand over their connections
//! ([`ShardApp::movable`]).

#![forbid(unsafe_code)]

use super::items::{EgressItem, ShardIn, Stamp};
use super::task::ShardApp;
use super::topology::Plan;
use super::Pipeline;
use crate::engine::{Engine, GroupParcel, HandleMoves};
use crate::flow::group_of_hash;
use crate::io::Nic;
use crossbeam_queue::SegQueue;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// An application's side of moved connections (see [`ShardApp::export_conns`]).
pub type AppParcel = Box<dyn Any + Send>;

/// One move on its way through the pipeline.
#[derive(Debug)]
pub struct MoveRequest {
    pub group: u32,
    /// Global owner indices.
    pub from: usize,
    pub to: usize,
    /// The new owner answers here with the moved connections' handles.
    done: mpsc::Sender<HandleMoves>,
}

/// Requests to a replica's ingress reorder.
#[derive(Debug)]
pub(crate) enum RouteCtl {
    /// Hold the group's frames and send the old owner [`ShardIn::MoveOut`].
    Hold(MoveRequest),
    /// The group now belongs to owner `to`: release its held frames there.
    Release { group: u32, to: usize },
    /// The group leaves this replica: every frame of it has a sequence
    /// number below `seq`; send the old owner [`ShardIn::MoveOut`] once
    /// they are routed.
    LeaveAt { seq: u64, request: MoveRequest },
}

/// To a replica's ingress (the sequencer): the group of `request` is
/// steered away; once the NIC queue has given out every frame it got
/// before (`positions`, from [`Nic::steer`]), the group may leave.
#[derive(Debug)]
pub(crate) struct SteeredAway {
    pub(crate) positions: Vec<u64>,
    pub(crate) request: MoveRequest,
}

/// Which replicas take each flow group's frames: one, or two while the
/// group moves between them (frames queued before the steering changed
/// reach the old one, later ones the new). Bit r is replica r (at most 64,
/// as `topology.replicas`).
#[derive(Debug)]
pub(crate) struct Accepting(Vec<AtomicU64>);

impl Accepting {
    pub(crate) fn new(plan: &Plan) -> Self {
        Self(
            (0..plan.flow_groups)
                .map(|g| AtomicU64::new(1 << plan.replica_of_group(g)))
                .collect(),
        )
    }

    /// Whether `replica` takes group `g`'s frames.
    pub(crate) fn accepts(&self, g: u32, replica: usize) -> bool {
        self.0
            .get(g as usize)
            .is_some_and(|m| m.load(Ordering::Relaxed) & (1 << replica) != 0)
    }

    /// `replica` takes the group too (a move to it starts).
    fn add(&self, g: u32, replica: usize) {
        self.0[g as usize].fetch_or(1 << replica, Ordering::SeqCst);
    }

    /// Only `replica` takes the group (a move landed, or did not start).
    fn only(&self, g: u32, replica: usize) {
        self.0[g as usize].store(1 << replica, Ordering::SeqCst);
    }

    /// `replica` no longer takes the group (it left, behind its last frame
    /// there).
    pub(crate) fn remove(&self, g: u32, replica: usize) {
        if let Some(m) = self.0.get(g as usize) {
            m.fetch_and(!(1 << replica), Ordering::SeqCst);
        }
    }
}

/// From the old owner to the new one.
pub(crate) struct Arrival {
    parcel: GroupParcel,
    app: AppParcel,
    request: MoveRequest,
}

/// Why a move was refused or did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveError {
    NoSuchGroup {
        group: u32,
        groups: u32,
    },
    NoSuchOwner {
        owner: usize,
        owners: usize,
    },
    /// The owners are in different replicas and one of them runs split or
    /// pipelined (its owner on another worker than its NIC intake, and no
    /// ingress reorder to hold the group's frames meanwhile).
    AcrossReplicas {
        from: usize,
        to: usize,
    },
    /// The owners are in different replicas and the port cannot steer the
    /// group to the new one (hardware RSS, or an XDP ingress program).
    SteeringFixed {
        from: usize,
        to: usize,
    },
    /// The application on the owners cannot hand over its connections.
    AppCannotMove,
    /// The pipeline did not finish the move in time; it is still under
    /// way, and moves wait for it to land first.
    Timeout {
        group: u32,
    },
    /// An earlier move (of `group`) that timed out has still not landed:
    /// this one was not started.
    Busy {
        group: u32,
    },
    /// The pipeline dropped the move (it is shutting down).
    Abandoned {
        group: u32,
    },
    /// `replica` does not exist (`resize.rs`).
    NoSuchReplica {
        replica: usize,
        replicas: usize,
    },
    /// Draining a replica whose groups have nowhere to go: the pipeline has
    /// one replica, or the others are drained or cannot take moves.
    NowhereToGo {
        replica: usize,
    },
}

impl std::fmt::Display for MoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchGroup { group, groups } => write!(
                f,
                "flow group {group} does not exist (topology.flow_groups is {groups}: 0 to {})",
                groups.saturating_sub(1)
            ),
            Self::NoSuchOwner { owner, owners } => write!(
                f,
                "owner {owner} does not exist (replicas x proto_workers is {owners}: 0 to {})",
                owners.saturating_sub(1)
            ),
            Self::AcrossReplicas { from, to } => write!(
                f,
                "owners {from} and {to} are in different replicas and one of them runs split or \
                 pipelined: a group moves across replicas only between staged and \
                 run-to-completion ones"
            ),
            Self::SteeringFixed { from, to } => write!(
                f,
                "owners {from} and {to} are in different replicas and the port cannot steer the \
                 group to the new one (its RSS is the hardware's, or an XDP ingress program is \
                 loaded): a group moves only between the owners of its replica"
            ),
            Self::AppCannotMove => write!(
                f,
                "the application on the owners cannot hand over its connections"
            ),
            Self::Timeout { group } => write!(
                f,
                "the move of flow group {group} did not finish in time (the pipeline is \
                 stalled?); it lands when the pipeline gets to it"
            ),
            Self::Busy { group } => write!(
                f,
                "the earlier move of flow group {group} has not landed yet; nothing was moved"
            ),
            Self::Abandoned { group } => write!(
                f,
                "the pipeline dropped the move of flow group {group} (shutting down?)"
            ),
            Self::NoSuchReplica { replica, replicas } => write!(
                f,
                "replica {replica} does not exist (topology.replicas is {replicas}: 0 to {})",
                replicas.saturating_sub(1)
            ),
            Self::NowhereToGo { replica } => write!(
                f,
                "no other replica can take the flow groups of replica {replica} (the pipeline \
                 has one replica, or the others are drained or run split or pipelined)"
            ),
        }
    }
}

impl std::error::Error for MoveError {}

/// The pipeline's side of moves: where each group is, and a way to reach
/// each replica's ingress reorder.
pub(crate) struct MoveControl {
    plan: Plan,
    /// Per replica: its ingress's requests and its ingress reorder's (None
    /// for a split or pipelined replica, which cannot hold a group's frames
    /// on another worker than its owner's).
    routes: Vec<Option<ReplicaControl>>,
    /// Every co-located application can move its connections.
    movable: bool,
    nic: Arc<dyn Nic>,
    accepting: Arc<Accepting>,
    /// Replicas drained by an operator (`resize.rs`), until a rebalance.
    pub(crate) drained: parking_lot::Mutex<Vec<bool>>,
    state: parking_lot::Mutex<MoveState>,
}

impl std::fmt::Debug for MoveControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoveControl")
            .field("routes", &self.routes)
            .field("movable", &self.movable)
            .finish()
    }
}

/// How a mover reaches a replica's ingress (the task that takes its
/// frames from the NIC) and, when it is staged, its ingress reorder.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaControl {
    /// None for a run-to-completion replica (one owner, nothing to route).
    pub(crate) routes: Option<Arc<SegQueue<RouteCtl>>>,
    pub(crate) ingress: Arc<SegQueue<SteeredAway>>,
}

#[derive(Debug)]
struct MoveState {
    /// Global owner of each flow group.
    owner_of: Vec<usize>,
    /// Where each group's frames are taken (set to the new owner's replica
    /// when a move lands).
    accepting: Arc<Accepting>,
    /// Owners per replica.
    proto: usize,
    /// A move that timed out, still finishing: (group, to, answer).
    unfinished: Option<(u32, usize, mpsc::Receiver<HandleMoves>)>,
}

impl MoveControl {
    pub(crate) fn new(
        plan: &Plan,
        routes: Vec<Option<ReplicaControl>>,
        movable: bool,
        nic: Arc<dyn Nic>,
        accepting: Arc<Accepting>,
    ) -> Self {
        Self {
            plan: plan.clone(),
            routes,
            movable,
            nic,
            accepting: accepting.clone(),
            drained: parking_lot::Mutex::new(vec![false; plan.replicas]),
            state: parking_lot::Mutex::new(MoveState {
                owner_of: (0..plan.flow_groups)
                    .map(|g| plan.owner_of_group(g))
                    .collect(),
                accepting,
                proto: plan.proto,
                unfinished: None,
            }),
        }
    }
}

impl Pipeline {
    /// Moves flow group `group` to owner `to` (global index: replica x
    /// `proto_workers` + worker) with its open connections; blocks until
    /// the new owner has them, at most `timeout`. Returns each moved
    /// application connection's old and new handle. See the module
    /// documentation.
    pub fn move_group(
        &self,
        group: u32,
        to: usize,
        timeout: Duration,
    ) -> Result<HandleMoves, MoveError> {
        self.moves.move_group(group, to, timeout)
    }

    /// The global owner of each flow group now (after the moves so far;
    /// waits while one is under way).
    pub fn group_owners(&self) -> Vec<usize> {
        self.moves.group_owners()
    }

    /// A handle that moves groups from another thread (an operator's
    /// `flextoe-dpu move-group`) while the pipeline runs. After shutdown
    /// its moves time out.
    pub fn group_mover(&self) -> GroupMover {
        self.moves.clone()
    }
}

/// Moves flow groups of a running pipeline: [`Pipeline::group_mover`].
#[derive(Clone, Debug)]
pub struct GroupMover(Arc<MoveControl>);

impl GroupMover {
    pub(crate) fn new(control: MoveControl) -> Self {
        Self(Arc::new(control))
    }

    /// As [`Pipeline::move_group`].
    pub fn move_group(
        &self,
        group: u32,
        to: usize,
        timeout: Duration,
    ) -> Result<HandleMoves, MoveError> {
        let plan = &self.0.plan;
        let control = &*self.0;
        // Moves go one at a time: this lock is held until this one lands.
        let mut state = control.state.lock();
        state.land_unfinished(Some(timeout))?;
        let from = *state
            .owner_of
            .get(group as usize)
            .ok_or(MoveError::NoSuchGroup {
                group,
                groups: plan.flow_groups,
            })?;
        if to >= plan.owners() {
            return Err(MoveError::NoSuchOwner {
                owner: to,
                owners: plan.owners(),
            });
        }
        if from == to {
            return Ok(Vec::new());
        }
        if !control.movable {
            return Err(MoveError::AppCannotMove);
        }
        let (old, new) = (from / plan.proto, to / plan.proto);
        let movable = |r: usize| control.routes.get(r).and_then(Option::as_ref);
        let (Some(old_replica), Some(_)) = (movable(old), movable(new)) else {
            return Err(MoveError::AcrossReplicas { from, to });
        };
        let (done, answer) = mpsc::channel();
        let request = MoveRequest {
            group,
            from,
            to,
            done,
        };
        if old == new {
            // Two owners in a replica always make it staged.
            let Some(routes) = &old_replica.routes else {
                return Err(MoveError::AcrossReplicas { from, to });
            };
            routes.push(RouteCtl::Hold(request));
        } else {
            // Frames steered to the new replica wait in its ingress
            // reorder (it accepts the group now, owns it not yet).
            control.accepting.add(group, new);
            let Some(positions) = control.nic.steer(group, new) else {
                control.accepting.only(group, old);
                return Err(MoveError::SteeringFixed { from, to });
            };
            old_replica.ingress.push(SteeredAway { positions, request });
        }
        state.unfinished = Some((group, to, answer));
        state.land_unfinished(Some(timeout)).map_err(|e| match e {
            MoveError::Busy { group } => MoveError::Timeout { group },
            e => e,
        })
    }

    /// As [`Pipeline::group_owners`].
    pub fn group_owners(&self) -> Vec<usize> {
        let mut state = self.0.state.lock();
        // A move that timed out may have landed since.
        let _ = state.land_unfinished(None);
        state.owner_of.clone()
    }

    /// Owners per replica.
    pub fn owners_per_replica(&self) -> usize {
        self.0.plan.proto
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.0.plan
    }

    /// Whether groups can move into and out of `replica` (staged and
    /// run-to-completion replicas can, split and pipelined ones cannot).
    pub(crate) fn takes_moves(&self, replica: usize) -> bool {
        self.0.routes.get(replica).is_some_and(Option::is_some)
    }

    /// Replicas drained by an operator, until a rebalance.
    pub(crate) fn drained(&self) -> &parking_lot::Mutex<Vec<bool>> {
        &self.0.drained
    }

    /// Which replicas are drained (`flextoe-dpu groups`).
    pub fn drained_replicas(&self) -> Vec<bool> {
        self.0.drained.lock().clone()
    }
}

impl MoveState {
    /// Waits up to `timeout` (not at all for None) for the move under way,
    /// if any, and records where its group went. Its handle moves, or
    /// `Busy` if it has not landed.
    fn land_unfinished(&mut self, timeout: Option<Duration>) -> Result<HandleMoves, MoveError> {
        let Some((group, to, answer)) = self.unfinished.take() else {
            return Ok(Vec::new());
        };
        // Ok, or whether the answer may still come.
        let got = match timeout {
            Some(t) => answer.recv_timeout(t).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => true,
                mpsc::RecvTimeoutError::Disconnected => false,
            }),
            None => answer.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => true,
                mpsc::TryRecvError::Disconnected => false,
            }),
        };
        match got {
            Ok(moves) => {
                self.owner_of[group as usize] = to;
                self.accepting.only(group, to / self.proto);
                Ok(moves)
            }
            Err(true) => {
                self.unfinished = Some((group, to, answer));
                Err(MoveError::Busy { group })
            }
            Err(false) => Err(MoveError::Abandoned { group }),
        }
    }
}

/// The ingress reorder's side: where each group goes, and the frames of
/// groups on the move.
#[derive(Debug)]
pub(crate) struct Routes {
    requests: Arc<SegQueue<RouteCtl>>,
    flow_groups: u32,
    /// Global owner of each group.
    owner_of: Vec<usize>,
    /// Groups on the move, with the frames that arrived meanwhile.
    held: Vec<(u32, VecDeque<ShardIn>)>,
    /// Groups leaving the replica once the sequence number is reached.
    leaving: Vec<(u64, MoveRequest)>,
    /// Which replicas take each group's frames.
    accepting: Arc<Accepting>,
    replica: usize,
    /// Global index of the replica's first owner, and how many it has.
    first_owner: usize,
    owners: usize,
    /// Held frames beyond which the ingress reorder takes nothing new
    /// until the move lands (back-pressure, as from a full owner ring).
    hold_limit: usize,
}

impl Routes {
    pub(crate) fn new(
        plan: &Plan,
        replica: usize,
        requests: Arc<SegQueue<RouteCtl>>,
        accepting: Arc<Accepting>,
    ) -> Self {
        Self {
            requests,
            flow_groups: plan.flow_groups,
            owner_of: (0..plan.flow_groups)
                .map(|g| plan.owner_of_group(g))
                .collect(),
            held: Vec::new(),
            leaving: Vec::new(),
            accepting,
            replica,
            first_owner: replica * plan.proto,
            owners: plan.proto,
            hold_limit: 4 * plan.ring_size,
        }
    }

    /// The local index of global owner `owner`, if it is this replica's.
    fn local(&self, owner: usize) -> Option<usize> {
        owner
            .checked_sub(self.first_owner)
            .filter(|&l| l < self.owners)
    }

    /// Applies the requests that came in; `pending` is per local owner.
    pub(crate) fn apply_requests(&mut self, pending: &mut [VecDeque<ShardIn>]) {
        while let Some(request) = self.requests.pop() {
            match request {
                RouteCtl::Hold(req) => {
                    let local = req.from - self.first_owner;
                    self.held.push((req.group, VecDeque::new()));
                    pending[local].push_back(ShardIn::MoveOut(req));
                }
                RouteCtl::Release { group, to } => {
                    self.owner_of[group as usize] = to;
                    if let Some(at) = self.held.iter().position(|(g, _)| *g == group) {
                        let (_, frames) = self.held.swap_remove(at);
                        pending[to - self.first_owner].extend(frames);
                    }
                }
                RouteCtl::LeaveAt { seq, request } => self.leaving.push((seq, request)),
            }
        }
    }

    /// Every item below sequence number `next` is routed: the groups
    /// leaving the replica behind them go (their old owner gets
    /// `MoveOut`, and a later frame of theirs here would wait for them to
    /// come back).
    pub(crate) fn leave_due(&mut self, next: u64, pending: &mut [VecDeque<ShardIn>]) {
        let mut i = 0;
        while i < self.leaving.len() {
            let (seq, group) = (self.leaving[i].0, self.leaving[i].1.group);
            // A group still held here has not landed here yet (a move
            // under way when this one was asked for): it leaves after.
            if seq > next || self.held.iter().any(|(g, _)| *g == group) {
                i += 1;
                continue;
            }
            let (_, request) = self.leaving.swap_remove(i);
            // Every frame of it has passed `pre` here: a later one would
            // be misrouted.
            self.accepting.remove(group, self.replica);
            self.owner_of[request.group as usize] = request.to;
            if let Some(local) = self.local(request.from) {
                pending[local].push_back(ShardIn::MoveOut(request));
            }
        }
    }

    /// The local owner `item` (a frame with RSS hash `rss`) goes to with
    /// it, or None when its group is held (the item kept here) or not this
    /// replica's (dropped: `pre` counted it as misrouted).
    pub(crate) fn route(&mut self, rss: u32, item: ShardIn) -> Option<(usize, ShardIn)> {
        let g = group_of_hash(rss, self.flow_groups);
        if let Some((_, frames)) = self.held.iter_mut().find(|(h, _)| *h == g) {
            frames.push_back(item);
            return None;
        }
        let owner = *self.owner_of.get(g as usize)?;
        match self.local(owner) {
            Some(local) => Some((local, item)),
            // Moving here from another replica: held until it lands.
            None if self.accepting.accepts(g, self.replica) => {
                self.held.push((g, VecDeque::from([item])));
                None
            }
            None => None,
        }
    }

    /// A move is under way (frames may be held).
    pub(crate) fn busy(&self) -> bool {
        !self.held.is_empty() || !self.leaving.is_empty() || !self.requests.is_empty()
    }

    /// Frames held now.
    pub(crate) fn held_frames(&self) -> usize {
        self.held.iter().map(|(_, f)| f.len()).sum()
    }

    /// So many frames are held that nothing new should be taken.
    pub(crate) fn full(&self) -> bool {
        !self.held.is_empty() && self.held_frames() >= self.hold_limit
    }
}

/// Exports `request.group` (engine and application side) into the new
/// owner's mailbox.
pub(crate) fn send_group(
    mailboxes: &[Arc<SegQueue<Arrival>>],
    request: MoveRequest,
    engine: &mut Engine,
    app: &mut dyn ShardApp,
) {
    let parcel = engine.export_group(request.group);
    let app = app.export_conns(&parcel.conns());
    let to = request.to;
    mailboxes[to].push(Arrival {
        parcel,
        app,
        request,
    });
}

/// Imports an arrived group, calls `landed` with it (which routes its
/// frames here), and only then answers the mover: its next move of the
/// group must find the routes already changed.
pub(crate) fn take_group(
    arrival: Arrival,
    engine: &mut Engine,
    app: &mut dyn ShardApp,
    landed: impl FnOnce(u32),
) {
    let group = arrival.parcel.group;
    let moves = engine.import_group(arrival.parcel);
    app.import_conns(engine, arrival.app, &moves);
    landed(group);
    // The caller may have given up waiting (timeout): nothing to do.
    let _ = arrival.request.done.send(moves);
}

/// An owner's side: its mailbox, the others', and the move it is leaving.
#[derive(Debug)]
pub(crate) struct OwnerMoves {
    index: usize,
    /// Every owner's mailbox (global index); this owner's is `index`.
    mailboxes: Vec<Arc<SegQueue<Arrival>>>,
    /// The replica's ingress reorder.
    routes: Arc<SegQueue<RouteCtl>>,
    /// The move whose fence is out.
    leaving: Option<MoveRequest>,
    fence_back: bool,
    /// Input taken from the ring after a `MoveOut`, handled after it.
    deferred: VecDeque<ShardIn>,
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrival")
            .field("request", &self.request)
            .finish()
    }
}

impl OwnerMoves {
    pub(crate) fn new(
        index: usize,
        mailboxes: Vec<Arc<SegQueue<Arrival>>>,
        routes: Arc<SegQueue<RouteCtl>>,
    ) -> Self {
        Self {
            index,
            mailboxes,
            routes,
            leaving: None,
            fence_back: false,
            deferred: VecDeque::new(),
        }
    }

    /// Input deferred behind a move, first (up to `burst`).
    pub(crate) fn refill(&mut self, batch: &mut Vec<ShardIn>, burst: usize) {
        while batch.len() < burst {
            match self.deferred.pop_front() {
                Some(item) => batch.push(item),
                None => break,
            }
        }
    }

    /// The owner stops at `MoveOut`: the rest of its batch waits.
    pub(crate) fn defer(&mut self, rest: impl Iterator<Item = ShardIn>) {
        for (i, item) in rest.enumerate() {
            self.deferred.insert(i, item);
        }
    }

    /// Starts leaving: the fence to send, stamped `stamp`, after
    /// everything stamped so far.
    pub(crate) fn begin(&mut self, request: MoveRequest, stamp: Stamp) -> EgressItem {
        self.leaving = Some(request);
        self.fence_back = false;
        EgressItem {
            stamp,
            frame: None,
            commit: None,
            fence: true,
        }
    }

    pub(crate) fn fence_returned(&mut self) {
        self.fence_back = true;
    }

    /// A group is leaving (its fence is out, or back and not yet acted on).
    pub(crate) fn leaving(&self) -> bool {
        self.leaving.is_some()
    }

    /// The fence of the group leaving is back.
    pub(crate) fn fence_back(&self) -> bool {
        self.fence_back
    }

    /// Another fence, stamped `stamp`, after work stamped since the last.
    pub(crate) fn refence(&mut self, stamp: Stamp) -> EgressItem {
        self.fence_back = false;
        EgressItem {
            stamp,
            frame: None,
            commit: None,
            fence: true,
        }
    }

    /// Exports the leaving group (engine and application side) into its
    /// new owner's mailbox.
    pub(crate) fn hand_over(&mut self, engine: &mut Engine, app: &mut dyn ShardApp) {
        let Some(request) = self.leaving.take() else {
            return;
        };
        send_group(&self.mailboxes, request, engine, app);
    }

    /// Takes the groups handed to this owner; returns how many.
    pub(crate) fn adopt(&mut self, engine: &mut Engine, app: &mut dyn ShardApp) -> usize {
        let mut n = 0;
        while let Some(arrival) = self.mailboxes[self.index].pop() {
            let (routes, to) = (&self.routes, self.index);
            take_group(arrival, engine, app, |group| {
                routes.push(RouteCtl::Release { group, to })
            });
            n += 1;
        }
        n
    }

    /// Input deferred and groups arrived, not handled (at shutdown: lost).
    pub(crate) fn leftover(&self) -> u64 {
        (self.deferred.len() + self.mailboxes[self.index].len()) as u64
    }

    /// Nothing of a move is under way here.
    pub(crate) fn idle(&self) -> bool {
        self.leaving.is_none() && self.deferred.is_empty() && self.mailboxes[self.index].is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_config::Topology;

    /// A frame item tagged with `tag` (its time), for order checks.
    fn item(tag: u64) -> ShardIn {
        ShardIn::ArpLearn {
            time: tag,
            frame: vec![0u8; 60].into(),
        }
    }

    fn tags(q: &VecDeque<ShardIn>) -> Vec<u64> {
        q.iter()
            .map(|i| match i {
                ShardIn::ArpLearn { time, .. } => *time,
                ShardIn::MoveOut(r) => 1000 + r.group as u64,
                ShardIn::Rx { time, .. } => *time,
            })
            .collect()
    }

    /// 4 groups, 2 owners, rings of 64: the plan, the ingress reorder's
    /// request queue and routes, and a pending queue per owner.
    fn one_replica_two_owners() -> (
        Plan,
        Arc<SegQueue<RouteCtl>>,
        Routes,
        Vec<VecDeque<ShardIn>>,
    ) {
        let plan = Plan::new(&Topology {
            flow_groups: 4,
            proto_workers: 2,
            ring_size: 64,
            run_to_completion: false,
            ..Topology::default()
        });
        let requests: Arc<SegQueue<RouteCtl>> = Arc::default();
        let accepting = Arc::new(Accepting::new(&plan));
        let routes = Routes::new(&plan, 0, requests.clone(), accepting);
        (
            plan,
            requests,
            routes,
            vec![VecDeque::new(), VecDeque::new()],
        )
    }

    /// Asks for `group` to move from owner `from` to the other one (nobody
    /// waits for the answer).
    fn hold(requests: &SegQueue<RouteCtl>, group: u32, from: usize) {
        let (done, _) = mpsc::channel();
        requests.push(RouteCtl::Hold(MoveRequest {
            group,
            from,
            to: 1 - from,
            done,
        }));
    }

    #[test]
    fn a_held_group_waits_and_lands_in_order_at_its_new_owner() {
        let (plan, requests, mut routes, mut pending) = one_replica_two_owners();
        let from = plan.owner_of_group(1);
        // A frame of group 1 routed before the hold goes to its owner.
        let (o, i) = routes.route(1, item(1)).unwrap();
        assert_eq!(o, from);
        pending[o].push_back(i);
        hold(&requests, 1, from);
        routes.apply_requests(&mut pending);
        // `MoveOut` behind the group's earlier frame.
        assert_eq!(tags(&pending[from]), [1, 1001]);
        assert!(routes.busy());
        // Later frames of group 1 are held; other groups still flow.
        assert!(routes.route(1, item(2)).is_none());
        assert!(routes.route(5, item(3)).is_none(), "5 is group 1 of 4");
        assert_eq!(
            routes.route(2, item(4)).map(|(o, _)| o),
            Some(plan.owner_of_group(2))
        );
        assert_eq!(routes.held_frames(), 2);
        assert!(!routes.full());
        requests.push(RouteCtl::Release {
            group: 1,
            to: 1 - from,
        });
        routes.apply_requests(&mut pending);
        assert_eq!(tags(&pending[1 - from]), [2, 3]);
        assert!(!routes.busy());
        // From now on the group goes to its new owner directly.
        assert_eq!(routes.route(1, item(5)).map(|(o, _)| o), Some(1 - from));
    }

    #[test]
    fn a_group_leaves_one_replica_behind_its_last_frame_and_waits_at_the_next() {
        // Two replicas of one owner: groups 0 and 2 are replica 0's.
        let plan = Plan::new(&Topology {
            replicas: 2,
            flow_groups: 4,
            ring_size: 64,
            ..Topology::default()
        });
        let accepting = Arc::new(Accepting::new(&plan));
        let (a_req, b_req): (Arc<SegQueue<RouteCtl>>, Arc<SegQueue<RouteCtl>>) =
            (Arc::default(), Arc::default());
        let mut a = Routes::new(&plan, 0, a_req.clone(), accepting.clone());
        let mut b = Routes::new(&plan, 1, b_req.clone(), accepting.clone());
        let (mut a_pending, mut b_pending) = (vec![VecDeque::new()], vec![VecDeque::new()]);
        assert!(b.route(0, item(1)).is_none(), "not B's group: dropped");
        assert_eq!(b.held_frames(), 0);
        // The move starts: B accepts group 0 and holds its frames.
        accepting.add(0, 1);
        assert!(b.route(4, item(2)).is_none(), "4 is group 0 of 4");
        assert_eq!(b.held_frames(), 1);
        assert!(b.busy());
        // A still routes the group's earlier frames to its owner, then
        // lets it go once everything below sequence number 7 is routed.
        assert_eq!(a.route(0, item(3)).map(|(o, _)| o), Some(0));
        let (done, _) = mpsc::channel();
        a_req.push(RouteCtl::LeaveAt {
            seq: 7,
            request: MoveRequest {
                group: 0,
                from: 0,
                to: 1,
                done,
            },
        });
        a.apply_requests(&mut a_pending);
        a.leave_due(6, &mut a_pending);
        assert!(a_pending[0].is_empty() && a.busy());
        a.leave_due(7, &mut a_pending);
        assert_eq!(tags(&a_pending[0]), [1000]);
        assert!(!a.busy());
        // B's owner imported it: the held frame first, then straight on.
        b_req.push(RouteCtl::Release { group: 0, to: 1 });
        b.apply_requests(&mut b_pending);
        assert_eq!(tags(&b_pending[0]), [2]);
        assert_eq!(b.route(0, item(5)).map(|(o, _)| o), Some(0));
        accepting.only(0, 1);
        // A frame of it at A now (the port misrouted it) is not A's.
        assert!(a.route(0, item(6)).is_none());
        assert_eq!(a.held_frames(), 0);
        assert!(!accepting.accepts(0, 0) && accepting.accepts(0, 1));
    }

    #[test]
    fn many_held_frames_make_the_routes_full() {
        let (plan, requests, mut routes, mut pending) = one_replica_two_owners();
        let from = plan.owner_of_group(0);
        hold(&requests, 0, from);
        routes.apply_requests(&mut pending);
        for t in 0..4 * 64 {
            assert!(!routes.full());
            assert!(routes.route(0, item(t)).is_none());
        }
        assert!(routes.full());
    }

    #[test]
    fn a_move_that_timed_out_lands_later_or_is_abandoned() {
        let plan = Plan::new(&Topology {
            flow_groups: 2,
            proto_workers: 2,
            ..Topology::default()
        });
        let mut state = MoveState {
            owner_of: vec![0, 1],
            accepting: Arc::new(Accepting::new(&plan)),
            proto: 2,
            unfinished: None,
        };
        assert_eq!(state.land_unfinished(None), Ok(Vec::new()));
        let (done, answer) = mpsc::channel();
        state.unfinished = Some((0, 1, answer));
        // Not landed: the next move is refused, the group stays put.
        assert_eq!(
            state.land_unfinished(None),
            Err(MoveError::Busy { group: 0 })
        );
        assert_eq!(
            state.land_unfinished(Some(Duration::from_millis(1))),
            Err(MoveError::Busy { group: 0 })
        );
        assert_eq!(state.owner_of, [0, 1]);
        // Landed: recorded once.
        done.send(Vec::new()).unwrap();
        assert_eq!(state.land_unfinished(None), Ok(Vec::new()));
        assert_eq!(state.owner_of, [1, 1]);
        assert!(state.unfinished.is_none());
        // Dropped by the pipeline: abandoned, not waited for again.
        let (done, answer) = mpsc::channel::<HandleMoves>();
        state.unfinished = Some((1, 0, answer));
        drop(done);
        assert_eq!(
            state.land_unfinished(None),
            Err(MoveError::Abandoned { group: 1 })
        );
        assert!(state.unfinished.is_none());
        assert_eq!(state.owner_of, [1, 1]);
    }
}
