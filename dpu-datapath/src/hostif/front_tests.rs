//! The front's descriptor validator, one rule per test, with the boundary
//! on both sides (docs/hostif-abi.md §2, §3, §7).
//!
//! Real components: a sealed memfd [`Region`] per application with the
//! service's rings ([`HostApp`]), the application's side of the same rings
//! ([`RingProducer`] for requests, [`RingConsumer`] for events), and a real
//! [`Front`] driven one pass at a time. The owners are the front's real
//! [`OwnerLink`] queues: the test drains the commands the front sends and
//! posts the owners' events itself.
//!
//! TX and RX offsets are not the front's check: it forwards them and the
//! owner's engine judges them against the connection's buffers. The `bounds`
//! module at the end runs those rules through a real [`HostIfShard`] and
//! engine on a simulated wire.

use super::*;
use crate::app::ConnId;
use crate::hostif::app::AppInfo;
use crate::hostif::handle;
use doca_bindings::abi::{pack_addr, Layout};
use doca_bindings::{Doorbell, Region, RingConsumer, RingProducer};
use std::net::SocketAddrV4;

/// Two contexts, and the smallest rings and buffers the ABI allows.
const LAYOUT: Layout = Layout {
    contexts: 2,
    ring_entries: 8,
    slots: 4,
    rx_buf_size: 4096,
    tx_buf_size: 4096,
};
const CAP: u32 = LAYOUT.ring_entries;

/// A command the front sent an owner, without the parts that cannot be
/// compared (buffer sources, reply channels).
#[derive(Debug, PartialEq)]
enum Sent {
    Listen {
        app: AppKey,
        ctx: u16,
        tag: u64,
        port: u16,
        backlog: u32,
        cc: Option<crate::proto::CcAlgorithm>,
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
        cc: Option<crate::proto::CcAlgorithm>,
    },
    TxPush {
        app: AppKey,
        conn: ConnId,
        written: u64,
    },
    RxPop {
        app: AppKey,
        conn: ConnId,
        read: u64,
    },
    ConnOp {
        app: AppKey,
        ctx: u16,
        tag: u64,
        op: u16,
        conn: ConnId,
        a: u64,
        b: u64,
        reply: bool,
    },
    AppGone {
        app: AppKey,
        graceful: bool,
    },
    Dump,
    MoveFence {
        host: u64,
        conn: ConnId,
    },
    MoveSettled {
        app: AppKey,
        conn: ConnId,
        release: Option<bool>,
    },
}

impl From<OwnerCmd> for Sent {
    fn from(c: OwnerCmd) -> Sent {
        match c {
            OwnerCmd::Listen {
                app,
                ctx,
                tag,
                port,
                backlog,
                cc,
                reply,
                ..
            } => Sent::Listen {
                app,
                ctx,
                tag,
                port,
                backlog,
                cc,
                reply,
            },
            OwnerCmd::Unlisten { app, port } => Sent::Unlisten { app, port },
            OwnerCmd::Connect {
                app,
                ctx,
                tag,
                remote,
                cc,
                ..
            } => Sent::Connect {
                app,
                ctx,
                tag,
                remote,
                cc,
            },
            OwnerCmd::TxPush { app, conn, written } => Sent::TxPush { app, conn, written },
            OwnerCmd::RxPop { app, conn, read } => Sent::RxPop { app, conn, read },
            OwnerCmd::ConnOp {
                app,
                ctx,
                tag,
                op,
                conn,
                a,
                b,
                reply,
            } => Sent::ConnOp {
                app,
                ctx,
                tag,
                op,
                conn,
                a,
                b,
                reply,
            },
            OwnerCmd::AppGone { app, graceful } => Sent::AppGone { app, graceful },
            OwnerCmd::Dump { .. } => Sent::Dump,
            OwnerCmd::MoveFence { host, conn } => Sent::MoveFence { host, conn },
            OwnerCmd::MoveSettled { app, conn, release } => {
                Sent::MoveSettled { app, conn, release }
            }
        }
    }
}

/// The application's side of a registration: its ends of the rings.
struct App {
    key: AppKey,
    region: Arc<Region>,
    req: Vec<RingProducer>,
    evt: Vec<RingConsumer>,
    /// The context doorbells as the application holds them.
    bells: Vec<Doorbell>,
}

impl App {
    fn post(&mut self, ctx: usize, d: Desc) {
        assert!(self.req[ctx].push(&d).unwrap(), "request ring full");
    }

    fn op(&mut self, ctx: usize, op: u16, tag: u64, conn: u64, a: u64, b: u64) {
        self.post(
            ctx,
            Desc {
                op,
                tag,
                conn,
                a,
                b,
                ..Desc::default()
            },
        );
    }

    /// Every event waiting on context `ctx`.
    fn events(&mut self, ctx: usize) -> Vec<Desc> {
        let mut v = Vec::new();
        self.evt[ctx]
            .pop_many(&mut v, LAYOUT.ring_entries as usize)
            .unwrap();
        v
    }

    fn index(&self, offset: usize) -> &std::sync::atomic::AtomicU32 {
        self.region.atomic_u32(offset).unwrap()
    }
}

/// A front with `owners` owner queues the test plays.
struct Bench {
    front: Front,
    links: Vec<Arc<OwnerLink>>,
    counters: Arc<HostIfCounters>,
    inbox: Inbox,
}

impl Bench {
    fn new(owners: usize) -> Bench {
        let waker = Arc::new(FrontWaker::new().unwrap());
        let links: Vec<Arc<OwnerLink>> = (0..owners)
            .map(|_| Arc::new(OwnerLink::new(waker.clone())))
            .collect();
        let counters = Arc::new(HostIfCounters::default());
        let inbox: Inbox = Arc::new(Mutex::new(VecDeque::new()));
        let front = Front::new(links.clone(), waker, inbox.clone(), counters.clone())
            .with_dma(crate::dma::DmaConfig::immediate());
        Bench {
            front,
            links,
            counters,
            inbox,
        }
    }

    /// Registers application `key` as the control socket does.
    fn register(&mut self, key: AppKey) -> App {
        let region = Region::create("front-test", LAYOUT.region_size()).unwrap();
        region.write_header(&LAYOUT).unwrap();
        let region = Arc::new(region);
        let bells: Vec<Doorbell> = (0..LAYOUT.contexts)
            .map(|_| Doorbell::new().unwrap())
            .collect();
        let app_bells = bells
            .iter()
            .map(|b| Doorbell::from_fd(b.fd().try_clone_to_owned().unwrap()).unwrap())
            .collect();
        let host = HostApp::new(
            AppInfo {
                key,
                name: format!("app{key}"),
                pid: 1000 + key as u32,
            },
            region.clone(),
            LAYOUT,
            bells,
            Doorbell::new().unwrap(),
            &crate::dma::DmaConfig::immediate(),
        )
        .unwrap();
        let app = App {
            key,
            req: (0..LAYOUT.contexts)
                .map(|i| RingProducer::new(region.clone(), LAYOUT.request_ring(i)).unwrap())
                .collect(),
            evt: (0..LAYOUT.contexts)
                .map(|i| RingConsumer::new(region.clone(), LAYOUT.event_ring(i)).unwrap())
                .collect(),
            region,
            bells: app_bells,
        };
        self.inbox
            .lock()
            .push_back(FrontMsg::Register(Box::new(host)));
        self.pass();
        app
    }

    fn pass(&mut self) -> usize {
        self.front.pass()
    }

    /// Everything sent to the owners since the last call: (owner, command).
    fn sent(&mut self) -> Vec<(usize, Sent)> {
        let mut v = Vec::new();
        for (o, l) in self.links.iter().enumerate() {
            while let Some(c) = l.cmds.pop() {
                v.push((o, Sent::from(c)));
            }
        }
        v
    }

    fn owner_event(&mut self, owner: usize, e: OwnerEvt) {
        self.links[owner].evts.push(e).unwrap();
    }

    fn violations(&self, reason: u64) -> u64 {
        self.counters.violations[reason as usize].load(Ordering::Relaxed)
    }

    fn dead(&self, app: &App) -> bool {
        self.front.apps.get(&app.key).is_some_and(|a| a.dead)
    }

