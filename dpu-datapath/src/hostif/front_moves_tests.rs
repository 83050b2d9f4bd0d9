//! Connections that move with their flow group (`front_moves.rs`): the
//! application keeps its handle, and its commands reach the connection's
//! new owner in the order it posted them, whatever order the owners'
//! bounces, fence answers and announcements arrive in.

use super::*;

fn push(app: AppKey, conn: ConnId, written: u64) -> Sent {
    Sent::TxPush { app, conn, written }
}

fn push_cmd(app: AppKey, conn: ConnId, written: u64) -> OwnerCmd {
    OwnerCmd::TxPush { app, conn, written }
}

fn settled(app: AppKey, conn: ConnId) -> Sent {
    Sent::MoveSettled {
        app,
        conn,
        release: None,
    }
}

#[test]
fn commands_follow_a_moved_connection_in_the_order_posted() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let k = app.key;
    let host = b.connected(&mut app, 0, 0, 5, 1);
    let (old, new) = (id(5, 1), id(9, 2));
    app.op(0, abi::OP_TX_PUSH, 1, host, 100, 0);
    b.pass();
    assert_eq!(b.sent(), vec![(0, push(k, old, 100))]);

    // The group moved: the new owner announces the arrival.
    b.owner_event(
        1,
        OwnerEvt::Moved {
            app: k,
            host,
            from: (0, old),
            to: (1, new),
        },
    );
    b.pass();
    assert_eq!(b.sent(), vec![(0, Sent::MoveFence { host, conn: old })]);
    // Held until the old owner has given back what it got.
    app.op(0, abi::OP_TX_PUSH, 2, host, 200, 0);
    b.pass();
    assert_eq!(b.sent(), vec![]);
    b.owner_event(
        0,
        OwnerEvt::Bounced {
            host,
            cmd: push_cmd(k, old, 100),
        },
    );
    b.pass();
    assert_eq!(b.sent(), vec![]);
    b.owner_event(0, OwnerEvt::Fenced { host, at: (0, old) });
    b.pass();
    assert_eq!(
        b.sent(),
        vec![
            (1, push(k, new, 100)),
            (1, push(k, new, 200)),
            (1, settled(k, new))
        ],
        "bounced first, then held, then the settle, to the new owner"
    );
    // From now on straight to the new owner, under the same handle.
    app.op(0, abi::OP_RX_POP, 3, host, 0, 0);
    b.pass();
    assert_eq!(
        b.sent(),
        vec![(
            1,
            Sent::RxPop {
                app: k,
                conn: new,
                read: 0
            }
        )]
    );
    b.owner_event(
        1,
        OwnerEvt::Conn {
            app: k,
            conn: host,
            flags: abi::CONN_READABLE,
            rx_ready: 64,
            tx_acked: 0,
            status: 0,
        },
    );
    b.pass();
    let ev = app.events(0);
    assert!(
        ev.iter()
            .any(|e| e.op == abi::EV_CONN && e.conn == host && e.a == 64),
        "{ev:?}"
    );
    assert_alive(&b, &app);
    assert_eq!(b.counters.conns_moved.load(Ordering::Relaxed), 1);
    assert_eq!(b.counters.commands_bounced.load(Ordering::Relaxed), 1);
    assert_eq!((b.front.moves.moved(), b.front.moves.holding()), (1, 0));

    // Closed where it is now; once released there the front forgets it.
    app.op(0, abi::OP_CLOSE, 4, host, 0, 0);
    b.pass();
    let sent = b.sent();
    assert!(
        matches!(sent[..], [(1, Sent::ConnOp { op: abi::OP_CLOSE, conn, .. })] if conn == new),
        "{sent:?}"
    );
    b.owner_event(1, OwnerEvt::Released { host });
    b.pass();
    assert_eq!(b.front.moves.moved(), 0);
}

