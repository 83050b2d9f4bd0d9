//! The run-to-completion driver: one engine composes the stages
//! (`pre` -> `proto` -> `dma` -> `post`) and the control plane on one thread.
//! The parallel pipeline schedules the very same stage functions on pinned
//! workers; only the scheduling differs.
//!
//! Files: `rx.rs` (ingress: the stage composition), `tx.rs` (flow scheduler
//! and timers), `rate.rs` (pacing and rate-based control), `api.rs` (what
//! applications call), `migrate.rs` (a flow group's connections moved to
//! another engine), `config.rs`.

#![forbid(unsafe_code)]

mod api;
mod config;
mod keepalive;
mod migrate;
mod rate;
mod rx;
mod timer_wheel;
mod tx;
pub mod work;

pub use api::{ApiError, ConnInfo, ConnProgress};
pub use config::{EngineConfig, SynCookieMode};
pub use keepalive::Keepalive;
pub use migrate::{GroupParcel, HandleMoves};
pub use rate::paced_flow_bytes;

use crate::app::AppTable;
use crate::control::ControlPlane;
use crate::flow::{FlowId, FourTuple};
use crate::post::PostFlow;
use crate::pre::{LocalAddrs, PreTable};
use crate::proto::{Nanos, ProtoFlow};
use crate::stats::Stats;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// What a timer-queue entry refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Flow(FlowId),
    Handshake(FourTuple),
    TimeWait(FourTuple),
    Arp(Ipv4Addr),
    /// A paced flow's next departure time.
    Pace(FlowId),
    /// A connection's keepalive check (`keepalive.rs`).
    Keepalive(crate::app::ConnId),
}