    /// A connection of `app` made through `OP_CONNECT` on context `ctx`,
    /// which its owner `owner` answers with handle (index, generation).
    fn connected(
        &mut self,
        app: &mut App,
        ctx: usize,
        owner: usize,
        index: u32,
        generation: u32,
    ) -> u64 {
        let tag = 0xC0 + u64::from(index);
        app.op(ctx, abi::OP_CONNECT, tag, 0, pack_addr(peer(80)), 0);
        self.pass();
        let sent = self.sent();
        assert!(
            matches!(sent[..], [(_, Sent::Connect { app: a, tag: t, .. })] if a == app.key && t == tag),
            "{sent:?}"
        );
        let conn = handle::encode(owner, ConnId { index, generation });
        self.owner_event(
            owner,
            OwnerEvt::Reply {
                app: app.key,
                ctx: ctx as u16,
                tag,
                op: abi::OP_CONNECT,
                status: 0,
                conn,
                a: 1,
                b: pack_addr(peer(80)),
                c: pack_addr(local(40000)),
            },
        );
        self.pass();
        let ev = app.events(ctx);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            (ev[0].op, ev[0].status, ev[0].conn),
            (abi::EV_REPLY, 0, conn)
        );
        conn
    }

    /// `app` listens on `port` (context `ctx`), the owners having agreed.
    fn listening(&mut self, app: &mut App, ctx: usize, port: u16) {
        app.op(ctx, abi::OP_LISTEN, 0x11, 0, port.into(), 0);
        self.pass();
        assert_eq!(self.sent().len(), self.links.len(), "one Listen per owner");
        assert!(self.front.ports.contains_key(&port));
    }
}

fn peer(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([198, 18, 0, 9].into(), port)
}

fn local(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([198, 18, 0, 2].into(), port)
}

fn id(index: u32, generation: u32) -> ConnId {
    ConnId { index, generation }
}

/// `app` was closed for `reason`: counted once, `EV_FATAL` (-EPROTO,
/// a = reason) as the last event of every context, its connections reset
/// on every owner. Returns the other commands sent meanwhile.
fn assert_closed(b: &mut Bench, app: &mut App, reason: u64) -> Vec<(usize, Sent)> {
    assert_eq!(b.violations(reason), 1, "counted under reason {reason}");
    assert_eq!(b.counters.violations_total(), 1, "and only there");
    assert!(b.dead(app), "the application is closed");
    for ctx in 0..LAYOUT.contexts as usize {
        let ev = app.events(ctx);
        assert_eq!(ev.last(), Some(&fatal(reason)), "context {ctx}: {ev:?}");
        assert_eq!(
            (ev.last().unwrap().status, ev.last().unwrap().a),
            (-libc::EPROTO, reason)
        );
    }
    let mut sent = b.sent();
    for o in 0..b.links.len() {
        let gone = (
            o,
            Sent::AppGone {
                app: app.key,
                graceful: false,
            },
        );
        let n = sent.iter().filter(|s| **s == gone).count();
        assert_eq!(
            n, 1,
            "owner {o} resets the application's connections once: {sent:?}"
        );
    }
    sent.retain(|(_, s)| !matches!(s, Sent::AppGone { .. }));
    sent
}

/// Nothing was closed or counted.
fn assert_alive(b: &Bench, app: &App) {
    assert!(!b.dead(app), "the application is served");
    assert_eq!(b.counters.violations_total(), 0, "no violation counted");
}

// ---- §2 ring indices -----------------------------------------------------

#[test]
fn a_request_ring_exactly_full_is_served() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    for tag in 0..u64::from(CAP) {
        app.op(0, abi::OP_UNLISTEN, tag, 0, 7, 0); // port 7: not listening
    }
    assert_eq!(
        app.index(LAYOUT.request_ring(0).head)
            .load(Ordering::SeqCst),
        CAP,
        "head - tail == capacity"
    );
    b.pass();
    assert_alive(&b, &app);
    let ev = app.events(0);
    let want: Vec<Desc> = (0..u64::from(CAP))
        .map(|t| reply(t, abi::OP_UNLISTEN, -libc::EINVAL))
        .collect();
    assert_eq!(ev, want, "every request answered, in order");
}

#[test]
fn a_request_head_one_past_capacity_closes_the_app() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    for port in 0..CAP as u64 {
        app.op(0, abi::OP_LISTEN, port, 0, 1000 + port, 0); // all valid
    }
    app.index(LAYOUT.request_ring(0).head)
        .store(CAP + 1, Ordering::SeqCst);
    b.pass();
    let other = assert_closed(&mut b, &mut app, abi::VIOLATION_RING_INDEX);
    assert_eq!(other, vec![], "no request of the bad ring was run");
    assert!(b.front.ports.is_empty());
}

#[test]
fn a_request_head_behind_the_tail_closes_the_app() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    app.index(LAYOUT.request_ring(1).head)
        .store(u32::MAX, Ordering::SeqCst); // tail - 1
    b.pass();
    assert_eq!(
        assert_closed(&mut b, &mut app, abi::VIOLATION_RING_INDEX),
        vec![]
    );
}

#[test]
fn an_event_tail_capacity_behind_is_a_full_ring_one_more_is_a_violation() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let tail = app.index(LAYOUT.event_ring(0).tail);
    // The front's head is 0: a tail 8 behind says the ring is full.
    tail.store(0u32.wrapping_sub(CAP), Ordering::SeqCst);
    app.op(0, abi::OP_UNLISTEN, 1, 0, 7, 0);
    b.pass();
    b.pass();
    assert_alive(&b, &app);
    assert_eq!(
        b.front.apps[&1].ctxs[0].messages.len(),
        1,
        "the reply waits for room"
    );
    app.index(LAYOUT.event_ring(0).tail)
        .store(0u32.wrapping_sub(CAP + 1), Ordering::SeqCst);
    b.pass();
    assert_eq!(b.violations(abi::VIOLATION_RING_INDEX), 1);
    assert!(b.dead(&app));
    assert_eq!(
        app.events(1),
        vec![fatal(abi::VIOLATION_RING_INDEX)],
        "the other context is told"
    );
    assert_eq!(
        b.front.apps[&1].ctxs[0].events.head(),
        0,
        "nothing was written to the broken ring"
    );
}

#[test]
fn a_full_event_ring_holds_back_requests_without_a_violation() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let burst = |app: &mut App, base: u64| {
        for t in 0..u64::from(CAP) {
            app.op(0, abi::OP_UNLISTEN, base + t, 0, 7, 0);
        }
    };
    burst(&mut app, 0);
    b.pass(); // 8 replies fill the event ring
    burst(&mut app, 100);
    b.pass(); // 8 more replies wait in the front
    burst(&mut app, 200);
    b.pass();
    b.pass();
    assert_alive(&b, &app);
    assert_eq!(b.front.apps[&1].ctxs[0].messages.len(), CAP as usize);
    assert_eq!(
        app.index(LAYOUT.request_ring(0).tail)
            .load(Ordering::SeqCst),
        2 * CAP,
        "the third burst is left in the request ring"
    );
    let mut tags: Vec<u64> = Vec::new();
    for _ in 0..4 {
        tags.extend(app.events(0).iter().map(|d| d.tag));
        b.pass();
    }
    let want: Vec<u64> = (0..8).chain(100..108).chain(200..208).collect();
    assert_eq!(tags, want, "all answered, in order, once the ring drains");
    assert_alive(&b, &app);
}

// ---- §3 ops ----------------------------------------------------------------

#[test]
fn unknown_ops_close_the_app() {
    // Below the first op, just past the last, the event range, the top.
    for op in [
        0,
        abi::OP_INFO + 1,
        0x7FFF,
        abi::EV_REPLY,
        abi::EV_FATAL,
        u16::MAX,
    ] {
        let mut b = Bench::new(2);
        let mut app = b.register(1);
        app.op(1, op, 5, 0, 0, 0);
        b.pass();
        let other = assert_closed(&mut b, &mut app, abi::VIOLATION_UNKNOWN_OP);
        assert_eq!(other, vec![], "op {op:#x}");
    }
}

