//! Shared helpers for simulated-wire tests.
#![allow(dead_code)]

use dpu_datapath::app::ConnId;
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{sim_engine_config, LinkParams, SimPair};
use pipeline_config::Config;
use std::net::Ipv4Addr;

pub const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PORT: u16 = 5000;
pub const SEC: u64 = 1_000_000_000;

pub fn pair_with(link: LinkParams, seed: u64, tweak: impl Fn(&mut Config) + Copy) -> SimPair {
    let a = sim_engine_config(1, seed, tweak);
    let b = sim_engine_config(2, seed, tweak);
    SimPair::new(a, b, link, link, seed)
}

pub fn pair(link: LinkParams, seed: u64) -> SimPair {
    pair_with(link, seed, |_| {})
}

/// Opens a connection from A to B's listener; returns (A's end, B's end).
pub fn connect(sim: &mut SimPair) -> (ConnId, ConnId) {
    if sim.b.listen(PORT, None).is_err() {
        // already listening
    }
    let a = sim.a.connect(B_IP, PORT, sim.now).expect("connect");
    let mut b = None;
    let ok = sim.run_until(sim.now + 60 * SEC, |s| {
        if b.is_none() {
            b = s.b.accept(PORT);
        }
        b.is_some() && s.a.conn_state(a) == Some(dpu_datapath::proto::TcpState::Established)
    });
    assert!(ok, "handshake did not complete");
    (a, b.unwrap())
}

/// Result of a bidirectional bulk transfer.
#[derive(Debug)]
pub struct BulkResult {
    pub sim: SimPair,
    pub completed: bool,
    pub elapsed_ns: u64,
}

/// Moves `size` bytes each way over one connection and checks both hashes.
pub fn bulk_both_ways(mut sim: SimPair, size: u64, seed: u64, bound_ns: u64) -> BulkResult {
    let (ca, cb) = connect(&mut sim);
    let start = sim.now;
    let mut a_tx = StreamSender::new(seed.wrapping_mul(31).wrapping_add(1), size);
    let mut b_tx = StreamSender::new(seed.wrapping_mul(31).wrapping_add(2), size);
    let mut a_rx = StreamReceiver::default();
    let mut b_rx = StreamReceiver::default();
    let completed = sim.run_until(start + bound_ns, |s| {
        a_tx.pump(&mut s.a, ca);
        b_tx.pump(&mut s.b, cb);
        a_rx.pump(&mut s.a, ca);
        b_rx.pump(&mut s.b, cb);
        a_rx.eof() && b_rx.eof() && a_tx.done() && b_tx.done()
    });
    if completed {
        assert_eq!(b_rx.received(), size, "A->B byte count");
        assert_eq!(a_rx.received(), size, "B->A byte count");
        assert_eq!(b_rx.digest(), a_tx.digest(), "A->B SHA-256");
        assert_eq!(a_rx.digest(), b_tx.digest(), "B->A SHA-256");
    } else {
        eprintln!(
            "incomplete: A sent {} B got {} (eof {}), B sent {} A got {} (eof {}); A {:?} B {:?}",
            a_tx.sent(),
            b_rx.received(),
            b_rx.eof(),
            b_tx.sent(),
            a_rx.received(),
            a_rx.eof(),
            sim.a.conn_info(ca),
            sim.b.conn_info(cb)
        );
        eprintln!("A stats {:?}", sim.a.stats());
    }
    let elapsed_ns = sim.now - start;
    let _ = (sim.a.close(ca), sim.b.close(cb));
    BulkResult {
        sim,
        completed,
        elapsed_ns,
    }
}

/// Both engines hold no flow, application connection, handshake or
/// TIME-WAIT entry.
pub fn tables_empty(s: &SimPair) -> bool {
    s.a.flow_count() == 0
        && s.b.flow_count() == 0
        && s.a.app_conn_count() == 0
        && s.b.app_conn_count() == 0
        && s.a.control_counts() == (0, 0)
        && s.b.control_counts() == (0, 0)
}
