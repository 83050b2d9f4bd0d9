//! The host-interface front (`hostif::front`) fed whatever an untrusted
//! application can write into its region (issue 21: every untrusted input
//! fuzzed): request descriptors with any op, handle, port, address and
//! argument, request-ring heads and event-ring tails of any value (so the
//! front also reads stale or never-written entries), and `app_waiting`
//! flags. The owners (flow-group engines) are played by the harness: it
//! drains the owner queues, answers listens, connects and connection ops
//! like `hostif::shard` does, and injects accepted connections, connection
//! events and owner-side violations.
//!
//! The setup is real, not a mock: two applications registered with the
//! front through its inbox (`HostApp` over a `doca_bindings::Region`, ring
//! pairs and doorbells), two owner links, and the front's own pass
//! (`Front::fuzz_pass`, the body of its service loop) run on this thread.
//! Application B is a bystander: it listens, connects and pushes data on its
//! connection every round; application A is the fuzzed one.
//!
//! After every pass the harness compares the front against a model of the
//! validator written from `docs/hostif-abi.md` and `front.rs` (which request
//! is forwarded to which owner, which is answered with which status, which
//! closes the application): the commands each owner received, the events in
//! each context's ring (replies, `EV_CONN`, `EV_ACCEPTABLE`, `EV_FATAL`),
//! the indices the front publishes, which doorbells it rang, and the
//! counters. So every rejection must be counted (`violations[reason]`) and
//! announced (`EV_FATAL` on every context whose ring has room), every
//! accepted request must reach exactly the owner it names, a closed handle
//! must stop working, B must keep being served, and nothing may panic or
//! index out of bounds (debug assertions are on in fuzz builds). When both
//! applications have left, the front holds no application and no
//! connection.
//!
//! The model is exact on purpose: a change to what the front forwards,
//! answers or rejects needs the same change in `Model`. The only liberty
//! taken is the order of the resets sent when an application is closed
//! (see `canonical`).
#![no_main]

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use doca_bindings::abi::{self, Desc, Layout};
use doca_bindings::{Doorbell, Region};
use dpu_datapath::hostif::app::{AppInfo, HostApp};
use dpu_datapath::hostif::front::{Front, FrontMsg, Inbox};
use dpu_datapath::hostif::handle;
use dpu_datapath::hostif::link::{AppKey, FrontWaker, OwnerCmd, OwnerEvt, OwnerLink};
use dpu_datapath::hostif::{HostIfCounters, VIOLATION_KINDS};
use dpu_datapath::proto::CcAlgorithm;
use dpu_datapath::dma::DmaConfig;
use libfuzzer_sys::fuzz_target;

/// The front's rule for a `CC_*` value: Err for one no controller has
/// (ENOENT).
/// An `OP_LISTEN` answer with a = the port (as the owners answer).
fn listen_reply(tag: u64, port: u16, status: i32) -> Desc {
    Desc {
        a: port.into(),
        ..reply(tag, abi::OP_LISTEN, status)
    }
}

/// A listening port in the model.
#[derive(Debug)]
struct MListen {
    app: AppKey,
    ctxs: Vec<u16>,
    reuse: bool,
    /// The owners' reply to the first listen came.
    confirmed: bool,
    /// `LISTEN_REUSEPORT` listens that came before it: context and tag.
    joining: Vec<(u16, u64)>,
}

fn model_cc(v: u64) -> Result<(), ()> {
    match v {
        abi::CC_DEFAULT | abi::CC_RENO | abi::CC_DCTCP | abi::CC_TIMELY | abi::CC_DCTCP_RATE => {
            Ok(())
        }
        _ => Err(()),
    }
}

/// What the front passed on, as the `CC_*` value it came from.
fn cc_code(cc: Option<CcAlgorithm>) -> u64 {
    match cc {
        None => abi::CC_DEFAULT,
        Some(CcAlgorithm::Reno) => abi::CC_RENO,
        Some(CcAlgorithm::Dctcp) => abi::CC_DCTCP,
        Some(CcAlgorithm::Timely) => abi::CC_TIMELY,
        Some(CcAlgorithm::DctcpRate) => abi::CC_DCTCP_RATE,
    }
}

const OWNERS: usize = 2;
/// The fuzzed application and the bystander.
const A: AppKey = 1;
const B: AppKey = 2;
/// Small rings, so full rings and the front's back-pressure are reachable.
const RING: u32 = 8;
/// The front's `REQUEST_BURST`.
const REQUEST_BURST: usize = 64;
/// Passes per input at most (each pass is a round of the input).
const MAX_PASSES: usize = 256;
/// B's listening port and the ports A's port fields are mostly drawn from.
const B_PORT: u16 = 7;
const PORTS: [u16; 3] = [B_PORT, 80, 8080];

fn layout(contexts: u32) -> Layout {
    Layout {
        contexts,
        ring_entries: RING,
        slots: 1,
        rx_buf_size: 4096,
        tx_buf_size: 4096,
    }
}

