//! The host-interface worker ("front"): the only reader of applications'
//! request rings and the only writer of their event rings. It checks each
//! descriptor (op known, connection owned by that application, arguments
//! in range), forwards work to the owner of the connection's flow group,
//! and posts owners' replies and coalesced connection events back, ringing
//! an application's doorbell only when one of its threads sleeps.
//!
//! A descriptor that fails a check closes the application: its contexts get
//! `EV_FATAL`, its connections are reset and its listeners removed. Other
//! applications are not affected.
//!
//! An application may be several processes (members): the one that
//! registered and those forked from it, each on its own contexts of the
//! same region. A connection or listener is held by the members that have
//! a descriptor for it, as a Linux socket by the processes that share its
//! file: it closes when the last holder closes it or exits. Its events go
//! to one context, the last that adopted it (`OP_ADOPT`).

use super::app::{fatal, HostApp, MemberKey, Ticket};
use super::link::{AppKey, FrontWaker, OwnerCmd, OwnerEvt, OwnerLink, LINK_CAPACITY};
use super::HostIfCounters;
use doca_bindings::abi::{self, Desc};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests taken per context per pass.
const REQUEST_BURST: usize = 64;
/// Owner events taken per owner per pass.
const EVENT_BURST: usize = 1024;
/// Idle passes before sleeping (one in `yield_every` yields the CPU).
const SPIN_PASSES: u32 = 2048;
/// Longest sleep (a lost wakeup costs at most this).
const MAX_SLEEP: Duration = Duration::from_millis(10);

/// From the control socket to the front.
#[derive(Debug)]
pub enum FrontMsg {
    Register(Box<HostApp>),
    /// A member's control connection closed (the registering process's
    /// key is its application's).
    Gone(MemberKey),
    /// `member` is about to fork: reserve a context for the child and make
    /// it a holder of what `member` holds.
    Fork {
        member: MemberKey,
        token: u64,
        reply: std::sync::mpsc::Sender<Result<u16, String>>,
    },
    /// A forked process presents its ticket.
    Join(Box<JoinRequest>),
}

/// What a forked process sends to join its parent's application.
#[derive(Debug)]
pub struct JoinRequest {
    pub app: AppKey,
    pub token: u64,
    /// The key of the child's own control connection.
    pub member: MemberKey,
    /// Connections and listening ports it still has descriptors for.
    pub conns: Vec<u64>,
    pub ports: Vec<u16>,
    /// Its context's doorbell.
    pub bell: doca_bindings::Doorbell,
    pub reply: std::sync::mpsc::Sender<Result<JoinGrant, String>>,
}

/// What the child gets back: its context and what to map.
#[derive(Debug)]
pub struct JoinGrant {
    pub ctx: u16,
    pub layout: doca_bindings::abi::Layout,
    pub region: Arc<doca_bindings::Region>,
    pub dpu_bell: std::os::fd::OwnedFd,
}

/// How long a fork ticket waits for its child (a fork that failed, or a
/// child that died before joining, gives its holdings back then).
const TICKET_TTL: Duration = Duration::from_secs(10);

/// Shared inbox of [`FrontMsg`]s.
pub type Inbox = Arc<Mutex<VecDeque<FrontMsg>>>;

#[derive(Debug)]
struct Listening {
    app: AppKey,
    /// The members holding it, each with the context its notices go to;
    /// a member appears once per listening socket it opened or inherited
    /// (several with `SO_REUSEPORT`).
    holders: Vec<(MemberKey, u16)>,
    /// Opened with `LISTEN_REUSEPORT`: more sockets of the application
    /// may listen on the port (and share it).
    reuseport: bool,
    /// The owners confirmed the listen (owner 0's reply).
    confirmed: bool,
    /// `LISTEN_REUSEPORT` requests that came before the confirmation:
    /// member, context and tag, answered with the owners' verdict.
    joining: Vec<(MemberKey, u16, u64)>,
}

/// An accepted connection waiting for `OP_ACCEPT`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: u64,
    slot: u32,
    remote: u64,
    local: u64,
}

/// The front's view of a host connection.
#[derive(Debug)]
struct FrontConn {
    app: AppKey,
    /// The context its events go to (None until accepted, or after its
    /// context's process let go while others hold it).
    ctx: Option<u16>,
    /// The members with a descriptor for it (empty while in an accept
    /// queue): it closes when the last one lets go.
    holders: Vec<MemberKey>,
    flags: u16,
    /// State bits ever raised (connected, peer closed, error, finished),
    /// for a process that adopts it.
    sticky: u16,
    rx_ready: u64,
    tx_acked: u64,
    status: i32,
    dirty: bool,
    /// The application's positions (its last `OP_RX_POP` and
    /// `OP_TX_PUSH`), for a process that adopts it.
    rx_read: u64,
    tx_written: u64,
    slot: u32,
}

/// `CONN_*` bits that describe a state rather than news.
const STICKY: u16 =
    abi::CONN_CONNECTED | abi::CONN_PEER_CLOSED | abi::CONN_ERROR | abi::CONN_FINISHED;

impl FrontConn {
    fn new(app: AppKey, ctx: Option<u16>, holder: Option<MemberKey>, slot: u32) -> Self {
        FrontConn {
            app,
            ctx,
            holders: holder.into_iter().collect(),
            flags: 0,
            sticky: 0,
            rx_ready: 0,
            tx_acked: 0,
            status: 0,
            dirty: false,
            rx_read: 0,
            tx_written: 0,
            slot,
        }
    }
}