#[test]
fn known_ops_on_an_owned_connection_go_to_its_owner() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let conn = b.connected(&mut app, 0, 1, 77, 3);
    let cid = id(77, 3);
    let k = app.key;
    app.op(1, abi::OP_TX_PUSH, 1, conn, 4096, 0);
    app.op(1, abi::OP_RX_POP, 2, conn, 10, 0);
    app.op(1, abi::OP_SETOPT, 3, conn, abi::OPT_NODELAY, 1);
    app.op(1, abi::OP_SETOPT, 4, conn, 99, 1); // unknown option: the owner says ENOPROTOOPT
    app.op(1, abi::OP_SHUTDOWN, 5, conn, 0, 0);
    app.op(1, abi::OP_ABORT, 6, conn, 0, 0);
    b.pass();
    assert_alive(&b, &app);
    let op = |tag, op, a, b| Sent::ConnOp {
        app: k,
        ctx: 1,
        tag,
        op,
        conn: cid,
        a,
        b,
        reply: true,
    };
    assert_eq!(
        b.sent(),
        vec![
            (
                1,
                Sent::TxPush {
                    app: k,
                    conn: cid,
                    written: 4096
                }
            ),
            (
                1,
                Sent::RxPop {
                    app: k,
                    conn: cid,
                    read: 10
                }
            ),
            (1, op(3, abi::OP_SETOPT, abi::OPT_NODELAY, 1)),
            (1, op(4, abi::OP_SETOPT, 99, 1)),
            (1, op(5, abi::OP_SHUTDOWN, 0, 0)),
            (1, op(6, abi::OP_ABORT, 0, 0)),
        ],
        "to owner 1 only, arguments unchanged"
    );
}

#[test]
fn the_front_forwards_stream_offsets_for_the_owner_to_judge() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let conn = b.connected(&mut app, 0, 0, 5, 1);
    app.op(0, abi::OP_TX_PUSH, 0, conn, u64::MAX, 0);
    app.op(0, abi::OP_RX_POP, 0, conn, u64::MAX, 0);
    app.op(0, abi::OP_TX_PUSH, 0, conn, 0, 0);
    b.pass();
    assert_alive(&b, &app);
    let k = app.key;
    assert_eq!(
        b.sent(),
        vec![
            (
                0,
                Sent::TxPush {
                    app: k,
                    conn: id(5, 1),
                    written: u64::MAX
                }
            ),
            (
                0,
                Sent::RxPop {
                    app: k,
                    conn: id(5, 1),
                    read: u64::MAX
                }
            ),
            (
                0,
                Sent::TxPush {
                    app: k,
                    conn: id(5, 1),
                    written: 0
                }
            ),
        ]
    );
}

#[test]
fn owner_reported_violations_close_the_app() {
    for reason in [
        abi::VIOLATION_TX_BOUNDS,
        abi::VIOLATION_RX_BOUNDS,
        abi::VIOLATION_FOREIGN_CONN,
    ] {
        let mut b = Bench::new(2);
        let mut app = b.register(1);
        b.owner_event(
            1,
            OwnerEvt::Violation {
                app: 1,
                reason,
                detail: "test",
            },
        );
        b.pass();
        assert_eq!(assert_closed(&mut b, &mut app, reason), vec![]);
        // Reported again (another owner, the same pass's backlog): not
        // counted twice, nothing more posted.
        b.owner_event(
            0,
            OwnerEvt::Violation {
                app: 1,
                reason,
                detail: "test",
            },
        );
        b.pass();
        assert_eq!(b.counters.violations_total(), 1);
        assert_eq!(app.events(0), vec![]);
        assert_eq!(b.sent(), vec![]);
    }
}

#[test]
fn a_violation_for_an_unknown_app_is_ignored() {
    let mut b = Bench::new(1);
    let app = b.register(1);
    b.owner_event(
        0,
        OwnerEvt::Violation {
            app: 2,
            reason: abi::VIOLATION_TX_BOUNDS,
            detail: "test",
        },
    );
    b.pass();
    assert_alive(&b, &app);
    assert_eq!(b.sent(), vec![]);
}

#[test]
fn violation_reasons_past_the_table_are_counted_in_its_last_entry() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    b.owner_event(
        0,
        OwnerEvt::Violation {
            app: 1,
            reason: 1000,
            detail: "test",
        },
    );
    b.pass();
    assert_eq!(
        b.violations(super::super::VIOLATION_KINDS as u64 - 1),
        1,
        "clamped, never out of bounds"
    );
    assert_eq!(app.events(0), vec![fatal(1000)]);
}

// ---- connection handles ------------------------------------------------------

const CONN_OPS: [u16; 6] = [
    abi::OP_TX_PUSH,
    abi::OP_RX_POP,
    abi::OP_SHUTDOWN,
    abi::OP_CLOSE,
    abi::OP_ABORT,
    abi::OP_SETOPT,
];

#[test]
fn every_connection_op_rejects_handle_zero() {
    for op in CONN_OPS {
        let mut b = Bench::new(1);
        let mut app = b.register(1);
        app.op(0, op, 1, 0, 0, 0);
        b.pass();
        let other = assert_closed(&mut b, &mut app, abi::VIOLATION_FOREIGN_CONN);
        assert_eq!(other, vec![], "op {op}");
    }
}

#[test]
fn another_apps_handle_closes_only_the_offender() {
    for op in CONN_OPS {
        let mut b = Bench::new(2);
        let mut owner_app = b.register(1);
        let mut thief = b.register(2);
        let conn = b.connected(&mut owner_app, 0, 1, 9, 4);
        thief.op(0, op, 1, conn, 0, 0);
        b.pass();
        let other = assert_closed(&mut b, &mut thief, abi::VIOLATION_FOREIGN_CONN);
        assert_eq!(other, vec![], "op {op}: nothing reached the owner");
        // The rightful application is untouched and still served.
        assert!(!b.dead(&owner_app));
        assert!(b.front.conns.contains_key(&conn));
        assert_eq!(owner_app.events(0), vec![]);
        owner_app.op(0, abi::OP_TX_PUSH, 2, conn, 100, 0);
        b.pass();
        assert_eq!(
            b.sent(),
            vec![(
                1,
                Sent::TxPush {
                    app: 1,
                    conn: id(9, 4),
                    written: 100
                }
            )]
        );
    }
}

#[test]
fn forged_handles_close_the_app() {
    let genuine = handle::encode(0, id(5, 7));
    let forged = [
        ("generation + 1", handle::encode(0, id(5, 8))),
        ("generation - 1", handle::encode(0, id(5, 6))),
        ("another index", handle::encode(0, id(6, 7))),
        ("another owner", handle::encode(1, id(5, 7))),
        ("owner past the last", handle::encode(2, id(5, 7))),
        ("owner byte 0", genuine & !(0xFF << 56)),
        ("owner byte 0xFF", genuine | (0xFF << 56)),
        ("all ones", u64::MAX),
    ];
    for (what, h) in forged {
        let mut b = Bench::new(2);
        let mut app = b.register(1);
        assert_eq!(b.connected(&mut app, 0, 0, 5, 7), genuine);
        app.op(0, abi::OP_TX_PUSH, 1, genuine, 1, 0);
        b.pass();
        assert_eq!(b.sent().len(), 1, "{what}: the genuine handle works");
        app.op(0, abi::OP_TX_PUSH, 2, h, 1, 0);
        b.pass();
        let other = assert_closed(&mut b, &mut app, abi::VIOLATION_FOREIGN_CONN);
        assert_eq!(other, vec![], "{what}");
    }
}

#[test]
fn a_closed_or_aborted_handle_is_foreign_afterwards() {
    for op in [abi::OP_CLOSE, abi::OP_ABORT] {
        let mut b = Bench::new(1);
        let mut app = b.register(1);
        let conn = b.connected(&mut app, 0, 0, 3, 1);
        app.op(0, op, 1, conn, 0, 0);
        b.pass();
        assert_eq!(b.sent().len(), 1, "the close itself is forwarded");
        assert!(!b.front.conns.contains_key(&conn));
        app.op(0, abi::OP_TX_PUSH, 2, conn, 1, 0);
        b.pass();
        assert_eq!(
            assert_closed(&mut b, &mut app, abi::VIOLATION_FOREIGN_CONN),
            vec![]
        );
    }
}

