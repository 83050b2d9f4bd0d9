//! Two engines on the simulated wire move 16 MiB each way, SHA-256 checked,
//! within a bound of simulated time, under each fault and all at once.

mod common;

use common::*;
use dpu_datapath::sim::{Direction, LinkParams};
use dpu_datapath::stats::DropReason;

const SIZE: u64 = 16 * 1024 * 1024;

fn run(link: LinkParams, seed: u64, bound_s: u64) -> BulkResult {
    let r = bulk_both_ways(pair(link, seed), SIZE, seed, bound_s * SEC);
    assert!(
        r.completed,
        "transfer did not complete within {bound_s} s simulated"
    );
    eprintln!(
        "simulated {:.3} s\nA {:?}\nB {:?}",
        r.elapsed_ns as f64 / 1e9,
        r.sim.a.stats(),
        r.sim.b.stats()
    );
    r
}

fn assert_retransmitted(r: &BulkResult) {
    assert!(
        r.sim.a.stats().retransmit_segments > 0,
        "A never retransmitted"
    );
    assert!(
        r.sim.b.stats().retransmit_segments > 0,
        "B never retransmitted"
    );
}

fn assert_checksum_drops_match(r: &BulkResult) {
    let to_b = r.sim.wire.counters(Direction::AtoB).corrupted;
    let to_a = r.sim.wire.counters(Direction::BtoA).corrupted;
    assert!(to_b > 0 && to_a > 0, "no corruption injected");
    assert_eq!(r.sim.b.stats().drops(DropReason::TcpBadChecksum), to_b);
    assert_eq!(r.sim.a.stats().drops(DropReason::TcpBadChecksum), to_a);
}

#[test]
fn no_faults() {
    let r = run(LinkParams::default(), 1, 1);
    assert_eq!(r.sim.a.stats().retransmit_segments, 0);
    assert_eq!(r.sim.b.stats().retransmit_segments, 0);
    assert_eq!(r.sim.a.stats().total_drops(), 0);
    assert_eq!(r.sim.b.stats().total_drops(), 0);
}

#[test]
fn loss_1_percent() {
    assert_retransmitted(&run(
        LinkParams {
            loss: 0.01,
            ..Default::default()
        },
        2,
        5,
    ));
}

#[test]
fn loss_5_percent() {
    assert_retransmitted(&run(
        LinkParams {
            loss: 0.05,
            ..Default::default()
        },
        3,
        20,
    ));
}

#[test]
fn loss_10_percent() {
    assert_retransmitted(&run(
        LinkParams {
            loss: 0.10,
            ..Default::default()
        },
        4,
        60,
    ));
}

#[test]
fn reorder_25_percent() {
    let r = run(
        LinkParams {
            reorder: 0.25,
            ..Default::default()
        },
        5,
        5,
    );
    assert!(r.sim.wire.counters(Direction::AtoB).reordered > 0);
}

#[test]
fn duplication_5_percent() {
    let r = run(
        LinkParams {
            duplicate: 0.05,
            ..Default::default()
        },
        6,
        5,
    );
    assert!(r.sim.b.stats().drops(DropReason::OldDuplicate) > 0);
}

#[test]
fn corruption_1_percent_is_counted_exactly() {
    assert_checksum_drops_match(&run(
        LinkParams {
            corrupt: 0.01,
            ..Default::default()
        },
        7,
        5,
    ));
}

#[test]
fn all_faults_at_once() {
    let link = LinkParams {
        loss: 0.05,
        reorder: 0.25,
        duplicate: 0.05,
        corrupt: 0.01,
        ..Default::default()
    };
    let r = run(link, 8, 30);
    assert_retransmitted(&r);
    assert_checksum_drops_match(&r);
}

#[test]
fn slow_long_link_without_sack_or_timestamps() {
    // NewReno path (no SACK), no timestamps (Karn-timed RTT), no window
    // scaling: 64 KiB window over a 2 ms, 100 Mbit/s link with 2% loss.
    let link = LinkParams {
        latency_ns: 2_000_000,
        bandwidth_bps: 100_000_000,
        loss: 0.02,
        ..Default::default()
    };
    let sim = pair_with(link, 9, |c| {
        c.tcp.sack = false;
        c.tcp.timestamps = false;
        c.tcp.window_scale = false;
    });
    let r = bulk_both_ways(sim, 2 * 1024 * 1024, 9, 120 * SEC);
    assert!(r.completed);
    assert_retransmitted(&r);
}