/// The front worker's state.
pub struct Front {
    owners: Vec<Arc<OwnerLink>>,
    /// Commands an owner queue had no room for, in order.
    overflow: Vec<VecDeque<OwnerCmd>>,
    waker: Arc<FrontWaker>,
    inbox: Inbox,
    apps: HashMap<AppKey, HostApp>,
    /// Every member's application.
    member_app: HashMap<MemberKey, AppKey>,
    ports: HashMap<u16, Listening>,
    accept_q: HashMap<u16, VecDeque<Pending>>,
    conns: HashMap<u64, FrontConn>,
    next_owner: usize,
    counters: Arc<HostIfCounters>,
    scratch: Vec<Desc>,
    /// Owners given commands in this pass (their workers get unparked).
    nudge: Vec<bool>,
    /// How contexts reserved for forked processes reach their rings.
    dma: crate::dma::DmaConfig,
    /// Connections that changed owner with their flow group.
    pub(super) moves: super::front_moves::Moves,
    /// Idle passes yield the CPU on one in this many.
    yield_every: u32,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("apps", &self.apps.len())
            .field("conns", &self.conns.len())
            .finish()
    }
}

/// The answer to an `OP_LISTEN` a socket joined (`LISTEN_REUSEPORT`):
/// as the owners answer a listen, with a = the port.
fn listen_reply(tag: u64, port: u16, status: i32) -> Desc {
    Desc {
        a: port.into(),
        ..reply(tag, abi::OP_LISTEN, status)
    }
}

fn reply(tag: u64, op: u16, status: i32) -> Desc {
    Desc {
        op: abi::EV_REPLY,
        flags: op,
        status,
        tag,
        ..Desc::default()
    }
}

impl Front {
    pub fn new(
        owners: Vec<Arc<OwnerLink>>,
        waker: Arc<FrontWaker>,
        inbox: Inbox,
        counters: Arc<HostIfCounters>,
    ) -> Self {
        let n_owners = owners.len();
        Self {
            overflow: owners.iter().map(|_| VecDeque::new()).collect(),
            owners,
            waker,
            inbox,
            apps: HashMap::new(),
            member_app: HashMap::new(),
            ports: HashMap::new(),
            accept_q: HashMap::new(),
            conns: HashMap::new(),
            next_owner: 0,
            counters,
            scratch: Vec::new(),
            nudge: vec![false; n_owners],
            dma: crate::dma::DmaConfig::default(),
            moves: Default::default(),
            yield_every: 64,
        }
    }

    /// Idle passes yield the CPU on one in `n` (`host.front_yield_every`).
    pub fn with_yield_every(mut self, n: u32) -> Self {
        self.yield_every = n.max(1);
        self
    }

    /// The DMA settings of contexts reserved for forked processes (those
    /// of registration, `HostIfOptions::dma`).
    pub fn with_dma(mut self, dma: crate::dma::DmaConfig) -> Self {
        self.dma = dma;
        self
    }