#[test]
fn a_shut_down_handle_stays_usable() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let conn = b.connected(&mut app, 0, 0, 3, 1);
    app.op(0, abi::OP_SHUTDOWN, 1, conn, 0, 0);
    app.op(0, abi::OP_RX_POP, 2, conn, 0, 0);
    b.pass();
    assert_alive(&b, &app);
    assert_eq!(b.sent().len(), 2);
}

// ---- listen / unlisten / accept / connect arguments ------------------------

#[test]
fn listen_ports_and_backlogs_at_their_bounds() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    // (port field, backlog field, accepted): no rule reserves low ports.
    let cases: [(u64, u64, bool); 8] = [
        (0, 0, false),
        (1, 0, true),
        (80, 0, true),
        (65535, 0, true),
        (65536, 0, false),
        (0x1_0000 + 81, 0, false), // port 81 in the low 16 bits
        (82, u64::from(u32::MAX), true),
        (83, u64::from(u32::MAX) + 1, false),
    ];
    for (tag, (port, backlog, ok)) in cases.into_iter().enumerate() {
        let tag = tag as u64;
        app.op(0, abi::OP_LISTEN, tag, 0, port, backlog);
        b.pass();
        let sent = b.sent();
        if ok {
            let want: Vec<(usize, Sent)> = (0..2)
                .map(|o| {
                    (
                        o,
                        Sent::Listen {
                            app: 1,
                            ctx: 0,
                            tag,
                            port: port as u16,
                            backlog: backlog as u32,
                            cc: None,
                            reply: o == 0,
                        },
                    )
                })
                .collect();
            assert_eq!(
                sent, want,
                "port {port} backlog {backlog}: every owner, one answers"
            );
            assert_eq!(app.events(0), vec![], "the owner answers");
        } else {
            assert_eq!(sent, vec![], "port {port} backlog {backlog}");
            assert_eq!(
                app.events(0),
                vec![reply(tag, abi::OP_LISTEN, -libc::EINVAL)],
                "port {port} backlog {backlog}: EINVAL, not a violation"
            );
        }
    }
    assert_alive(&b, &app);
    let mut ports: Vec<u16> = b.front.ports.keys().copied().collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![1, 80, 82, 65535]);
}

#[test]
fn listen_and_connect_carry_the_congestion_control_and_refuse_unknown_ones() {
    use crate::proto::CcAlgorithm;
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let desc = |op, tag, a, b, c| Desc {
        op,
        tag,
        a,
        b,
        c,
        ..Desc::default()
    };
    // Unknown controllers: ENOENT (as Linux's TCP_CONGESTION), not a
    // violation, and nothing reaches the owners.
    app.post(0, desc(abi::OP_LISTEN, 1, 80, 0, 5));
    app.post(
        0,
        desc(abi::OP_CONNECT, 2, pack_addr(peer(80)), u64::MAX, 0),
    );
    b.pass();
    assert_eq!(
        app.events(0),
        vec![
            reply(1, abi::OP_LISTEN, -libc::ENOENT),
            reply(2, abi::OP_CONNECT, -libc::ENOENT)
        ]
    );
    assert_eq!(b.sent(), vec![]);
    assert!(b.front.ports.is_empty(), "the port was not taken");
    // Known ones travel with the request; 0 is the service's default.
    app.post(0, desc(abi::OP_LISTEN, 3, 80, 0, abi::CC_DCTCP));
    app.post(
        0,
        desc(abi::OP_CONNECT, 4, pack_addr(peer(81)), abi::CC_RENO, 0),
    );
    app.post(
        0,
        desc(abi::OP_CONNECT, 5, pack_addr(peer(82)), abi::CC_DEFAULT, 0),
    );
    app.post(
        0,
        desc(abi::OP_CONNECT, 6, pack_addr(peer(83)), abi::CC_TIMELY, 0),
    );
    app.post(
        0,
        desc(
            abi::OP_CONNECT,
            7,
            pack_addr(peer(84)),
            abi::CC_DCTCP_RATE,
            0,
        ),
    );
    b.pass();
    let sent = b.sent();
    let listen_cc: Vec<_> = sent
        .iter()
        .filter_map(|(_, s)| match s {
            Sent::Listen { cc, .. } => Some(*cc),
            _ => None,
        })
        .collect();
    assert_eq!(listen_cc, vec![Some(CcAlgorithm::Dctcp); 2], "every owner");
    let mut connect_cc: Vec<_> = sent
        .iter()
        .filter_map(|(_, s)| match s {
            Sent::Connect { tag, cc, .. } => Some((*tag, *cc)),
            _ => None,
        })
        .collect();
    // Each goes to the owner of its tuple: in tag order per owner.
    connect_cc.sort_unstable_by_key(|&(tag, _)| tag);
    assert_eq!(
        connect_cc,
        vec![
            (4, Some(CcAlgorithm::Reno)),
            (5, None),
            (6, Some(CcAlgorithm::Timely)),
            (7, Some(CcAlgorithm::DctcpRate))
        ]
    );
    assert_alive(&b, &app);
}

#[test]
fn a_port_in_use_is_eaddrinuse_for_anyone() {
    let mut b = Bench::new(1);
    let mut first = b.register(1);
    let mut second = b.register(2);
    b.listening(&mut first, 1, 8080);
    first.op(0, abi::OP_LISTEN, 2, 0, 8080, 0);
    second.op(0, abi::OP_LISTEN, 3, 0, 8080, 0);
    b.pass();
    assert_eq!(
        first.events(0),
        vec![reply(2, abi::OP_LISTEN, -libc::EADDRINUSE)]
    );
    assert_eq!(
        second.events(0),
        vec![reply(3, abi::OP_LISTEN, -libc::EADDRINUSE)]
    );
    assert_eq!(b.sent(), vec![]);
    assert_eq!(b.front.ports[&8080].app, 1);
    assert_eq!(b.counters.violations_total(), 0);
}

#[test]
fn reuseport_listeners_of_one_application_share_the_port_until_the_last_closes() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let mut other = b.register(2);
    let listen = |tag: u64, flags: u64| Desc {
        op: abi::OP_LISTEN,
        tag,
        a: 7000,
        c: flags,
        ..Desc::default()
    };
    app.post(0, listen(1, abi::LISTEN_REUSEPORT));
    b.pass();
    assert_eq!(b.sent().len(), 2, "one Listen per owner");
    // A second socket with SO_REUSEPORT, on another context, before the
    // owners answered the first: it gets their answer with it, and nothing
    // new goes to the owners.
    app.post(1, listen(2, abi::LISTEN_REUSEPORT));
    b.pass();
    assert_eq!(app.events(1), vec![]);
    b.owner_event(
        0,
        OwnerEvt::Reply {
            app: 1,
            ctx: 0,
            tag: 1,
            op: abi::OP_LISTEN,
            status: 0,
            conn: 0,
            a: 7000,
            b: 0,
            c: 0,
        },
    );
    b.pass();
    let answer = |tag: u64, status: i32| Desc {
        a: 7000,
        ..reply(tag, abi::OP_LISTEN, status)
    };
    assert_eq!(app.events(0), vec![answer(1, 0)]);
    assert_eq!(app.events(1), vec![answer(2, 0)]);
    // Without SO_REUSEPORT, or from another application: EADDRINUSE.
    app.post(1, listen(3, 0));
    other.post(0, listen(4, abi::LISTEN_REUSEPORT));
    b.pass();
    assert_eq!(
        app.events(1),
        vec![reply(3, abi::OP_LISTEN, -libc::EADDRINUSE)]
    );
    assert_eq!(
        other.events(0),
        vec![reply(4, abi::OP_LISTEN, -libc::EADDRINUSE)]
    );
    assert_eq!(b.sent(), vec![]);
    // A connection arrives: both sockets hear of it.
    let c1 = handle::encode(0, id(1, 1));
    b.owner_event(
        0,
        OwnerEvt::Accepted {
            app: 1,
            port: 7000,
            conn: c1,
            slot: 2,
            remote: pack_addr(peer(5555)),
            local: pack_addr(local(7000)),
        },
    );
    b.pass();
    let acceptable = Desc {
        op: abi::EV_ACCEPTABLE,
        a: 7000,
        ..Desc::default()
    };
    assert_eq!(app.events(0), vec![acceptable]);
    assert_eq!(app.events(1), vec![acceptable]);
    // One socket closes: the port stays listened on, the other accepts.
    app.op(0, abi::OP_UNLISTEN, 5, 0, 7000, 0);
    b.pass();
    assert_eq!(app.events(0), vec![reply(5, abi::OP_UNLISTEN, 0)]);
    assert_eq!(b.sent(), vec![]);
    app.op(1, abi::OP_ACCEPT, 6, 0, 7000, 0);
    b.pass();
    let mut r = reply(6, abi::OP_ACCEPT, 0);
    (r.conn, r.a, r.b, r.c) = (c1, 2, pack_addr(peer(5555)), pack_addr(local(7000)));
    assert_eq!(app.events(1), vec![r]);
    // The last one closes: the owners stop listening.
    app.op(1, abi::OP_UNLISTEN, 7, 0, 7000, 0);
    b.pass();
    assert_eq!(app.events(1), vec![reply(7, abi::OP_UNLISTEN, 0)]);
    assert!(!b.front.ports.contains_key(&7000));
    assert_eq!(b.sent().len(), 2, "one Unlisten per owner");
    assert_eq!(b.counters.violations_total(), 0);
}