/// A bounce can come before the announcement, the fence answer before it
/// too, and a second move's announcement before the first's.
#[test]
fn a_connection_moved_twice_with_news_out_of_order_keeps_its_order() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let k = app.key;
    let host = b.connected(&mut app, 0, 0, 5, 1);
    let (a, mid, c) = (id(5, 1), id(7, 1), id(5, 2));
    app.op(0, abi::OP_TX_PUSH, 1, host, 1, 0);
    b.pass();
    assert_eq!(b.sent(), vec![(0, push(k, a, 1))]);
    b.owner_event(
        0,
        OwnerEvt::Bounced {
            host,
            cmd: push_cmd(k, a, 1),
        },
    );
    b.pass();
    assert_eq!(b.sent(), vec![(0, Sent::MoveFence { host, conn: a })]);
    b.owner_event(0, OwnerEvt::Fenced { host, at: (0, a) });
    b.pass();
    assert_eq!(b.sent(), vec![], "where it went is not known yet");
    app.op(0, abi::OP_TX_PUSH, 2, host, 2, 0);
    // The second move (back to owner 0) is announced first.
    b.owner_event(
        0,
        OwnerEvt::Moved {
            app: k,
            host,
            from: (1, mid),
            to: (0, c),
        },
    );
    b.pass();
    assert_eq!(b.sent(), vec![]);
    b.owner_event(
        1,
        OwnerEvt::Moved {
            app: k,
            host,
            from: (0, a),
            to: (1, mid),
        },
    );
    b.pass();
    assert_eq!(
        b.sent(),
        vec![
            (1, push(k, mid, 1)),
            (1, push(k, mid, 2)),
            (1, settled(k, mid)),
            (1, Sent::MoveFence { host, conn: mid }),
        ],
        "sent on to the first stop, which has left too: fenced behind them"
    );
    app.op(0, abi::OP_TX_PUSH, 3, host, 3, 0);
    b.pass();
    assert_eq!(b.sent(), vec![]);
    for cmd in [
        push_cmd(k, mid, 1),
        push_cmd(k, mid, 2),
        OwnerCmd::MoveSettled {
            app: k,
            conn: mid,
            release: None,
        },
    ] {
        b.owner_event(1, OwnerEvt::Bounced { host, cmd });
    }
    b.owner_event(1, OwnerEvt::Fenced { host, at: (1, mid) });
    b.pass();
    assert_eq!(
        b.sent(),
        vec![
            (0, push(k, c, 1)),
            (0, push(k, c, 2)),
            (0, settled(k, c)),
            (0, push(k, c, 3)),
            (0, settled(k, c)),
        ],
        "what the first stop gave back (its settle too), then what was held"
    );
    assert_eq!(b.front.moves.holding(), 0);
    assert_alive(&b, &app);
}

/// A fence answer from a place the connection is no longer at (a stale
/// or forged one) changes nothing.
#[test]
fn a_fence_answer_from_elsewhere_is_ignored() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let k = app.key;
    let host = b.connected(&mut app, 0, 0, 5, 1);
    b.owner_event(
        1,
        OwnerEvt::Moved {
            app: k,
            host,
            from: (0, id(5, 1)),
            to: (1, id(3, 3)),
        },
    );
    b.pass();
    b.sent();
    b.owner_event(
        1,
        OwnerEvt::Fenced {
            host,
            at: (1, id(3, 3)),
        },
    );
    app.op(0, abi::OP_TX_PUSH, 1, host, 9, 0);
    b.pass();
    assert_eq!(b.sent(), vec![], "still held");
    b.owner_event(
        0,
        OwnerEvt::Fenced {
            host,
            at: (0, id(5, 1)),
        },
    );
    b.pass();
    assert_eq!(
        b.sent(),
        vec![(1, push(k, id(3, 3), 9)), (1, settled(k, id(3, 3)))]
    );
}

/// An application that exits while its connection moves: its last writes
/// reach the new owner before the connection is closed there (the exit
/// closes it only through the settle, after them).
#[test]
fn an_exit_during_a_move_closes_the_connection_after_its_last_writes() {
    let mut b = Bench::new(2);
    let mut app = b.register(1);
    let k = app.key;
    let host = b.connected(&mut app, 0, 0, 5, 1);
    let (old, new) = (id(5, 1), id(6, 1));
    app.op(0, abi::OP_TX_PUSH, 1, host, 4000, 0);
    b.pass();
    assert_eq!(b.sent(), vec![(0, push(k, old, 4000))]);
    // The process exits before the front hears of the move.
    b.front.member_gone(k);
    b.pass();
    let sent = b.sent();
    assert_eq!(
        sent,
        vec![
            (
                0,
                Sent::AppGone {
                    app: k,
                    graceful: true
                }
            ),
            (
                1,
                Sent::AppGone {
                    app: k,
                    graceful: true
                }
            ),
        ]
    );
    // The write reached the old owner after the group had left.
    b.owner_event(
        0,
        OwnerEvt::Bounced {
            host,
            cmd: push_cmd(k, old, 4000),
        },
    );
    b.owner_event(
        1,
        OwnerEvt::Moved {
            app: k,
            host,
            from: (0, old),
            to: (1, new),
        },
    );
    b.pass();
    assert_eq!(b.sent(), vec![(0, Sent::MoveFence { host, conn: old })]);
    b.owner_event(0, OwnerEvt::Fenced { host, at: (0, old) });
    b.pass();
    assert_eq!(
        b.sent(),
        vec![
            (1, push(k, new, 4000)),
            (
                1,
                Sent::MoveSettled {
                    app: k,
                    conn: new,
                    release: Some(true)
                }
            ),
        ],
        "the write, then a graceful close as at exit"
    );
    b.owner_event(1, OwnerEvt::Released { host });
    b.pass();
    assert_eq!((b.front.moves.moved(), b.front.moves.holding()), (0, 0));
}
