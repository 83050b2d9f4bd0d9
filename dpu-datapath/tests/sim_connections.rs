//! Many connections, churn, half-close, resets and zero windows on the
//! simulated wire.

mod common;

use common::*;
use dpu_datapath::app::{ConnError, ConnId};
use dpu_datapath::engine::ApiError;
use dpu_datapath::proto::TcpState;
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{LinkParams, SimPair};

fn small_buffers(c: &mut pipeline_config::Config) {
    c.tcp.rx_buffer = 32 * 1024;
    c.tcp.tx_buffer = 32 * 1024;
    c.tcp.listen_backlog = 4096;
    c.tcp.time_wait_ms = 100;
}

fn assert_tables_empty(sim: &mut SimPair) {
    // Let TIME-WAIT (100 ms in these tests) expire.
    let deadline = sim.now + 5 * SEC;
    let empty = sim.run_until(deadline, |s| tables_empty(s));
    assert!(
        empty,
        "tables not empty: flows {} {}, apps {} {}, control {:?} {:?}",
        sim.a.flow_count(),
        sim.b.flow_count(),
        sim.a.app_conn_count(),
        sim.b.app_conn_count(),
        sim.a.control_counts(),
        sim.b.control_counts()
    );
}

#[test]
fn thousand_concurrent_connections_of_64k() {
    const N: usize = 1000;
    const SIZE: u64 = 64 * 1024;
    let mut sim = pair_with(
        LinkParams {
            loss: 0.001,
            ..Default::default()
        },
        11,
        small_buffers,
    );
    sim.b.listen(PORT, None).unwrap();
    let clients: Vec<ConnId> = (0..N)
        .map(|_| sim.a.connect(B_IP, PORT, sim.now).unwrap())
        .collect();
    let mut senders: Vec<StreamSender> = (0..N)
        .map(|i| StreamSender::new(1000 + i as u64, SIZE))
        .collect();
    // B's side: accepted connections, matched to clients by port.
    let mut servers: Vec<(ConnId, StreamReceiver, u16)> = Vec::new();
    let done = sim.run_until(60 * SEC, |s| {
        while let Some(c) = s.b.accept(PORT) {
            let port = s.b.conn_tuple(c).unwrap().remote_port;
            servers.push((c, StreamReceiver::default(), port));
        }
        for (i, c) in clients.iter().enumerate() {
            if s.a.conn_state(*c) == Some(TcpState::Established) || senders[i].sent() > 0 {
                senders[i].pump(&mut s.a, *c);
            }
        }
        for (c, r, _) in servers.iter_mut() {
            r.pump(&mut s.b, *c);
        }
        servers.len() == N && servers.iter().all(|(_, r, _)| r.eof())
    });
    assert!(
        done,
        "only {} connections finished",
        servers.iter().filter(|s| s.1.eof()).count()
    );
    // Per-connection integrity: each receiver got exactly its sender's stream.
    for (c, r, port) in &servers {
        let i = clients
            .iter()
            .position(|cl| sim.a.conn_tuple(*cl).map(|t| t.local_port) == Some(*port))
            .unwrap();
        assert_eq!(r.received(), SIZE);
        assert_eq!(r.digest(), senders[i].digest(), "connection {c} corrupted");
    }
    for (c, _, _) in &servers {
        sim.b.close(*c).unwrap();
    }
    for c in &clients {
        sim.a.close(*c).unwrap();
    }
    assert_tables_empty(&mut sim);
}

