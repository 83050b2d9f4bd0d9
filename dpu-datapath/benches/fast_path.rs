//! ns per established RX data segment through pre + proto + dma + post with
//! ACK generation (delayed ACK: one ACK per two segments), one core.
//!
//! `cargo bench -p dpu-datapath --bench fast_path`

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use support::{established, set_seq};

fn rx_segment(c: &mut Criterion) {
    let mut group = c.benchmark_group("rx_data_segment");
    group.throughput(Throughput::Elements(1));
    for &(flows, payload, verify) in &[
        (1_000usize, 64usize, true),
        (1_000, 1448, true),
        (100_000, 64, true),
        (100_000, 1448, true),
        (1_000, 64, false),
        (1_000, 1448, false),
        (100_000, 64, false),
        (100_000, 1448, false),
    ] {
        let (mut engine, mut conns) = established(flows, payload, verify);
        let mut out = Vec::with_capacity(64);
        let mut i = 0usize;
        let id = format!(
            "{flows}_flows/{payload}B/{}",
            if verify {
                "sw_checksum"
            } else {
                "checksum_offload"
            }
        );
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                let pc = &mut conns[i];
                i += 1;
                if i == flows {
                    i = 0;
                }
                let next = pc.seq.wrapping_add(pc.payload as u32);
                engine.receive(&pc.frame, 0);
                // Prepare the next in-order segment of this flow.
                set_seq(&mut pc.frame, pc.seq, next);
                pc.seq = next;
                // The application releases the data (zero-copy read).
                let _ = engine.rx_consume(pc.conn, pc.payload);
                engine.drain_tx(&mut out);
                for f in out.drain(..) {
                    engine.recycle(f);
                }
            })
        });
        let s = engine.stats();
        assert_eq!(
            s.total_drops(),
            0,
            "benchmark traffic was dropped: {:?}",
            s.drop_breakdown()
        );
    }
    group.finish();
}

/// Cost of each stage on its own, 64 B segments, 1,000 flows, so the
/// bottleneck stage of the pipeline is known.
fn stage_cost(c: &mut Criterion) {
    use dpu_datapath::dma::rx_now;
    use dpu_datapath::engine::work::Work;
    use dpu_datapath::post::post_rx;
    use dpu_datapath::pre::{validate, LocalAddrs};
    use dpu_datapath::wire::{ChecksumCaps, EthernetAddress};
    let mut group = c.benchmark_group("stage_cost");
    group.throughput(Throughput::Elements(1));
    let (mut engine, mut conns) = established(1_000, 64, true);
    let local = LocalAddrs {
        mac: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
        ip: std::net::Ipv4Addr::new(198, 18, 0, 2),
    };
    let caps = ChecksumCaps::default();
    let frame = conns[0].frame.clone();
    group.bench_function("pre_validate", |b| {
        b.iter(|| validate(std::hint::black_box(&frame), &local, &caps))
    });

    // The owner: flow lookup, proto, building the work item, and the commit.
    engine.set_staged(true);
    let mut work = Vec::new();
    let mut i = 0usize;
    // One segment through the owner; returns an RX work item that carries
    // an ACK, if this segment produced one (for the dma/post benches).
    let mut step = || {
        let pc = &mut conns[i];
        i = (i + 1) % 1_000;
        let verdict = validate(&pc.frame, &local, &caps);
        let next = pc.seq.wrapping_add(pc.payload as u32);
        engine.after_validate(verdict, &pc.frame, 0);
        set_seq(&mut pc.frame, pc.seq, next);
        pc.seq = next;
        engine.take_work(&mut work);
        let mut with_ack = None;
        for w in work.drain(..) {
            if let Work::Rx { frame, work } = w {
                engine.commit(work.commit);
                if work.ack.is_some() {
                    with_ack = Some((frame, work));
                }
            }
        }
        let _ = engine.rx_consume(pc.conn, pc.payload);
        with_ack
    };
    // Delayed ACK answers a connection's second segment; steps rotate over
    // 1,000 connections, so a sample comes within about two rounds.
    let sample = (0..2_500).find_map(|_| step());
    group.bench_function("owner_lookup_proto_commit", |b| b.iter(&mut step));
    let (frame, rx_work) = sample.expect("an RX work item with an ACK");
    group.bench_function("dma_place_64B", |b| {
        b.iter(|| rx_now(&rx_work, std::hint::black_box(&frame)))
    });
    let mut out = Vec::with_capacity(128);
    group.bench_function("post_build_ack", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(&frame);
            post_rx(&rx_work, &mut out, &caps);
        })
    });
    group.finish();
}

