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

criterion_group!(benches, rx_segment);
criterion_main!(benches);
