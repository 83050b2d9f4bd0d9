//! Two engines on the simulated wire move 16 MiB each way under faults.

mod common;

use common::*;
use dpu_datapath::sim::{Direction, LinkParams};
use dpu_datapath::stats::DropReason;

const SIZE: u64 = 16 * 1024 * 1024;

fn run(link: LinkParams, seed: u64, bound_s: u64) -> BulkResult {
    let r = bulk_both_ways(pair(link, seed), SIZE, seed, bound_s * SEC);
    assert!(r.completed, "transfer did not complete within {bound_s} s simulated");
    eprintln!(
        "simulated {:.3} s; A {:?}\nB {:?}",
        r.elapsed_ns as f64 / 1e9,
        r.sim.a.stats(),
        r.sim.b.stats()
    );
    r
}

#[test]
fn no_faults() {
    let r = run(LinkParams::default(), 1, 5);
    assert_eq!(r.sim.a.stats().retransmit_segments, 0);
    assert_eq!(r.sim.b.stats().retransmit_segments, 0);
}

#[test]
fn loss_1_percent() {
    let r = run(LinkParams { loss: 0.01, ..Default::default() }, 2, 30);
    assert!(r.sim.a.stats().retransmit_segments > 0);
    assert!(r.sim.b.stats().retransmit_segments > 0);
}

#[test]
fn corruption_1_percent_is_counted_exactly() {
    let r = run(LinkParams { corrupt: 0.01, ..Default::default() }, 7, 30);
    let to_b = r.sim.wire.counters(Direction::AtoB).corrupted;
    let to_a = r.sim.wire.counters(Direction::BtoA).corrupted;
    assert!(to_b > 0 && to_a > 0);
    assert_eq!(r.sim.b.stats().drops(DropReason::TcpBadChecksum), to_b);
    assert_eq!(r.sim.a.stats().drops(DropReason::TcpBadChecksum), to_a);
}
