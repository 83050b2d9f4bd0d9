//! The host interface's trust boundary, against the real service on the
//! loopback backend: an application speaking the ABI by hand gets echo
//! service over its rings, and every bound the DPU checks is shown to be
//! checked (each crafted descriptor closes the offender with the expected
//! reason, resets its connections, and leaves the service and other
//! applications running).

use doca_bindings::abi::{self, Desc};
use flextoe_tests::hostif::{RawApp, Service};
use serde_json::Value;
use std::net::SocketAddrV4;
use std::time::Duration;

const ECHO: u16 = 7;

fn echo_once(app: &mut RawApp, ctx: usize, to: SocketAddrV4, msg: &[u8]) -> u64 {
    let (conn, slot) = app.connect(ctx, to).expect("connect");
    let l = app.layout;
    app.region
        .write(l.tx_buf_offset(slot), msg)
        .expect("write tx");
    app.post(
        ctx,
        Desc {
            op: abi::OP_TX_PUSH,
            conn,
            a: msg.len() as u64,
            ..Desc::default()
        },
    );
    let ev = app
        .wait_event(ctx, Duration::from_secs(10), |e| {
            e.op == abi::EV_CONN && e.conn == conn && e.a >= msg.len() as u64
        })
        .expect("echo arrives");
    assert_eq!(ev.a, msg.len() as u64);
    let mut back = vec![0u8; msg.len()];
    app.region.read(l.rx_buf_offset(slot), &mut back).unwrap();
    assert_eq!(back, msg, "echoed bytes in the RX buffer");
    app.post(
        ctx,
        Desc {
            op: abi::OP_RX_POP,
            conn,
            a: msg.len() as u64,
            ..Desc::default()
        },
    );
    conn
}

#[test]
fn raw_application_echo_over_rings() {
    let Some(svc) = Service::start("raw-echo", 2) else {
        return;
    };
    let mut app = RawApp::register(&svc.socket, "raw", 2).expect("register");
    let to = SocketAddrV4::new(svc.ip, ECHO);
    for ctx in 0..2 {
        for i in 0..4 {
            let msg = format!("hello {ctx}/{i} through the DPU rings");
            let conn = echo_once(&mut app, ctx, to, msg.as_bytes());
            let r = app
                .call(
                    ctx,
                    Desc {
                        op: abi::OP_CLOSE,
                        conn,
                        ..Desc::default()
                    },
                )
                .expect("close reply");
            assert_eq!(r.status, 0);
        }
    }
    let (ok, s) = svc.wait_stat(Duration::from_secs(5), |s| s["app_conns"] == 0);
    assert!(ok, "connections released: {s}");
}

/// Waits for `EV_FATAL` on `ctx` and returns its reason.
fn fatal_reason(app: &mut RawApp, ctx: usize) -> Option<u64> {
    app.wait_event(ctx, Duration::from_secs(10), |e| e.op == abi::EV_FATAL)
        .map(|e| {
            assert_eq!(e.status, -libc::EPROTO);
            e.a
        })
}

fn violations(s: &Value) -> u64 {
    s["hostif"]["violations"].as_u64().unwrap()
}

fn resets(s: &Value) -> u64 {
    s["engine"]["connections_reset"].as_u64().unwrap_or(0)
        + s["engine"]["rst_sent"].as_u64().unwrap_or(0)
}