#[test]
fn a_reuseport_socket_joining_a_refused_listen_is_refused_too() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let listen = |tag: u64| Desc {
        op: abi::OP_LISTEN,
        tag,
        a: 7,
        c: abi::LISTEN_REUSEPORT,
        ..Desc::default()
    };
    app.post(0, listen(1));
    app.post(1, listen(2));
    b.pass();
    b.sent();
    // The owner refuses (a service of its own listens there).
    b.owner_event(
        0,
        OwnerEvt::Reply {
            app: 1,
            ctx: 0,
            tag: 1,
            op: abi::OP_LISTEN,
            status: -libc::EADDRINUSE,
            conn: 0,
            a: 7,
            b: 0,
            c: 0,
        },
    );
    b.pass();
    let refused = |tag: u64| Desc {
        a: 7,
        ..reply(tag, abi::OP_LISTEN, -libc::EADDRINUSE)
    };
    assert_eq!(app.events(0), vec![refused(1)]);
    assert_eq!(app.events(1), vec![refused(2)]);
    assert!(!b.front.ports.contains_key(&7));
}

#[test]
fn a_listen_the_owner_refused_frees_the_port() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    b.listening(&mut app, 0, 9000);
    b.owner_event(
        0,
        OwnerEvt::Reply {
            app: 1,
            ctx: 0,
            tag: 0x11,
            op: abi::OP_LISTEN,
            status: -libc::EADDRINUSE,
            conn: 0,
            a: 9000,
            b: 0,
            c: 0,
        },
    );
    b.pass();
    assert!(!b.front.ports.contains_key(&9000));
    assert_eq!(
        b.sent(),
        vec![
            (0, Sent::Unlisten { app: 1, port: 9000 }),
            (1, Sent::Unlisten { app: 1, port: 9000 })
        ],
        "the owners that did listen stop"
    );
    let mut r = reply(0x11, abi::OP_LISTEN, -libc::EADDRINUSE);
    r.a = 9000;
    assert_eq!(app.events(0), vec![r]);
    let mut other = b.register(2);
    b.listening(&mut other, 0, 9000);
}

#[test]
fn unlisten_only_frees_the_callers_own_port() {
    let mut b = Bench::new(2);
    let mut owner = b.register(1);
    let mut other = b.register(2);
    b.listening(&mut owner, 0, 7000);
    // A connection waits in the accept queue.
    let pending = handle::encode(1, id(4, 2));
    b.owner_event(
        1,
        OwnerEvt::Accepted {
            app: 1,
            port: 7000,
            conn: pending,
            slot: 0,
            remote: 0,
            local: 0,
        },
    );
    b.pass();
    assert_eq!(owner.events(0).len(), 1, "EV_ACCEPTABLE");
    other.op(0, abi::OP_UNLISTEN, 1, 0, 7000, 0);
    owner.op(0, abi::OP_UNLISTEN, 2, 0, 7001, 0); // not listening
    owner.op(0, abi::OP_UNLISTEN, 3, 0, 0x1_0000 + 7000, 0); // 7000 in the low bits
    b.pass();
    assert_eq!(
        other.events(0),
        vec![reply(1, abi::OP_UNLISTEN, -libc::EINVAL)]
    );
    assert_eq!(
        owner.events(0),
        vec![
            reply(2, abi::OP_UNLISTEN, -libc::EINVAL),
            reply(3, abi::OP_UNLISTEN, -libc::EINVAL)
        ]
    );
    assert_eq!(b.sent(), vec![]);
    assert!(b.front.ports.contains_key(&7000));
    owner.op(0, abi::OP_UNLISTEN, 4, 0, 7000, 0);
    b.pass();
    assert_eq!(owner.events(0), vec![reply(4, abi::OP_UNLISTEN, 0)]);
    assert_eq!(
        b.sent(),
        vec![
            (0, Sent::Unlisten { app: 1, port: 7000 }),
            (1, Sent::Unlisten { app: 1, port: 7000 }),
            (
                1,
                Sent::ConnOp {
                    app: 1,
                    ctx: 0,
                    tag: 0,
                    op: abi::OP_ABORT,
                    conn: id(4, 2),
                    a: 0,
                    b: 0,
                    reply: false
                }
            ),
        ],
        "the connection nobody accepted is reset"
    );
    assert!(!b.front.conns.contains_key(&pending));
    assert_eq!(b.counters.violations_total(), 0);
}

#[test]
fn accept_rules() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let mut other = b.register(2);
    b.listening(&mut app, 0, 6000);
    app.op(1, abi::OP_ACCEPT, 1, 0, 6001, 0); // not listening
    app.op(1, abi::OP_ACCEPT, 2, 0, 0x1_0000 + 6000, 0); // 6000 in the low bits
    app.op(1, abi::OP_ACCEPT, 3, 0, 6000, 0); // nothing yet
    other.op(0, abi::OP_ACCEPT, 4, 0, 6000, 0); // someone else's port
    b.pass();
    assert_eq!(
        app.events(1),
        vec![
            reply(1, abi::OP_ACCEPT, -libc::EINVAL),
            reply(2, abi::OP_ACCEPT, -libc::EINVAL),
            reply(3, abi::OP_ACCEPT, -libc::EAGAIN),
        ]
    );
    assert_eq!(
        other.events(0),
        vec![reply(4, abi::OP_ACCEPT, -libc::EINVAL)]
    );
    // Two connections arrive: one EV_ACCEPTABLE, on the listener's context.
    let (c1, c2) = (handle::encode(0, id(1, 1)), handle::encode(1, id(2, 1)));
    for (o, c, slot) in [(0, c1, 2), (1, c2, 3)] {
        b.owner_event(
            o,
            OwnerEvt::Accepted {
                app: 1,
                port: 6000,
                conn: c,
                slot,
                remote: pack_addr(peer(5555)),
                local: pack_addr(local(6000)),
            },
        );
    }
    b.pass();
    let acceptable = Desc {
        op: abi::EV_ACCEPTABLE,
        a: 6000,
        ..Desc::default()
    };
    assert_eq!(app.events(0), vec![acceptable]);
    // Accepted on context 1: the reply there, the notice again (one left).
    app.op(1, abi::OP_ACCEPT, 5, 0, 6000, 0);
    b.pass();
    let mut r = reply(5, abi::OP_ACCEPT, 0);
    (r.conn, r.a, r.b, r.c) = (c1, 2, pack_addr(peer(5555)), pack_addr(local(6000)));
    assert_eq!(app.events(1), vec![r]);
    assert_eq!(app.events(0), vec![acceptable]);
    assert_eq!(
        b.front.conns[&c1].ctx,
        Some(1),
        "its events go to context 1"
    );
    app.op(1, abi::OP_TX_PUSH, 6, c1, 1, 0);
    b.pass();
    assert_eq!(
        b.sent().len(),
        1,
        "the accepted handle is the application's"
    );
    assert_eq!(b.counters.violations_total(), 0);
}

