//! The parallel pipeline yields, per connection, the same byte streams and
//! the same sequence of emitted segments as run-to-completion, for recorded
//! traffic with loss, reordering and duplication; with random delays in the
//! data-parallel stages no stamp leaks.

mod common;

use common::*;
use dpu_datapath::app::ConnId;
use dpu_datapath::dma::DmaConfig;
use dpu_datapath::engine::Engine;
use dpu_datapath::flow::FourTuple;
use dpu_datapath::pipeline::{MemNic, Pipeline, PipelineOptions, Plan, ShardApp};
use dpu_datapath::proto::Nanos;
use dpu_datapath::sim::workload::StreamSender;
use dpu_datapath::sim::{sim_engine_config, LinkParams, SimPair};
use dpu_datapath::wire::{parse_ingress, ChecksumCaps, L3, L4};
use pipeline_config::{Config, Topology};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const CONNS: usize = 8;
const SIZE: u64 = 192 * 1024;

/// B's configuration: no timers that depend on wall time (delayed ACK off,
/// RTO far away), buffers that hold a whole stream, so what B emits is a
/// function of the frames it receives alone.
fn b_config(c: &mut Config) {
    c.tcp.delayed_ack_us = 0;
    c.tcp.initial_rto_ms = 600_000;
    c.tcp.min_rto_ms = 600_000;
    c.tcp.max_rto_ms = 600_000;
    c.tcp.rx_buffer = 256 * 1024;
    c.topology.flow_groups = 64;
}

/// The receiving application on B: accepts, reads nothing until the peer's
/// FIN (so its reads never change what B sends), then hashes the stream.
/// During replays it reads nothing at all (reads open the window, and when
/// they happen depends on scheduling); the streams are read at the end.
#[derive(Default)]
struct Sink {
    read_on_fin: bool,
    conns: Vec<ConnId>,
    done: BTreeMap<FourTuple, (u64, [u8; 32])>,
}

impl Sink {
    /// Reads every finished stream to EOF and hashes it.
    fn drain(&mut self, engine: &mut Engine) {
        let mut buf = vec![0u8; 64 * 1024];
        self.conns.retain(|&c| {
            if !engine.peer_closed(c) {
                return true;
            }
            let mut hash = Sha256::new();
            let mut total = 0u64;
            while let Ok(n) = engine.recv(c, &mut buf) {
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                total += n as u64;
            }
            let tuple = engine.conn_tuple(c).unwrap();
            self.done.insert(tuple, (total, hash.finalize().into()));
            false
        });
    }
}

impl ShardApp for Sink {
    fn start(&mut self, engine: &mut Engine) {
        engine.listen(PORT, Some(1024)).unwrap();
    }

