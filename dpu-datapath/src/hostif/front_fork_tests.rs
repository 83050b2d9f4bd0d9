//! Processes forked from an application: the ticket, the join, holders of
//! connections and listeners (closed by the last), `OP_ADOPT`, and the
//! exit of one member or of the last.

use super::*;

/// Two contexts for the registering process and two kept for forks.
const FORKING: Layout = Layout {
    contexts: 4,
    ..LAYOUT
};
const TOKEN: u64 = 1 << 63 | 0x5eed;
const CHILD: MemberKey = 50;

/// Registers `key` with contexts 0 and 1 and contexts 2 and 3 kept for
/// forked processes; the returned ends cover all four.
fn register_forking(b: &mut Bench, key: AppKey) -> App {
    let region = Arc::new(Region::create("front-fork-test", FORKING.region_size()).unwrap());
    region.write_header(&FORKING).unwrap();
    let bells: Vec<Doorbell> = (0..2).map(|_| Doorbell::new().unwrap()).collect();
    let host = HostApp::new(
        AppInfo {
            key,
            name: format!("app{key}"),
            pid: 1000,
        },
        region.clone(),
        FORKING,
        bells,
        Doorbell::new().unwrap(),
        &crate::dma::DmaConfig::immediate(),
    )
    .unwrap();
    b.inbox.lock().push_back(FrontMsg::Register(Box::new(host)));
    b.pass();
    App {
        key,
        req: (0..4)
            .map(|i| RingProducer::new(region.clone(), FORKING.request_ring(i)).unwrap())
            .collect(),
        evt: (0..4)
            .map(|i| RingConsumer::new(region.clone(), FORKING.event_ring(i)).unwrap())
            .collect(),
        region,
        bells: Vec::new(),
    }
}

impl Bench {
    /// `member` forks: the context reserved for the child.
    fn fork(&mut self, member: MemberKey, token: u64) -> Result<u16, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.inbox.lock().push_back(FrontMsg::Fork {
            member,
            token,
            reply: tx,
        });
        self.pass();
        rx.try_recv().expect("answered in the pass")
    }

    /// The child joins keeping `conns` and `ports`: its context.
    fn join(
        &mut self,
        app: AppKey,
        token: u64,
        conns: &[u64],
        ports: &[u16],
    ) -> Result<u16, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.inbox
            .lock()
            .push_back(FrontMsg::Join(Box::new(JoinRequest {
                app,
                token,
                member: CHILD,
                conns: conns.to_vec(),
                ports: ports.to_vec(),
                bell: Doorbell::new().unwrap(),
                reply: tx,
            })));
        self.pass();
        rx.try_recv().expect("answered in the pass").map(|g| g.ctx)
    }

    fn gone(&mut self, member: MemberKey) {
        self.inbox.lock().push_back(FrontMsg::Gone(member));
        self.pass();
    }
}

fn close_sent(sent: &[(usize, Sent)]) -> bool {
    sent.iter().any(|(_, s)| {
        matches!(
            s,
            Sent::ConnOp {
                op: abi::OP_CLOSE,
                ..
            }
        )
    })
}

#[test]
fn a_shared_connection_closes_with_its_last_holder() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    let conn = b.connected(&mut app, 0, 0, 7, 1);
    assert_eq!(b.fork(1, TOKEN), Ok(2), "the first kept context");
    assert_eq!(b.join(1, TOKEN, &[conn], &[]), Ok(2));
    // The parent closes its copy right after the fork: nothing closes.
    app.op(0, abi::OP_CLOSE, 9, conn, 0, 0);
    b.pass();
    assert_eq!(b.sent(), vec![], "the child still holds it");
    assert_eq!(app.events(0), vec![reply(9, abi::OP_CLOSE, 0)]);
    // The child uses it, then closes it: now it closes.
    app.op(2, abi::OP_RX_POP, 0, conn, 0, 0);
    app.op(2, abi::OP_CLOSE, 10, conn, 0, 0);
    b.pass();
    let sent = b.sent();
    assert!(close_sent(&sent), "{sent:?}");
    assert_alive(&b, &app);
}

