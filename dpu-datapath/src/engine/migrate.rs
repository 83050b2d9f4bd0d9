//! Moving a flow group's connections from one engine to another while they
//! are open (issue 14: resize without dropping connections).
//!
//! [`Engine::export_group`] takes out everything of group `g` that frames
//! or timers can reach: installed flows with their application side,
//! handshakes and TIME-WAIT entries. [`Engine::import_group`] puts them
//! into another engine under new flow ids and handles, re-arms their
//! timers and queues them for TX. The caller moves the group's frames
//! with it (its routing), and must have drained the first engine's work
//! for the group (nothing of it in `dma`/`post`, no commit to come back):
//! an engine run to completion has none between calls.
//!
//! What stays: connections that left the data path (their application has
//! not released them yet; no frame or timer reaches them), and the
//! listeners: the importer must listen on the ports the exporter does (in
//! the pipeline every owner listens on every port), or moved handshakes
//! and accept-queue entries find no listener there.

#![forbid(unsafe_code)]

use super::keepalive::KeepaliveConn;
use super::rate::RateFlow;
use super::{Engine, TimerKey};
use crate::app::{AppConn, ConnId, ConnPhase};
use crate::control::{Handshake, TimeWait};
use crate::flow::{flow_group, FlowId, FourTuple};
use crate::post::PostFlow;
use crate::pre::PreFlow;
use crate::proto::{Deadline, Nanos, ProtoFlow};

/// One installed connection on its way to another engine.
#[derive(Debug)]
struct FlowParcel {
    /// Its handle in the engine it left.
    conn: ConnId,
    app: AppConn,
    pre: PreFlow,
    proto: ProtoFlow,
    post: PostFlow,
    rate: Option<RateFlow>,
    keepalive: Option<KeepaliveConn>,
    /// Queued for `accept` on this port (not accepted yet).
    accept_port: Option<u16>,
}

/// A handshake in progress on its way; an active open's application side
/// goes with it.
#[derive(Debug)]
struct HandshakeParcel {
    tuple: FourTuple,
    handshake: Handshake,
    /// An active open's application side and its keepalive settings
    /// (made before the handshake completed, they apply after it).
    app: Option<(ConnId, AppConn, Option<KeepaliveConn>)>,
}

/// Every connection of one flow group, taken out of an engine
/// ([`Engine::export_group`]) to be put into another
/// ([`Engine::import_group`]).
#[derive(Debug)]
pub struct GroupParcel {
    pub group: u32,
    /// The exporting engine's clock: the importer's must not be behind it
    /// (timestamps and deadlines come from it).
    now: Nanos,
    flows: Vec<FlowParcel>,
    handshakes: Vec<HandshakeParcel>,
    time_wait: Vec<(FourTuple, TimeWait)>,
}

impl GroupParcel {
    /// Installed connections, handshakes and TIME-WAIT entries carried.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.flows.len(),
            self.handshakes.len(),
            self.time_wait.len(),
        )
    }

    /// The handles (in the exporting engine) of the application
    /// connections it carries.
    pub fn conns(&self) -> Vec<ConnId> {
        let flows = self.flows.iter().map(|f| f.conn);
        let opening = self
            .handshakes
            .iter()
            .filter_map(|h| Some(h.app.as_ref()?.0));
        flows.chain(opening).collect()
    }
}

/// The handle each moved connection has in the importing engine, by the
/// one it had in the exporting engine.
pub type HandleMoves = Vec<(ConnId, ConnId)>;

impl Engine {
    /// Takes every connection of flow group `g` out of this engine (see the
    /// module documentation). The engine stops opening connections in `g`
    /// (if it keeps a list of its groups).
    pub fn export_group(&mut self, g: u32) -> GroupParcel {
        if let Some(owned) = self.owned_groups.as_mut() {
            if let Some(bit) = owned.get_mut(g as usize) {
                *bit = false;
            }
        }
        let groups = self.cfg.flow_groups;
        let in_group = |t: &FourTuple| flow_group(t, groups) == g;

        let ids: Vec<FlowId> = (0..self.proto.len() as u32)
            .map(FlowId)
            .filter(|id| {
                self.pre
                    .get(*id)
                    .is_some_and(|p| in_group(&p.template.tuple))
            })
            .collect();
        let mut flows = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(parcel) = self.take_flow(id) {
                flows.push(parcel);
            }
        }

        let tuples: Vec<FourTuple> = self
            .ctrl
            .handshakes
            .keys()
            .filter(|t| in_group(t))
            .copied()
            .collect();
        let mut handshakes = Vec::with_capacity(tuples.len());
        for tuple in tuples {
            let Some(mut handshake) = self.ctrl.handshakes.remove(&tuple) else {
                continue;
            };
            if let Some(l) = handshake
                .listener
                .and_then(|port| self.ctrl.listeners.get_mut(&port))
            {
                l.half_open = l.half_open.saturating_sub(1);
            }
            // A resolution it waits for stays here; when it ends, it finds
            // no handshake for the tuple and does nothing.
            let app = handshake
                .conn
                .and_then(|c| Some((c, self.apps.remove(c)?, self.keepalive.remove(&c))));
            if app.is_none() {
                // Its handle names nothing here, and would name another
                // engine's connection there.
                handshake.conn = None;
            }
            handshakes.push(HandshakeParcel {
                tuple,
                handshake,
                app,
            });
        }

        let tuples: Vec<FourTuple> = self
            .ctrl
            .time_wait
            .keys()
            .filter(|t| in_group(t))
            .copied()
            .collect();
        let time_wait = tuples
            .into_iter()
            .filter_map(|t| Some((t, self.ctrl.time_wait.remove(&t)?)))
            .collect();