/// ns per ACK through `proto` on the sending side: sequence and window
/// bookkeeping, RTT and the congestion-control update (NewReno, NewReno
/// with ECN, DCTCP with one ACK in ten echoing ECE), the next segment
/// picked. The cost of congestion control per ACK is the difference
/// between the rows.
fn cc_ack(c: &mut Criterion) {
    use dpu_datapath::flow::FlowId;
    use dpu_datapath::pre::{SackBlocks, Summary};
    use dpu_datapath::proto::{
        CcAlgorithm, ProtoConfig, ProtoFlow, ProtoInit, RtoBounds, TcpState,
    };
    use dpu_datapath::stats::Stats;
    use dpu_datapath::wire::{SeqNumber, TcpFlags};
    let mut group = c.benchmark_group("cc_ack");
    group.throughput(Throughput::Elements(1));
    for (name, cc, ecn) in [
        ("reno", CcAlgorithm::Reno, false),
        ("reno_ecn", CcAlgorithm::Reno, true),
        ("dctcp", CcAlgorithm::Dctcp, true),
    ] {
        let cfg = ProtoConfig {
            rto: RtoBounds {
                initial_us: 1_000_000,
                min_us: 200_000,
                max_us: 60_000_000,
            },
            delayed_ack_ns: 0,
            ooo_limit: 8,
            initial_cwnd_segments: 10,
            max_retransmits: 15,
            ecn,
            cc,
            tso_max: 0,
            tso_frame: 0,
        };
        let init = ProtoInit {
            state: TcpState::Established,
            iss: SeqNumber(1000),
            irs: SeqNumber(5000),
            peer_window: 65535,
            snd_wscale: 7,
            rcv_wscale: 7,
            mss: 1448,
            ts_recent: None,
            sack: true,
            rx_size: 1 << 18,
            tx_size: 1 << 22,
            rtt_us: Some(100),
            syn_retransmitted: false,
            syn_window: 65535,
        };
        let mut flow = ProtoFlow::new(&init, &cfg);
        if ecn {
            flow.enable_ecn();
        }
        let mut stats = Stats::default();
        let mut now = 1_000_000u64;
        let mut acked = SeqNumber(1001);
        let mut n = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                // Keep data to send; the ACK frees two segments, two more go.
                if flow.tx_outstanding() < 1 << 20 {
                    flow.app_wrote(1 << 20);
                }
                while flow.next_segment(now, &cfg, &mut stats).is_some() {}
                n = n.wrapping_add(1);
                acked = (acked + 2 * 1448u32).min(flow.snd_nxt());
                let s = Summary {
                    flow: FlowId(0),
                    seq: SeqNumber(5001),
                    ack: acked,
                    window: 65535,
                    flags: if ecn && n.is_multiple_of(10) {
                        TcpFlags::ACK | TcpFlags::ECE
                    } else {
                        TcpFlags::ACK
                    },
                    ts: None,
                    sack: SackBlocks::default(),
                    payload_offset: 0,
                    payload_len: 0,
                    ecn_ce: false,
                };
                now += 1_000;
                std::hint::black_box(flow.on_segment(&s, now, &cfg, &mut stats))
            })
        });
    }
    group.finish();
}