#[test]
fn adopt_brings_the_events_and_tells_the_positions() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    let conn = b.connected(&mut app, 0, 0, 7, 1);
    let id = ConnId {
        index: 7,
        generation: 1,
    };
    app.op(0, abi::OP_TX_PUSH, 0, conn, 100, 0);
    app.op(0, abi::OP_RX_POP, 0, conn, 40, 0);
    b.pass();
    b.sent();
    b.owner_event(
        0,
        OwnerEvt::Conn {
            app: 1,
            conn,
            flags: abi::CONN_CONNECTED | abi::CONN_READABLE,
            rx_ready: 50,
            tx_acked: 60,
            status: 0,
        },
    );
    b.pass();
    app.events(0);
    b.fork(1, TOKEN).unwrap();
    let ctx = b.join(1, TOKEN, &[conn], &[]).unwrap() as usize;
    // The parent wrote more before the child adopts: it counts.
    app.op(0, abi::OP_TX_PUSH, 0, conn, 120, 0);
    app.op(ctx, abi::OP_ADOPT, 5, conn, 0, 0);
    b.pass();
    assert_eq!(
        b.sent(),
        vec![(
            0,
            Sent::TxPush {
                app: 1,
                conn: id,
                written: 120
            }
        )]
    );
    let ev = app.events(ctx);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let mut want = reply(5, abi::OP_ADOPT, 0);
    (want.conn, want.a, want.b, want.c) = (conn, 40, 120, 1 | u64::from(abi::CONN_CONNECTED) << 32);
    assert_eq!(ev[0], want, "positions, slot and state");
    assert_eq!(
        (ev[1].op, ev[1].conn, ev[1].a, ev[1].b),
        (abi::EV_CONN, conn, 50, 60)
    );
    assert_eq!(
        ev[1].flags,
        abi::CONN_CONNECTED | abi::CONN_READABLE | abi::CONN_WRITABLE
    );
    let moved = app.events(0);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        (moved[0].op, moved[0].flags),
        (abi::EV_CONN, abi::CONN_MOVED)
    );
    // News go to the adopter only.
    b.owner_event(
        0,
        OwnerEvt::Conn {
            app: 1,
            conn,
            flags: abi::CONN_READABLE,
            rx_ready: 70,
            tx_acked: 60,
            status: 0,
        },
    );
    b.pass();
    assert_eq!(app.events(0), vec![]);
    assert_eq!(app.events(ctx).len(), 1);
    assert_alive(&b, &app);
}

#[test]
fn a_child_keeps_only_what_it_has_descriptors_for() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    let kept = b.connected(&mut app, 0, 0, 7, 1);
    let dropped = b.connected(&mut app, 1, 0, 8, 1);
    b.fork(1, TOKEN).unwrap();
    let ctx = b.join(1, TOKEN, &[kept], &[]).unwrap() as usize;
    // The parent's close of the one the child did not keep closes it.
    app.op(1, abi::OP_CLOSE, 9, dropped, 0, 0);
    b.pass();
    assert!(close_sent(&b.sent()), "closed");
    // A process naming a connection it does not hold breaks the rules.
    app.op(ctx, abi::OP_RX_POP, 0, dropped, 0, 0);
    b.pass();
    assert_eq!(b.violations(abi::VIOLATION_FOREIGN_CONN), 1);
}

#[test]
fn a_listener_is_shared_and_stops_with_its_last_holder() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    b.listening(&mut app, 1, 6000);
    app.events(1);
    b.fork(1, TOKEN).unwrap();
    let ctx = b.join(1, TOKEN, &[], &[6000]).unwrap() as usize;
    let c = handle::encode(
        0,
        ConnId {
            index: 3,
            generation: 1,
        },
    );
    b.owner_event(
        0,
        OwnerEvt::Accepted {
            app: 1,
            port: 6000,
            conn: c,
            slot: 2,
            remote: 0,
            local: 0,
        },
    );
    b.pass();
    let notice = |ev: Vec<Desc>| ev.iter().any(|d| d.op == abi::EV_ACCEPTABLE && d.a == 6000);
    assert!(notice(app.events(1)), "the parent hears of it");
    assert!(notice(app.events(ctx)), "and the child");
    app.op(ctx, abi::OP_ACCEPT, 4, 0, 6000, 0);
    b.pass();
    let ev = app.events(ctx);
    assert_eq!((ev[0].op, ev[0].status, ev[0].conn), (abi::EV_REPLY, 0, c));
    // The parent stops listening: the child still does.
    app.op(1, abi::OP_UNLISTEN, 5, 0, 6000, 0);
    b.pass();
    assert_eq!(b.sent(), vec![]);
    assert_eq!(app.events(1), vec![reply(5, abi::OP_UNLISTEN, 0)]);
    // The child exits: its connection closes and the port stops.
    b.gone(CHILD);
    let sent = b.sent();
    assert!(close_sent(&sent), "{sent:?}");
    assert!(sent
        .iter()
        .any(|(_, s)| matches!(s, Sent::Unlisten { port: 6000, .. })));
    assert!(!b.front.ports.contains_key(&6000));
    assert_alive(&b, &app);
}

