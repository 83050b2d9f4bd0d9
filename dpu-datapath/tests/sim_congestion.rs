//! Congestion control through a bottleneck (issue 16): eight connections
//! from A to B share one 10 Gbit/s switch port with a finite queue. With
//! DCTCP and ECN marking above K = 65 packets the queue stays near K, no
//! frame is dropped, the link stays busy and the flows share it fairly;
//! with NewReno and no ECN the same queue fills until it drops. Both are
//! asserted, so the contrast is the test.

mod common;

use common::*;
use dpu_datapath::app::ConnId;
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{Direction, LinkParams, SimPair, WireCounters};
use pipeline_config::CongestionControl;

const FLOWS: usize = 8;
/// Wire bytes of a full segment (Ethernet + IPv4 + TCP with timestamps).
const FRAME: u64 = 14 + 20 + 32 + 1436;
const K_PACKETS: u64 = 65;
const BUFFER_PACKETS: u64 = 250;
const MS: u64 = 1_000_000;

struct Run {
    counters: WireCounters,
    /// Payload bytes each flow delivered during the measurement.
    delivered: Vec<u64>,
    utilisation: f64,
    timeouts: u64,
    reductions: u64,
}

fn bottleneck(cc: Option<CongestionControl>) -> Run {
    let link = LinkParams {
        latency_ns: 20_000,
        bandwidth_bps: 10_000_000_000,
        queue_bytes: BUFFER_PACKETS * FRAME,
        ecn_mark_bytes: if cc.is_some() { K_PACKETS * FRAME } else { 0 },
        ..LinkParams::default()
    };
    let mut sim: SimPair = pair_with(link, 16, |c| {
        if let Some(cc) = cc {
            c.tcp.ecn = true;
            c.tcp.congestion_control = cc;
        }
        c.tcp.rx_buffer = 1 << 20;
        c.tcp.tx_buffer = 1 << 20;
        c.tcp.min_rto_ms = 5;
        c.tcp.initial_rto_ms = 5;
    });
    let conns: Vec<(ConnId, ConnId)> = (0..FLOWS).map(|_| connect(&mut sim)).collect();
    let mut senders: Vec<StreamSender> = (0..FLOWS)
        .map(|i| StreamSender::new(i as u64, u64::MAX / 2))
        .collect();
    let mut receivers: Vec<StreamReceiver> =
        (0..FLOWS).map(|_| StreamReceiver::default()).collect();
    let pump = |sim: &mut SimPair,
                senders: &mut Vec<StreamSender>,
                receivers: &mut Vec<StreamReceiver>| {
        for (i, &(a, b)) in conns.iter().enumerate() {
            senders[i].pump(&mut sim.a, a);
            receivers[i].pump(&mut sim.b, b);
        }
    };
    // Warm-up: slow start, the first cuts, the queue settles.
    let warm_until = sim.now + 20 * MS;
    sim.run_until(warm_until, |s| {
        pump(s, &mut senders, &mut receivers);
        false
    });
    sim.wire.reset_counters();
    let stats_before = sim.a.stats().clone();
    let base: Vec<u64> = receivers.iter().map(StreamReceiver::received).collect();
    let started = sim.now;
    let measure_until = started + 40 * MS;
    sim.run_until(measure_until, |s| {
        pump(s, &mut senders, &mut receivers);
        false
    });
    let elapsed = (sim.now - started) as f64 / 1e9;
    let counters = sim.wire.counters(Direction::AtoB);
    let after = sim.a.stats();
    Run {
        counters,
        delivered: receivers
            .iter()
            .zip(&base)
            .map(|(r, b)| r.received() - b)
            .collect(),
        utilisation: counters.link_bytes as f64 * 8.0 / (elapsed * 10e9),
        timeouts: after.timeout_retransmits - stats_before.timeout_retransmits,
        reductions: after.ecn_reductions - stats_before.ecn_reductions,
    }
}

/// Jain's fairness index: 1 when every flow got the same.
fn jain(x: &[u64]) -> f64 {
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let squares: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    sum * sum / (x.len() as f64 * squares)
}

fn report(name: &str, r: &Run) {
    eprintln!(
        "{name}: utilisation {:.3}, Jain {:.3}, queue mean {:.1} / max {} packets (K {K_PACKETS}, \
         buffer {BUFFER_PACKETS}), drops {}, CE marks {}, window cuts {}, timeouts {}, per flow MB {:?}",
        r.utilisation,
        jain(&r.delivered),
        r.counters.queue_mean_bytes() / FRAME as f64,
        r.counters.queue_max_bytes / FRAME,
        r.counters.queue_drops,
        r.counters.ce_marked,
        r.reductions,
        r.timeouts,
        r.delivered.iter().map(|b| b / 1_000_000).collect::<Vec<_>>(),
    );
}

#[test]
fn dctcp_keeps_the_queue_near_k_without_drops_and_shares_fairly() {
    let r = bottleneck(Some(CongestionControl::Dctcp));
    report("dctcp", &r);
    assert_eq!(r.counters.queue_drops, 0, "DCTCP overflowed the buffer");
    assert!(r.counters.ce_marked > 0, "the queue never reached K");
    let max_packets = r.counters.queue_max_bytes / FRAME;
    assert!(
        max_packets <= K_PACKETS + 2 * FLOWS as u64 * 4,
        "queue peaked at {max_packets} packets, K {K_PACKETS}"
    );
    assert!(
        r.utilisation >= 0.95,
        "link utilisation {:.3}",
        r.utilisation
    );
    assert!(
        jain(&r.delivered) >= 0.95,
        "fairness {:.3}",
        jain(&r.delivered)
    );
    assert_eq!(r.timeouts, 0);
}

