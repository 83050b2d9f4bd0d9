//! The simulated-wire bulk and fault tests, with B as a 2-replica parallel
//! pipeline (2 pre x 2 dma x 2 post per replica) on real threads and a real
//! clock, and A a run-to-completion engine on the test thread.

mod common;

use common::*;
use dpu_datapath::app::ConnId;
use dpu_datapath::engine::Engine;
use dpu_datapath::pipeline::{MemNic, Pipeline, PipelineOptions, Plan, ShardApp};
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{sim_engine_config, Direction, LinkParams, SimWire};
use dpu_datapath::stats::DropReason;
use pipeline_config::{Config, Topology};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZE: u64 = 16 * 1024 * 1024;

/// B's side of the bulk transfer, on whichever owner gets the connection.
#[derive(Default)]
struct BulkServer {
    conns: Vec<(ConnId, StreamSender, StreamReceiver)>,
    digests: Vec<(u64, [u8; 32], [u8; 32])>,
    finished: Arc<AtomicUsize>,
}

impl ShardApp for BulkServer {
    fn start(&mut self, engine: &mut Engine) {
        engine.listen(PORT, None).unwrap();
    }

    fn poll(&mut self, engine: &mut Engine) {
        while let Some(c) = engine.accept(PORT) {
            self.conns
                .push((c, StreamSender::new(2, SIZE), StreamReceiver::default()));
        }
        for (c, tx, rx) in self.conns.iter_mut() {
            tx.pump(engine, *c);
            rx.pump(engine, *c);
        }
        let digests = &mut self.digests;
        let finished = &self.finished;
        self.conns.retain(|(c, tx, rx)| {
            if rx.eof() && tx.done() && engine.all_sent(*c) {
                digests.push((rx.received(), rx.digest(), tx.digest()));
                finished.fetch_add(1, Ordering::SeqCst);
                let _ = engine.close(*c);
                false
            } else {
                true
            }
        });
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

fn two_replicas() -> Topology {
    Topology {
        replicas: 2,
        flow_groups: 4,
        pre_workers: 2,
        proto_workers: 1,
        post_workers: 2,
        dma_workers: 2,
        run_to_completion: false,
        ..Topology::default()
    }
}

/// Loss, reordering, duplication and corruption at once.
fn all_faults() -> LinkParams {
    LinkParams {
        loss: 0.02,
        reorder: 0.25,
        duplicate: 0.05,
        corrupt: 0.01,
        ..Default::default()
    }
}

/// [`two_replicas`] with one task of each kind per replica (each replica
/// then runs fused in any placement that co-locates its tasks).
fn one_task_each() -> Topology {
    Topology {
        pre_workers: 1,
        post_workers: 1,
        dma_workers: 1,
        ..two_replicas()
    }
}

fn run(
    link: LinkParams,
    seed: u64,
    bound: Duration,
) -> (dpu_datapath::stats::Stats, Engine, SimWire) {
    run_on(two_replicas(), link, seed, bound, |_| {})
}

/// B: the pipeline with `topology` on its in-memory NIC, a [`BulkServer`]
/// on every owner; the count of transfers B finished.
fn start_b(
    topology: &Topology,
    seed: u64,
    tweak: fn(&mut Config),
    dma: dpu_datapath::dma::DmaConfig,
) -> (Pipeline, Arc<MemNic>, Arc<AtomicUsize>) {
    let b_cfg = sim_engine_config(2, seed, |c| {
        c.topology = topology.clone();
        tweak(c);
    });
    let nic = Arc::new(MemNic::new(&Plan::new(topology), 8192));
    let opts = PipelineOptions {
        pin: false,
        seed,
        dma,
        ..PipelineOptions::default()
    };
    let finished = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::start(&b_cfg, topology, opts, nic.clone(), |_| {
        Box::new(BulkServer {
            finished: finished.clone(),
            ..BulkServer::default()
        })
    });
    (pipeline, nic, finished)
}

/// One turn of the simulated wire: A polls and pumps its streams (once
/// connected), A's frames go onto the wire, B's transmitted frames too,
/// and what is due arrives at either end.
#[allow(clippy::too_many_arguments)]
fn step(
    a: &mut Engine,
    conn: ConnId,
    tx: &mut StreamSender,
    rx: &mut StreamReceiver,
    nic: &MemNic,
    wire: &mut SimWire,
    frames: &mut Vec<Vec<u8>>,
    t: u64,
) {
    a.poll(t);
    if a.conn_state(conn) != Some(dpu_datapath::proto::TcpState::SynSent) {
        tx.pump(a, conn);
        rx.pump(a, conn);
    }
    a.drain_tx(frames);
    for f in frames.drain(..) {
        wire.send(Direction::AtoB, f, t);
    }
    for f in nic.take_tx() {
        wire.send(Direction::BtoA, f, t);
    }
    while let Some((dir, f)) = wire.pop_due(t) {
        match dir {
            Direction::AtoB => assert!(nic.inject(t, f), "NIC queue overflow"),
            Direction::BtoA => a.receive(&f, t),
        }
    }
}

fn run_on(
    topology: Topology,
    link: LinkParams,
    seed: u64,
    bound: Duration,
    tweak: fn(&mut Config),
) -> (dpu_datapath::stats::Stats, Engine, SimWire) {
    let (pipeline, nic, finished) = start_b(
        &topology,
        seed,
        tweak,
        dpu_datapath::dma::DmaConfig::default(),
    );
    let mut a = Engine::new(sim_engine_config(1, seed, tweak));
    let mut wire = SimWire::new(link, link, seed);
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let conn = a.connect(B_IP, PORT, now()).unwrap();
    let mut tx = StreamSender::new(1, SIZE);
    let mut rx = StreamReceiver::default();
    let mut frames = Vec::new();
    loop {
        let t = now();
        assert!(
            start.elapsed() < bound,
            "transfer did not complete within {bound:?}: sent {} got {}; eof {} tx done {} \
             all acked {} server finished {}; client state {:?} info {:?}; client stats {:?}",
            tx.sent(),
            rx.received(),
            rx.eof(),
            tx.done(),
            a.all_sent(conn),
            finished.load(Ordering::SeqCst),
            a.conn_state(conn),
            a.conn_info(conn),
            a.stats(),
        );
        step(
            &mut a,
            conn,
            &mut tx,
            &mut rx,
            &nic,
            &mut wire,
            &mut frames,
            t,
        );
        // Done when both ends have everything (the server's own view).
        if rx.eof() && tx.done() && a.all_sent(conn) && finished.load(Ordering::SeqCst) == 1 {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(rx.received(), SIZE);
    a.close(conn).unwrap();
    assert!(pipeline.wait_idle(Duration::from_secs(10)));
    let mut report = pipeline.shutdown();
    assert_eq!(report.reorder_leftover(), 0);
    let servers = report.take_apps::<BulkServer>();
    let digests: Vec<_> = servers.iter().flat_map(|s| s.digests.clone()).collect();
    assert_eq!(digests.len(), 1, "the server side did not finish");
    let (got, rx_digest, tx_digest) = digests[0];
    assert_eq!(got, SIZE);
    assert_eq!(rx_digest, tx.digest(), "A->B SHA-256");
    assert_eq!(tx_digest, rx.digest(), "B->A SHA-256");
    eprintln!("{:?} in {:?}", link, start.elapsed());
    (report.total_stats(), a, wire)
}

/// Nothing is lost or reordered on the wire, so a retransmission would
/// mean the pipeline lost or reordered a segment (SACK would notice and
/// fast-retransmit). Timeouts are set far above any scheduling stall: on a
/// real clock, with the other tests sharing two cores (or a debug build),
/// the default 200 ms floor let starvation fire spurious RTOs (27
/// retransmissions in one CI run, every byte right), which would say
/// nothing about the pipeline.
#[test]
fn no_faults() {
    let (b, a, _) = run_on(
        two_replicas(),
        LinkParams::default(),
        41,
        Duration::from_secs(180),
        |c| {
            c.tcp.min_rto_ms = 20_000;
            c.tcp.initial_rto_ms = 20_000;
            c.tcp.max_rto_ms = 60_000;
        },
    );
    let a = a.stats();
    assert_eq!(a.retransmit_segments + b.retransmit_segments, 0);
}

#[test]
fn loss_1_percent() {
    let (b, a, _) = run(
        LinkParams {
            loss: 0.01,
            ..Default::default()
        },
        42,
        Duration::from_secs(120),
    );
    assert!(a.stats().retransmit_segments > 0 && b.retransmit_segments > 0);
}

#[test]
fn reorder_25_percent() {
    run(
        LinkParams {
            reorder: 0.25,
            ..Default::default()
        },
        43,
        Duration::from_secs(120),
    );
}

#[test]
fn duplication_5_percent() {
    let (b, _, _) = run(
        LinkParams {
            duplicate: 0.05,
            ..Default::default()
        },
        44,
        Duration::from_secs(120),
    );
    assert!(b.drops(DropReason::OldDuplicate) > 0);
}

#[test]
fn corruption_1_percent_is_counted_exactly() {
    let (b, a, wire) = run(
        LinkParams {
            corrupt: 0.01,
            ..Default::default()
        },
        45,
        Duration::from_secs(120),
    );
    let to_b = wire.counters(Direction::AtoB).corrupted;
    assert!(to_b > 0);
    assert_eq!(b.drops(DropReason::TcpBadChecksum), to_b);
    assert_eq!(
        a.stats().drops(DropReason::TcpBadChecksum),
        wire.counters(Direction::BtoA).corrupted
    );
}

#[test]
fn all_faults_at_once() {
    let link = all_faults();
    run(link, 46, Duration::from_secs(120));
}

/// Issue 14: the split placement (data-parallel stages | protocol) of two
/// replicas, 2 workers per data stage, under every fault at once.
#[test]
fn split_placement_all_faults_at_once() {
    let mut topology = two_replicas();
    topology.workers = topology.split_placement(&[]);
    let link = all_faults();
    run_on(topology, link, 47, Duration::from_secs(400), |_| {});
}

/// The pipelined placement (ingress, pre, owner | dma, post, egress) of two
/// replicas, one task of each kind (so each runs as its two fused tasks),
/// under every fault at once.
#[test]
fn pipelined_placement_all_faults_at_once() {
    let mut topology = one_task_each();
    topology.workers = topology.pipelined_placement(&[]);
    let link = all_faults();
    run_on(topology, link, 48, Duration::from_secs(400), |_| {});
}

/// Issue 18: a DMA copy that fails (every 300th here, by the emulated
/// engine's fault injection) must not let stale bytes through: the item's
/// ACK or segment does not leave, and the connection is reset. A sees
/// the reset; what B's application got before it is exactly what A sent
/// (a prefix, hashed); B counts the failure.
#[test]
fn failed_dma_copies_reset_the_connection_and_deliver_no_stale_bytes() {
    let one_each = one_task_each();
    // Separate tasks, fused run to completion, fused pipelined.
    let mut pipelined = one_each.clone();
    pipelined.workers = pipelined.pipelined_placement(&[]);
    let rtc = Topology {
        run_to_completion: true,
        ..one_each.clone()
    };
    for topology in [one_each, rtc, pipelined] {
        reset_on_failed_copy(topology);
    }
}

fn reset_on_failed_copy(topology: Topology) {
    use rand::{RngCore, SeedableRng};
    use sha2::{Digest, Sha256};
    let seed = 49;
    let dma = dpu_datapath::dma::DmaConfig {
        fail_every: 300,
        ..dpu_datapath::dma::DmaConfig::default()
    };
    let (pipeline, nic, finished) = start_b(&topology, seed, |_| {}, dma);
    let mut a = Engine::new(sim_engine_config(1, seed, |_| {}));
    let mut wire = SimWire::new(LinkParams::default(), LinkParams::default(), seed);
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let conn = a.connect(B_IP, PORT, now()).unwrap();
    let mut tx = StreamSender::new(1, SIZE);
    let mut rx = StreamReceiver::default();
    let mut frames = Vec::new();
    // Until the reset, or (a failure) the whole transfer without one.
    while a.conn_error(conn).is_none() && !(rx.eof() && tx.done()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no reset: sent {} got {}, state {:?}",
            tx.sent(),
            rx.received(),
            a.conn_state(conn)
        );
        let t = now();
        step(
            &mut a,
            conn,
            &mut tx,
            &mut rx,
            &nic,
            &mut wire,
            &mut frames,
            t,
        );
        std::thread::yield_now();
    }
    assert_eq!(
        a.conn_error(conn),
        Some(dpu_datapath::app::ConnError::Reset)
    );
    assert!(pipeline.wait_idle(Duration::from_secs(10)));
    let mut report = pipeline.shutdown();
    assert!(report.total_stats().dma_copy_failures >= 1);
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "B finished a reset transfer"
    );
    // What B's application read is the start of A's stream, byte for byte.
    let servers = report.take_apps::<BulkServer>();
    let (_, _, server_rx) = servers
        .iter()
        .flat_map(|s| s.conns.iter())
        .next()
        .expect("B's connection");
    let got = server_rx.received();
    let mut stream = vec![0u8; got as usize];
    rand_chacha::ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut stream);
    assert_eq!(
        server_rx.digest(),
        <[u8; 32]>::from(Sha256::digest(&stream)),
        "B's application got bytes A did not send ({got} bytes); run to completion {}, workers {:?}",
        topology.run_to_completion,
        topology.workers
    );
}