#[test]
fn the_application_ends_with_its_last_process() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    let conn = b.connected(&mut app, 0, 0, 7, 1);
    b.fork(1, TOKEN).unwrap();
    b.join(1, TOKEN, &[conn], &[]).unwrap();
    // The parent exits: nothing closes, the child goes on.
    b.gone(1);
    assert_eq!(b.sent(), vec![]);
    assert!(b.front.apps.contains_key(&1));
    assert_eq!(b.counters.contexts.load(Ordering::Relaxed), 1);
    b.gone(CHILD);
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
    assert!(!b.front.apps.contains_key(&1));
}

#[test]
fn tickets_are_single_use_expire_and_are_bounded() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    let conn = b.connected(&mut app, 0, 0, 7, 1);
    assert_eq!(b.fork(1, TOKEN), Ok(2));
    assert_eq!(b.fork(1, TOKEN + 1), Ok(3));
    let full = b.fork(1, TOKEN + 2).unwrap_err();
    assert!(full.contains("host.fork_contexts"), "{full}");
    assert!(b.join(1, TOKEN + 9, &[], &[]).is_err(), "an unknown token");
    assert_eq!(b.join(1, TOKEN, &[conn], &[]), Ok(2));
    assert!(b.join(1, TOKEN, &[conn], &[]).is_err(), "used once");
    // The other child never joins: its ticket expires and lets go.
    for t in &mut b.front.apps.get_mut(&1).unwrap().tickets {
        t.since -= TICKET_TTL;
    }
    b.pass();
    assert!(b.front.apps[&1].tickets.is_empty());
    assert_eq!(b.fork(1, TOKEN + 3), Ok(3), "its context is free again");
    assert_alive(&b, &app);
}

#[test]
fn a_child_keeps_one_hold_per_listening_socket_it_names() {
    let mut b = Bench::new(1);
    let mut app = register_forking(&mut b, 1);
    // Two SO_REUSEPORT sockets on one port in the parent.
    let listen = |tag: u64| Desc {
        op: abi::OP_LISTEN,
        tag,
        a: 6100,
        c: abi::LISTEN_REUSEPORT,
        ..Desc::default()
    };
    app.post(1, listen(1));
    b.pass();
    b.sent();
    b.owner_event(
        0,
        OwnerEvt::Reply {
            app: 1,
            ctx: 1,
            tag: 1,
            op: abi::OP_LISTEN,
            status: 0,
            conn: 0,
            a: 6100,
            b: 0,
            c: 0,
        },
    );
    app.post(1, listen(2));
    b.pass();
    assert_eq!(b.front.ports[&6100].holders.len(), 2);
    // A fork copies both holds; the child (or the program it execs) kept
    // one of the two sockets and names the port once.
    b.fork(1, TOKEN).unwrap();
    assert_eq!(b.front.ports[&6100].holders.len(), 4);
    let ctx = b.join(1, TOKEN, &[], &[6100]).unwrap();
    let child_holds = |b: &Bench| {
        b.front.ports[&6100]
            .holders
            .iter()
            .filter(|h| h.1 == ctx)
            .count()
    };
    assert_eq!(child_holds(&b), 1);
    // The parent closes both sockets; the child's one close stops the port.
    app.op(1, abi::OP_UNLISTEN, 3, 0, 6100, 0);
    app.op(1, abi::OP_UNLISTEN, 4, 0, 6100, 0);
    b.pass();
    assert_eq!(b.sent(), vec![]);
    app.op(ctx as usize, abi::OP_UNLISTEN, 5, 0, 6100, 0);
    b.pass();
    assert!(!b.front.ports.contains_key(&6100));
    assert_alive(&b, &app);
}