    fn poll(&mut self, engine: &mut Engine) {
        while let Some(c) = engine.accept(PORT) {
            self.conns.push(c);
        }
        if self.read_on_fin {
            self.drain(engine);
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// A segment as compared: everything on the wire but the checksum.
type Seg = (
    u32,
    u32,
    u8,
    u16,
    Option<(u32, u32)>,
    Vec<(u32, u32)>,
    [u8; 32],
);

fn segments_by_conn(frames: &[Vec<u8>]) -> BTreeMap<(u16, u16), Vec<Seg>> {
    let mut out: BTreeMap<(u16, u16), Vec<Seg>> = BTreeMap::new();
    for f in frames {
        let Ok(p) = parse_ingress(f, &ChecksumCaps::default()) else {
            panic!("B emitted a malformed frame");
        };
        if let L3::Ipv4 { l4: L4::Tcp(t), .. } = p.l3 {
            let sack = t.options.sack_blocks[..t.options.sack_count as usize]
                .iter()
                .map(|(a, b)| (a.0, b.0))
                .collect();
            out.entry((t.src_port, t.dst_port)).or_default().push((
                t.seq.0,
                t.ack.0,
                t.flags.0,
                t.window,
                t.options.timestamps,
                sack,
                Sha256::digest(t.payload).into(),
            ));
        }
    }
    out
}

/// Records what A sends to B over a lossy, reordering, duplicating wire.
fn record(seed: u64) -> Vec<(Nanos, Vec<u8>)> {
    let a2b = LinkParams {
        loss: 0.02,
        reorder: 0.10,
        duplicate: 0.02,
        ..Default::default()
    };
    let a = sim_engine_config(1, seed, |_| {});
    let b = sim_engine_config(2, seed, b_config);
    let mut sim = SimPair::new(a, b, a2b, LinkParams::default(), seed);
    sim.b_rx_log = Some(Vec::new());
    sim.b.listen(PORT, Some(1024)).unwrap();
    let conns: Vec<ConnId> = (0..CONNS)
        .map(|_| sim.a.connect(B_IP, PORT, 0).unwrap())
        .collect();
    let mut senders: Vec<StreamSender> = (0..CONNS)
        .map(|i| StreamSender::new(seed + i as u64, SIZE))
        .collect();
    let mut sink = Sink {
        read_on_fin: true,
        ..Sink::default()
    };
    let ok = sim.run_until(120 * SEC, |s| {
        for (c, tx) in conns.iter().zip(senders.iter_mut()) {
            if s.a.conn_state(*c) != Some(dpu_datapath::proto::TcpState::SynSent) {
                tx.pump(&mut s.a, *c);
            }
        }
        sink.poll(&mut s.b);
        sink.done.len() == CONNS
    });
    assert!(ok, "recording run did not finish");
    sim.b_rx_log.take().unwrap()
}

fn replay_rtc(input: &[(Nanos, Vec<u8>)], seed: u64) -> (Vec<Vec<u8>>, Sink) {
    let mut b = Engine::new(sim_engine_config(2, seed, b_config));
    let mut app = Sink::default();
    app.start(&mut b);
    let mut out = Vec::new();
    for (t, f) in input {
        b.receive(f, *t);
        b.poll(*t);
        app.poll(&mut b);
        b.drain_tx(&mut out);
    }
    app.drain(&mut b);
    (out, app)
}

fn replay_pipeline(
    input: &[(Nanos, Vec<u8>)],
    seed: u64,
    topology: Topology,
    delay_ns: u64,
    fuse: bool,
    dma: DmaConfig,
) -> (Vec<Vec<u8>>, Sink, u64) {
    let cfg = sim_engine_config(2, seed, |c| {
        b_config(c);
        c.topology = topology.clone();
    });
    let plan = Plan::new(&topology);
    let nic = Arc::new(MemNic::new(&plan, input.len() + 16));
    let opts = PipelineOptions {
        virtual_clock: true,
        stage_delay_max_ns: delay_ns,
        seed,
        pin: false,
        // Sampling the stage times must not change what the pipeline does.
        stage_timing: true,
        fuse,
        dma,
    };
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic.clone(), |_| {
        Box::new(Sink::default())
    });
    for (t, f) in input {
        assert!(nic.inject(*t, f.clone()), "NIC queue overflow");
    }
    assert!(
        pipeline.wait_idle(Duration::from_secs(60)),
        "pipeline did not drain"
    );
    let mut report = pipeline.shutdown();
    assert_eq!(
        report.reorder_leftover(),
        0,
        "a stamp leaked: {:?}",
        report.tasks
    );
    let holds = report.reorder_holds();
    let mut merged = Sink::default();
    let apps = report.take_apps::<Sink>();
    for ((_, engine), mut app) in report.engines.iter_mut().zip(apps) {
        app.drain(engine);
        merged.done.extend(app.done);
    }
    (nic.take_tx(), merged, holds)
}

fn topo(replicas: u32, groups: u32, workers: u32, proto: u32) -> Topology {
    Topology {
        replicas,
        flow_groups: groups,
        pre_workers: workers,
        proto_workers: proto,
        post_workers: workers,
        dma_workers: workers,
        run_to_completion: workers == 1 && proto == 1,
        ..Topology::default()
    }
}

/// The split placement (data-parallel stages | protocol) on 2 workers per
/// replica, with `workers` of each data-parallel stage.
fn split(replicas: u32, groups: u32, workers: u32) -> Topology {
    let mut t = topo(replicas, groups, workers, 1);
    t.run_to_completion = false;
    t.workers = t.split_placement(&[]);
    t
}

/// The pipelined placement (ingress, pre, owner | dma, post, egress) on 2
/// workers per replica, with `workers` of each data-parallel stage.
fn pipelined(replicas: u32, groups: u32, workers: u32) -> Topology {
    let mut t = topo(replicas, groups, workers, 1);
    t.run_to_completion = false;
    t.workers = t.pipelined_placement(&[]);
    t
}

/// One thread per task (every stage task on a worker of its own).
fn one_task_per_thread(replicas: u32, groups: u32) -> Topology {
    let mut t = topo(replicas, groups, 1, 1);
    t.run_to_completion = false;
    t.workers = t
        .tasks()
        .iter()
        .map(|task| pipeline_config::WorkerPlacement {
            name: None,
            core: None,
            tasks: vec![task.to_string()],
        })
        .collect();
    t
}

fn check_equivalent(
    input: &[(Nanos, Vec<u8>)],
    seed: u64,
    reference: &(Vec<Vec<u8>>, Sink),
    t: Topology,
    delay_ns: u64,
) -> u64 {
    check_placement(
        input,
        seed,
        reference,
        t,
        delay_ns,
        true,
        DmaConfig::default(),
    )
}

/// As [`check_equivalent`]; `fuse` false runs a run-to-completion replica
/// through its rings instead of as one fused task; `dma` is the emulated
/// DMA engine (the default: 1 µs, in order).
fn check_placement(
    input: &[(Nanos, Vec<u8>)],
    seed: u64,
    reference: &(Vec<Vec<u8>>, Sink),
    t: Topology,
    delay_ns: u64,
    fuse: bool,
    dma: DmaConfig,
) -> u64 {
    let (frames, app, holds) = replay_pipeline(input, seed, t.clone(), delay_ns, fuse, dma);
    assert_eq!(app.done.len(), CONNS, "{t:?}: not every stream finished");
    assert_eq!(app.done, reference.1.done, "{t:?}: byte streams differ");
    let (want, got) = (segments_by_conn(&reference.0), segments_by_conn(&frames));
    assert_eq!(want.len(), got.len());
    for (conn, segs) in &want {
        let mine = &got[conn];
        assert_eq!(
            mine.len(),
            segs.len(),
            "{t:?}: connection {conn:?} emitted a different number of segments"
        );
        for (i, (a, b)) in segs.iter().zip(mine).enumerate() {
            assert_eq!(a, b, "{t:?}: connection {conn:?} segment {i} differs");
        }
    }
    holds
}

#[test]
fn pipeline_topologies_match_run_to_completion() {
    let seed = 31;
    let input = record(seed);
    let reference = replay_rtc(&input, seed);
    assert_eq!(reference.1.done.len(), CONNS);
    for (total, _) in reference.1.done.values() {
        assert_eq!(*total, SIZE);
    }
    // Run to completion: fused (the default), and through its rings.
    check_equivalent(&input, seed, &reference, topo(1, 4, 1, 1), 0);
    check_placement(
        &input,
        seed,
        &reference,
        topo(1, 4, 1, 1),
        0,
        false,
        DmaConfig::default(),
    );
    check_equivalent(&input, seed, &reference, topo(2, 4, 1, 1), 0);
    check_equivalent(&input, seed, &reference, topo(2, 4, 2, 1), 0);
    check_equivalent(&input, seed, &reference, topo(1, 1, 2, 1), 0);
    check_equivalent(&input, seed, &reference, topo(2, 64, 2, 2), 0);
    // Placements (issue 14): split on 2 workers, 2 replicas each split,
    // split with 2 workers per data stage, one task per thread.
    // With one task of each kind the split runs as two fused tasks; it is
    // also checked through its rings.
    check_equivalent(&input, seed, &reference, split(1, 4, 1), 0);
    check_placement(
        &input,
        seed,
        &reference,
        split(1, 4, 1),
        0,
        false,
        DmaConfig::default(),
    );
    check_equivalent(&input, seed, &reference, split(2, 4, 1), 0);
    check_equivalent(&input, seed, &reference, split(1, 4, 2), 0);
    check_equivalent(&input, seed, &reference, one_task_per_thread(2, 4), 0);
    // The pipelined placement: fused, through its rings, 2 replicas, and
    // with 2 workers per data stage (separate tasks).
    check_equivalent(&input, seed, &reference, pipelined(1, 4, 1), 0);
    check_placement(
        &input,
        seed,
        &reference,
        pipelined(1, 4, 1),
        0,
        false,
        DmaConfig::default(),
    );
    check_equivalent(&input, seed, &reference, pipelined(2, 4, 1), 0);
    check_equivalent(&input, seed, &reference, pipelined(1, 4, 2), 0);
}

#[test]
fn random_stage_delays_never_reorder_a_connection_or_leak_stamps() {
    let mut holds = 0;
    for seed in [32, 33, 34] {
        let input = record(seed);
        let reference = replay_rtc(&input, seed);
        for s in 0..3 {
            holds += check_equivalent(
                &input,
                seed,
                &reference,
                topo(2, 4, 2, 1),
                20_000 + s * 15_000,
            );
        }
        // The split placement with 2 workers per data stage.
        holds += check_equivalent(&input, seed, &reference, split(2, 4, 2), 30_000);
        holds += check_equivalent(&input, seed, &reference, pipelined(2, 4, 2), 30_000);
    }
    // The delays really did make work finish out of order.
    assert!(holds > 0, "no reorder hold observed");
}

/// DMA copies completing late, out of order, and one at a time (issue 18):
/// every placement still matches run to completion byte for byte, so no
/// ACK, segment or application event overtook the copy it follows.
#[test]
fn reordered_and_throttled_dma_completions_change_nothing() {
    let seed = 35;
    let input = record(seed);
    let reference = replay_rtc(&input, seed);
    let placements = [
        (topo(1, 4, 1, 1), true),
        (topo(1, 4, 1, 1), false),
        (topo(2, 4, 2, 1), true),
        (split(1, 4, 1), true),
        (split(1, 4, 2), true),
        (pipelined(1, 4, 1), true),
        (one_task_per_thread(1, 4), true),
    ];
    for (i, (t, fuse)) in placements.into_iter().enumerate() {
        for (latency_ns, max_outstanding) in [(3_000, 64), (2_000, 1), (0, 3)] {
            let dma = DmaConfig {
                latency_ns,
                max_outstanding,
                reorder: true,
                seed: seed ^ i as u64,
                jobs: false,
                fail_every: 0,
            };
            check_placement(&input, seed, &reference, t.clone(), 0, fuse, dma);
        }
        // The job-based engine path (DOCA's shape) with a small queue.
        let jobs = DmaConfig {
            jobs: true,
            max_outstanding: 2,
            ..DmaConfig::default()
        };
        check_placement(&input, seed, &reference, t, 0, fuse, jobs);
    }
}