/// Runs `attack` from a fresh application holding one open echo
/// connection; checks the reason, that the connection was reset and that a
/// bystander application keeps working on its own open connection.
fn expect_violation(
    svc: &Service,
    name: &str,
    reason: u64,
    attack: impl FnOnce(&mut RawApp, u64, u32),
) {
    let to = SocketAddrV4::new(svc.ip, ECHO);
    let mut bystander = RawApp::register(&svc.socket, "bystander", 1).expect("register");
    let kept = echo_once(&mut bystander, 0, to, b"before");
    let mut bad = RawApp::register(&svc.socket, name, 2).expect("register");
    let (conn, slot) = bad.connect(0, to).expect("connect");
    let before = svc.fresh_stat();
    let (before_v, before_rst) = (violations(&before), resets(&before));
    attack(&mut bad, conn, slot);
    assert_eq!(
        fatal_reason(&mut bad, 1),
        Some(reason),
        "{name}: reason on context 1"
    );
    let (ok, s) = svc.wait_stat(Duration::from_secs(5), |s| {
        s["hostif"]["violations"].as_u64() == Some(before_v + 1)
    });
    assert!(ok, "{name}: violation counted: {s}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while resets(&svc.stat()) <= before_rst {
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: its connection was not reset"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The bystander's open connection still echoes (stream offsets go on).
    let l = bystander.layout;
    let slot_b = {
        // Its slot: the first one the service gave it.
        0
    };
    bystander
        .region
        .write(l.tx_buf_offset(slot_b) + 6, b"after")
        .unwrap();
    bystander.post(
        0,
        Desc {
            op: abi::OP_TX_PUSH,
            conn: kept,
            a: 11,
            ..Desc::default()
        },
    );
    let ev = bystander
        .wait_event(0, Duration::from_secs(10), |e| {
            e.op == abi::EV_CONN && e.conn == kept && e.a >= 11
        })
        .expect("bystander still served");
    assert_eq!(ev.status, 0);
    let mut back = [0u8; 5];
    bystander
        .region
        .read(l.rx_buf_offset(slot_b) + 6, &mut back)
        .unwrap();
    assert_eq!(&back, b"after");
}

#[test]
fn every_descriptor_bound_is_checked() {
    let Some(mut svc) = Service::start("bounds", 2) else {
        return;
    };
    let ring = |app: &RawApp| app.layout.request_ring(0);
    // Producer index past the end of the request ring.
    expect_violation(
        &svc,
        "ring-index",
        abi::VIOLATION_RING_INDEX,
        |app, _, _| {
            let r = ring(app);
            let head = app.region.atomic_u32(r.head).unwrap();
            head.store(r.capacity + 7, std::sync::atomic::Ordering::Release);
            app.kick();
        },
    );
    // Consumer index of the event ring moved past what was posted.
    expect_violation(
        &svc,
        "event-index",
        abi::VIOLATION_RING_INDEX,
        |app, _, _| {
            let r = app.layout.event_ring(0);
            let tail = app.region.atomic_u32(r.tail).unwrap();
            tail.store(0x8000_0000, std::sync::atomic::Ordering::Release);
            app.post(
                0,
                Desc {
                    op: abi::OP_LISTEN,
                    a: 4000,
                    ..Desc::default()
                },
            );
        },
    );
    expect_violation(
        &svc,
        "unknown-op",
        abi::VIOLATION_UNKNOWN_OP,
        |app, _, _| {
            app.post(
                0,
                Desc {
                    op: 0x7777,
                    ..Desc::default()
                },
            );
        },
    );
    // A handle of another application's connection, and made-up handles.
    let mut victim = RawApp::register(&svc.socket, "victim", 1).unwrap();
    let (victim_conn, victim_slot) = victim.connect(0, SocketAddrV4::new(svc.ip, ECHO)).unwrap();
    expect_violation(&svc, "foreign", abi::VIOLATION_FOREIGN_CONN, |app, _, _| {
        app.post(
            0,
            Desc {
                op: abi::OP_TX_PUSH,
                conn: victim_conn,
                a: 100,
                ..Desc::default()
            },
        );
    });
    for (i, forged) in [1u64, (1 << 56) | 5, (2 << 56) | (3 << 32), u64::MAX]
        .into_iter()
        .enumerate()
    {
        expect_violation(
            &svc,
            &format!("forged-{i}"),
            abi::VIOLATION_FOREIGN_CONN,
            |app, _, _| {
                app.post(
                    0,
                    Desc {
                        op: abi::OP_CLOSE,
                        conn: forged,
                        ..Desc::default()
                    },
                );
            },
        );
    }
    // TX push past the free space of its own buffer, and backwards.
    expect_violation(
        &svc,
        "tx-past-end",
        abi::VIOLATION_TX_BOUNDS,
        |app, conn, _| {
            let size = u64::from(app.layout.tx_buf_size);
            app.post(
                0,
                Desc {
                    op: abi::OP_TX_PUSH,
                    conn,
                    a: size + 1,
                    ..Desc::default()
                },
            );
        },
    );
    expect_violation(
        &svc,
        "tx-backwards",
        abi::VIOLATION_TX_BOUNDS,
        |app, conn, slot| {
            let off = app.layout.tx_buf_offset(slot);
            app.region.write(off, b"0123456789").unwrap();
            for a in [10, 4] {
                app.post(
                    0,
                    Desc {
                        op: abi::OP_TX_PUSH,
                        conn,
                        a,
                        ..Desc::default()
                    },
                );
            }
        },
    );
    // RX pop of bytes never delivered.
    expect_violation(
        &svc,
        "rx-past-delivered",
        abi::VIOLATION_RX_BOUNDS,
        |app, conn, _| {
            app.post(
                0,
                Desc {
                    op: abi::OP_RX_POP,
                    conn,
                    a: 1000,
                    ..Desc::default()
                },
            );
        },
    );
    // The victim was never affected: its connection, whose handle every
    // attack above used, still echoes.
    assert!(svc.alive(), "service still running");
    let l = victim.layout;
    victim
        .region
        .write(l.tx_buf_offset(victim_slot), b"victim")
        .unwrap();
    victim.post(
        0,
        Desc {
            op: abi::OP_TX_PUSH,
            conn: victim_conn,
            a: 6,
            ..Desc::default()
        },
    );
    let ev = victim
        .wait_event(0, Duration::from_secs(10), |e| {
            e.op == abi::EV_CONN && e.conn == victim_conn && e.a >= 6
        })
        .expect("the victim's connection still echoes");
    assert_eq!((ev.status, ev.a), (0, 6));
    let mut back = [0u8; 6];
    victim
        .region
        .read(l.rx_buf_offset(victim_slot), &mut back)
        .unwrap();
    assert_eq!(&back, b"victim");
    drop(victim);
    let (ok, s) = svc.wait_stat(Duration::from_secs(10), |s| s["app_conns"] == 0);
    assert!(ok, "every application's connections were released: {s}");
}

#[test]
fn random_descriptors_never_hurt_the_service() {
    use rand::{Rng, SeedableRng};
    let Some(mut svc) = Service::start("fuzz", 2) else {
        return;
    };
    let to = SocketAddrV4::new(svc.ip, ECHO);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut good = RawApp::register(&svc.socket, "good", 1).unwrap();
    for round in 0..40 {
        let mut bad = RawApp::register(&svc.socket, "fuzzer", 1).unwrap();
        let own = bad.connect(0, to).ok().map(|c| c.0);
        for _ in 0..rng.gen_range(1..32) {
            let d = Desc {
                op: if rng.gen_bool(0.8) {
                    rng.gen_range(0..12)
                } else {
                    rng.gen()
                },
                flags: rng.gen(),
                status: rng.gen(),
                tag: rng.gen(),
                conn: match rng.gen_range(0..3) {
                    0 => own.unwrap_or(0),
                    1 => rng.gen::<u64>() & 0x03FF_FFFF_FFFF_FFFF,
                    _ => rng.gen(),
                },
                a: if rng.gen_bool(0.5) {
                    rng.gen_range(0..70_000)
                } else {
                    rng.gen()
                },
                b: rng.gen(),
                c: rng.gen(),
            };
            bad.post(0, d);
        }
        // Meanwhile a well-behaved application is served.
        let msg = format!("round {round}");
        let conn = echo_once(&mut good, 0, to, msg.as_bytes());
        good.call(
            0,
            Desc {
                op: abi::OP_CLOSE,
                conn,
                ..Desc::default()
            },
        )
        .expect("close");
        drop(bad);
    }
    assert!(svc.alive());
    drop(good);
    let (ok, s) = svc.wait_stat(Duration::from_secs(10), |s| s["app_conns"] == 0);
    assert!(ok, "tables back to empty: {s}");
}