fn index(region: &Region, offset: usize) -> &AtomicU32 {
    region
        .atomic_u32(offset)
        .expect("ring indices lie in the region")
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

fn fatal(reason: u64) -> Desc {
    Desc {
        op: abi::EV_FATAL,
        status: -libc::EPROTO,
        a: reason,
        ..Desc::default()
    }
}

// ---------------------------------------------------------------------------
// The application's side of its region.

#[derive(Debug)]
struct CtxSide {
    /// Request ring head as the application published it.
    head: u32,
    /// Event ring tail: what it consumed.
    evt_tail: u32,
    /// False once it wrote a tail of its own making: it stops reading.
    reading: bool,
    /// Its end of the context's doorbell.
    bell: Doorbell,
}

#[derive(Debug)]
struct AppSide {
    region: Arc<Region>,
    layout: Layout,
    ctxs: Vec<CtxSide>,
}

impl AppSide {
    /// Registers an application with `contexts` contexts: the region, its
    /// doorbells (the harness keeps a duplicate of each context's), and the
    /// `HostApp` the control socket would hand the front.
    fn register(key: AppKey, contexts: u32, inbox: &Inbox) -> AppSide {
        let layout = layout(contexts);
        let region = Region::create(&format!("fuzz-app-{key}"), layout.region_size())
            .expect("creating a region");
        region.write_header(&layout).expect("header fits");
        let region = Arc::new(region);
        let bells: Vec<Doorbell> = (0..contexts)
            .map(|_| Doorbell::new().expect("eventfd"))
            .collect();
        let ctxs = bells
            .iter()
            .map(|b| CtxSide {
                head: 0,
                evt_tail: 0,
                reading: true,
                bell: Doorbell::from_fd(b.fd().try_clone_to_owned().expect("dup"))
                    .expect("eventfd"),
            })
            .collect();
        let app = HostApp::new(
            AppInfo {
                key,
                name: format!("fuzz-{key}"),
                pid: key as u32,
            },
            region.clone(),
            layout,
            bells,
            Doorbell::new().expect("eventfd"),
            &DmaConfig::immediate(),
        )
        .expect("rings fit the region");
        inbox.lock().push_back(FrontMsg::Register(Box::new(app)));
        AppSide {
            region,
            layout,
            ctxs,
        }
    }

    /// Posts a request if the ring has room (by the front's published tail).
    fn push(&mut self, ctx: usize, d: &Desc) -> bool {
        let ring = self.layout.request_ring(ctx as u32);
        let tail = index(&self.region, ring.tail).load(Ordering::Acquire);
        let c = &mut self.ctxs[ctx];
        if c.head.wrapping_sub(tail) >= ring.capacity {
            return false;
        }
        let slot = (c.head & (ring.capacity - 1)) as usize;
        self.region
            .write_desc(ring.entries + slot * std::mem::size_of::<Desc>(), d)
            .expect("entry in the region");
        c.head = c.head.wrapping_add(1);
        index(&self.region, ring.head).store(c.head, Ordering::Release);
        true
    }

    /// Publishes a request head of the application's choosing.
    fn set_head(&mut self, ctx: usize, head: u32) {
        self.ctxs[ctx].head = head;
        let ring = self.layout.request_ring(ctx as u32);
        index(&self.region, ring.head).store(head, Ordering::Release);
    }

    /// Everything the front published on the event ring since the last read.
    fn drain(&mut self, ctx: usize) -> Vec<Desc> {
        let ring = self.layout.event_ring(ctx as u32);
        let c = &mut self.ctxs[ctx];
        if !c.reading {
            return Vec::new();
        }
        let head = index(&self.region, ring.head).load(Ordering::Acquire);
        let n = head.wrapping_sub(c.evt_tail);
        assert!(
            n <= ring.capacity,
            "the front published event head {head} with tail {}",
            c.evt_tail
        );
        let out = (0..n)
            .map(|i| {
                let slot = (c.evt_tail.wrapping_add(i) & (ring.capacity - 1)) as usize;
                self.region
                    .read_desc(ring.entries + slot * std::mem::size_of::<Desc>())
                    .expect("entry in the region")
            })
            .collect();
        c.evt_tail = head;
        index(&self.region, ring.tail).store(head, Ordering::Release);
        out
    }

    /// Writes an event tail of the application's choosing; it reads this
    /// ring no more.
    fn set_evt_tail(&mut self, ctx: usize, tail: u32) {
        self.ctxs[ctx].reading = false;
        let ring = self.layout.event_ring(ctx as u32);
        index(&self.region, ring.tail).store(tail, Ordering::Release);
    }

    fn waiting(&self, ctx: usize) -> &AtomicU32 {
        index(&self.region, self.layout.app_waiting_offset(ctx as u32))
    }
}

// ---------------------------------------------------------------------------
// Owner commands and events as values the harness can compare and replay.

/// An `OwnerCmd` with connections as handles (`source` pools left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cmd {
    Listen {
        app: AppKey,
        ctx: u16,
        tag: u64,
        port: u16,
        backlog: u32,
        /// 0: the default, else the `CC_*` value.
        cc: u64,
        reply: bool,
    },
    Unlisten {
        app: AppKey,
        port: u16,
    },
    Connect {
        app: AppKey,
        ctx: u16,
        tag: u64,
        remote: SocketAddrV4,
        cc: u64,
    },
    TxPush {
        app: AppKey,
        conn: u64,
        written: u64,
    },
    RxPop {
        app: AppKey,
        conn: u64,
        read: u64,
    },
    ConnOp {
        app: AppKey,
        ctx: u16,
        tag: u64,
        op: u16,
        conn: u64,
        a: u64,
        b: u64,
        reply: bool,
    },
    AppGone {
        app: AppKey,
        graceful: bool,
    },
}

impl Cmd {
    fn from_owner(owner: usize, cmd: OwnerCmd) -> Cmd {
        let h = |id| handle::encode(owner, id);
        match cmd {
            OwnerCmd::Listen {
                app,
                ctx,
                tag,
                port,
                backlog,
                cc,
                reply,
                ..
            } => Cmd::Listen {
                app,
                ctx,
                tag,
                port,
                backlog,
                cc: cc_code(cc),
                reply,
            },
            OwnerCmd::Unlisten { app, port } => Cmd::Unlisten { app, port },
            OwnerCmd::Connect {
                app,
                ctx,
                tag,
                remote,
                cc,
                ..
            } => Cmd::Connect {
                app,
                ctx,
                tag,
                remote,
                cc: cc_code(cc),
            },
            OwnerCmd::TxPush { app, conn, written } => Cmd::TxPush {
                app,
                conn: h(conn),
                written,
            },
            OwnerCmd::RxPop { app, conn, read } => Cmd::RxPop {
                app,
                conn: h(conn),
                read,
            },
            OwnerCmd::ConnOp {
                app,
                ctx,
                tag,
                op,
                conn,
                a,
                b,
                reply,
            } => Cmd::ConnOp {
                app,
                ctx,
                tag,
                op,
                conn: h(conn),
                a,
                b,
                reply,
            },
            OwnerCmd::AppGone { app, graceful } => Cmd::AppGone { app, graceful },
            OwnerCmd::Dump { .. } => panic!("the front never asks owners for a dump"),
            // The front fences and settles only connections an owner said
            // moved; these owners never move any.
            OwnerCmd::MoveFence { .. } | OwnerCmd::MoveSettled { .. } => {
                panic!("a move command for a connection no owner moved")
            }
        }
    }

    fn app(&self) -> AppKey {
        match *self {
            Cmd::Listen { app, .. }
            | Cmd::Unlisten { app, .. }
            | Cmd::Connect { app, .. }
            | Cmd::TxPush { app, .. }
            | Cmd::RxPop { app, .. }
            | Cmd::ConnOp { app, .. }
            | Cmd::AppGone { app, .. } => app,
        }
    }

    fn is_quiet_abort(&self) -> bool {
        matches!(
            self,
            Cmd::ConnOp {
                op: abi::OP_ABORT,
                reply: false,
                ..
            }
        )
    }
}

/// `cmds` of one application, with each run of quiet aborts sorted: when
/// an application is closed the front resets its unaccepted connections
/// port by port in hash-map order, which is not part of the contract.
fn canonical(cmds: &[Cmd], app: AppKey) -> Vec<Cmd> {
    let mut out: Vec<Cmd> = cmds.iter().copied().filter(|c| c.app() == app).collect();
    let mut i = 0;
    while i < out.len() {
        let run = out[i..].iter().take_while(|c| c.is_quiet_abort()).count();
        out[i..i + run].sort();
        i += run.max(1);
    }
    out
}