#[test]
fn ten_thousand_sequential_connections() {
    let mut sim = pair_with(LinkParams::default(), 12, small_buffers);
    sim.b.listen(PORT, None).unwrap();
    for i in 0..10_000u32 {
        let a = sim.a.connect(B_IP, PORT, sim.now).unwrap();
        let mut b = None;
        let msg = i.to_be_bytes();
        let mut got = Vec::new();
        let ok = sim.run_until(sim.now + 10 * SEC, |s| {
            if b.is_none() {
                b = s.b.accept(PORT);
            }
            if s.a.conn_state(a) == Some(TcpState::Established) && s.a.all_sent(a) {
                let _ = s.a.send(a, &msg);
                let _ = s.a.close(a);
            }
            if let Some(b) = b {
                let mut buf = [0u8; 16];
                if let Ok(n) = s.b.recv(b, &mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
                if s.b.at_eof(b) {
                    let _ = s.b.close(b);
                    return got == msg;
                }
            }
            false
        });
        assert!(ok, "connection {i} failed");
    }
    assert_eq!(sim.a.stats().connections_opened, 10_000);
    assert_eq!(sim.b.stats().connections_accepted, 10_000);
    assert_tables_empty(&mut sim);
}

fn half_close(a_closes_first: bool) {
    let mut sim = pair(LinkParams::default(), 13);
    let (ca, cb) = connect(&mut sim);
    let (first, second) = if a_closes_first { (ca, cb) } else { (cb, ca) };
    // The first side sends 100 KiB then half-closes; the second keeps
    // sending 1 MiB after seeing EOF, then closes.
    let mut tx1 = StreamSender::new(1, 100 * 1024);
    let mut tx2 = StreamSender::new(2, 1024 * 1024);
    let mut rx1 = StreamReceiver::default();
    let mut rx2 = StreamReceiver::default();
    let ok = sim.run_until(10 * SEC, |s| {
        let (e1, e2) = if a_closes_first {
            (&mut s.a, &mut s.b)
        } else {
            (&mut s.b, &mut s.a)
        };
        tx1.pump(e1, first);
        rx2.pump(e2, second);
        if rx2.eof() {
            // Our peer half-closed: we are in CLOSE-WAIT and may still send.
            if tx2.sent() == 0 {
                assert_eq!(e2.conn_state(second), Some(TcpState::CloseWait));
            }
            tx2.pump(e2, second);
        }
        rx1.pump(e1, first);
        rx1.eof() && rx2.eof()
    });
    assert!(ok);
    assert_eq!(rx2.digest(), tx1.digest());
    assert_eq!(rx1.received(), 1024 * 1024);
    assert_eq!(rx1.digest(), tx2.digest());
}

#[test]
fn half_close_a_first() {
    half_close(true);
}

#[test]
fn half_close_b_first() {
    half_close(false);
}

#[test]
fn abort_mid_transfer_resets_the_peer() {
    let mut sim = pair(LinkParams::default(), 14);
    let (ca, cb) = connect(&mut sim);
    let mut tx = StreamSender::new(3, 8 * 1024 * 1024);
    let mut rx = StreamReceiver::default();
    sim.run_until(sim.now + SEC, |s| {
        tx.pump(&mut s.a, ca);
        rx.pump(&mut s.b, cb);
        rx.received() > 1024 * 1024
    });
    sim.a.abort(ca).unwrap();
    let reset = sim.run_until(sim.now + SEC, |s| {
        rx.pump(&mut s.b, cb);
        s.b.conn_error(cb).is_some()
    });
    assert!(reset);
    assert_eq!(sim.b.conn_error(cb), Some(ConnError::Reset));
    assert_eq!(
        sim.b.send(cb, b"x"),
        Err(ApiError::Connection(ConnError::Reset))
    );
    assert_eq!(sim.b.stats().connections_reset, 1);
    sim.b.close(cb).unwrap();
    assert_eq!(sim.a.flow_count() + sim.b.flow_count(), 0);
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut sim = pair(LinkParams::default(), 15);
    let c = sim.a.connect(B_IP, 9, 0).unwrap();
    let ok = sim.run_until(SEC, |s| s.a.conn_error(c).is_some());
    assert!(ok);
    assert_eq!(sim.a.conn_error(c), Some(ConnError::Refused));
}

#[test]
fn connect_to_silent_host_times_out() {
    let mut sim = pair(LinkParams::default(), 16);
    let c = sim
        .a
        .connect(std::net::Ipv4Addr::new(198, 18, 0, 99), 80, 0)
        .unwrap();
    let ok = sim.run_until(30 * SEC, |s| s.a.conn_error(c).is_some());
    assert!(ok);
    assert_eq!(sim.a.conn_error(c), Some(ConnError::HostUnreachable));
}

#[test]
fn zero_window_then_update_within_one_rtt_of_reading() {
    let mut sim = pair_with(LinkParams::default(), 17, |c| {
        c.tcp.rx_buffer = 64 * 1024;
        c.tcp.tx_buffer = 256 * 1024;
    });
    let (ca, cb) = connect(&mut sim);
    let mut tx = StreamSender::new(4, 200 * 1024);
    // B does not read: its window closes and A starts probing.
    sim.run_until(sim.now + 3 * SEC, |s| {
        tx.pump(&mut s.a, ca);
        s.a.stats().zero_window_probes >= 2
    });
    assert!(
        sim.a.stats().zero_window_probes >= 2,
        "A never probed the zero window"
    );
    assert_eq!(sim.b.conn_info(cb).unwrap().rcv_wnd, 0);
    let before = sim.b.readable(cb);
    assert_eq!(before, 64 * 1024);
    // B reads everything; new data must arrive within one RTT (two link
    // latencies plus serialisation), not at the next probe.
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(sim.b.recv(cb, &mut buf).unwrap(), 64 * 1024);
    assert!(sim.b.stats().window_updates >= 1);
    let read_at = sim.now;
    let rtt = 2 * LinkParams::default().latency_ns + 50_000;
    let resumed = sim.run_until(read_at + 10 * SEC, |s| {
        tx.pump(&mut s.a, ca);
        s.b.readable(cb) > 0
    });
    assert!(resumed);
    assert!(
        sim.now - read_at <= rtt,
        "data resumed {} us after the read",
        (sim.now - read_at) / 1000
    );
}