#[test]
fn a_connection_closed_before_accept_is_skipped() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    b.listening(&mut app, 0, 6000);
    let c = handle::encode(0, id(1, 1));
    b.owner_event(
        0,
        OwnerEvt::Accepted {
            app: 1,
            port: 6000,
            conn: c,
            slot: 0,
            remote: 0,
            local: 0,
        },
    );
    b.pass();
    app.events(0);
    // Handles can be guessed: closing one still waiting is allowed...
    app.op(0, abi::OP_CLOSE, 1, c, 0, 0);
    app.op(0, abi::OP_ACCEPT, 2, 0, 6000, 0);
    b.pass();
    assert_eq!(b.sent().len(), 1, "the close");
    // ...and accept then skips it.
    assert_eq!(app.events(0), vec![reply(2, abi::OP_ACCEPT, -libc::EAGAIN)]);
    assert_alive(&b, &app);
}

#[test]
fn a_connection_accepted_for_a_port_nobody_listens_on_is_reset() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let c = handle::encode(1, id(8, 8));
    b.owner_event(
        1,
        OwnerEvt::Accepted {
            app: 1,
            port: 6000,
            conn: c,
            slot: 0,
            remote: 0,
            local: 0,
        },
    );
    b.pass();
    assert_eq!(
        b.sent(),
        vec![(
            1,
            Sent::ConnOp {
                app: 1,
                ctx: 0,
                tag: 0,
                op: abi::OP_ABORT,
                conn: id(8, 8),
                a: 0,
                b: 0,
                reply: false
            }
        )]
    );
    assert_eq!(app.events(0), vec![]);
    assert!(!b.front.conns.contains_key(&c));
}

#[test]
fn connect_addresses_at_their_bounds() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let bad = [
        (1, 0),                               // 0.0.0.0:0
        (2, pack_addr(peer(0))),              // port 0
        (3, pack_addr(peer(80)) | (1 << 48)), // a bit above 48
        (4, u64::MAX),
    ];
    for (tag, a) in bad {
        app.op(0, abi::OP_CONNECT, tag, 0, a, 0);
    }
    b.pass();
    let want: Vec<Desc> = (1..=4)
        .map(|t| reply(t, abi::OP_CONNECT, -libc::EINVAL))
        .collect();
    assert_eq!(app.events(0), want, "EINVAL replies, not violations");
    assert_eq!(b.sent(), vec![]);
    for (tag, port) in [(5, 1), (6, 65535), (7, 80)] {
        app.op(1, abi::OP_CONNECT, tag, 0, pack_addr(peer(port)), 0);
    }
    b.pass();
    let connect = |tag, port| Sent::Connect {
        app: 1,
        ctx: 1,
        tag,
        remote: peer(port),
        cc: None,
    };
    assert_eq!(
        b.sent(),
        vec![
            (0, connect(5, 1)),
            (0, connect(7, 80)),
            (1, connect(6, 65535))
        ],
        "round-robin over the owners"
    );
    assert_alive(&b, &app);
}

// ---- contexts ----------------------------------------------------------------

#[test]
fn replies_go_to_the_requesting_context() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let last = LAYOUT.contexts as usize - 1;
    app.op(last, abi::OP_UNLISTEN, 9, 0, 7, 0);
    b.pass();
    assert_eq!(app.events(0), vec![]);
    assert_eq!(
        app.events(last),
        vec![reply(9, abi::OP_UNLISTEN, -libc::EINVAL)]
    );
}

#[test]
fn owner_replies_for_a_context_or_app_that_does_not_exist_are_dropped() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    for (key, ctx) in [(1, LAYOUT.contexts as u16), (1, u16::MAX), (9, 0)] {
        b.owner_event(
            0,
            OwnerEvt::Reply {
                app: key,
                ctx,
                tag: 1,
                op: abi::OP_SHUTDOWN,
                status: 0,
                conn: 0,
                a: 0,
                b: 0,
                c: 0,
            },
        );
    }
    b.pass();
    assert_alive(&b, &app);
    for ctx in 0..LAYOUT.contexts as usize {
        assert_eq!(app.events(ctx), vec![]);
    }
}

// ---- what a violation does -------------------------------------------------

#[test]
fn a_violation_resets_connections_removes_listeners_and_wakes_sleepers() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let mut bystander = b.register(2);
    let conn = b.connected(&mut app, 0, 0, 1, 1);
    let theirs = b.connected(&mut bystander, 0, 1, 2, 1);
    b.listening(&mut app, 1, 80);
    let pending = handle::encode(1, id(3, 1));
    b.owner_event(
        1,
        OwnerEvt::Accepted {
            app: 1,
            port: 80,
            conn: pending,
            slot: 0,
            remote: 0,
            local: 0,
        },
    );
    b.pass();
    app.events(1);
    // A thread of the application sleeps on context 1.
    app.index(LAYOUT.app_waiting_offset(1))
        .store(1, Ordering::SeqCst);
    app.bells[1].drain().unwrap();
    app.op(0, 0x55, 1, 0, 0, 0);
    b.pass();
    let other = assert_closed(&mut b, &mut app, abi::VIOLATION_UNKNOWN_OP);
    assert_eq!(
        other,
        vec![(
            1,
            Sent::ConnOp {
                app: 1,
                ctx: 0,
                tag: 0,
                op: abi::OP_ABORT,
                conn: id(3, 1),
                a: 0,
                b: 0,
                reply: false
            }
        )],
        "the connection it never accepted is reset"
    );
    assert!(app.bells[1].drain().unwrap() > 0, "the sleeper is woken");
    assert_eq!(
        app.index(LAYOUT.app_waiting_offset(1))
            .load(Ordering::SeqCst),
        0
    );
    assert!(b.front.ports.is_empty(), "its listener is gone");
    assert!(!b.front.conns.contains_key(&conn) && !b.front.conns.contains_key(&pending));
    b.pass();
    assert_eq!(
        b.counters.apps_active.load(Ordering::Relaxed),
        1,
        "the bystander"
    );
    // Whatever it posts now is ignored; its connections' news too.
    app.op(0, abi::OP_LISTEN, 2, 0, 81, 0);
    b.owner_event(
        0,
        OwnerEvt::Conn {
            app: 1,
            conn,
            flags: abi::CONN_READABLE,
            rx_ready: 1,
            tx_acked: 0,
            status: 0,
        },
    );
    b.pass();
    assert_eq!(b.sent(), vec![]);
    assert_eq!(app.events(0), vec![]);
    // The bystander's connection and port 80 are still served.
    b.listening(&mut bystander, 0, 80);
    bystander.op(0, abi::OP_TX_PUSH, 3, theirs, 1, 0);
    b.pass();
    assert_eq!(b.sent().len(), 1);
    assert!(!b.dead(&bystander));
}

#[test]
fn requests_after_the_violating_one_are_not_run() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    app.op(0, abi::OP_LISTEN, 1, 0, 80, 0);
    app.op(0, 99, 2, 0, 0, 0);
    app.op(0, abi::OP_LISTEN, 3, 0, 81, 0);
    b.pass();
    let other = assert_closed(&mut b, &mut app, abi::VIOLATION_UNKNOWN_OP);
    assert_eq!(
        other,
        vec![(
            0,
            Sent::Listen {
                app: 1,
                ctx: 0,
                tag: 1,
                port: 80,
                backlog: 0,
                cc: None,
                reply: true
            }
        )],
        "only the request before it"
    );
    assert!(b.front.ports.is_empty(), "and its listener is removed");
}

