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
        (100_000, 64, false),
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
    use dpu_datapath::engine::work::{dma_rx, post_rx, Work};
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
        b.iter(|| dma_rx(&rx_work, std::hint::black_box(&frame)))
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

criterion_group!(benches, rx_segment, stage_cost);
criterion_main!(benches);