        // Timer entries left behind are stale: every handler checks its
        // entry against state that is gone (or, for a reused flow id,
        // against the new flow's own deadline).
        GroupParcel {
            group: g,
            now: self.now,
            flows,
            handshakes,
            time_wait,
        }
    }

    /// Removes installed flow `id` and its application side.
    fn take_flow(&mut self, id: FlowId) -> Option<FlowParcel> {
        let post = self.post.get(id.index()).copied().flatten()?;
        let conn = post.conn;
        // Everything that can be missing is checked before anything is
        // taken (an installed flow always has all of it).
        let complete = self.pre.get(id).is_some()
            && matches!(self.proto.get(id.index()), Some(Some(_)))
            && self.apps.get(conn).is_some();
        debug_assert!(complete, "installed flow {id:?} is incomplete");
        if !complete {
            return None;
        }
        let app = self.apps.remove(conn)?;
        let accept_port = {
            let port = app.tuple.local_port;
            self.ctrl.listeners.get_mut(&port).and_then(|l| {
                let at = l.accept_queue.iter().position(|c| *c == conn)?;
                l.accept_queue.remove(at);
                Some(port)
            })
        };
        let keepalive = self.keepalive.remove(&conn);
        let rate = self.rates.get(&id).copied();
        let pre = self.pre.get(id)?.clone();
        let proto = self.proto.get_mut(id.index())?.take()?;
        self.free_flow(id);
        Some(FlowParcel {
            conn,
            app,
            pre,
            proto,
            post,
            rate,
            keepalive,
            accept_port,
        })
    }

    /// Puts the connections of `parcel` into this engine (see the module
    /// documentation) and starts opening connections in its group (if the
    /// engine keeps a list of its groups). Returns the new handle of each
    /// moved application connection.
    pub fn import_group(&mut self, parcel: GroupParcel) -> HandleMoves {
        self.now = self.now.max(parcel.now);
        if let Some(owned) = self.owned_groups.as_mut() {
            if let Some(bit) = owned.get_mut(parcel.group as usize) {
                *bit = true;
            }
        }
        let mut moves = Vec::with_capacity(parcel.flows.len());
        for f in parcel.flows {
            moves.push((f.conn, self.put_flow(f)));
        }
        for h in parcel.handshakes {
            self.put_handshake(h, &mut moves);
        }
        for (tuple, tw) in parcel.time_wait {
            self.ctrl.time_wait.insert(tuple, tw);
            self.push_timer(tw.deadline, TimerKey::TimeWait(tuple));
        }
        moves
    }

    fn put_flow(&mut self, f: FlowParcel) -> ConnId {
        let id = self.alloc_flow();
        let mut app = f.app;
        app.flow = Some(id);
        let conn = self.insert_app(app);
        self.pre.install(id, f.pre);
        let mut proto = f.proto;
        proto.timer_queued_at = Deadline::OFF;
        proto.set_tx_queued(false);
        self.proto[id.index()] = Some(proto);
        self.post[id.index()] = Some(PostFlow { conn, ..f.post });
        if let Some(mut rate) = f.rate {
            rate.forget_timer();
            self.rates.insert(id, rate);
        }
        if let Some(k) = f.keepalive {
            self.keepalive.insert(conn, k);
            self.push_timer(k.armed_at(), TimerKey::Keepalive(conn));
        }
        if let Some(l) = f
            .accept_port
            .and_then(|port| self.ctrl.listeners.get_mut(&port))
        {
            l.accept_queue.push_back(conn);
        }
        self.arm_flow_timer(id);
        // Whatever it had to send (and a paced flow's timer) resumes here.
        self.wake(id);
        conn
    }

    fn put_handshake(&mut self, h: HandshakeParcel, moves: &mut HandleMoves) {
        let HandshakeParcel {
            tuple,
            mut handshake,
            app,
        } = h;
        if let Some((old, app, keepalive)) = app {
            let conn = self.insert_app(app);
            handshake.conn = Some(conn);
            moves.push((old, conn));
            if let Some(k) = keepalive {
                self.keepalive.insert(conn, k);
                self.push_timer(k.armed_at(), TimerKey::Keepalive(conn));
            }
        }
        if let Some(l) = handshake
            .listener
            .and_then(|port| self.ctrl.listeners.get_mut(&port))
        {
            l.half_open += 1;
        }
        let waits_for_arp = handshake.remote_mac.is_none();
        let deadline = handshake.deadline;
        self.ctrl.handshakes.insert(tuple, handshake);
        self.push_timer(deadline, TimerKey::Handshake(tuple));
        if waits_for_arp {
            // Resolved here, or joins (or starts) this engine's resolution.
            if let Some(mac) = self.next_hop(&tuple).and_then(|ip| self.resolve(ip, tuple)) {
                self.next_hop_resolved(tuple, mac);
            }
        }
    }

    /// Inserts a moved application connection, with the events it had not
    /// taken yet raised again.
    fn insert_app(&mut self, mut app: AppConn) -> ConnId {
        let pending = std::mem::take(&mut app.pending);
        debug_assert!(app.phase != ConnPhase::Finished || app.flow.is_none());
        let conn = self.apps.insert(app);
        if pending != 0 {
            self.apps.raise(conn, pending);
        }
        conn
    }

    /// The address a frame to the tuple's remote end goes to first.
    fn next_hop(&self, tuple: &FourTuple) -> Option<std::net::Ipv4Addr> {
        if self.cfg.on_link(tuple.remote_ip) {
            Some(tuple.remote_ip)
        } else {
            self.cfg.gateway
        }
    }
}