#[test]
fn connection_events_are_coalesced_and_never_go_backwards() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let mut other = b.register(2);
    let conn = b.connected(&mut app, 1, 0, 4, 4);
    let ev = |app, flags, rx_ready, tx_acked| OwnerEvt::Conn {
        app,
        conn,
        flags,
        rx_ready,
        tx_acked,
        status: 0,
    };
    b.owner_event(0, ev(1, abi::CONN_READABLE, 10, 0));
    b.owner_event(0, ev(1, abi::CONN_WRITABLE, 5, 7));
    b.owner_event(0, ev(1, abi::CONN_READABLE, 20, 3));
    b.owner_event(0, ev(2, abi::CONN_ERROR, 99, 99)); // names another app
    b.pass();
    assert_eq!(
        app.events(1),
        vec![Desc {
            op: abi::EV_CONN,
            flags: abi::CONN_READABLE | abi::CONN_WRITABLE,
            conn,
            a: 20,
            b: 7,
            ..Desc::default()
        }]
    );
    assert_eq!(other.events(0), vec![]);
}

// ---- the application's exit --------------------------------------------------

#[test]
fn requests_left_at_exit_run_then_connections_close_gracefully() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    let conn = b.connected(&mut app, 0, 0, 6, 1);
    app.op(1, abi::OP_TX_PUSH, 0, conn, 500, 0);
    app.op(1, abi::OP_CLOSE, 1, conn, 0, 0);
    b.inbox.lock().push_back(FrontMsg::Gone(1));
    b.pass();
    assert_eq!(
        b.sent(),
        vec![
            (
                0,
                Sent::TxPush {
                    app: 1,
                    conn: id(6, 1),
                    written: 500
                }
            ),
            (
                0,
                Sent::ConnOp {
                    app: 1,
                    ctx: 1,
                    tag: 1,
                    op: abi::OP_CLOSE,
                    conn: id(6, 1),
                    a: 0,
                    b: 0,
                    reply: true
                }
            ),
            (
                0,
                Sent::AppGone {
                    app: 1,
                    graceful: true
                }
            ),
        ]
    );
    assert!(!b.front.apps.contains_key(&1));
    assert_eq!(b.counters.violations_total(), 0);
}

#[test]
fn a_bad_request_left_at_exit_resets_instead() {
    let mut b = Bench::new(1);
    let mut app = b.register(1);
    app.op(0, 0x99, 0, 0, 0, 0);
    b.inbox.lock().push_back(FrontMsg::Gone(1));
    b.pass();
    assert_eq!(b.violations(abi::VIOLATION_UNKNOWN_OP), 1);
    assert_eq!(
        b.sent(),
        vec![(
            0,
            Sent::AppGone {
                app: 1,
                graceful: false
            }
        )],
        "reset once, no graceful close after"
    );
    assert_eq!(app.events(0), vec![fatal(abi::VIOLATION_UNKNOWN_OP)]);
}

#[test]
fn a_broken_request_ring_at_exit_is_skipped_not_counted() {
    let mut b = Bench::new(1);
    let app = b.register(1);
    app.index(LAYOUT.request_ring(0).head)
        .store(CAP + 1, Ordering::SeqCst);
    b.inbox.lock().push_back(FrontMsg::Gone(1));
    b.pass();
    assert_eq!(b.counters.violations_total(), 0);
    assert_eq!(
        b.sent(),
        vec![(
            0,
            Sent::AppGone {
                app: 1,
                graceful: true
            }
        )]
    );
}

// ---- TX/RX bounds, judged by a real owner ----------------------------------

/// The offset rules of `OP_TX_PUSH` and `OP_RX_POP` are the owner's (its
/// engine knows what was acknowledged and delivered): here the front's
/// commands go to a real [`HostIfShard`] on an engine that talks to a
/// second engine over a simulated wire, and the violation comes back to
/// the front as the service would see it.
mod bounds {
    use super::*;
    use crate::engine::Engine;
    use crate::hostif::shard::HostIfShard;
    use crate::pipeline::ShardApp;
    use crate::sim::{sim_engine_config, LinkParams, SimPair};

    const PORT: u16 = 5001;
    const SIZE: u64 = LAYOUT.tx_buf_size as u64;

    /// No DPU-resident service beside the host interface.
    struct Idle;

