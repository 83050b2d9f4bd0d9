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

use super::app::{fatal, HostApp};
use super::handle;
use super::link::{AppKey, FrontWaker, OwnerCmd, OwnerEvt, OwnerLink, LINK_CAPACITY};
use super::HostIfCounters;
use doca_bindings::abi::{self, Desc};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests taken per context per pass.
const REQUEST_BURST: usize = 64;
/// Owner events taken per owner per pass.
const EVENT_BURST: usize = 1024;
/// Idle passes before sleeping.
const SPIN_PASSES: u32 = 2048;
/// Longest sleep (a lost wakeup costs at most this).
const MAX_SLEEP: Duration = Duration::from_millis(10);

/// From the control socket to the front.
#[derive(Debug)]
pub enum FrontMsg {
    Register(Box<HostApp>),
    Gone(AppKey),
}

/// Shared inbox of [`FrontMsg`]s.
pub type Inbox = Arc<Mutex<VecDeque<FrontMsg>>>;

#[derive(Debug)]
struct Listening {
    app: AppKey,
    ctx: u16,
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
    /// The context its events go to (None until accepted).
    ctx: Option<u16>,
    flags: u16,
    rx_ready: u64,
    tx_acked: u64,
    status: i32,
    dirty: bool,
}

/// The front worker's state.
pub struct Front {
    owners: Vec<Arc<OwnerLink>>,
    /// Commands an owner queue had no room for, in order.
    overflow: Vec<VecDeque<OwnerCmd>>,
    waker: Arc<FrontWaker>,
    inbox: Inbox,
    apps: HashMap<AppKey, HostApp>,
    ports: HashMap<u16, Listening>,
    accept_q: HashMap<u16, VecDeque<Pending>>,
    conns: HashMap<u64, FrontConn>,
    next_owner: usize,
    counters: Arc<HostIfCounters>,
    scratch: Vec<Desc>,
    /// Owners given commands in this pass (their workers get unparked).
    nudge: Vec<bool>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("apps", &self.apps.len())
            .field("conns", &self.conns.len())
            .finish()
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
            ports: HashMap::new(),
            accept_q: HashMap::new(),
            conns: HashMap::new(),
            next_owner: 0,
            counters,
            scratch: Vec::new(),
            nudge: vec![false; n_owners],
        }
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
                if idle.is_multiple_of(64) {
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
                    self.apps.insert(app.key, *app);
                }
                FrontMsg::Gone(key) => {
                    // What the application posted before exiting still
                    // counts (its last writes and closes); whatever is
                    // still open is then closed as Linux closes a
                    // process's sockets at exit.
                    self.drain_requests(key);
                    self.drop_app(key, None);
                    self.apps.remove(&key);
                }
            }
        }
        self.counters.apps_active.store(
            self.apps.values().filter(|a| !a.dead).count() as u64,
            Ordering::Relaxed,
        );
        self.counters.contexts.store(
            self.apps
                .values()
                .filter(|a| !a.dead)
                .map(|a| a.ctxs.len() as u64)
                .sum(),
            Ordering::Relaxed,
        );
        n
    }

    fn send(&mut self, owner: usize, cmd: OwnerCmd) {
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
                let alive = self.apps.get(&app).is_some_and(|x| !x.dead);
                if op == abi::OP_CONNECT && status == 0 && alive {
                    self.conns.insert(
                        conn,
                        FrontConn {
                            app,
                            ctx: Some(ctx),
                            flags: 0,
                            rx_ready: 0,
                            tx_acked: 0,
                            status: 0,
                            dirty: false,
                        },
                    );
                }
                if op == abi::OP_LISTEN && status != 0 {
                    let port = a as u16;
                    if self.ports.get(&port).is_some_and(|l| l.app == app) {
                        self.ports.remove(&port);
                        for o in 0..self.owners.len() {
                            self.send(o, OwnerCmd::Unlisten { app, port });
                        }
                    }
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
                let listener = self
                    .ports
                    .get(&port)
                    .filter(|l| l.app == app)
                    .map(|l| l.ctx);
                let Some(lctx) = listener.filter(|_| self.apps.contains_key(&app)) else {
                    // The listener went away meanwhile: reset it.
                    self.abort_quietly(app, conn);
                    return;
                };
                self.conns.insert(
                    conn,
                    FrontConn {
                        app,
                        ctx: None,
                        flags: 0,
                        rx_ready: 0,
                        tx_acked: 0,
                        status: 0,
                        dirty: false,
                    },
                );
                let q = self.accept_q.entry(port).or_default();
                let was_empty = q.is_empty();
                q.push_back(Pending {
                    conn,
                    slot,
                    remote,
                    local,
                });
                if was_empty {
                    self.acceptable(app, lctx, port);
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
        }
    }

    fn acceptable(&mut self, app: AppKey, ctx: u16, port: u16) {
        self.message(
            app,
            ctx,
            Desc {
                op: abi::EV_ACCEPTABLE,
                a: u64::from(port),
                ..Desc::default()
            },
        );
    }

    fn abort_quietly(&mut self, app: AppKey, conn: u64) {
        if let Some((owner, id)) = handle::decode(conn, self.owners.len()) {
            self.send(
                owner,
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

    /// Handles every request an application left in its rings.
    fn drain_requests(&mut self, key: AppKey) {
        let ctxs = match self.apps.get(&key) {
            Some(a) if !a.dead => a.ctxs.len(),
            _ => return,
        };
        for ctx in 0..ctxs {
            let mut batch = Vec::new();
            let got = match self.apps.get_mut(&key) {
                Some(a) if !a.dead => a.ctxs[ctx].requests.pop_all(&mut batch),
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
                    Some(a) if !a.dead => {
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

    /// The connection a request names, if this application owns it.
    fn owned(&mut self, app: AppKey, conn: u64) -> Result<(usize, crate::app::ConnId), ()> {
        let ok = self.conns.get(&conn).is_some_and(|c| c.app == app);
        match handle::decode(conn, self.owners.len()).filter(|_| ok) {
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
        match d.op {
            abi::OP_TX_PUSH => {
                let (owner, conn) = self.owned(app, d.conn)?;
                self.send(
                    owner,
                    OwnerCmd::TxPush {
                        app,
                        conn,
                        written: d.a,
                    },
                );
            }
            abi::OP_RX_POP => {
                let (owner, conn) = self.owned(app, d.conn)?;
                self.send(
                    owner,
                    OwnerCmd::RxPop {
                        app,
                        conn,
                        read: d.a,
                    },
                );
            }
            abi::OP_SHUTDOWN | abi::OP_CLOSE | abi::OP_ABORT | abi::OP_SETOPT => {
                let (owner, conn) = self.owned(app, d.conn)?;
                if d.op == abi::OP_CLOSE || d.op == abi::OP_ABORT {
                    self.conns.remove(&d.conn);
                }
                self.send(
                    owner,
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
                let status = if d.a <= 0xFFFF && self.ports.get(&port).is_some_and(|l| l.app == app)
                {
                    self.unlisten(app, port);
                    0
                } else {
                    -libc::EINVAL
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
        let Ok(cc) = cc_of(d.c) else {
            return self.message(app, ctx, reply(d.tag, d.op, -libc::ENOENT));
        };
        if self.ports.contains_key(&port) {
            return self.message(app, ctx, reply(d.tag, d.op, -libc::EADDRINUSE));
        }
        let Some(source) = self.apps.get(&app).map(|a| a.slots.clone()) else {
            return;
        };
        self.ports.insert(port, Listening { app, ctx });
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

    fn unlisten(&mut self, app: AppKey, port: u16) {
        self.ports.remove(&port);
        for o in 0..self.owners.len() {
            self.send(o, OwnerCmd::Unlisten { app, port });
        }
        for p in self.accept_q.remove(&port).unwrap_or_default() {
            self.conns.remove(&p.conn);
            self.abort_quietly(app, p.conn);
        }
    }

    fn accept(&mut self, app: AppKey, ctx: u16, d: &Desc) {
        let port = d.a as u16;
        let lctx = match self.ports.get(&port) {
            Some(l) if l.app == app && d.a <= 0xFFFF => l.ctx,
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
        }
        let mut r = reply(d.tag, d.op, 0);
        (r.conn, r.a, r.b, r.c) = (p.conn, u64::from(p.slot), p.remote, p.local);
        self.message(app, ctx, r);
        self.mark_dirty(p.conn);
        if more {
            self.acceptable(app, lctx, port);
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
        if let Some(reason) = reason {
            for c in &mut app.ctxs {
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
            for c in &mut app.ctxs {
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
                    let Some(conn) = self.conns.get_mut(&h) else {
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
                    .any(|c| !c.messages.is_empty() || !c.dirty.is_empty())
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