/// One TCP offload engine instance.
#[derive(Debug)]
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) local: LocalAddrs,
    pub(crate) pre: PreTable,
    pub(crate) proto: Vec<Option<ProtoFlow>>,
    pub(crate) post: Vec<Option<PostFlow>>,
    /// Pacing and rate-based control, for the flows that have a rate
    /// (those whose protocol state says `paced`).
    pub(crate) rates:
        std::collections::HashMap<FlowId, rate::RateFlow, foldhash::fast::RandomState>,
    free_flows: Vec<FlowId>,
    pub(crate) apps: AppTable,
    /// Connections with keepalive on.
    pub(crate) keepalive: std::collections::HashMap<
        crate::app::ConnId,
        keepalive::KeepaliveConn,
        foldhash::fast::RandomState,
    >,
    pub(crate) ctrl: ControlPlane,
    timers: timer_wheel::TimerWheel<TimerKey>,
    txq: VecDeque<FlowId>,
    out: Vec<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    pub(crate) stats: Stats,
    pub(crate) now: Nanos,
    /// Pipeline mode: hand work to the `dma`/`post` workers instead of
    /// finishing it inline.
    pub(crate) staged: bool,
    pub(crate) work_out: Vec<work::Work>,
    /// Scratch for [`work::coalesce_acks`].
    ack_flows: Vec<crate::flow::FlowId>,
    /// Flow groups this engine owns (pipeline); active opens pick local
    /// ports whose tuple hashes into one of them.
    pub(crate) owned_groups: Option<Vec<bool>>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let local = LocalAddrs {
            mac: cfg.mac,
            ip: cfg.ip,
        };
        let mut ctrl = ControlPlane::new(cfg.seed);
        ctrl.cookie_budget = crate::control::CookieBudget::new(cfg.syn_cookie_rate.into());
        Self {
            pre: PreTable::with_capacity(1024),
            local,
            ctrl,
            cfg,
            proto: Vec::new(),
            post: Vec::new(),
            rates: Default::default(),
            keepalive: Default::default(),
            free_flows: Vec::new(),
            apps: AppTable::default(),
            timers: Default::default(),
            txq: VecDeque::new(),
            out: Vec::new(),
            pool: Vec::new(),
            scratch: Vec::new(),
            stats: Stats::default(),
            now: 0,
            staged: false,
            work_out: Vec::new(),
            ack_flows: Vec::with_capacity(64),
            owned_groups: None,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections installed in the data path.
    pub fn flow_count(&self) -> usize {
        self.pre.len()
    }

    /// Application connections alive (open, or finished but not released).
    pub fn app_conn_count(&self) -> usize {
        self.apps.len()
    }

    /// Handshakes in progress and TIME-WAIT entries.
    pub fn control_counts(&self) -> (usize, usize) {
        (self.ctrl.handshakes.len(), self.ctrl.time_wait.len())
    }

    /// Entries in the timer queue, stale ones included (an entry is
    /// superseded, not removed, when a deadline moves; it leaves the queue
    /// when its time comes): for tests that check timers do not leak.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// Takes the frames produced so far. Called after every received
    /// frame, often with nothing to take (delayed ACKs): that case skips
    /// `append`, which calls `memmove` even for nothing.
    pub fn drain_tx(&mut self, into: &mut Vec<Vec<u8>>) {
        if !self.out.is_empty() {
            into.append(&mut self.out);
        }
    }

    /// Returns a transmitted frame's buffer for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.pool.len() < 4096 {
            buf.clear();
            self.pool.push(buf);
        }
    }

    /// When the engine next needs [`Engine::poll`] (now if work is queued).
    pub fn next_deadline(&self) -> Option<Nanos> {
        if !self.txq.is_empty() {
            return Some(self.now);
        }
        self.timers.peek()
    }

    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(1600))
    }

    pub(crate) fn emit(&mut self, frame: Vec<u8>) {
        if frame.is_empty() {
            return;
        }
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        if self.staged {
            self.work_out.push(work::Work::Frame(frame.into()));
        } else {
            self.out.push(frame);
        }
    }

    /// Pipeline mode: fast-path results become [`work::Work`] items for the
    /// data-parallel stages instead of being finished inline.
    pub fn set_staged(&mut self, staged: bool) {
        self.staged = staged;
    }

    /// Restricts active opens to tuples in these flow groups.
    pub fn set_owned_groups(&mut self, owned: Vec<bool>) {
        self.owned_groups = Some(owned);
    }

    /// Whether flow group `g` is this engine's (always, if it keeps no
    /// list).
    pub fn owns_group(&self, g: u32) -> bool {
        self.owned_groups
            .as_ref()
            .is_none_or(|o| o.get(g as usize).copied().unwrap_or(false))
    }

    /// Learns the sender of an ARP frame seen elsewhere (no reply).
    pub fn learn_arp(&mut self, frame: &[u8], now: Nanos) {
        self.now = self.now.max(now);
        if let Ok(parsed) = crate::wire::parse_ingress(frame, &self.cfg.caps) {
            if let crate::wire::L3::Arp(arp) = parsed.l3 {
                self.learn_neighbour(&arp);
            }
        }
    }

    /// Takes the work produced since the last call, in order.
    /// Delayed ACKs that a later one of the same flow covers are left out
    /// ([`work::coalesce_acks`]).
    pub fn take_work(&mut self, into: &mut Vec<work::Work>) {
        if self.cfg.coalesce_acks {
            let left_out = work::coalesce_acks(&mut self.work_out, &mut self.ack_flows);
            self.stats.pure_acks_sent -= left_out;
            self.stats.acks_coalesced += left_out;
        }
        into.append(&mut self.work_out);
    }

    /// The engine's clock (the latest time it was given).
    pub fn now(&self) -> Nanos {
        self.now
    }

    pub(crate) fn push_timer(&mut self, at: Nanos, key: TimerKey) {
        self.timers.push(at, key);
    }

    /// Allocates a flow id (control plane, at install).
    pub(crate) fn alloc_flow(&mut self) -> FlowId {
        if let Some(id) = self.free_flows.pop() {
            return id;
        }
        let id = FlowId(self.proto.len() as u32);
        self.proto.push(None);
        self.post.push(None);
        id
    }

    pub(crate) fn free_flow(&mut self, id: FlowId) {
        self.proto[id.index()] = None;
        self.post[id.index()] = None;
        self.rates.remove(&id);
        self.pre.remove(id);
        self.free_flows.push(id);
    }

    /// Queues a flow for the TX scheduler.
    pub(crate) fn wake(&mut self, id: FlowId) {
        if let Some(Some(p)) = self.proto.get_mut(id.index()) {
            if !p.tx_queued() {
                p.set_tx_queued(true);
                self.txq.push_back(id);
            }
        }
    }

    /// Makes sure the timer queue holds the flow's earliest deadline.
    pub(crate) fn arm_flow_timer(&mut self, id: FlowId) {
        let Some(Some(p)) = self.proto.get_mut(id.index()) else {
            return;
        };
        let d = p.next_deadline();
        if d.before(p.timer_queued_at) {
            p.timer_queued_at = d;
            self.timers.push(d.at(self.now), TimerKey::Flow(id));
        }
    }
}