    impl ShardApp for Idle {
        fn start(&mut self, _: &mut Engine) {}
        fn poll(&mut self, _: &mut Engine) {}
        fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
            self
        }
    }

    struct Wire {
        b: Bench,
        app: App,
        shard: HostIfShard,
        sim: SimPair,
        /// Every event the application got on context 0.
        seen: Vec<Desc>,
        conn: u64,
        slot: u32,
        /// The peer's end (on engine `b`) and what it received.
        peer: Option<ConnId>,
        peer_rx: Vec<u8>,
    }

    impl Wire {
        /// An application connected through the front and the shard to a
        /// listener on the other engine.
        fn connected() -> Wire {
            let mut b = Bench::new(1);
            let app = b.register(1);
            let shard = HostIfShard::new(0, b.links[0].clone(), Box::new(Idle));
            let sim = SimPair::new(
                sim_engine_config(1, 7, |_| {}),
                sim_engine_config(2, 7, |_| {}),
                LinkParams::default(),
                LinkParams::default(),
                7,
            );
            let mut w = Wire {
                b,
                app,
                shard,
                sim,
                seen: Vec::new(),
                conn: 0,
                slot: 0,
                peer: None,
                peer_rx: Vec::new(),
            };
            w.sim.b.listen(PORT, None).unwrap();
            let to = SocketAddrV4::new([198, 18, 0, 2].into(), PORT);
            w.app.op(0, abi::OP_CONNECT, 1, 0, pack_addr(to), 0);
            w.drive("the handshake", |w| {
                w.peer.is_some()
                    && w.seen
                        .iter()
                        .any(|d| d.op == abi::EV_CONN && d.flags & abi::CONN_CONNECTED != 0)
            });
            let r = w.seen.iter().find(|d| d.op == abi::EV_REPLY).unwrap();
            assert_eq!(r.status, 0);
            (w.conn, w.slot) = (r.conn, r.a as u32);
            assert_alive(&w.b, &w.app);
            w
        }

        /// Runs front, owner and wire until `done` (simulated time).
        fn drive(&mut self, what: &str, mut done: impl FnMut(&mut Wire) -> bool) {
            for _ in 0..20_000 {
                self.b.pass();
                self.shard.poll(&mut self.sim.a);
                self.b.pass();
                let ev = self.app.events(0);
                self.seen.extend(ev);
                if self.peer.is_none() {
                    self.peer = self.sim.b.accept(PORT);
                }
                if let Some(p) = self.peer {
                    let mut buf = [0u8; 8192];
                    while let Ok(n @ 1..) = self.sim.b.recv(p, &mut buf) {
                        self.peer_rx.extend_from_slice(&buf[..n]);
                    }
                }
                if done(self) {
                    return;
                }
                if !self.sim.step() {
                    self.sim.now += 1_000_000;
                }
            }
            panic!("{what}: not reached; events {:?}", self.seen);
        }

        fn push(&mut self, written: u64) {
            self.app.op(0, abi::OP_TX_PUSH, 0, self.conn, written, 0);
        }

        fn pop(&mut self, read: u64) {
            self.app.op(0, abi::OP_RX_POP, 0, self.conn, read, 0);
        }

        /// Writes `data` into the TX buffer at stream offset `at`.
        fn write_tx(&mut self, at: u64, data: &[u8]) {
            assert!(at % SIZE + data.len() as u64 <= SIZE);
            let off = LAYOUT.tx_buf_offset(self.slot) + (at % SIZE) as usize;
            self.app.region.write(off, data).unwrap();
        }

        fn acked(&self) -> u64 {
            self.seen
                .iter()
                .filter(|d| d.op == abi::EV_CONN)
                .map(|d| d.b)
                .max()
                .unwrap_or(0)
        }

        fn readable(&self) -> u64 {
            self.seen
                .iter()
                .filter(|d| d.op == abi::EV_CONN)
                .map(|d| d.a)
                .max()
                .unwrap_or(0)
        }

        /// A few more rounds: time for a violation to come back.
        fn settle(&mut self) {
            let mut n = 0;
            self.drive("settling", |_| {
                n += 1;
                n > 50
            });
        }

        /// Closed for `reason`; the peer's connection is reset.
        fn assert_closed_for(&mut self, reason: u64) {
            self.settle();
            assert_eq!(self.b.violations(reason), 1, "events {:?}", self.seen);
            assert_eq!(self.b.counters.violations_total(), 1);
            assert!(self.b.dead(&self.app));
            assert_eq!(self.seen.last(), Some(&fatal(reason)));
            let p = self.peer.unwrap();
            self.drive("the peer sees the reset", |w| {
                w.sim.b.conn_error(p) == Some(crate::app::ConnError::Reset)
                    || w.sim.b.conn_state(p).is_none()
            });
        }

        fn assert_served(&mut self) {
            self.settle();
            assert_alive(&self.b, &self.app);
            assert!(
                !self.seen.iter().any(|d| d.op == abi::EV_FATAL),
                "{:?}",
                self.seen
            );
        }
    }

    fn pattern(seed: u8) -> Vec<u8> {
        (0..SIZE as usize)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// The shards' side of a flow-group move, on real engines: the old
    /// shard gives back commands for the connection and answers the
    /// fence; the new one announces the arrival, and an application's
    /// exit does not close the connection there before the front settles
    /// it (its held commands run first), after which the settle closes it.
    #[test]
    fn a_moved_connection_bounces_at_the_old_shard_and_waits_for_its_settle_at_the_new() {
        let mut w = Wire::connected();
        let (owner, old) = handle::decode(w.conn, 1).unwrap();
        assert_eq!(owner, 0);
        let tuple = w.sim.a.conn_tuple(old).unwrap();
        let group = crate::flow::flow_group(&tuple, w.sim.a.config().flow_groups);
        let parcel = w.sim.a.export_group(group);
        let app_parcel = w.shard.export_conns(&parcel.conns());
        assert_eq!(w.shard.connections(), 0);

        // The old owner gives back a command that reaches it now, then
        // answers the fence.
        let k = w.app.key;
        let link = w.b.links[0].clone();
        link.cmds
            .push(OwnerCmd::TxPush {
                app: k,
                conn: old,
                written: 10,
            })
            .unwrap();
        link.cmds
            .push(OwnerCmd::MoveFence {
                host: w.conn,
                conn: old,
            })
            .unwrap();
        w.shard.poll(&mut w.sim.a);
        let back: Vec<OwnerEvt> = std::iter::from_fn(|| link.evts.pop()).collect();
        assert!(
            matches!(&back[..], [
                OwnerEvt::Bounced { host, cmd: OwnerCmd::TxPush { written: 10, .. } },
                OwnerEvt::Fenced { host: h2, at: (0, at) },
            ] if *host == w.conn && *h2 == w.conn && *at == old),
            "{back:?}"
        );

        // The new owner: another engine with the same address.
        let mut engine = Engine::new(sim_engine_config(1, 7, |_| {}));
        let waker = Arc::new(FrontWaker::new().unwrap());
        let new_link = Arc::new(OwnerLink::new(waker));
        let mut shard = HostIfShard::new(1, new_link.clone(), Box::new(Idle));
        let moves = engine.import_group(parcel);
        shard.import_conns(&mut engine, app_parcel, &moves);
        let new = moves.iter().find(|m| m.0 == old).unwrap().1;
        let arrived: Vec<OwnerEvt> = std::iter::from_fn(|| new_link.evts.pop()).collect();
        assert!(
            matches!(&arrived[..], [OwnerEvt::Moved { app, host, from: (0, f), to: (1, t) }]
                if *app == k && *host == w.conn && *f == old && *t == new),
            "{arrived:?}"
        );
        let open = |e: &Engine| e.conn_state(new) == Some(crate::proto::TcpState::Established);
        assert!(open(&engine));

        // The application exits: not closed until settled.
        new_link
            .cmds
            .push(OwnerCmd::AppGone {
                app: k,
                graceful: true,
            })
            .unwrap();
        shard.poll(&mut engine);
        let now = engine.now();
        engine.poll(now);
        assert!(open(&engine), "closed before the front settled it");
        assert_eq!(shard.connections(), 1);
        new_link
            .cmds
            .push(OwnerCmd::MoveSettled {
                app: k,
                conn: new,
                release: Some(true),
            })
            .unwrap();
        shard.poll(&mut engine);
        assert_eq!(shard.connections(), 0);
        let now = engine.now();
        engine.poll(now);
        assert_eq!(
            engine.conn_state(new),
            Some(crate::proto::TcpState::FinWait1),
            "closed gracefully"
        );
        let after: Vec<OwnerEvt> = std::iter::from_fn(|| new_link.evts.pop()).collect();
        assert!(
            after
                .iter()
                .any(|e| matches!(e, OwnerEvt::Released { host } if *host == w.conn)),
            "{after:?}"
        );
    }

    #[test]
    fn tx_push_to_exactly_the_end_of_the_buffer_is_sent() {
        let mut w = Wire::connected();
        let data = pattern(1);
        w.write_tx(0, &data);
        w.push(SIZE); // written - acknowledged == buffer size
        w.drive("the peer receives the whole buffer", |w| {
            w.peer_rx.len() == SIZE as usize && w.acked() == SIZE
        });
        assert_eq!(w.peer_rx, data, "the bytes in the application's TX buffer");
        w.assert_served();
        // Acknowledged bytes make room: the window moves with them.
        let more = pattern(2);
        w.write_tx(SIZE, &more);
        w.push(2 * SIZE);
        w.drive("the second buffer", |w| {
            w.peer_rx.len() == 2 * SIZE as usize
        });
        assert_eq!(&w.peer_rx[SIZE as usize..], &more[..]);
        w.assert_served();
    }

    #[test]
    fn tx_push_one_byte_past_the_end_is_a_violation() {
        let mut w = Wire::connected();
        w.push(SIZE + 1);
        w.assert_closed_for(abi::VIOLATION_TX_BOUNDS);
        assert!(w.peer_rx.is_empty(), "nothing was sent");
    }

    #[test]
    fn tx_push_past_the_acknowledged_window_is_a_violation() {
        let mut w = Wire::connected();
        w.write_tx(0, &pattern(3));
        w.push(SIZE);
        w.drive("acknowledged", |w| w.acked() == SIZE);
        w.push(SIZE + SIZE + 1); // acknowledged + size + 1
        w.assert_closed_for(abi::VIOLATION_TX_BOUNDS);
    }

    #[test]
    fn tx_push_backwards_is_a_violation() {
        let mut w = Wire::connected();
        w.push(100);
        w.push(100); // the same offset again: nothing new, accepted
        w.assert_served();
        w.push(99);
        w.assert_closed_for(abi::VIOLATION_TX_BOUNDS);
    }

    #[test]
    fn rx_pop_of_exactly_the_delivered_data_is_accepted_one_more_is_a_violation() {
        let mut w = Wire::connected();
        let p = w.peer.unwrap();
        assert_eq!(w.sim.b.send(p, &[7; 100]), Ok(100));
        w.drive("delivered", |w| w.readable() == 100);
        let mut got = [0u8; 100];
        w.app
            .region
            .read(LAYOUT.rx_buf_offset(w.slot), &mut got)
            .unwrap();
        assert_eq!(got, [7; 100], "in the application's RX buffer");
        w.pop(100);
        w.assert_served();
        w.pop(101);
        w.assert_closed_for(abi::VIOLATION_RX_BOUNDS);
    }

    #[test]
    fn rx_pop_beyond_what_was_delivered_is_a_violation() {
        let mut w = Wire::connected();
        let p = w.peer.unwrap();
        assert_eq!(w.sim.b.send(p, &[1; 10]), Ok(10));
        w.drive("delivered", |w| w.readable() == 10);
        w.pop(11);
        w.assert_closed_for(abi::VIOLATION_RX_BOUNDS);
    }

    #[test]
    fn rx_pop_backwards_is_a_violation() {
        let mut w = Wire::connected();
        let p = w.peer.unwrap();
        assert_eq!(w.sim.b.send(p, &[1; 10]), Ok(10));
        w.drive("delivered", |w| w.readable() == 10);
        w.pop(10);
        w.pop(10); // again: nothing new, accepted
        w.assert_served();
        w.pop(9);
        w.assert_closed_for(abi::VIOLATION_RX_BOUNDS);
    }
}

#[path = "front_fork_tests.rs"]
mod fork;

#[path = "front_moves_tests.rs"]
mod moves;