/// Rate-based congestion control: one TIMELY update (once per round trip
/// per connection), the pacer's check and accounting per segment, and what
/// pacing costs a whole transfer: ns per delivered segment of a bulk
/// connection on the simulated wire (both engines and the wire), unpaced
/// NewReno vs capped at 5 Gbit/s (a pacing timer per pair of segments) vs
/// TIMELY.
fn rate(c: &mut Criterion) {
    use dpu_datapath::cc::{Pacer, Timely, TimelyParams};
    use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
    use dpu_datapath::sim::{sim_engine_config, LinkParams, SimPair};
    use pipeline_config::CongestionControl;
    let mut group = c.benchmark_group("rate");
    group.throughput(Throughput::Elements(1));
    let params = TimelyParams::default();
    let mut timely = Timely::new(&params);
    let mut i = 0u32;
    group.bench_function("timely_update", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            // RTTs around the band, rising and falling.
            let rtt = 20 + (i.wrapping_mul(37) % 180);
            std::hint::black_box(timely.on_rtt(rtt, &params))
        })
    });
    let mut pacer = Pacer::default();
    let mut now = 0u64;
    group.bench_function("pacer_segment", |b| {
        b.iter(|| {
            now += 1_200;
            if pacer.wait_until(now).is_none() {
                pacer.sent(now, 1448, 10_000_000_000);
            }
            std::hint::black_box(&pacer);
        })
    });
    for (name, cap, cc) in [
        ("sim_segment/reno_unpaced", 0, CongestionControl::Reno),
        (
            "sim_segment/reno_paced_5g",
            5_000_000_000 / 8,
            CongestionControl::Reno,
        ),
        ("sim_segment/timely", 0, CongestionControl::Timely),
    ] {
        let tweak = |c: &mut pipeline_config::Config| {
            c.tcp.congestion_control = cc;
            c.tcp.rx_buffer = 1 << 20;
            c.tcp.tx_buffer = 1 << 20;
            c.tcp.timely.min_rtt_us = 20;
            c.tcp.timely.t_low_us = 50;
            c.tcp.timely.t_high_us = 150;
        };
        let link = LinkParams {
            latency_ns: 10_000,
            ..LinkParams::default()
        };
        let mut sim = SimPair::new(
            sim_engine_config(1, 9, tweak),
            sim_engine_config(2, 9, tweak),
            link,
            link,
            9,
        );
        sim.b.listen(5000, None).unwrap();
        let a = sim
            .a
            .connect("198.18.0.2".parse().unwrap(), 5000, sim.now)
            .unwrap();
        let mut b_conn = None;
        sim.run_until(sim.now + 1_000_000_000, |s| {
            b_conn = b_conn.or_else(|| s.b.accept(5000));
            b_conn.is_some()
        });
        let b_conn = b_conn.expect("connected");
        if cap > 0 {
            sim.a.set_max_pacing_rate(a, cap).unwrap();
        }
        let mut sender = StreamSender::new(1, u64::MAX / 2);
        let mut receiver = StreamReceiver::default();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let until = receiver.received() + iters * 1448;
                let start = std::time::Instant::now();
                sim.run_until(u64::MAX / 2, |s| {
                    sender.pump(&mut s.a, a);
                    receiver.pump(&mut s.b, b_conn);
                    receiver.received() >= until
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// A SYN cookie made and checked (issue 20: the cost of answering a SYN
/// flood), over rotating tuples.
fn syn_cookie(c: &mut Criterion) {
    use dpu_datapath::control::SynCookies;
    use dpu_datapath::flow::FourTuple;
    use std::net::Ipv4Addr;
    let cookies = SynCookies::new([7; 32]);
    let mut group = c.benchmark_group("syn_cookie");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    group.bench_function("encode_decode", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let t = FourTuple {
                local_ip: Ipv4Addr::new(198, 18, 0, 2),
                local_port: 7,
                remote_ip: Ipv4Addr::from(0xc612_0000 | (i & 0xffff)),
                remote_port: (i >> 3) as u16,
            };
            let now = 1_000_000_000;
            let cookie = cookies.encode(&t, i, 1460, now);
            cookies.decode(&t, i, cookie, now)
        })
    });
    group.finish();
}

criterion_group!(benches, rx_segment, stage_cost, cc_ack, rate, syn_cookie);
criterion_main!(benches);