/// An `OwnerEvt` the harness injects (and the model replays).
#[derive(Clone, Copy, Debug)]
enum Evt {
    Reply {
        app: AppKey,
        ctx: u16,
        tag: u64,
        op: u16,
        status: i32,
        conn: u64,
        a: u64,
        b: u64,
        c: u64,
    },
    Accepted {
        app: AppKey,
        port: u16,
        conn: u64,
        slot: u32,
        remote: u64,
        local: u64,
    },
    Conn {
        app: AppKey,
        conn: u64,
        flags: u16,
        rx_ready: u64,
        tx_acked: u64,
        status: i32,
    },
    Violation {
        app: AppKey,
        reason: u64,
    },
}

impl Evt {
    fn to_owner(self) -> OwnerEvt {
        match self {
            Evt::Reply {
                app,
                ctx,
                tag,
                op,
                status,
                conn,
                a,
                b,
                c,
            } => OwnerEvt::Reply {
                app,
                ctx,
                tag,
                op,
                status,
                conn,
                a,
                b,
                c,
            },
            Evt::Accepted {
                app,
                port,
                conn,
                slot,
                remote,
                local,
            } => OwnerEvt::Accepted {
                app,
                port,
                conn,
                slot,
                remote,
                local,
            },
            Evt::Conn {
                app,
                conn,
                flags,
                rx_ready,
                tx_acked,
                status,
            } => OwnerEvt::Conn {
                app,
                conn,
                flags,
                rx_ready,
                tx_acked,
                status,
            },
            Evt::Violation { app, reason } => OwnerEvt::Violation {
                app,
                reason,
                detail: "injected by the fuzz target's owner",
            },
        }
    }
}

// ---------------------------------------------------------------------------
// The model of the front.

#[derive(Debug, Default)]
struct MCtx {
    messages: VecDeque<Desc>,
    dirty: VecDeque<u64>,
    /// The front's request-ring tail and event-ring head.
    req_tail: u32,
    evt_head: u32,
    posted: bool,
    /// The `app_waiting` flag as the front leaves it.
    waiting: u32,
    /// Rang the doorbell in this pass.
    rang: bool,
    /// Events published in this pass.
    out: Vec<Desc>,
}

#[derive(Debug)]
struct MApp {
    dead: bool,
    ctxs: Vec<MCtx>,
    region: Arc<Region>,
    layout: Layout,
}

#[derive(Debug)]
struct MConn {
    app: AppKey,
    ctx: Option<u16>,
    flags: u16,
    sticky: u16,
    rx_ready: u64,
    tx_acked: u64,
    status: i32,
    dirty: bool,
    rx_read: u64,
    tx_written: u64,
    slot: u32,
}