    /// Runs until `stop`.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        let mut idle = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if self.pass() > 0 {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < SPIN_PASSES {
                if idle.is_multiple_of(self.yield_every) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            } else {
                self.sleep();
                idle = 0;
            }
        }
        // Leaving: close every application's connections.
        let keys: Vec<AppKey> = self.apps.keys().copied().collect();
        for key in keys {
            self.drop_app(key, None);
        }
        self.flush_overflow();
    }

    /// One round of [`Front::run`]'s work, without its spinning and
    /// sleeping; returns how much was done. For the fuzz target
    /// `hostif_descriptors` (`dpu-datapath/fuzz`), which drives the front
    /// on one thread and checks every pass; the service never calls it.
    #[doc(hidden)]
    pub fn fuzz_pass(&mut self) -> usize {
        self.pass()
    }

    /// One round of work; returns how much was done.
    fn pass(&mut self) -> usize {
        let mut work = self.take_inbox();
        work += self.flush_overflow();
        for o in 0..self.owners.len() {
            for _ in 0..EVENT_BURST {
                let Some(evt) = self.owners[o].evts.pop() else {
                    break;
                };
                work += 1;
                self.owner_event(evt);
            }
        }
        if self.overflow.iter().all(|q| q.len() < LINK_CAPACITY) {
            work += self.take_requests();
        }
        self.post_events();
        for (o, nudge) in self.nudge.iter_mut().enumerate() {
            if std::mem::take(nudge) {
                if let Some(t) = self.owners[o].worker.get() {
                    t.unpark();
                }
            }
        }
        work
    }

    fn take_inbox(&mut self) -> usize {
        let msgs: Vec<FrontMsg> = self.inbox.lock().drain(..).collect();
        let n = msgs.len();
        for msg in msgs {
            match msg {
                FrontMsg::Register(app) => {
                    self.counters
                        .apps_registered
                        .fetch_add(1, Ordering::Relaxed);
                    self.member_app.insert(app.key, app.key);
                    self.apps.insert(app.key, *app);
                }
                FrontMsg::Gone(member) => self.member_gone(member),
                FrontMsg::Fork {
                    member,
                    token,
                    reply,
                } => {
                    let _ = reply.send(self.fork(member, token));
                }
                FrontMsg::Join(j) => {
                    let reply = j.reply.clone();
                    let _ = reply.send(self.join(*j));
                }
            }
        }
        self.expire_tickets();
        self.counters.apps_active.store(
            self.apps.values().filter(|a| !a.dead).count() as u64,
            Ordering::Relaxed,
        );
        self.counters.contexts.store(
            self.apps
                .values()
                .filter(|a| !a.dead)
                .map(|a| a.ctxs.iter().filter(|c| c.live).count() as u64)
                .sum(),
            Ordering::Relaxed,
        );
        n
    }

    /// A member's control connection closed. The last member's exit
    /// closes the application; an earlier one's lets go of what it held.
    fn member_gone(&mut self, member: MemberKey) {
        let Some(key) = self.member_app.remove(&member) else {
            return;
        };
        let others = self
            .apps
            .get(&key)
            .is_some_and(|a| a.members().iter().any(|&m| m != member) || !a.tickets.is_empty());
        if !others {
            // What the application posted before exiting still counts
            // (its last writes and closes); whatever is still open is
            // then closed as Linux closes a process's sockets at exit.
            self.drain_requests(key, None);
            self.drop_app(key, None);
            self.apps.remove(&key);
            self.member_app.retain(|_, a| *a != key);
            return;
        }
        self.drain_requests(key, Some(member));
        self.let_go(key, member);
        if let Some(a) = self.apps.get_mut(&key) {
            a.release_member(member);
        }
    }

    /// `member` no longer holds anything (it exited, or its fork ticket
    /// expired): what nobody else holds is closed as at exit.
    fn let_go(&mut self, app: AppKey, member: MemberKey) {
        let ports: Vec<u16> = self
            .ports
            .iter()
            .filter(|(_, l)| l.app == app && l.holders.iter().any(|h| h.0 == member))
            .map(|(p, _)| *p)
            .collect();
        for port in ports {
            self.drop_listener_holder(app, member, port);
        }
        let held: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.app == app && c.holders.contains(&member))
            .map(|(h, _)| *h)
            .collect();
        for h in held {
            self.drop_holder(app, member, h);
        }
    }

    /// `member` lets go of connection `h`; the last holder closes it.
    fn drop_holder(&mut self, app: AppKey, member: MemberKey, h: u64) {
        let member_ctxs: Vec<u16> = self
            .apps
            .get(&app)
            .map(|a| {
                (0..a.ctxs.len() as u16)
                    .filter(|&i| a.ctxs[i as usize].member == Some(member))
                    .collect()
            })
            .unwrap_or_default();
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        c.holders.retain(|&m| m != member);
        if !c.holders.is_empty() {
            if c.ctx.is_some_and(|x| member_ctxs.contains(&x)) {
                // Its events wait for the next process that adopts it.
                c.ctx = None;
                c.dirty = false;
            }
            return;
        }
        self.conns.remove(&h);
        if let Some((_, id)) = self.place(h) {
            self.send_conn(
                h,
                OwnerCmd::ConnOp {
                    app,
                    ctx: 0,
                    tag: 0,
                    op: abi::OP_CLOSE,
                    conn: id,
                    a: 0,
                    b: 0,
                    reply: false,
                },
            );
        }
    }

    /// `member` lets go of the listener on `port`; the last holder stops
    /// listening.
    fn drop_listener_holder(&mut self, app: AppKey, member: MemberKey, port: u16) {
        let Some(l) = self.ports.get_mut(&port).filter(|l| l.app == app) else {
            return;
        };
        l.holders.retain(|h| h.0 != member);
        if l.holders.is_empty() {
            self.unlisten(app, port);
        }
    }

    /// One listening socket of `member` on `port` closed (`OP_UNLISTEN`):
    /// one of its holds goes (the one on `ctx` if any); the last holder
    /// stops listening.
    fn drop_one_listener_holder(&mut self, app: AppKey, member: MemberKey, ctx: u16, port: u16) {
        let Some(l) = self.ports.get_mut(&port).filter(|l| l.app == app) else {
            return;
        };
        let at = l
            .holders
            .iter()
            .position(|h| *h == (member, ctx))
            .or_else(|| l.holders.iter().position(|h| h.0 == member));
        if let Some(i) = at {
            l.holders.remove(i);
        }
        if l.holders.is_empty() {
            self.unlisten(app, port);
        }
    }

    /// Before `member` forks: a context for the child, which holds from
    /// now on what `member` holds (so that the parent closing its copy
    /// right after the fork closes nothing).
    fn fork(&mut self, member: MemberKey, token: u64) -> Result<u16, String> {
        let key = *self
            .member_app
            .get(&member)
            .ok_or("not registered on this connection")?;
        let dma = self.dma;
        let app = self
            .apps
            .get_mut(&key)
            .filter(|a| !a.dead)
            .ok_or("the application was closed")?;
        let child = token;
        let ctx = app.reserve_ctx(child, &dma).ok_or_else(|| {
            format!(
                "no context left for a forked process ({} in use; host.fork_contexts)",
                app.ctxs.len()
            )
        })?;
        app.tickets.push(Ticket {
            token,
            ctx,
            since: std::time::Instant::now(),
        });
        for c in self.conns.values_mut() {
            if c.app == key && c.holders.contains(&member) {
                c.holders.push(child);
            }
        }
        for l in self.ports.values_mut() {
            // As many holds as the parent has listening sockets there.
            let held = l.holders.iter().filter(|h| h.0 == member).count();
            if l.app == key {
                l.holders.extend(std::iter::repeat_n((child, ctx), held));
            }
        }
        Ok(ctx)
    }

    /// A forked process joins with its ticket: the ticket's holdings pass
    /// to it, narrowed to what it still has descriptors for.
    fn join(&mut self, j: JoinRequest) -> Result<JoinGrant, String> {
        let app = self
            .apps
            .get_mut(&j.app)
            .filter(|a| !a.dead)
            .ok_or("no such application")?;
        let i = app
            .tickets
            .iter()
            .position(|t| t.token == j.token)
            .ok_or("unknown or expired fork ticket")?;
        let ticket = app.tickets.swap_remove(i);
        let dpu_bell = app
            .dpu_bell
            .fd()
            .try_clone_to_owned()
            .map_err(|e| format!("duplicating the DPU doorbell: {e}"));
        let c = &mut app.ctxs[ticket.ctx as usize];
        let grant = dpu_bell.map(|dpu_bell| JoinGrant {
            ctx: ticket.ctx,
            layout: app.layout,
            region: app.region.clone(),
            dpu_bell,
        });
        if grant.is_ok() {
            c.member = Some(j.member);
            c.bell = Some(j.bell);
            c.live = true;
        }
        // The ticket's placeholder key becomes the member's.
        let (old, new) = (j.token, j.member);
        let keep: std::collections::HashSet<u64> = j.conns.iter().copied().collect();
        let held: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.app == j.app && c.holders.contains(&old))
            .map(|(h, _)| *h)
            .collect();
        for h in held {
            if grant.is_ok() && keep.contains(&h) {
                if let Some(c) = self.conns.get_mut(&h) {
                    for m in c.holders.iter_mut().filter(|m| **m == old) {
                        *m = new;
                    }
                }
            } else {
                self.drop_holder(j.app, old, h);
            }
        }
        let ports: Vec<u16> = self
            .ports
            .iter()
            .filter(|(_, l)| l.app == j.app && l.holders.iter().any(|h| h.0 == old))
            .map(|(p, _)| *p)
            .collect();
        for port in ports {
            // One hold per listening socket it still has on the port.
            let keep = j.ports.iter().filter(|p| **p == port).count();
            if grant.is_ok() && keep > 0 {
                if let Some(l) = self.ports.get_mut(&port) {
                    let mut kept = 0;
                    l.holders.retain_mut(|h| {
                        if h.0 != old {
                            return true;
                        }
                        kept += 1;
                        h.0 = new;
                        kept <= keep
                    });
                }
                // Connections already waiting: the child hears of them.
                if self.accept_q.get(&port).is_some_and(|q| !q.is_empty()) {
                    self.acceptable_on(j.app, ticket.ctx, port);
                }
            } else {
                self.drop_listener_holder(j.app, old, port);
            }
        }
        match grant {
            Ok(g) => {
                self.member_app.insert(new, j.app);
                Ok(g)
            }
            Err(e) => {
                if let Some(a) = self.apps.get_mut(&j.app) {
                    a.release_member(old);
                }
                Err(e)
            }
        }
    }

    /// Tickets whose child never joined give their holdings back.
    fn expire_tickets(&mut self) {
        if self.apps.values().all(|a| a.tickets.is_empty()) {
            return;
        }
        let now = std::time::Instant::now();
        let mut expired = Vec::new();
        for a in self.apps.values_mut() {
            a.tickets.retain(|t| {
                let keep = now.duration_since(t.since) < TICKET_TTL;
                if !keep {
                    expired.push((a.key, t.token));
                }
                keep
            });
        }
        for (app, token) in expired {
            self.let_go(app, token);
            if let Some(a) = self.apps.get_mut(&app) {
                a.release_member(token);
            }
            // The last member may have left while the ticket waited.
            if self.apps.get(&app).is_some_and(|a| a.members().is_empty()) {
                self.drop_app(app, None);
                self.apps.remove(&app);
            }
        }
    }

    pub(super) fn count(&self, which: impl Fn(&HostIfCounters) -> &AtomicU64) {
        which(&self.counters).fetch_add(1, Ordering::Relaxed);
    }

    /// Whether application `app` is gone, and how its connections close:
    /// gracefully after an exit (it is no longer known), reset after a
    /// violation (it is kept, dead, until its processes leave).
    pub(super) fn app_gone(&self, app: AppKey) -> Option<bool> {
        match self.apps.get(&app) {
            None => Some(true),
            Some(a) if a.dead => Some(false),
            Some(_) => None,
        }
    }

    pub(super) fn owner_count(&self) -> usize {
        self.owners.len()
    }

    pub(super) fn send(&mut self, owner: usize, cmd: OwnerCmd) {
        self.nudge[owner] = true;
        if !self.overflow[owner].is_empty() {
            self.overflow[owner].push_back(cmd);
            return;
        }
        if let Err(cmd) = self.owners[owner].cmds.push(cmd) {
            self.overflow[owner].push_back(cmd);
        }
    }

    fn flush_overflow(&mut self) -> usize {
        let mut n = 0;
        for (o, q) in self.overflow.iter_mut().enumerate() {
            while let Some(cmd) = q.pop_front() {
                if let Err(cmd) = self.owners[o].cmds.push(cmd) {
                    q.push_front(cmd);
                    break;
                }
                n += 1;
            }
        }
        n
    }

    /// Queues a message (reply or notice) for a context.
    fn message(&mut self, app: AppKey, ctx: u16, d: Desc) {
        if let Some(c) = self
            .apps
            .get_mut(&app)
            .filter(|a| !a.dead)
            .and_then(|a| a.ctxs.get_mut(ctx as usize))
        {
            c.messages.push_back(d);
        }
    }

    fn mark_dirty(&mut self, handle: u64) {
        let Some(c) = self.conns.get_mut(&handle) else {
            return;
        };
        let Some(ctx) = c.ctx else {
            return;
        };
        if c.dirty || c.flags == 0 {
            return;
        }
        if let Some(x) = self
            .apps
            .get_mut(&c.app)
            .and_then(|a| a.ctxs.get_mut(ctx as usize))
        {
            c.dirty = true;
            x.dirty.push_back(handle);
        }
    }

    fn owner_event(&mut self, evt: OwnerEvt) {
        match evt {
            OwnerEvt::Reply {
                app,
                ctx,
                tag,
                op,
                status,
                conn,
                a,
                b,
                c,
            } => {
                let alive = self.apps.get(&app).filter(|x| !x.dead);
                let member = alive.and_then(|x| x.member_of(ctx));
                if op == abi::OP_CONNECT && status == 0 && member.is_some() {
                    self.conns
                        .insert(conn, FrontConn::new(app, Some(ctx), member, a as u32));
                } else if op == abi::OP_CONNECT && status == 0 && alive.is_some() {
                    // Its process left meanwhile (the others keep the
                    // application, so nothing else closes it).
                    self.abort_quietly(app, conn);
                }
                if op == abi::OP_LISTEN {
                    self.listen_answered(app, a as u16, status);
                }
                let mut d = reply(tag, op, status);
                (d.conn, d.a, d.b, d.c) = (conn, a, b, c);
                self.message(app, ctx, d);
            }
            OwnerEvt::Accepted {
                app,
                port,
                conn,
                slot,
                remote,
                local,
            } => {
                let listening = self.ports.get(&port).is_some_and(|l| l.app == app);
                if !listening || !self.apps.contains_key(&app) {
                    // The listener went away meanwhile: reset it.
                    self.abort_quietly(app, conn);
                    return;
                }
                self.conns
                    .insert(conn, FrontConn::new(app, None, None, slot));
                let q = self.accept_q.entry(port).or_default();
                let was_empty = q.is_empty();
                q.push_back(Pending {
                    conn,
                    slot,
                    remote,
                    local,
                });
                if was_empty {
                    self.acceptable(app, port);
                }
            }
            OwnerEvt::Conn {
                app,
                conn,
                flags,
                rx_ready,
                tx_acked,
                status,
            } => {
                if let Some(c) = self.conns.get_mut(&conn).filter(|c| c.app == app) {
                    c.flags |= flags;
                    c.sticky |= flags & STICKY;
                    c.rx_ready = c.rx_ready.max(rx_ready);
                    c.tx_acked = c.tx_acked.max(tx_acked);
                    if status != 0 {
                        c.status = status;
                    }
                    self.mark_dirty(conn);
                }
            }
            OwnerEvt::Violation {
                app,
                reason,
                detail,
            } => self.violation(app, reason, detail),
            OwnerEvt::Moved {
                app,
                host,
                from,
                to,
            } => self.moved(app, host, from, to),
            OwnerEvt::Bounced { host, cmd } => self.bounced(host, cmd),
            OwnerEvt::Fenced { host, at } => self.fenced(host, at),
            OwnerEvt::Released { host } => self.released(host),
        }
    }

    /// Tells every holder of the listener on `port` that a connection
    /// waits (they race for it, as processes sharing a Linux listener).
    fn acceptable(&mut self, app: AppKey, port: u16) {
        let ctxs: Vec<u16> = match self.ports.get(&port) {
            Some(l) if l.app == app => l.holders.iter().map(|h| h.1).collect(),
            _ => return,
        };
        for ctx in ctxs {
            self.acceptable_on(app, ctx, port);
        }
    }

    /// `EV_ACCEPTABLE` for `port` on one context, unless one is already
    /// queued there: a holder that never polls (nginx's master) must not
    /// grow the queue with every connection.
    fn acceptable_on(&mut self, app: AppKey, ctx: u16, port: u16) {
        let d = Desc {
            op: abi::EV_ACCEPTABLE,
            a: u64::from(port),
            ..Desc::default()
        };
        let queued = self
            .apps
            .get(&app)
            .and_then(|a| a.ctxs.get(ctx as usize))
            .is_some_and(|c| c.messages.iter().any(|m| *m == d));
        if !queued {
            self.message(app, ctx, d);
        }
    }

    fn abort_quietly(&mut self, app: AppKey, conn: u64) {
        if let Some((_, id)) = self.place(conn) {
            self.send_conn(
                conn,
                OwnerCmd::ConnOp {
                    app,
                    ctx: 0,
                    tag: 0,
                    op: abi::OP_ABORT,
                    conn: id,
                    a: 0,
                    b: 0,
                    reply: false,
                },
            );
        }
    }

    /// Handles every request an application (or one of its members) left
    /// in its rings.
    fn drain_requests(&mut self, key: AppKey, member: Option<MemberKey>) {
        let ctxs: Vec<usize> = match self.apps.get(&key) {
            Some(a) if !a.dead => (0..a.ctxs.len())
                .filter(|&i| a.ctxs[i].live && member.is_none_or(|m| a.ctxs[i].member == Some(m)))
                .collect(),
            _ => return,
        };
        for ctx in ctxs {
            self.drain_ctx(key, ctx);
        }
    }

    /// Handles every request waiting in one context.
    fn drain_ctx(&mut self, key: AppKey, ctx: usize) {
        let mut batch = Vec::new();
        let got = match self.apps.get_mut(&key) {
            Some(a) if !a.dead => match a.ctxs.get_mut(ctx).filter(|c| c.live) {
                Some(c) => c.requests.pop_all(&mut batch),
                None => return,
            },
            _ => return,
        };
        if got.is_err() {
            return;
        }
        for d in &batch {
            if self.request(key, ctx as u16, d).is_err() {
                return;
            }
        }
    }

    fn take_requests(&mut self) -> usize {
        let mut n = 0;
        let keys: Vec<AppKey> = self.apps.keys().copied().collect();
        for key in keys {
            let ctxs = match self.apps.get(&key) {
                Some(a) if !a.dead => a.ctxs.len(),
                _ => continue,
            };
            for ctx in 0..ctxs {
                let mut batch = std::mem::take(&mut self.scratch);
                batch.clear();
                let got = match self.apps.get_mut(&key) {
                    Some(a) if !a.dead && a.ctxs[ctx].live => {
                        let c = &mut a.ctxs[ctx];
                        if c.messages.len() >= a.layout.ring_entries as usize {
                            // The application does not drain its events:
                            // stop taking its requests until it does.
                            Ok(0)
                        } else {
                            c.requests.pop_many(&mut batch, REQUEST_BURST)
                        }
                    }
                    _ => Ok(0),
                };
                match got {
                    Ok(k) => {
                        n += k;
                        for d in &batch {
                            if self.request(key, ctx as u16, d).is_err() {
                                break;
                            }
                        }
                    }
                    Err(_) => self.violation(
                        key,
                        abi::VIOLATION_RING_INDEX,
                        "request ring index out of range",
                    ),
                }
                self.scratch = batch;
            }
        }
        self.counters
            .requests
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// The connection a request names, if the process behind context
    /// `ctx` holds it (or, unless `held`, if it waits in one of the
    /// application's accept queues: it may be closed before it is
    /// accepted).
    fn owned(
        &mut self,
        app: AppKey,
        ctx: u16,
        conn: u64,
        held: bool,
    ) -> Result<(usize, crate::app::ConnId), ()> {
        let member = self.apps.get(&app).and_then(|a| a.member_of(ctx));
        let ok = self.conns.get(&conn).is_some_and(|c| {
            c.app == app
                && (member.is_some_and(|m| c.holders.contains(&m))
                    || (!held && c.holders.is_empty()))
        });
        match self.place(conn).filter(|_| ok) {
            Some(x) => Ok(x),
            None => {
                self.violation(
                    app,
                    abi::VIOLATION_FOREIGN_CONN,
                    "connection handle not owned by the application",
                );
                Err(())
            }
        }
    }

    /// Handles one request; `Err` when the application was closed.
    fn request(&mut self, app: AppKey, ctx: u16, d: &Desc) -> Result<(), ()> {
        // An application closed for a violation while its batch was being
        // handled (possibly by a request that drained another context of
        // it first, `OP_ADOPT`) gets nothing more done: a listen or a
        // connect now would outlive its cleanup.
        if self.apps.get(&app).is_none_or(|a| a.dead) {
            return Err(());
        }
        match d.op {
            abi::OP_TX_PUSH => {
                let (_, conn) = self.owned(app, ctx, d.conn, false)?;
                if let Some(c) = self.conns.get_mut(&d.conn) {
                    c.tx_written = d.a;
                }
                self.send_conn(
                    d.conn,
                    OwnerCmd::TxPush {
                        app,
                        conn,
                        written: d.a,
                    },
                );
            }
            abi::OP_RX_POP => {
                let (_, conn) = self.owned(app, ctx, d.conn, false)?;
                if let Some(c) = self.conns.get_mut(&d.conn) {
                    c.rx_read = d.a;
                }
                self.send_conn(
                    d.conn,
                    OwnerCmd::RxPop {
                        app,
                        conn,
                        read: d.a,
                    },
                );
            }
            abi::OP_ADOPT => {
                self.owned(app, ctx, d.conn, true)?;
                self.adopt(app, ctx, d);
            }
            abi::OP_SHUTDOWN | abi::OP_CLOSE | abi::OP_ABORT | abi::OP_SETOPT | abi::OP_INFO => {
                let (_, conn) = self.owned(app, ctx, d.conn, false)?;
                if d.op == abi::OP_CLOSE || d.op == abi::OP_ABORT {
                    let shared = self.conns.get(&d.conn).is_some_and(|c| c.holders.len() > 1);
                    if shared {
                        // Another process still has it: only this one's
                        // descriptor goes, as close() of a shared socket
                        // (a reset, too, waits for the last holder).
                        let member = self.apps.get(&app).and_then(|a| a.member_of(ctx));
                        if let Some(m) = member {
                            self.drop_holder(app, m, d.conn);
                        }
                        self.message(app, ctx, reply(d.tag, d.op, 0));
                        return Ok(());
                    }
                    self.conns.remove(&d.conn);
                }
                self.send_conn(
                    d.conn,
                    OwnerCmd::ConnOp {
                        app,
                        ctx,
                        tag: d.tag,
                        op: d.op,
                        conn,
                        a: d.a,
                        b: d.b,
                        reply: true,
                    },
                );
            }
            abi::OP_LISTEN => self.listen(app, ctx, d),
            abi::OP_UNLISTEN => {
                let port = d.a as u16;
                let member = self.apps.get(&app).and_then(|a| a.member_of(ctx));
                let held = d.a <= 0xFFFF
                    && self.ports.get(&port).is_some_and(|l| {
                        l.app == app && l.holders.iter().any(|h| Some(h.0) == member)
                    });
                let status = match member {
                    Some(m) if held => {
                        self.drop_one_listener_holder(app, m, ctx, port);
                        0
                    }
                    _ => -libc::EINVAL,
                };
                self.message(app, ctx, reply(d.tag, d.op, status));
            }
            abi::OP_ACCEPT => self.accept(app, ctx, d),
            abi::OP_CONNECT => match abi::unpack_addr(d.a).filter(|a| a.port() != 0) {
                None => self.message(app, ctx, reply(d.tag, d.op, -libc::EINVAL)),
                Some(_) if cc_of(d.b).is_err() => {
                    self.message(app, ctx, reply(d.tag, d.op, -libc::ENOENT))
                }
                Some(remote) => {
                    let owner = self.next_owner % self.owners.len();
                    self.next_owner = self.next_owner.wrapping_add(1);
                    let Some(source) = self.apps.get(&app).map(|a| a.slots.clone()) else {
                        return Err(());
                    };
                    self.send(
                        owner,
                        OwnerCmd::Connect {
                            app,
                            ctx,
                            tag: d.tag,
                            remote,
                            source,
                            cc: cc_of(d.b).unwrap_or_default(),
                        },
                    );
                }
            },
            _ => {
                self.violation(app, abi::VIOLATION_UNKNOWN_OP, "unknown request op");
                return Err(());
            }
        }
        Ok(())
    }

    fn listen(&mut self, app: AppKey, ctx: u16, d: &Desc) {
        let port = d.a as u16;
        if d.a == 0 || d.a > 0xFFFF || d.b > u64::from(u32::MAX) {
            return self.message(app, ctx, reply(d.tag, d.op, -libc::EINVAL));
        }
        let reuseport = d.c & abi::LISTEN_REUSEPORT != 0;
        let Ok(cc) = cc_of(d.c & !abi::LISTEN_REUSEPORT) else {
            return self.message(app, ctx, reply(d.tag, d.op, -libc::ENOENT));
        };
        if let Some(l) = self.ports.get_mut(&port) {
            // SO_REUSEPORT on both: one more holder of the same listener
            // (they race to accept, as one listener shared across fork).
            let member = self.apps.get(&app).and_then(|a| a.member_of(ctx));
            let (true, true, Some(m)) = (l.app == app, l.reuseport && reuseport, member) else {
                return self.message(app, ctx, reply(d.tag, d.op, -libc::EADDRINUSE));
            };
            if !l.confirmed {
                // Answered with the first listen's verdict.
                l.joining.push((m, ctx, d.tag));
                return;
            }
            l.holders.push((m, ctx));
            self.message(app, ctx, listen_reply(d.tag, port, 0));
            if self.accept_q.get(&port).is_some_and(|q| !q.is_empty()) {
                self.acceptable_on(app, ctx, port);
            }
            return;
        }
        let Some((source, member)) = self
            .apps
            .get(&app)
            .and_then(|a| Some((a.slots.clone(), a.member_of(ctx)?)))
        else {
            return;
        };
        self.ports.insert(
            port,
            Listening {
                app,
                holders: vec![(member, ctx)],
                reuseport,
                confirmed: false,
                joining: Vec::new(),
            },
        );
        for o in 0..self.owners.len() {
            self.send(
                o,
                OwnerCmd::Listen {
                    app,
                    ctx,
                    tag: d.tag,
                    port,
                    backlog: d.b as u32,
                    source: source.clone(),
                    cc,
                    reply: o == 0,
                },
            );
        }
    }

    /// The owners' verdict on a listen: sockets that joined it meanwhile
    /// (`LISTEN_REUSEPORT`) get the same answer; a refused listen frees
    /// the port.
    fn listen_answered(&mut self, app: AppKey, port: u16, status: i32) {
        let Some(l) = self.ports.get_mut(&port).filter(|l| l.app == app) else {
            return;
        };
        let joining = std::mem::take(&mut l.joining);
        if status == 0 {
            l.confirmed = true;
            l.holders.extend(joining.iter().map(|&(m, c, _)| (m, c)));
        } else {
            self.ports.remove(&port);
            for o in 0..self.owners.len() {
                self.send(o, OwnerCmd::Unlisten { app, port });
            }
        }
        let waiting = self.accept_q.get(&port).is_some_and(|q| !q.is_empty());
        for (_, ctx, tag) in joining {
            self.message(app, ctx, listen_reply(tag, port, status));
            if status == 0 && waiting {
                self.acceptable_on(app, ctx, port);
            }
        }
    }

    fn unlisten(&mut self, app: AppKey, port: u16) {
        // Sockets still waiting to join it are refused, not left waiting.
        let joining = self
            .ports
            .get_mut(&port)
            .map(|l| std::mem::take(&mut l.joining))
            .unwrap_or_default();
        for (_, ctx, tag) in joining {
            self.message(app, ctx, listen_reply(tag, port, -libc::EADDRINUSE));
        }
        self.ports.remove(&port);
        for o in 0..self.owners.len() {
            self.send(o, OwnerCmd::Unlisten { app, port });
        }
        for p in self.accept_q.remove(&port).unwrap_or_default() {
            // One the application closed before accepting it is gone.
            if self.conns.remove(&p.conn).is_some() {
                self.abort_quietly(app, p.conn);
            }
        }
    }

    fn accept(&mut self, app: AppKey, ctx: u16, d: &Desc) {
        let port = d.a as u16;
        let member = self.apps.get(&app).and_then(|a| a.member_of(ctx));
        let member = match (self.ports.get(&port), member) {
            (Some(l), Some(m))
                if l.app == app && d.a <= 0xFFFF && l.holders.iter().any(|h| h.0 == m) =>
            {
                m
            }
            _ => return self.message(app, ctx, reply(d.tag, d.op, -libc::EINVAL)),
        };
        // Entries the application closed or aborted before accepting them
        // (handles can be guessed) are skipped.
        let conns = &self.conns;
        let next = self.accept_q.get_mut(&port).and_then(|q| {
            while let Some(p) = q.pop_front() {
                if conns.contains_key(&p.conn) {
                    return Some(p);
                }
            }
            None
        });
        let Some(p) = next else {
            return self.message(app, ctx, reply(d.tag, d.op, -libc::EAGAIN));
        };
        let more = self.accept_q.get(&port).is_some_and(|q| !q.is_empty());
        if let Some(c) = self.conns.get_mut(&p.conn) {
            c.ctx = Some(ctx);
            c.holders = vec![member];
            // Established (the application learns it from the reply).
            c.sticky |= abi::CONN_CONNECTED;
        }
        let mut r = reply(d.tag, d.op, 0);
        (r.conn, r.a, r.b, r.c) = (p.conn, u64::from(p.slot), p.remote, p.local);
        self.message(app, ctx, r);
        self.mark_dirty(p.conn);
        if more {
            self.acceptable(app, port);
        }
    }

    /// `OP_ADOPT`: the connection's events come to `ctx` from now on. What
    /// its previous context's process had posted is handled first, so the
    /// positions told to the adopter include its last reads and writes.
    fn adopt(&mut self, app: AppKey, ctx: u16, d: &Desc) {
        let old = self.conns.get(&d.conn).and_then(|c| c.ctx);
        if let Some(old) = old.filter(|&o| o != ctx) {
            self.drain_ctx(app, old as usize);
        }
        let Some(c) = self.conns.get_mut(&d.conn) else {
            // Closed by a request the drain handled.
            return self.message(app, ctx, reply(d.tag, d.op, -libc::EBADF));
        };
        let mut r = reply(d.tag, d.op, 0);
        (r.conn, r.a, r.b, r.c) = (
            d.conn,
            c.rx_read,
            c.tx_written,
            u64::from(c.slot) | u64::from(c.sticky) << 32,
        );
        c.ctx = Some(ctx);
        c.flags |= c.sticky | abi::CONN_READABLE | abi::CONN_WRITABLE;
        // A stale entry in the old context's list is skipped there.
        c.dirty = false;
        self.message(app, ctx, r);
        self.mark_dirty(d.conn);
        if let Some(old) = old.filter(|&o| o != ctx) {
            self.message(
                app,
                old,
                Desc {
                    op: abi::EV_CONN,
                    flags: abi::CONN_MOVED,
                    conn: d.conn,
                    ..Desc::default()
                },
            );
        }
    }

    fn violation(&mut self, app: AppKey, reason: u64, detail: &'static str) {
        let Some(a) = self.apps.get(&app).filter(|a| !a.dead) else {
            return;
        };
        // Applications can trigger this at will (register, violate,
        // repeat): a few lines per second, the rest counted.
        static LIMIT: crate::stats::LogLimit = crate::stats::LogLimit::new(5);
        if let Some(suppressed) = LIMIT.allow() {
            tracing::warn!(
                app = %a.name,
                pid = a.pid,
                reason,
                detail,
                suppressed,
                "hostif: protocol violation, closing the application's contexts and resetting its connections"
            );
        }
        self.counters.violations[(reason as usize).min(super::VIOLATION_KINDS - 1)]
            .fetch_add(1, Ordering::Relaxed);
        self.drop_app(app, Some(reason));
    }

    /// Resets the application's connections, removes its listeners, and
    /// marks it dead (with `EV_FATAL` on every context for a violation).
    fn drop_app(&mut self, key: AppKey, reason: Option<u64>) {
        let Some(app) = self.apps.get_mut(&key) else {
            return;
        };
        if app.dead {
            return;
        }
        app.dead = true;
        app.tickets.clear();
        if let Some(reason) = reason {
            for c in app.ctxs.iter_mut().filter(|c| c.live) {
                let _ = c.events.push(&fatal(reason));
                c.events.flush();
                c.posted = true;
                c.notify(&app.region);
            }
        }
        let ports: Vec<u16> = self
            .ports
            .iter()
            .filter(|(_, l)| l.app == key)
            .map(|(p, _)| *p)
            .collect();
        for port in ports {
            self.ports.remove(&port);
            // Connections it never accepted are reset, as Linux does.
            for p in self.accept_q.remove(&port).unwrap_or_default() {
                if self.conns.remove(&p.conn).is_some() {
                    self.abort_quietly(key, p.conn);
                }
            }
        }
        self.conns.retain(|_, c| c.app != key);
        // An exit closes the rest as Linux does (queued data, then FIN);
        // a violation resets them.
        let graceful = reason.is_none();
        for o in 0..self.owners.len() {
            self.send(o, OwnerCmd::AppGone { app: key, graceful });
        }
    }

    /// Posts queued messages, then connection events, to every context.
    fn post_events(&mut self) {
        let mut posted = 0u64;
        let mut broken = Vec::new();
        for app in self.apps.values_mut().filter(|a| !a.dead) {
            for (ci, c) in app.ctxs.iter_mut().enumerate() {
                if !c.live {
                    continue;
                }
                while let Some(d) = c.messages.front() {
                    match c.events.push(d) {
                        Ok(true) => {
                            c.messages.pop_front();
                            posted += 1;
                        }
                        Ok(false) => break,
                        Err(_) => {
                            broken.push(app.key);
                            break;
                        }
                    }
                }
                while c.messages.is_empty() {
                    let Some(&h) = c.dirty.front() else {
                        break;
                    };
                    let Some(conn) = self.conns.get_mut(&h).filter(|x| x.ctx == Some(ci as u16))
                    else {
                        // Closed, or adopted by another context since.
                        c.dirty.pop_front();
                        continue;
                    };
                    let d = Desc {
                        op: abi::EV_CONN,
                        flags: conn.flags,
                        status: conn.status,
                        conn: h,
                        a: conn.rx_ready,
                        b: conn.tx_acked,
                        ..Desc::default()
                    };
                    match c.events.push(&d) {
                        Ok(true) => {
                            c.dirty.pop_front();
                            conn.flags = 0;
                            conn.dirty = false;
                            posted += 1;
                        }
                        Ok(false) => break,
                        Err(_) => {
                            broken.push(app.key);
                            break;
                        }
                    }
                }
                // Entries are written by DMA; the application may see
                // them (and is woken) once the index that publishes them
                // is written, after them.
                if c.events.poll() {
                    c.posted = true;
                }
                c.requests.poll();
                c.notify(&app.region);
            }
        }
        self.counters.events.fetch_add(posted, Ordering::Relaxed);
        for key in broken {
            self.violation(
                key,
                abi::VIOLATION_RING_INDEX,
                "event ring index out of range",
            );
        }
    }

    /// Sleeps until an application or an owner rings (or `MAX_SLEEP`).
    fn sleep(&mut self) {
        self.waker.sleeping.store(true, Ordering::SeqCst);
        for a in self.apps.values().filter(|a| !a.dead) {
            a.set_dpu_sleeping(true);
        }
        fence(Ordering::SeqCst);
        let pending = !self.inbox.lock().is_empty()
            || self.owners.iter().any(|o| !o.evts.is_empty())
            || self.overflow.iter().any(|q| !q.is_empty())
            || self.apps.values_mut().any(|a| a.has_requests())
            || self.apps.values().any(|a| a.dma_in_flight());
        // Events waiting for room in an event ring: the application frees
        // room without ringing us, so look again soon.
        let backlogged = self.apps.values().any(|a| {
            !a.dead
                && a.ctxs
                    .iter()
                    .any(|c| c.live && (!c.messages.is_empty() || !c.dirty.is_empty()))
        });
        let timeout = if backlogged {
            Duration::from_micros(200)
        } else {
            MAX_SLEEP
        };
        if !pending {
            let mut fds = vec![libc::pollfd {
                fd: self.waker.bell.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            for a in self.apps.values().filter(|a| !a.dead) {
                fds.push(libc::pollfd {
                    fd: a.dpu_bell.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            self.counters.sleeps.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs
            // whose descriptors stay open for the call (owned by `self`).
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    (timeout.as_micros().div_ceil(1000)) as libc::c_int,
                )
            };
        }
        self.waker.sleeping.store(false, Ordering::SeqCst);
        let _ = self.waker.bell.drain();
        for a in self.apps.values().filter(|a| !a.dead) {
            a.set_dpu_sleeping(false);
            let _ = a.dpu_bell.drain();
        }
    }
}

#[cfg(test)]
#[path = "front_tests.rs"]
mod tests;

/// The controller a `CC_*` value names: None for the service's default,
/// Err for a value no controller has (ENOENT, as Linux answers an unknown
/// `TCP_CONGESTION` name).
pub(crate) fn cc_of(v: u64) -> Result<Option<crate::proto::CcAlgorithm>, ()> {
    use crate::proto::CcAlgorithm;
    match v {
        abi::CC_DEFAULT => Ok(None),
        abi::CC_RENO => Ok(Some(CcAlgorithm::Reno)),
        abi::CC_DCTCP => Ok(Some(CcAlgorithm::Dctcp)),
        abi::CC_TIMELY => Ok(Some(CcAlgorithm::Timely)),
        abi::CC_DCTCP_RATE => Ok(Some(CcAlgorithm::DctcpRate)),
        _ => Err(()),
    }
}
