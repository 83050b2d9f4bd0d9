//! Congestion control through a bottleneck (issue 16): eight connections
//! from A to B share one 10 Gbit/s switch port with a finite queue. With
//! DCTCP and ECN marking above K = 65 packets the queue stays near K, no
//! frame is dropped, the link stays busy and the flows share it fairly;
//! with NewReno and no ECN the same queue fills until it drops. Both are
//! asserted, so the contrast is the test. TIMELY, rate-based on the RTT
//! gradient, keeps the RTT within its band on the same port without ECN;
//! and a connection capped by the application is paced at its rate with
//! its segments spaced.

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
    /// The senders' RTTs, sampled every millisecond (us).
    srtts: Vec<u32>,
    /// The senders' paced rates at the end, Mbit/s (TIMELY).
    rates: Vec<u64>,
    /// Payload bytes each flow delivered during the measurement.
    delivered: Vec<u64>,
    utilisation: f64,
    timeouts: u64,
    reductions: u64,
}

/// TIMELY's band for this port: the propagation RTT is 40 us plus
/// serialisation, and 100 us of queue is 83 full frames at 10 Gbit/s.
const TIMELY_LOW_US: u32 = 50;
const TIMELY_HIGH_US: u32 = 150;

fn bottleneck(cc: Option<CongestionControl>) -> Run {
    let dctcp = matches!(
        cc,
        Some(CongestionControl::Dctcp | CongestionControl::DctcpRate)
    );
    let link = LinkParams {
        latency_ns: 20_000,
        bandwidth_bps: 10_000_000_000,
        queue_bytes: BUFFER_PACKETS * FRAME,
        ecn_mark_bytes: if dctcp { K_PACKETS * FRAME } else { 0 },
        ..LinkParams::default()
    };
    let mut sim: SimPair = pair_with(link, 16, |c| {
        if let Some(cc) = cc {
            c.tcp.ecn = dctcp;
            c.tcp.congestion_control = cc;
        }
        c.tcp.timely.t_low_us = TIMELY_LOW_US;
        c.tcp.timely.t_high_us = TIMELY_HIGH_US;
        c.tcp.timely.min_rtt_us = 40;
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
    let mut srtts = Vec::new();
    let mut next_sample = started;
    sim.run_until(measure_until, |s| {
        pump(s, &mut senders, &mut receivers);
        if s.now >= next_sample {
            next_sample += MS;
            // TIMELY's own RTT where it runs (its probe avoids the
            // receiver's delayed-ACK phase); the smoothed RTT otherwise.
            srtts.extend(conns.iter().filter_map(|&(a, _)| {
                let info = s.a.conn_info(a)?;
                Some(info.timely_rtt_us.unwrap_or(info.srtt_us))
            }));
        }
        false
    });
    let elapsed = (sim.now - started) as f64 / 1e9;
    let counters = sim.wire.counters(Direction::AtoB);
    let after = sim.a.stats();
    let rates = conns
        .iter()
        .filter_map(|&(a, _)| Some(sim.a.conn_info(a)?.pacing_rate_bps? / 1_000_000))
        .collect();
    Run {
        counters,
        srtts,
        rates,
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

/// TIMELY without ECN on the same port: the RTT stays in the band (median
/// inside it, p99 within 20% of its top, where the cuts begin), the queue
/// far below the buffer, nothing is dropped, the link stays busy and the
/// flows share it fairly. Reno's run below shows what the same port does
/// without it.
#[test]
fn timely_keeps_the_rtt_in_its_band_without_drops_and_shares_fairly() {
    let r = bottleneck(Some(CongestionControl::Timely));
    report("timely", &r);
    eprintln!("timely final rates Mbit/s: {:?}", r.rates);
    let mut sorted = r.srtts.clone();
    sorted.sort_unstable();
    let pct = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    eprintln!(
        "timely rtt us: min {} p50 {} p99 {} max {} (band {TIMELY_LOW_US}..={TIMELY_HIGH_US})",
        sorted[0],
        pct(0.5),
        pct(0.99),
        sorted[sorted.len() - 1]
    );
    assert_eq!(r.counters.queue_drops, 0, "TIMELY overflowed the buffer");
    assert!(
        (TIMELY_LOW_US..=TIMELY_HIGH_US).contains(&pct(0.5)),
        "median RTT {} us outside the band",
        pct(0.5)
    );
    // T_high is where the cuts start, so the RTT may pass it by the
    // queue of one update interval before the cut drains it.
    assert!(
        pct(0.99) <= TIMELY_HIGH_US * 6 / 5,
        "p99 RTT {} us more than 20% above the band's {TIMELY_HIGH_US}",
        pct(0.99)
    );
    assert!(
        r.utilisation >= 0.95,
        "link utilisation {:.3}",
        r.utilisation
    );
    assert!(
        jain(&r.delivered) >= 0.9,
        "fairness {:.3}",
        jain(&r.delivered)
    );
    assert!(
        r.counters.queue_max_bytes < BUFFER_PACKETS * FRAME / 2,
        "queue peaked at {} packets",
        r.counters.queue_max_bytes / FRAME
    );
    assert_eq!(r.timeouts, 0);
}

/// A connection capped at 1 Gbit/s (the application's
/// `SO_MAX_PACING_RATE`) on a 10 Gbit/s link: over 2 s its frames arrive
/// at the cap within 5%, in pairs (Linux's smallest paced burst) two frame
/// times apart; never a window's burst.
#[test]
fn a_paced_connection_sends_at_its_rate_with_segments_spaced() {
    const RATE_BITS: u64 = 1_000_000_000;
    let mut sim: SimPair = pair_with(LinkParams::default(), 5, |c| {
        c.tcp.rx_buffer = 4 << 20;
        c.tcp.tx_buffer = 4 << 20;
    });
    let (a, b) = connect(&mut sim);
    sim.a.set_max_pacing_rate(a, RATE_BITS / 8).unwrap();
    assert_eq!(sim.a.conn_info(a).unwrap().pacing_rate_bps, Some(RATE_BITS));
    let mut sender = StreamSender::new(3, u64::MAX / 2);
    let mut receiver = StreamReceiver::default();
    sim.b_rx_log = Some(Vec::new());
    let warm_until = sim.now + 100 * MS;
    let measure_until = warm_until + 2_000 * MS;
    // Data frames' arrival times and lengths in the measured 2 s.
    let mut frames: Vec<(u64, usize)> = Vec::new();
    sim.run_until(measure_until, |s| {
        sender.pump(&mut s.a, a);
        receiver.pump(&mut s.b, b);
        if let Some(log) = s.b_rx_log.as_mut() {
            frames.extend(
                log.drain(..)
                    .filter(|(t, f)| *t >= warm_until && *t <= measure_until && f.len() > 100)
                    .map(|(t, f)| (t, f.len())),
            );
        }
        false
    });
    let wire_bits: u64 = frames.iter().map(|&(_, len)| len as u64 * 8).sum();
    let span = (frames.last().unwrap().0 - frames[0].0) as f64 / 1e9;
    let rate = wire_bits as f64 / span;
    let frame_time = frames[0].1 as f64 * 8.0 / RATE_BITS as f64 * 1e9;
    // Bursts: frames arriving less than half a frame time after the one
    // before (at 10 Gbit/s back to back they are 1.2 us apart; at the cap,
    // 12 us).
    let mut bursts = vec![0usize; 8];
    let mut run = 1;
    for w in frames.windows(2) {
        if ((w[1].0 - w[0].0) as f64) < frame_time / 2.0 {
            run += 1;
        } else {
            bursts[run.min(7)] += 1;
            run = 1;
        }
    }
    bursts[run.min(7)] += 1;
    let mut gaps: Vec<u64> = frames.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    eprintln!(
        "paced at {RATE_BITS} bit/s: {:.4e} bit/s over {span:.3} s, {} frames, gaps ns min {} \
         p50 {} p99 {} max {} (frame time {frame_time:.0} ns), bursts by length {:?}",
        rate,
        frames.len(),
        gaps[0],
        gaps[gaps.len() / 2],
        gaps[gaps.len() * 99 / 100],
        gaps[gaps.len() - 1],
        &bursts[1..],
    );
    assert!(
        (rate - RATE_BITS as f64).abs() <= 0.05 * RATE_BITS as f64,
        "paced rate {rate:.4e} bit/s, cap {RATE_BITS}"
    );
    assert_eq!(
        bursts[4..].iter().sum::<usize>(),
        0,
        "bursts of 4 or more frames: {bursts:?}"
    );
    assert!(
        bursts[2] * 10 >= bursts[1..].iter().sum::<usize>() * 9,
        "not paced in pairs: {bursts:?}"
    );
    // The cap removed: the connection leaves the pacer at once.
    sim.b_rx_log = None;
    sim.a.set_max_pacing_rate(a, 0).unwrap();
    assert_eq!(sim.a.conn_info(a).unwrap().pacing_rate_bps, None);
    let before = receiver.received();
    let from = sim.now;
    sim.run_until(from + 50 * MS, |s| {
        sender.pump(&mut s.a, a);
        receiver.pump(&mut s.b, b);
        false
    });
    let uncapped = (receiver.received() - before) as f64 * 8.0 / ((sim.now - from) as f64 / 1e9);
    eprintln!("uncapped: {:.3e} bit/s", uncapped);
    assert!(
        uncapped > 3.0 * RATE_BITS as f64,
        "still slow without the cap: {uncapped:.3e}"
    );
    assert!(sim.a.stats().pacing_waits > 0);
}

/// DCTCP on a paced rate (FlexTOE's default), same port and marking: no
/// drop, the flows fair, the queue's mean below K. A rate loop reacts a
/// control interval later than a window does, so the queue swings wider
/// (it peaked at 189 packets where window DCTCP peaks at 73) and the link
/// idles at times: at least 85% busy is asserted (90-91% measured).
#[test]
fn dctcp_rate_keeps_the_queue_below_the_buffer_without_drops_and_shares_fairly() {
    let r = bottleneck(Some(CongestionControl::DctcpRate));
    report("dctcp-rate", &r);
    eprintln!("dctcp-rate final rates Mbit/s: {:?}", r.rates);
    assert_eq!(
        r.counters.queue_drops, 0,
        "DCTCP-rate overflowed the buffer"
    );
    assert!(r.counters.ce_marked > 0, "the queue never reached K");
    assert!(
        r.counters.queue_mean_bytes() <= (K_PACKETS * FRAME) as f64,
        "mean queue {:.1} packets above K",
        r.counters.queue_mean_bytes() / FRAME as f64
    );
    assert!(
        r.utilisation >= 0.85,
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

/// The incast tests' port: 10 Gbit/s, 20 µs each way, a 200-packet
/// buffer, ECN marking above 20 packets when a controller is given.
fn shallow_port(cc: Option<CongestionControl>) -> LinkParams {
    LinkParams {
        latency_ns: 20_000,
        bandwidth_bps: 10_000_000_000,
        queue_bytes: 200 * FRAME,
        ecn_mark_bytes: if cc.is_some() { 20 * FRAME } else { 0 },
        ..LinkParams::default()
    }
}

/// Sixteen senders answer at once, 256 KiB each, through a shallow port
/// (200 packets, room for the first windows of all sixteen; marking above
/// 20): the incast of a partition-aggregate
/// request. Returns (timeouts, drops, completion time in ms).
fn incast(cc: Option<CongestionControl>) -> (u64, u64, f64) {
    let link = shallow_port(cc);
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

const QUERY_FLOWS: usize = 16;
const RESPONSE: usize = 16 * 1024;
const QUERIES: usize = 20;

/// The DCTCP paper's impairment: two long flows keep the port busy while
/// a partition-aggregate query, repeated 20 times, makes 16 responders
/// answer 16 KiB each at once on connections already open. Returns the
/// retransmission timeouts on the senders' side during the queries, the
/// port's drops, and the slowest query in ms.
fn incast_over_background(cc: Option<CongestionControl>) -> (u64, u64, f64) {
    let link = shallow_port(cc);
    let mut sim: SimPair = pair_with(link, 11, |c| {
        if let Some(cc) = cc {
            c.tcp.ecn = true;
            c.tcp.congestion_control = cc;
        }
        c.tcp.rx_buffer = 1 << 20;
        c.tcp.tx_buffer = 1 << 20;
        c.tcp.min_rto_ms = 10;
        c.tcp.initial_rto_ms = 10;
    });
    let background: Vec<(ConnId, ConnId)> = (0..2).map(|_| connect(&mut sim)).collect();
    let responders: Vec<(ConnId, ConnId)> = (0..QUERY_FLOWS).map(|_| connect(&mut sim)).collect();
    let mut bg_send: Vec<StreamSender> = (0..2)
        .map(|i| StreamSender::new(100 + i, u64::MAX / 2))
        .collect();
    let mut bg_recv: Vec<StreamReceiver> = (0..2).map(|_| StreamReceiver::default()).collect();
    let mut pump_background = |s: &mut SimPair| {
        for (i, &(a, b)) in background.iter().enumerate() {
            bg_send[i].pump(&mut s.a, a);
            bg_recv[i].pump(&mut s.b, b);
        }
    };
    // The long flows fill their windows (and, without ECN, the buffer).
    sim.run_until(sim.now + 20 * MS, |s| {
        pump_background(s);
        false
    });
    sim.wire.reset_counters();
    let timeouts_before = sim.a.stats().timeout_retransmits;
    let payload = vec![0x5au8; RESPONSE];
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut worst = 0u64;
    for _ in 0..QUERIES {
        let mut left = [RESPONSE; QUERY_FLOWS];
        let mut got = [0usize; QUERY_FLOWS];
        let start = sim.now;
        let done = sim.run_until(start + 2_000 * MS, |s| {
            pump_background(s);
            for (i, &(a, b)) in responders.iter().enumerate() {
                while left[i] > 0 {
                    match s.a.send(a, &payload[..left[i]]) {
                        Ok(n) if n > 0 => left[i] -= n,
                        _ => break,
                    }
                }
                while let Ok(n @ 1..) = s.b.recv(b, &mut rbuf) {
                    got[i] += n;
                }
            }
            got.iter().all(|&g| g == RESPONSE)
        });
        assert!(done, "a query did not complete");
        worst = worst.max(sim.now - start);
        // Background only until the next query.
        sim.run_until(sim.now + 2 * MS, |s| {
            pump_background(s);
            false
        });
    }
    (
        sim.a.stats().timeout_retransmits - timeouts_before,
        sim.wire.counters(Direction::AtoB).queue_drops,
        worst as f64 / 1e6,
    )
}

/// With the long flows filling the buffer, NewReno's queries lose the
/// tails of their short answers and wait for retransmission timeouts;
/// DCTCP keeps the queue near K, the bursts fit, no query times out (the
/// DCTCP paper's incast-with-background result).
#[test]
fn incast_over_long_flows_dctcp_has_no_timeouts_where_reno_has_them() {
    let (dctcp_timeouts, dctcp_drops, dctcp_ms) =
        incast_over_background(Some(CongestionControl::Dctcp));
    let (reno_timeouts, reno_drops, reno_ms) = incast_over_background(None);
    eprintln!(
        "incast over 2 long flows, {QUERIES} queries x {QUERY_FLOWS} x {} KiB: dctcp {dctcp_timeouts} \
         timeouts, {dctcp_drops} drops, slowest query {dctcp_ms:.2} ms; reno {reno_timeouts} \
         timeouts, {reno_drops} drops, slowest {reno_ms:.2} ms",
        RESPONSE / 1024
    );
    assert_eq!(dctcp_timeouts, 0, "DCTCP timed out");
    assert!(
        reno_timeouts > 0,
        "NewReno never timed out: the contrast is gone"
    );
}