impl MConn {
    fn new(app: AppKey, ctx: Option<u16>, slot: u32) -> Self {
        MConn {
            app,
            ctx,
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

/// `CONN_*` bits that describe a state (told to an adopter).
const STICKY: u16 =
    abi::CONN_CONNECTED | abi::CONN_PEER_CLOSED | abi::CONN_ERROR | abi::CONN_FINISHED;

#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: u64,
    slot: u32,
    remote: u64,
    local: u64,
}

#[derive(Debug, Default)]
struct Model {
    apps: BTreeMap<AppKey, MApp>,
    /// Applications that left (their last pass is still checked).
    left: BTreeMap<AppKey, MApp>,
    /// Listening ports: the application, the contexts of its listening
    /// sockets (one per socket: several with `LISTEN_REUSEPORT`), and
    /// whether it was opened with `LISTEN_REUSEPORT`.
    ports: BTreeMap<u16, MListen>,
    accept_q: BTreeMap<u16, VecDeque<Pending>>,
    conns: BTreeMap<u64, MConn>,
    next_owner: usize,
    /// What each owner should have received in this pass.
    cmds: Vec<Vec<Cmd>>,
    violations: [u64; VIOLATION_KINDS],
    requests: u64,
    events: u64,
    apps_active: u64,
    contexts: u64,
}

/// Pushes `d` onto the event ring of `ctx` as the front's `RingProducer`
/// does: Err for an impossible tail, Ok(false) when full.
fn push_event(
    region: &Region,
    layout: &Layout,
    ci: usize,
    c: &mut MCtx,
    d: Desc,
) -> Result<bool, ()> {
    let ring = layout.event_ring(ci as u32);
    let tail = index(region, ring.tail).load(Ordering::Acquire);
    let used = c.evt_head.wrapping_sub(tail);
    if used > ring.capacity {
        return Err(());
    }
    if used == ring.capacity {
        return Ok(false);
    }
    c.out.push(d);
    c.evt_head = c.evt_head.wrapping_add(1);
    Ok(true)
}

fn notify(c: &mut MCtx) {
    if std::mem::take(&mut c.posted) && c.waiting != 0 {
        c.waiting = 0;
        c.rang = true;
    }
}

impl Model {
    fn new() -> Model {
        Model {
            cmds: vec![Vec::new(); OWNERS],
            ..Model::default()
        }
    }

    fn register(&mut self, key: AppKey, side: &AppSide) {
        self.apps.insert(
            key,
            MApp {
                dead: false,
                ctxs: (0..side.ctxs.len()).map(|_| MCtx::default()).collect(),
                region: side.region.clone(),
                layout: side.layout,
            },
        );
    }

    /// Reads the `app_waiting` flags the applications left for the next
    /// pass (before the front, which clears them, runs it).
    fn read_flags(&mut self) {
        for app in self.apps.values_mut() {
            for (ci, c) in app.ctxs.iter_mut().enumerate() {
                c.waiting = index(&app.region, app.layout.app_waiting_offset(ci as u32))
                    .load(Ordering::SeqCst);
            }
        }
    }

    fn alive(&self, app: AppKey) -> bool {
        self.apps.get(&app).is_some_and(|a| !a.dead)
    }

    /// One `Front::pass`: the inbox (`gone`), the owners' events in queue
    /// order, the requests, then the events.
    fn pass(&mut self, gone: &[AppKey], evts: &[Vec<Evt>]) {
        for q in &mut self.cmds {
            q.clear();
        }
        for app in self.apps.values_mut().chain(self.left.values_mut()) {
            for c in &mut app.ctxs {
                c.out.clear();
                c.rang = false;
            }
        }
        for &key in gone {
            self.drain_requests(key);
            self.drop_app(key, None);
            if let Some(app) = self.apps.remove(&key) {
                self.left.insert(key, app);
            }
        }
        let live = self.apps.values().filter(|a| !a.dead);
        self.apps_active = live.clone().count() as u64;
        self.contexts = live.map(|a| a.ctxs.len() as u64).sum();
        for owner in evts {
            for e in owner {
                self.owner_event(*e);
            }
        }
        self.take_requests();
        self.post_events();
    }

    fn send(&mut self, owner: usize, cmd: Cmd) {
        self.cmds[owner].push(cmd);
    }

    fn message(&mut self, app: AppKey, ctx: u16, d: Desc) {
        if let Some(c) = self
            .apps
            .get_mut(&app)
            .filter(|a| !a.dead)
            .and_then(|a| a.ctxs.get_mut(usize::from(ctx)))
        {
            c.messages.push_back(d);
        }
    }

    fn mark_dirty(&mut self, h: u64) {
        let Some(c) = self.conns.get_mut(&h) else {
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
            .and_then(|a| a.ctxs.get_mut(usize::from(ctx)))
        {
            c.dirty = true;
            x.dirty.push_back(h);
        }
    }

    fn acceptable(&mut self, app: AppKey, ctx: u16, port: u16) {
        let d = Desc {
            op: abi::EV_ACCEPTABLE,
            a: u64::from(port),
            ..Desc::default()
        };
        // Not queued twice for one context.
        let queued = self
            .apps
            .get(&app)
            .and_then(|a| a.ctxs.get(usize::from(ctx)))
            .is_some_and(|c| c.messages.iter().any(|m| *m == d));
        if !queued {
            self.message(app, ctx, d);
        }
    }

    fn abort_quietly(&mut self, app: AppKey, conn: u64) {
        if let Some((owner, _)) = handle::decode(conn, OWNERS) {
            self.send(
                owner,
                Cmd::ConnOp {
                    app,
                    ctx: 0,
                    tag: 0,
                    op: abi::OP_ABORT,
                    conn,
                    a: 0,
                    b: 0,
                    reply: false,
                },
            );
        }
    }

    fn owner_event(&mut self, e: Evt) {
        match e {
            Evt::Reply {
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
                if op == abi::OP_CONNECT && status == 0 && self.alive(app) {
                    self.conns.insert(conn, MConn::new(app, Some(ctx), a as u32));
                }
                if op == abi::OP_LISTEN {
                    // The verdict, for the listen and for the sockets that
                    // joined it meanwhile.
                    let port = a as u16;
                    if let Some(l) = self.ports.get_mut(&port).filter(|l| l.app == app) {
                        let joining = std::mem::take(&mut l.joining);
                        if status == 0 {
                            l.confirmed = true;
                            l.ctxs.extend(joining.iter().map(|j| j.0));
                        } else {
                            self.ports.remove(&port);
                            for o in 0..OWNERS {
                                self.send(o, Cmd::Unlisten { app, port });
                            }
                        }
                        let waiting = self.accept_q.get(&port).is_some_and(|q| !q.is_empty());
                        for (jctx, jtag) in joining {
                            self.message(app, jctx, listen_reply(jtag, port, status));
                            if status == 0 && waiting {
                                self.acceptable(app, jctx, port);
                            }
                        }
                    }
                }
                let mut d = reply(tag, op, status);
                (d.conn, d.a, d.b, d.c) = (conn, a, b, c);
                self.message(app, ctx, d);
            }
            Evt::Accepted {
                app,
                port,
                conn,
                slot,
                remote,
                local,
            } => {
                let listener = self.ports.get(&port).filter(|l| l.app == app);
                let Some(lctxs) = listener
                    .map(|l| l.ctxs.clone())
                    .filter(|_| self.apps.contains_key(&app))
                else {
                    self.abort_quietly(app, conn);
                    return;
                };
                self.conns.insert(conn, MConn::new(app, None, slot));
                let q = self.accept_q.entry(port).or_default();
                let was_empty = q.is_empty();
                q.push_back(Pending {
                    conn,
                    slot,
                    remote,
                    local,
                });
                if was_empty {
                    for lctx in lctxs {
                        self.acceptable(app, lctx, port);
                    }
                }
            }
            Evt::Conn {
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
            Evt::Violation { app, reason } => self.violation(app, reason),
        }
    }

    /// What the front's `RingConsumer::pop_many` takes: Err for an
    /// impossible head.
    fn pop_many(&mut self, key: AppKey, ci: usize, max: usize) -> Result<Vec<Desc>, ()> {
        let app = self.apps.get_mut(&key).expect("app present");
        let ring = app.layout.request_ring(ci as u32);
        let c = &mut app.ctxs[ci];
        let head = index(&app.region, ring.head).load(Ordering::Acquire);
        let avail = head.wrapping_sub(c.req_tail);
        if avail > ring.capacity {
            return Err(());
        }
        let n = (avail as usize).min(max);
        let out = (0..n)
            .map(|i| {
                let slot = (c.req_tail.wrapping_add(i as u32) & (ring.capacity - 1)) as usize;
                app.region
                    .read_desc(ring.entries + slot * std::mem::size_of::<Desc>())
                    .expect("entry in the region")
            })
            .collect();
        c.req_tail = c.req_tail.wrapping_add(n as u32);
        Ok(out)
    }

    fn take_requests(&mut self) {
        let mut n = 0;
        let keys: Vec<AppKey> = self.apps.keys().copied().collect();
        for key in keys {
            let ctxs = match self.apps.get(&key) {
                Some(a) if !a.dead => a.ctxs.len(),
                _ => continue,
            };
            for ci in 0..ctxs {
                // An application that does not drain its events is not
                // read until it does.
                let backlog = match self.apps.get(&key) {
                    Some(a) if !a.dead => {
                        a.ctxs[ci].messages.len() >= a.layout.ring_entries as usize
                    }
                    _ => true,
                };
                let got = if backlog {
                    Ok(Vec::new())
                } else {
                    self.pop_many(key, ci, REQUEST_BURST)
                };
                match got {
                    Ok(batch) => {
                        n += batch.len();
                        for d in &batch {
                            if self.request(key, ci as u16, d).is_err() {
                                break;
                            }
                        }
                    }
                    Err(()) => self.violation(key, abi::VIOLATION_RING_INDEX),
                }
            }
        }
        self.requests += n as u64;
    }

    fn drain_requests(&mut self, key: AppKey) {
        let ctxs = match self.apps.get(&key) {
            Some(a) if !a.dead => a.ctxs.len(),
            _ => return,
        };
        for ci in 0..ctxs {
            let cap = match self.apps.get(&key) {
                Some(a) if !a.dead => a.layout.ring_entries as usize,
                _ => return,
            };
            let got = self.pop_many(key, ci, cap);
            let Ok(batch) = got else {
                return;
            };
            for d in &batch {
                if self.request(key, ci as u16, d).is_err() {
                    return;
                }
            }
        }
    }

    /// The owner of `conn` if `app` holds it (accepted or connected) or,
    /// unless `held`, has it in an accept queue; otherwise a violation.
    fn owned(&mut self, app: AppKey, conn: u64, held: bool) -> Result<usize, ()> {
        let ok = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.app == app && (!held || c.ctx.is_some()));
        match handle::decode(conn, OWNERS).filter(|_| ok) {
            Some((owner, _)) => Ok(owner),
            None => {
                self.violation(app, abi::VIOLATION_FOREIGN_CONN);
                Err(())
            }
        }
    }

    fn request(&mut self, app: AppKey, ctx: u16, d: &Desc) -> Result<(), ()> {
        // Nothing more for an application closed meanwhile (the front's
        // rule: a request drained by another context's `OP_ADOPT` may have
        // closed it in the middle of a batch).
        if !self.alive(app) {
            return Err(());
        }
        match d.op {
            abi::OP_TX_PUSH => {
                let o = self.owned(app, d.conn, false)?;
                if let Some(c) = self.conns.get_mut(&d.conn) {
                    c.tx_written = d.a;
                }
                self.send(
                    o,
                    Cmd::TxPush {
                        app,
                        conn: d.conn,
                        written: d.a,
                    },
                );
            }
            abi::OP_RX_POP => {
                let o = self.owned(app, d.conn, false)?;
                if let Some(c) = self.conns.get_mut(&d.conn) {
                    c.rx_read = d.a;
                }
                self.send(
                    o,
                    Cmd::RxPop {
                        app,
                        conn: d.conn,
                        read: d.a,
                    },
                );
            }
            abi::OP_ADOPT => {
                self.owned(app, d.conn, true)?;
                self.adopt(app, ctx, d);
            }
            abi::OP_SHUTDOWN | abi::OP_CLOSE | abi::OP_ABORT | abi::OP_SETOPT | abi::OP_INFO => {
                let o = self.owned(app, d.conn, false)?;
                if d.op == abi::OP_CLOSE || d.op == abi::OP_ABORT {
                    self.conns.remove(&d.conn);
                }
                self.send(
                    o,
                    Cmd::ConnOp {
                        app,
                        ctx,
                        tag: d.tag,
                        op: d.op,
                        conn: d.conn,
                        a: d.a,
                        b: d.b,
                        reply: true,
                    },
                );
            }
            abi::OP_LISTEN => {
                let port = d.a as u16;
                if d.a == 0 || d.a > 0xFFFF || d.b > u64::from(u32::MAX) {
                    self.message(app, ctx, reply(d.tag, d.op, -libc::EINVAL));
                } else if model_cc(d.c & !abi::LISTEN_REUSEPORT).is_err() {
                    self.message(app, ctx, reply(d.tag, d.op, -libc::ENOENT));
                } else if let Some(l) = self.ports.get_mut(&port) {
                    // SO_REUSEPORT on both, same application: one more
                    // holder; otherwise the port is taken.
                    let reuse = d.c & abi::LISTEN_REUSEPORT != 0;
                    if l.app == app && l.reuse && reuse && !l.confirmed {
                        l.joining.push((ctx, d.tag));
                    } else if l.app == app && l.reuse && reuse {
                        l.ctxs.push(ctx);
                        self.message(app, ctx, listen_reply(d.tag, port, 0));
                        if self.accept_q.get(&port).is_some_and(|q| !q.is_empty()) {
                            self.acceptable(app, ctx, port);
                        }
                    } else {
                        self.message(app, ctx, reply(d.tag, d.op, -libc::EADDRINUSE));
                    }
                } else if self.apps.contains_key(&app) {
                    self.ports.insert(
                        port,
                        MListen {
                            app,
                            ctxs: vec![ctx],
                            reuse: d.c & abi::LISTEN_REUSEPORT != 0,
                            confirmed: false,
                            joining: Vec::new(),
                        },
                    );
                    for o in 0..OWNERS {
                        self.send(
                            o,
                            Cmd::Listen {
                                app,
                                ctx,
                                tag: d.tag,
                                port,
                                backlog: d.b as u32,
                                cc: d.c & !abi::LISTEN_REUSEPORT,
                                reply: o == 0,
                            },
                        );
                    }
                }
            }
            abi::OP_UNLISTEN => {
                let port = d.a as u16;
                let held = d.a <= 0xFFFF && self.ports.get(&port).is_some_and(|l| l.app == app);
                let status = if held {
                    // One socket's hold goes (the one on this context if
                    // any); the last stops the listener.
                    let l = self.ports.get_mut(&port).expect("held");
                    let at = l.ctxs.iter().position(|c| *c == ctx).unwrap_or(0);
                    l.ctxs.remove(at);
                    if l.ctxs.is_empty() {
                        for (jctx, jtag) in std::mem::take(&mut l.joining) {
                            self.message(app, jctx, listen_reply(jtag, port, -libc::EADDRINUSE));
                        }
                        self.ports.remove(&port);
                        for o in 0..OWNERS {
                            self.send(o, Cmd::Unlisten { app, port });
                        }
                        // One closed before it was accepted is gone.
                        for p in self.accept_q.remove(&port).unwrap_or_default() {
                            if self.conns.remove(&p.conn).is_some() {
                                self.abort_quietly(app, p.conn);
                            }
                        }
                    }
                    0
                } else {
                    -libc::EINVAL
                };
                self.message(app, ctx, reply(d.tag, d.op, status));
            }
            abi::OP_ACCEPT => self.accept(app, ctx, d),
            abi::OP_CONNECT => match abi::unpack_addr(d.a).filter(|a| a.port() != 0) {
                None => self.message(app, ctx, reply(d.tag, d.op, -libc::EINVAL)),
                Some(_) if model_cc(d.b).is_err() => {
                    self.message(app, ctx, reply(d.tag, d.op, -libc::ENOENT))
                }
                Some(remote) => {
                    let o = self.next_owner % OWNERS;
                    self.next_owner = self.next_owner.wrapping_add(1);
                    if !self.apps.contains_key(&app) {
                        return Err(());
                    }
                    self.send(
                        o,
                        Cmd::Connect {
                            app,
                            ctx,
                            tag: d.tag,
                            remote,
                            cc: d.b,
                        },
                    );
                }
            },
            _ => {
                self.violation(app, abi::VIOLATION_UNKNOWN_OP);
                return Err(());
            }
        }
        Ok(())
    }

    /// `OP_ADOPT`: the old context's requests first, then the reply with
    /// the positions, the state as an event here, `CONN_MOVED` there.
    fn adopt(&mut self, app: AppKey, ctx: u16, d: &Desc) {
        let old = self.conns.get(&d.conn).and_then(|c| c.ctx);
        if let Some(old) = old.filter(|&o| o != ctx) {
            let cap = match self.apps.get(&app) {
                Some(a) if !a.dead => a.layout.ring_entries as usize,
                _ => return,
            };
            if let Ok(batch) = self.pop_many(app, old as usize, cap) {
                for x in &batch {
                    if self.request(app, old, x).is_err() {
                        break;
                    }
                }
            }
        }
        let Some(c) = self.conns.get_mut(&d.conn) else {
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

    fn accept(&mut self, app: AppKey, ctx: u16, d: &Desc) {
        let port = d.a as u16;
        let lctxs = match self.ports.get(&port) {
            Some(l) if l.app == app && d.a <= 0xFFFF => l.ctxs.clone(),
            _ => return self.message(app, ctx, reply(d.tag, d.op, -libc::EINVAL)),
        };
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
            c.sticky |= abi::CONN_CONNECTED;
        }
        let mut r = reply(d.tag, d.op, 0);
        (r.conn, r.a, r.b, r.c) = (p.conn, u64::from(p.slot), p.remote, p.local);
        self.message(app, ctx, r);
        self.mark_dirty(p.conn);
        if more {
            for lctx in lctxs {
                self.acceptable(app, lctx, port);
            }
        }
    }

    fn violation(&mut self, app: AppKey, reason: u64) {
        if !self.alive(app) {
            return;
        }
        self.violations[(reason as usize).min(VIOLATION_KINDS - 1)] += 1;
        self.drop_app(app, Some(reason));
    }

    fn drop_app(&mut self, key: AppKey, reason: Option<u64>) {
        let Some(app) = self.apps.get_mut(&key) else {
            return;
        };
        if app.dead {
            return;
        }
        app.dead = true;
        if let Some(reason) = reason {
            for (ci, c) in app.ctxs.iter_mut().enumerate() {
                let _ = push_event(&app.region, &app.layout, ci, c, fatal(reason));
                c.posted = true;
                notify(c);
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
            for p in self.accept_q.remove(&port).unwrap_or_default() {
                if self.conns.remove(&p.conn).is_some() {
                    self.abort_quietly(key, p.conn);
                }
            }
        }
        self.conns.retain(|_, c| c.app != key);
        for o in 0..OWNERS {
            self.send(
                o,
                Cmd::AppGone {
                    app: key,
                    graceful: reason.is_none(),
                },
            );
        }
    }

    fn post_events(&mut self) {
        let mut posted = 0u64;
        let mut broken = Vec::new();
        let conns = &mut self.conns;
        for (&key, app) in self.apps.iter_mut().filter(|(_, a)| !a.dead) {
            for (ci, c) in app.ctxs.iter_mut().enumerate() {
                while let Some(&d) = c.messages.front() {
                    match push_event(&app.region, &app.layout, ci, c, d) {
                        Ok(true) => {
                            c.messages.pop_front();
                            c.posted = true;
                            posted += 1;
                        }
                        Ok(false) => break,
                        Err(()) => {
                            broken.push(key);
                            break;
                        }
                    }
                }
                while c.messages.is_empty() {
                    let Some(&h) = c.dirty.front() else {
                        break;
                    };
                    let Some(conn) = conns.get_mut(&h).filter(|x| x.ctx == Some(ci as u16)) else {
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
                    match push_event(&app.region, &app.layout, ci, c, d) {
                        Ok(true) => {
                            c.dirty.pop_front();
                            conn.flags = 0;
                            conn.dirty = false;
                            c.posted = true;
                            posted += 1;
                        }
                        Ok(false) => break,
                        Err(()) => {
                            broken.push(key);
                            break;
                        }
                    }
                }
                notify(c);
            }
        }
        self.events += posted;
        for key in broken {
            self.violation(key, abi::VIOLATION_RING_INDEX);
        }
    }
}

// ---------------------------------------------------------------------------
// The harness: the front, the applications' sides, the owners, the model.

/// Input bytes, read as needed (zeros once they run out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
}

struct Harness {
    front: Front,
    links: Vec<Arc<OwnerLink>>,
    inbox: Inbox,
    counters: Arc<HostIfCounters>,
    sides: BTreeMap<AppKey, AppSide>,
    model: Model,
    /// Owner events queued for the next pass (the model replays them).
    evts: Vec<Vec<Evt>>,
    /// Listeners as the owners know them: (owner, port) -> app.
    listeners: BTreeMap<(usize, u16), AppKey>,
    /// Every handle an owner gave out, with its application.
    handles: Vec<(u64, AppKey)>,
    next_index: u64,
    passes: usize,
}

impl Harness {
    fn new() -> Harness {
        let waker = Arc::new(FrontWaker::new().expect("eventfd"));
        let links: Vec<Arc<OwnerLink>> = (0..OWNERS)
            .map(|_| Arc::new(OwnerLink::new(waker.clone())))
            .collect();
        let inbox: Inbox = Default::default();
        let counters = Arc::new(HostIfCounters::default());
        let front = Front::new(links.clone(), waker, inbox.clone(), counters.clone());
        let mut model = Model::new();
        let mut sides = BTreeMap::new();
        for (key, contexts) in [(A, 2), (B, 1)] {
            let side = AppSide::register(key, contexts, &inbox);
            model.register(key, &side);
            sides.insert(key, side);
        }
        Harness {
            front,
            links,
            inbox,
            counters,
            sides,
            model,
            evts: vec![Vec::new(); OWNERS],
            listeners: BTreeMap::new(),
            handles: Vec::new(),
            next_index: 1,
            passes: 0,
        }
    }

    fn new_handle(&mut self, owner: usize, app: AppKey) -> u64 {
        let h = ((owner as u64 + 1) << 56) | ((self.next_index & 0xFF_FFFF) << 32) | 1;
        self.next_index += 1;
        self.handles.push((h, app));
        h
    }

    fn inject(&mut self, owner: usize, e: Evt) {
        self.evts[owner].push(e);
    }

    /// One pass of the front and of the model, then every check, then the
    /// owners' answers to what they received.
    fn pass(&mut self, gone: &[AppKey]) {
        self.passes += 1;
        for &key in gone {
            self.inbox.lock().push_back(FrontMsg::Gone(key));
        }
        for (o, list) in self.evts.iter().enumerate() {
            for e in list {
                if self.links[o].evts.push(e.to_owner()).is_err() {
                    panic!("owner event queue full");
                }
            }
        }
        let evts = std::mem::replace(&mut self.evts, vec![Vec::new(); OWNERS]);
        self.model.read_flags();
        self.front.fuzz_pass();
        self.model.pass(gone, &evts);

        // What each owner received.
        let mut got: Vec<Vec<Cmd>> = Vec::new();
        for (o, link) in self.links.iter().enumerate() {
            let mut cmds = Vec::new();
            while let Some(c) = link.cmds.pop() {
                cmds.push(Cmd::from_owner(o, c));
            }
            for app in [A, B] {
                assert_eq!(
                    canonical(&cmds, app),
                    canonical(&self.model.cmds[o], app),
                    "commands owner {o} received for app {app} (pass {})",
                    self.passes
                );
            }
            got.push(cmds);
        }

        // What each context was told, and the front's indices and doorbells.
        for (&key, side) in self.sides.iter_mut() {
            let Some(m) = self.model.apps.get(&key).or(self.model.left.get(&key)) else {
                continue;
            };
            for (ci, mc) in m.ctxs.iter().enumerate() {
                let req = side.layout.request_ring(ci as u32);
                let evt = side.layout.event_ring(ci as u32);
                assert_eq!(
                    index(&side.region, req.tail).load(Ordering::Acquire),
                    mc.req_tail,
                    "request tail of app {key} ctx {ci}"
                );
                assert_eq!(
                    index(&side.region, evt.head).load(Ordering::Acquire),
                    mc.evt_head,
                    "event head of app {key} ctx {ci}"
                );
                assert_eq!(
                    side.waiting(ci).load(Ordering::SeqCst),
                    mc.waiting,
                    "app_waiting of app {key} ctx {ci}"
                );
                let rung = side.ctxs[ci].bell.drain().expect("eventfd read");
                assert_eq!(
                    rung,
                    u64::from(mc.rang),
                    "doorbell of app {key} ctx {ci} (pass {}): {mc:?}",
                    self.passes
                );
                if side.ctxs[ci].reading {
                    assert_eq!(
                        side.drain(ci),
                        mc.out,
                        "events of app {key} ctx {ci} (pass {})",
                        self.passes
                    );
                }
            }
        }

        // Counters: every rejection counted under its reason.
        let c = &self.counters;
        let violations: Vec<u64> = c
            .violations
            .iter()
            .map(|v| v.load(Ordering::Relaxed))
            .collect();
        assert_eq!(violations, self.model.violations, "violation counters");
        assert_eq!(c.requests.load(Ordering::Relaxed), self.model.requests);
        assert_eq!(c.events.load(Ordering::Relaxed), self.model.events);
        assert_eq!(
            c.apps_active.load(Ordering::Relaxed),
            self.model.apps_active
        );
        assert_eq!(c.contexts.load(Ordering::Relaxed), self.model.contexts);
        assert_eq!(c.apps_registered.load(Ordering::Relaxed), 2);

        // The owners answer (read in the next pass).
        for (o, cmds) in got.into_iter().enumerate() {
            for cmd in cmds {
                self.owner(o, cmd);
            }
        }
    }

    /// What an owner does with a command (as `hostif::shard` does, minus the
    /// engine): listens succeed unless the tag says otherwise, connects get
    /// a new handle, connection ops are answered.
    fn owner(&mut self, o: usize, cmd: Cmd) {
        match cmd {
            Cmd::Listen {
                app,
                ctx,
                tag,
                port,
                reply,
                ..
            } => {
                self.listeners.insert((o, port), app);
                if reply {
                    let status = if tag % 5 == 4 { -libc::EADDRINUSE } else { 0 };
                    self.inject(
                        o,
                        Evt::Reply {
                            app,
                            ctx,
                            tag,
                            op: abi::OP_LISTEN,
                            status,
                            conn: 0,
                            a: u64::from(port),
                            b: 0,
                            c: 0,
                        },
                    );
                }
            }
            Cmd::Unlisten { app, port } => {
                if self.listeners.get(&(o, port)) == Some(&app) {
                    self.listeners.remove(&(o, port));
                }
            }
            Cmd::AppGone { app, .. } => self.listeners.retain(|_, a| *a != app),
            Cmd::Connect {
                app,
                ctx,
                tag,
                remote,
                ..
            } => {
                let (status, conn) = if tag % 5 == 4 {
                    (-libc::ECONNREFUSED, 0)
                } else {
                    (0, self.new_handle(o, app))
                };
                let local = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000 + o as u16);
                self.inject(
                    o,
                    Evt::Reply {
                        app,
                        ctx,
                        tag,
                        op: abi::OP_CONNECT,
                        status,
                        conn,
                        a: 0,
                        b: abi::pack_addr(remote),
                        c: abi::pack_addr(local),
                    },
                );
            }
            Cmd::ConnOp {
                app,
                ctx,
                tag,
                op,
                conn,
                reply: true,
                ..
            } => self.inject(
                o,
                Evt::Reply {
                    app,
                    ctx,
                    tag,
                    op,
                    status: 0,
                    conn,
                    a: 0,
                    b: 0,
                    c: 0,
                },
            ),
            Cmd::ConnOp { .. } | Cmd::TxPush { .. } | Cmd::RxPop { .. } => {}
        }
    }

    /// A request from A, its fields drawn from the input.
    fn request(&mut self, ctx: usize, input: &mut Input<'_>) {
        const OPS: [u16; 12] = [
            abi::OP_LISTEN,
            abi::OP_ACCEPT,
            abi::OP_CONNECT,
            abi::OP_TX_PUSH,
            abi::OP_RX_POP,
            abi::OP_SHUTDOWN,
            abi::OP_CLOSE,
            abi::OP_ABORT,
            abi::OP_UNLISTEN,
            abi::OP_SETOPT,
            abi::OP_ADOPT,
            abi::OP_INFO,
        ];
        let sel = input.u8();
        let op = match sel % 16 {
            i @ 0..=11 => OPS[usize::from(i)],
            12..=13 => OPS[usize::from(sel / 16 % 12)],
            14 => 0,
            _ => input.u16(),
        };
        let csel = input.u8();
        let conn = match csel {
            0..=199 if !self.handles.is_empty() => {
                self.handles[usize::from(csel) % self.handles.len()].0
            }
            240..=255 => input.u64(),
            _ => 0,
        };
        let asel = input.u8();
        let a = match op {
            abi::OP_LISTEN | abi::OP_UNLISTEN | abi::OP_ACCEPT => match asel % 8 {
                i @ 0..=2 => u64::from(PORTS[usize::from(i)]),
                3 => u64::from(input.u16()),
                4 => u64::from(input.u16()) | 0x1_0000,
                5 => 0,
                _ => input.u64(),
            },
            abi::OP_CONNECT => match asel % 4 {
                0 | 1 => abi::pack_addr(SocketAddrV4::new(
                    Ipv4Addr::new(198, 18, 0, 1),
                    u16::from(asel),
                )),
                2 => input.u64() & 0xFFFF_FFFF_FFFF,
                _ => input.u64(),
            },
            // The options that exist (OPT_* 1..=5), or any.
            abi::OP_SETOPT => match asel % 6 {
                0..=4 => u64::from(asel % 6) + 1,
                _ => input.u64(),
            },
            _ => match asel % 2 {
                0 => u64::from(asel),
                _ => input.u64(),
            },
        };
        let b = if asel & 0x80 != 0 {
            input.u64()
        } else if op == abi::OP_CONNECT {
            // Mostly a controller that exists (CC_*), sometimes not.
            u64::from(input.u8() % 6)
        } else {
            u64::from(input.u8())
        };
        // OP_LISTEN's congestion control: the three that exist, or any.
        let c = match (op, input.u8() % 8) {
            (abi::OP_LISTEN, i @ 0..=4) => u64::from(i),
            (abi::OP_LISTEN, 5) => input.u64(),
            _ => 0,
        };
        let tag = u64::from(input.u8());
        let d = Desc {
            op,
            // Fields requests do not use: whatever the application wrote.
            flags: if sel & 0x20 != 0 { input.u16() } else { 0 },
            status: 0,
            tag,
            conn,
            a,
            b,
            c,
        };
        let side = self.sides.get_mut(&A).expect("A registered");
        side.push(ctx, &d);
    }

    fn run(&mut self, data: &[u8]) {
        // B: listen, connect, and use its connection every round.
        let b_side = self.sides.get_mut(&B).expect("B registered");
        let listen = Desc {
            op: abi::OP_LISTEN,
            tag: 1,
            a: u64::from(B_PORT),
            b: 16,
            ..Desc::default()
        };
        let connect = Desc {
            op: abi::OP_CONNECT,
            tag: 2,
            a: abi::pack_addr(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 9), 9000)),
            ..Desc::default()
        };
        assert!(b_side.push(0, &listen) && b_side.push(0, &connect));
        self.pass(&[]);
        self.pass(&[]);
        let b_conn = self
            .handles
            .iter()
            .find(|h| h.1 == B)
            .expect("B connected")
            .0;
        let mut b_written = 0u64;

        let mut input = Input(data);
        while !input.0.is_empty() && self.passes < MAX_PASSES {
            let kind = input.u8();
            let ctx = usize::from(kind >> 7);
            match kind % 16 {
                0..=6 => self.request(ctx, &mut input),
                // A publishes a request head: up to a ring ahead of the
                // front's tail (stale entries), or anything.
                7 => {
                    let side = self.sides.get_mut(&A).expect("A registered");
                    let ring = side.layout.request_ring(ctx as u32);
                    let tail = index(&side.region, ring.tail).load(Ordering::Acquire);
                    let v = input.u8();
                    let head = if v < 0xF0 {
                        tail.wrapping_add(u32::from(v % 12))
                    } else {
                        input.u32()
                    };
                    side.set_head(ctx, head);
                }
                // A writes an event tail: one that lies about what it read
                // (up to a ring behind the head), or anything.
                8 => {
                    let side = self.sides.get_mut(&A).expect("A registered");
                    let ring = side.layout.event_ring(ctx as u32);
                    let head = index(&side.region, ring.head).load(Ordering::Acquire);
                    let v = input.u8();
                    let tail = if v < 0xF0 {
                        head.wrapping_sub(u32::from(v % 12))
                    } else {
                        input.u32()
                    };
                    side.set_evt_tail(ctx, tail);
                }
                9 => {
                    let v = u32::from(input.u8() % 4);
                    let side = self.sides.get(&A).expect("A registered");
                    side.waiting(ctx).store(v, Ordering::SeqCst);
                }
                // An owner reports a connection accepted on a port.
                10 => {
                    let o = usize::from(input.u8()) % OWNERS;
                    let sel = input.u8();
                    let known: Vec<(u16, AppKey)> = self
                        .listeners
                        .iter()
                        .filter(|((lo, _), _)| *lo == o)
                        .map(|((_, p), a)| (*p, *a))
                        .collect();
                    let (port, app) = match known.get(usize::from(sel % 8)) {
                        Some(&l) if sel < 0xC0 => l,
                        _ => (
                            PORTS[usize::from(sel % 3)],
                            if sel & 1 == 0 { A } else { B },
                        ),
                    };
                    let conn = self.new_handle(o, app);
                    let e = Evt::Accepted {
                        app,
                        port,
                        conn,
                        slot: u32::from(input.u8()),
                        remote: u64::from(input.u32()),
                        local: u64::from(input.u32()),
                    };
                    self.inject(o, e);
                }
                // An owner reports news on a connection.
                11 => {
                    let sel = input.u8();
                    let Some(&(conn, mut app)) = self
                        .handles
                        .get(usize::from(sel) % self.handles.len().max(1))
                    else {
                        continue;
                    };
                    if sel & 0x80 != 0 {
                        app = if app == A { B } else { A };
                    }
                    let o = handle::decode(conn, OWNERS)
                        .expect("issued handles decode")
                        .0;
                    let status = match input.u8() {
                        0..=0xEF => 0,
                        v => -i32::from(v & 0x0F),
                    };
                    let e = Evt::Conn {
                        app,
                        conn,
                        flags: u16::from(input.u8() & 0x3F),
                        rx_ready: u64::from(input.u16()),
                        tx_acked: u64::from(input.u16()),
                        status,
                    };
                    self.inject(o, e);
                }
                // An owner-side check failed for A.
                12 => {
                    let v = input.u8();
                    let reason = abi::VIOLATION_FOREIGN_CONN + u64::from(v % 4);
                    self.inject(usize::from(v >> 7), Evt::Violation { app: A, reason });
                }
                _ => {
                    // B pushes what it wrote since the last round.
                    b_written += 1;
                    let push = Desc {
                        op: abi::OP_TX_PUSH,
                        conn: b_conn,
                        a: b_written,
                        ..Desc::default()
                    };
                    let side = self.sides.get_mut(&B).expect("B registered");
                    assert!(side.push(0, &push), "B's request ring is drained");
                    self.pass(&[]);
                }
            }
        }
        // Settle: answers to the last requests, then their replies.
        self.pass(&[]);
        self.pass(&[]);
        assert!(self.model.alive(B), "the bystander was closed");

        // Both leave (what was left in their rings still counts).
        self.pass(&[A, B]);
        self.pass(&[]);
        self.pass(&[]);
        assert_eq!(
            format!("{:?}", self.front),
            "Front { apps: 0, conns: 0 }",
            "the front kept state of applications that left"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    Harness::new().run(data);
});