#[test]
fn reno_without_ecn_fills_the_same_queue_until_it_drops() {
    let r = bottleneck(None);
    report("reno", &r);
    assert!(
        r.counters.queue_drops > 0,
        "Reno never overflowed the buffer"
    );
    let max_packets = r.counters.queue_max_bytes / FRAME;
    assert!(
        max_packets >= BUFFER_PACKETS - 2,
        "queue peaked at {max_packets} of {BUFFER_PACKETS} packets"
    );
    assert_eq!(r.counters.ce_marked, 0);
}

const INCAST_FLOWS: usize = 16;
const INCAST_BYTES: u64 = 256 * 1024;

/// Sixteen senders answer at once, 256 KiB each, through a shallow port
/// (200 packets, room for the first windows of all sixteen; marking above
/// 20): the incast of a partition-aggregate
/// request. Returns (timeouts, drops, completion time in ms).
fn incast(cc: Option<CongestionControl>) -> (u64, u64, f64) {
    let link = LinkParams {
        latency_ns: 20_000,
        bandwidth_bps: 10_000_000_000,
        queue_bytes: 200 * FRAME,
        ecn_mark_bytes: if cc.is_some() { 20 * FRAME } else { 0 },
        ..LinkParams::default()
    };
    let mut sim: SimPair = pair_with(link, 7, |c| {
        if let Some(cc) = cc {
            c.tcp.ecn = true;
            c.tcp.congestion_control = cc;
        }
        c.tcp.min_rto_ms = 10;
        c.tcp.initial_rto_ms = 10;
        // NewReno recovery (no SACK), the harder case for the drops.
        c.tcp.sack = false;
    });
    let conns: Vec<(ConnId, ConnId)> = (0..INCAST_FLOWS).map(|_| connect(&mut sim)).collect();
    let mut senders: Vec<StreamSender> = (0..INCAST_FLOWS)
        .map(|i| StreamSender::new(i as u64, INCAST_BYTES))
        .collect();
    let mut receivers: Vec<StreamReceiver> = (0..INCAST_FLOWS)
        .map(|_| StreamReceiver::default())
        .collect();
    sim.wire.reset_counters();
    let before = sim.a.stats().timeout_retransmits;
    let started = sim.now;
    let done = sim.run_until(started + 2_000 * MS, |s| {
        for (i, &(a, b)) in conns.iter().enumerate() {
            senders[i].pump(&mut s.a, a);
            receivers[i].pump(&mut s.b, b);
        }
        receivers.iter().all(|r| r.received() == INCAST_BYTES)
    });
    assert!(done, "incast did not complete");
    let timeouts = sim.a.stats().timeout_retransmits - before;
    let drops = sim.wire.counters(Direction::AtoB).queue_drops;
    (timeouts, drops, (sim.now - started) as f64 / 1e6)
}

/// The DCTCP paper's incast result is timeouts for TCP, none for DCTCP.
/// Here NewReno's recovery (partial ACKs, early retransmit, the lost
/// retransmission rule) repairs the incast's drops without a timeout at
/// this 40 µs RTT, so the contrast asserted is the drops: DCTCP keeps the
/// shallow queue from overflowing at all, NewReno overflows it.
#[test]
fn incast_dctcp_completes_without_drops_or_timeouts_where_reno_overflows() {
    let (dctcp_timeouts, dctcp_drops, dctcp_ms) = incast(Some(CongestionControl::Dctcp));
    let (reno_timeouts, reno_drops, reno_ms) = incast(None);
    eprintln!(
        "incast {INCAST_FLOWS} x {} KiB: dctcp {dctcp_ms:.2} ms, {dctcp_drops} drops, \
         {dctcp_timeouts} timeouts; reno {reno_ms:.2} ms, {reno_drops} drops, {reno_timeouts} timeouts",
        INCAST_BYTES / 1024
    );
    assert_eq!(dctcp_timeouts, 0, "DCTCP timed out");
    assert_eq!(dctcp_drops, 0, "DCTCP overflowed the shallow buffer");
    assert!(
        reno_drops > 0,
        "NewReno never overflowed: the contrast is gone"
    );
}

/// A connection that only receives never uses its congestion window, so
/// the window does not grow (RFC 7661): after 1 GiB received it is still
/// the initial window (before window validation a receiver's window grew on
/// every ACK it sent nothing for: 674 MB after a few GB, issue 16).
#[test]
fn a_receiver_of_one_gib_keeps_its_initial_window() {
    const GIB: u64 = 1 << 30;
    let mut sim: SimPair = pair_with(LinkParams::default(), 3, |_| {});
    let (a, b) = connect(&mut sim);
    let mut sender = StreamSender::new(9, GIB);
    let mut receiver = StreamReceiver::default();
    let done = sim.run_until(sim.now + 60 * 1_000 * MS, |s| {
        sender.pump(&mut s.b, b);
        receiver.pump(&mut s.a, a);
        receiver.received() == GIB
    });
    assert!(done, "1 GiB did not arrive");
    assert_eq!(receiver.digest(), sender.digest());
    let initial = 10 * 1448;
    let receiver_cwnd = sim.a.conn_info(a).unwrap().cwnd;
    let sender_cwnd = sim.b.conn_info(b).unwrap().cwnd;
    eprintln!("after 1 GiB: receiver cwnd {receiver_cwnd}, sender cwnd {sender_cwnd}");
    assert!(
        receiver_cwnd <= initial,
        "the receiver's unused window grew to {receiver_cwnd}"
    );
    // The sender's window is bounded by what it could use: the peer's
    // receive window (256 KiB) plus the growth of one round.
    assert!(sender_cwnd <= 2 * (256 << 10), "sender cwnd {sender_cwnd}");
}
