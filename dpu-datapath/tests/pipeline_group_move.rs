//! Flow groups move between the owners of a running pipeline while bulk
//! transfers use them (issue 14, resize without dropping connections): B is
//! a staged replica with two owners (or two such replicas, and groups move
//! across them too) on real threads and a real clock, A a
//! run-to-completion engine on the test thread, the simulated wire between
//! them. Every transfer keeps its bytes (SHA-256) and order whatever the
//! moves; on a clean link no segment is dropped or sent twice.

mod common;

use common::*;
use dpu_datapath::app::ConnId;
use dpu_datapath::dma::DmaConfig;
use dpu_datapath::engine::{Engine, HandleMoves};
use dpu_datapath::flow::flow_group;
use dpu_datapath::pipeline::{
    AppParcel, MemNic, MoveError, Nic, Pipeline, PipelineOptions, Plan, ShardApp,
};
use dpu_datapath::proto::TcpState;
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{sim_engine_config, Direction, LinkParams, SimWire};
use dpu_datapath::stats::Stats;
use pipeline_config::{Config, Topology};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GROUPS: u32 = 8;
const A_SEED: u64 = 1;
const B_SEED: u64 = 2;
const MOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection of a [`Mover`]: its handle, what it sends, what it
/// received, and whether it is the connecting end.
type Served = (ConnId, StreamSender, StreamReceiver, bool);

/// What a [`Mover`] recorded of a finished connection: bytes received,
/// digest of what it received and of what it sent, connecting end or not.
type Record = (u64, [u8; 32], [u8; 32], bool);

/// A bulk transfer end on an owner, which hands its connections over when
/// their group moves: it serves every connection to `PORT`, and owner 0's
/// instance also opens `connect` connections to `peer` (its own address
/// on the loopback backend).
struct Mover {
    owner: usize,
    size: u64,
    connect: usize,
    peer: std::net::Ipv4Addr,
    conns: Vec<Served>,
    finished: Arc<Mutex<Vec<Record>>>,
}

impl Mover {
    fn server(owner: usize, size: u64, finished: &Arc<Mutex<Vec<Record>>>) -> Box<dyn ShardApp> {
        Box::new(Mover {
            owner,
            size,
            connect: 0,
            peer: B_IP,
            conns: Vec::new(),
            finished: finished.clone(),
        })
    }
}

impl ShardApp for Mover {
    fn start(&mut self, engine: &mut Engine) {
        engine.listen(PORT, None).unwrap();
        if self.owner == 0 {
            for _ in 0..self.connect {
                let c = engine.connect(self.peer, PORT, 0).unwrap();
                let tx = StreamSender::new(A_SEED, self.size);
                self.conns.push((c, tx, StreamReceiver::default(), true));
            }
        }
    }

    fn poll(&mut self, engine: &mut Engine) {
        while let Some(c) = engine.accept(PORT) {
            let tx = StreamSender::new(B_SEED, self.size);
            self.conns.push((c, tx, StreamReceiver::default(), false));
        }
        for (c, tx, rx, _) in self.conns.iter_mut() {
            if engine.conn_state(*c) != Some(TcpState::SynSent) {
                tx.pump(engine, *c);
                rx.pump(engine, *c);
            }
        }
        let finished = &self.finished;
        self.conns.retain(|(c, tx, rx, client)| {
            if rx.eof() && tx.done() && engine.all_sent(*c) {
                let record = (rx.received(), rx.digest(), tx.digest(), *client);
                finished.lock().unwrap().push(record);
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

    fn movable(&self) -> bool {
        true
    }

    fn export_conns(&mut self, conns: &[ConnId]) -> AppParcel {
        let (leaving, staying) = std::mem::take(&mut self.conns)
            .into_iter()
            .partition(|(c, ..)| conns.contains(c));
        self.conns = staying;
        Box::new(leaving as Vec<Served>)
    }

    fn import_conns(&mut self, _engine: &mut Engine, parcel: AppParcel, moves: &HandleMoves) {
        let arrived = *parcel.downcast::<Vec<Served>>().expect("a mover's parcel");
        for (old, tx, rx, client) in arrived {
            let new = moves
                .iter()
                .find(|(o, _)| *o == old)
                .map(|(_, n)| *n)
                .expect("every exported connection moved");
            self.conns.push((new, tx, rx, client));
        }
    }
}

/// One replica, two owners, two of each data-parallel stage: the staged
/// replica with both reorder windows.
fn two_owners() -> Topology {
    Topology {
        replicas: 1,
        flow_groups: GROUPS,
        pre_workers: 2,
        proto_workers: 2,
        dma_workers: 2,
        post_workers: 2,
        run_to_completion: false,
        ..Topology::default()
    }
}

/// Timeouts far above any scheduling stall (see `pipeline_bulk.rs`,
/// `no_faults`): a retransmission then means a lost or reordered segment.
/// Two such replicas of one `pre`, `dma` and `post` worker each: groups
/// move within a replica and across them.
fn two_replicas() -> Topology {
    Topology {
        replicas: 2,
        pre_workers: 1,
        dma_workers: 1,
        post_workers: 1,
        ..two_owners()
    }
}

/// Two run-to-completion replicas (one owner each): every move crosses
/// replicas.
fn two_rtc_replicas() -> Topology {
    Topology {
        replicas: 2,
        flow_groups: GROUPS,
        run_to_completion: true,
        ..Topology::default()
    }
}

/// The owner after `owner`, round the pipeline: with two replicas of two
/// owners, every other move crosses replicas.
fn next_owner(owner: usize, topology: &Topology) -> usize {
    (owner + 1) % Plan::new(topology).owners()
}

/// Copies complete late and out of order, so that a group often leaves
/// with copies of its connections in flight.
fn slow_dma(seed: u64) -> DmaConfig {
    DmaConfig {
        latency_ns: 20_000,
        reorder: true,
        seed,
        ..DmaConfig::default()
    }
}

fn patient(c: &mut Config) {
    c.topology.flow_groups = GROUPS;
    c.tcp.min_rto_ms = 20_000;
    c.tcp.initial_rto_ms = 20_000;
    c.tcp.max_rto_ms = 60_000;
}

fn quick(c: &mut Config) {
    c.topology.flow_groups = GROUPS;
}

struct Client {
    conn: ConnId,
    group: u32,
    tx: StreamSender,
    rx: StreamReceiver,
}

struct Outcome {
    moves: usize,
    moved_conns: usize,
    a: Stats,
    b: Stats,
}

/// `conns` transfers of `size` bytes each way; every `every` a group in
/// use moves to the next owner.
fn bulk_with_moves(
    topology: Topology,
    link: LinkParams,
    seed: u64,
    conns: usize,
    size: u64,
    every: Duration,
    tweak: fn(&mut Config),
) -> Outcome {
    let b_cfg = sim_engine_config(2, seed, |c| {
        c.topology = topology.clone();
        tweak(c);
    });
    let nic = Arc::new(MemNic::new(&Plan::new(&topology), 8192));
    let opts = PipelineOptions {
        pin: false,
        seed,
        dma: slow_dma(seed),
        ..PipelineOptions::default()
    };
    let finished = Arc::new(Mutex::new(Vec::new()));
    let pipeline = Pipeline::start(&b_cfg, &topology, opts, nic.clone(), |o| {
        Mover::server(o, size, &finished)
    });
    let mut a = Engine::new(sim_engine_config(1, seed, tweak));
    let mut wire = SimWire::new(link, link, seed);
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let mut clients: Vec<Client> = (0..conns)
        .map(|_| {
            let conn = a.connect(B_IP, PORT, now()).unwrap();
            let tuple = a.conn_tuple(conn).unwrap().reversed();
            Client {
                conn,
                group: flow_group(&tuple, GROUPS),
                tx: StreamSender::new(A_SEED, size),
                rx: StreamReceiver::default(),
            }
        })
        .collect();
    let mut frames = Vec::new();
    let groups: Vec<u32> = clients.iter().map(|c| c.group).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ((moves, moved_conns), a_stats) = std::thread::scope(|s| {
        // Groups move from another thread while this one keeps the wire
        // going: frames of a moving group arrive and are held meanwhile.
        let mover = s.spawn(|| {
            let (mut moves, mut moved_conns) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(every);
                let g = groups[moves % groups.len()];
                let to = next_owner(pipeline.group_owners()[g as usize], &topology);
                moved_conns += pipeline
                    .move_group(g, to, MOVE_TIMEOUT)
                    .expect("move")
                    .len();
                moves += 1;
            }
            (moves, moved_conns)
        });
        loop {
            let t = now();
            let served = finished.lock().unwrap().len();
            let done = served == conns
                && clients
                    .iter()
                    .all(|c| c.rx.eof() && c.tx.done() && a.all_sent(c.conn));
            if done {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "transfers incomplete ({served} served): {:?}",
                clients
                    .iter()
                    .map(|c| (c.tx.sent(), c.rx.received(), a.conn_state(c.conn)))
                    .collect::<Vec<_>>()
            );
            // A reset fails at once rather than at the time bound.
            for c in &clients {
                let error = a.conn_error(c.conn);
                assert!(
                    error.is_none(),
                    "a connection failed ({error:?}) after {} of {size} bytes",
                    c.rx.received()
                );
            }
            a.poll(t);
            for c in clients.iter_mut() {
                if a.conn_state(c.conn) != Some(TcpState::SynSent) {
                    c.tx.pump(&mut a, c.conn);
                    c.rx.pump(&mut a, c.conn);
                }
            }
            a.drain_tx(&mut frames);
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
            std::thread::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (mover.join().expect("the mover"), a.stats().clone())
    });
    for c in &clients {
        a.close(c.conn).unwrap();
    }
    assert!(pipeline.wait_idle(Duration::from_secs(10)));
    let report = pipeline.shutdown();
    assert_eq!(report.reorder_leftover(), 0);
    // Every client sends the same seeded stream, every server another.
    let a_tx = clients[0].tx.digest();
    let records = finished.lock().unwrap();
    let b_tx = records[0].2;
    for (i, (got, rx_digest, tx_digest, _)) in records.iter().enumerate() {
        assert_eq!(*got, size, "server {i}: bytes");
        assert_eq!(*rx_digest, a_tx, "server {i}: A->B SHA-256");
        assert_eq!(*tx_digest, b_tx, "server {i}: B's own stream");
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(c.tx.digest(), a_tx, "client {i}: A's own stream");
        assert_eq!(c.rx.received(), size, "client {i}: bytes");
        assert_eq!(c.rx.digest(), b_tx, "client {i}: B->A SHA-256");
    }
    let b = report.total_stats();
    eprintln!(
        "{moves} moves of {moved_conns} connections in {:?}; B drops {:?}; retransmits A {} B {}; \
         out of order at A {} B {}",
        start.elapsed(),
        b.drop_breakdown(),
        a_stats.retransmit_segments,
        b.retransmit_segments,
        a_stats.rx_out_of_order_segments,
        b.rx_out_of_order_segments
    );
    Outcome {
        moves,
        moved_conns,
        a: a_stats,
        b,
    }
}

/// Bulk transfers on a clean link while groups move on `topology`: every
/// move carries connections, and costs nothing: nothing dropped, sent
/// twice, or out of order at either end.
fn clean_moves(topology: Topology, seed: u64) {
    let out = bulk_with_moves(
        topology,
        LinkParams::default(),
        seed,
        6,
        4 << 20,
        Duration::from_millis(5),
        patient,
    );
    assert!(out.moves >= 20, "only {} moves", out.moves);
    assert!(
        out.moved_conns >= out.moves,
        "{} moves carried only {} connections",
        out.moves,
        out.moved_conns
    );
    assert_eq!(out.b.total_drops(), 0, "{:?}", out.b.drop_breakdown());
    assert_eq!(out.a.total_drops(), 0, "{:?}", out.a.drop_breakdown());
    assert_eq!(out.a.retransmit_segments + out.b.retransmit_segments, 0);
    assert_eq!(
        out.a.rx_out_of_order_segments + out.b.rx_out_of_order_segments,
        0
    );
}

#[test]
fn groups_move_back_and_forth_under_bulk_transfers() {
    clean_moves(two_owners(), 11);
}

#[test]
fn moves_under_loss_and_reordering() {
    let link = LinkParams {
        loss: 0.01,
        reorder: 0.1,
        ..Default::default()
    };
    let out = bulk_with_moves(
        two_owners(),
        link,
        12,
        4,
        2 << 20,
        Duration::from_millis(5),
        quick,
    );
    assert!(out.moves >= 20, "only {} moves", out.moves);
}

#[test]
fn groups_move_across_replicas_under_bulk_transfers() {
    clean_moves(two_replicas(), 13);
}

#[test]
fn groups_move_between_run_to_completion_replicas_under_bulk_transfers() {
    clean_moves(two_rtc_replicas(), 15);
}

#[test]
fn moves_across_replicas_under_loss_and_reordering() {
    let link = LinkParams {
        loss: 0.01,
        reorder: 0.1,
        ..Default::default()
    };
    let out = bulk_with_moves(
        two_replicas(),
        link,
        14,
        4,
        2 << 20,
        Duration::from_millis(5),
        quick,
    );
    assert!(out.moves >= 20, "only {} moves", out.moves);
}

#[test]
fn impossible_moves_are_refused_with_a_reason() {
    let topology = Topology {
        replicas: 2,
        ..two_owners()
    };
    let cfg = sim_engine_config(2, 1, |c| c.topology = topology.clone());
    let nic = Arc::new(MemNic::new(&Plan::new(&topology), 64));
    let opts = PipelineOptions {
        pin: false,
        ..PipelineOptions::default()
    };
    let finished = Arc::default();
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic, |o| {
        Mover::server(o, 0, &finished)
    });
    let owners = pipeline.group_owners();
    let t = Duration::from_secs(5);
    assert_eq!(
        pipeline.move_group(GROUPS, 0, t),
        Err(MoveError::NoSuchGroup {
            group: GROUPS,
            groups: GROUPS
        })
    );
    assert_eq!(
        pipeline.move_group(0, 4, t),
        Err(MoveError::NoSuchOwner {
            owner: 4,
            owners: 4
        })
    );
    // Group 0 is replica 0's; owners 2 and 3 are replica 1's: a move
    // across replicas on a port that steers in software lands.
    assert_eq!(owners[0] / 2, 0);
    assert_eq!(pipeline.move_group(0, 2, t), Ok(Vec::new()));
    assert_eq!(pipeline.group_owners()[0], 2);
    assert_eq!(pipeline.move_group(0, owners[0], t), Ok(Vec::new()));
    // Draining replica 1 moves its groups to replica 0's owners; replica 0
    // then has nowhere to go until a rebalance gives the groups back.
    let mover = pipeline.group_mover();
    let drained = mover.drain_replica(1, t);
    assert_eq!(drained.error, None);
    assert_eq!(
        drained.moved.len(),
        owners.iter().filter(|&&o| o / 2 == 1).count()
    );
    assert!(pipeline.group_owners().iter().all(|&o| o / 2 == 0));
    let refused = mover.drain_replica(0, t);
    assert_eq!(refused.error, Some(MoveError::NowhereToGo { replica: 0 }));
    assert!(refused.moved.is_empty());
    assert_eq!(
        mover.drain_replica(2, t).error,
        Some(MoveError::NoSuchReplica {
            replica: 2,
            replicas: 2
        })
    );
    assert_eq!(mover.rebalance(t).error, None);
    assert_eq!(pipeline.group_owners(), owners);
    assert_eq!(
        MoveError::NoSuchOwner {
            owner: 4,
            owners: 4
        }
        .to_string(),
        "owner 4 does not exist (replicas x proto_workers is 4: 0 to 3)"
    );
    // A move to where the group is does nothing; a real one succeeds and
    // shows.
    assert_eq!(pipeline.move_group(0, owners[0], t), Ok(Vec::new()));
    let other = 1 - owners[0];
    assert_eq!(pipeline.move_group(0, other, t), Ok(Vec::new()));
    assert_eq!(pipeline.group_owners()[0], other);
    pipeline.shutdown();
}

/// A port whose queues are the hardware's RSS: groups cannot change
/// queue ([`Nic::steer`] says so by default).
struct HardwareRss(MemNic);

impl Nic for HardwareRss {
    fn rx_burst(
        &self,
        q: usize,
        max: usize,
        out: &mut Vec<(u64, dpu_datapath::io::Frame)>,
    ) -> usize {
        self.0.rx_burst(q, max, out)
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<dpu_datapath::io::Frame>) {
        self.0.tx_burst(q, frames)
    }
}

#[test]
fn moves_across_replicas_that_cannot_follow_are_refused() {
    let opts = PipelineOptions {
        pin: false,
        ..PipelineOptions::default()
    };
    let t = Duration::from_secs(5);
    let finished = Arc::default();
    // The port cannot steer a group to the other replica.
    let topology = two_replicas();
    let cfg = sim_engine_config(2, 1, |c| c.topology = topology.clone());
    let nic = Arc::new(HardwareRss(MemNic::new(&Plan::new(&topology), 64)));
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic, |o| {
        Mover::server(o, 0, &finished)
    });
    let from = pipeline.group_owners()[0];
    let refused = pipeline.move_group(0, 2, t);
    assert_eq!(refused, Err(MoveError::SteeringFixed { from, to: 2 }));
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("the port cannot steer the group to the new one"));
    // Within the replica it still moves.
    assert_eq!(pipeline.move_group(0, 1 - from, t), Ok(Vec::new()));
    assert_eq!(pipeline.group_owners()[0], 1 - from);
    pipeline.shutdown();
    // Split replicas have their owner on another worker than their NIC
    // intake, and nothing there to hold a moving group's frames.
    let mut topology = Topology {
        replicas: 2,
        flow_groups: GROUPS,
        run_to_completion: false,
        ..Topology::default()
    };
    topology.workers = topology.split_placement(&[]);
    let cfg = sim_engine_config(2, 1, |c| c.topology = topology.clone());
    let nic = Arc::new(MemNic::new(&Plan::new(&topology), 64));
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic, |o| {
        Mover::server(o, 0, &finished)
    });
    assert_eq!(
        pipeline.move_group(0, 1, t),
        Err(MoveError::AcrossReplicas { from: 0, to: 1 })
    );
    assert_eq!(pipeline.group_owners()[0], 0);
    pipeline.shutdown();
}

/// An application that cannot hand its connections over.
struct Fixed;

impl ShardApp for Fixed {
    fn start(&mut self, _: &mut Engine) {}
    fn poll(&mut self, _: &mut Engine) {}
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

#[test]
fn a_pipeline_whose_applications_cannot_move_refuses() {
    let topology = two_owners();
    let cfg = sim_engine_config(2, 1, |c| c.topology = topology.clone());
    let nic = Arc::new(MemNic::new(&Plan::new(&topology), 64));
    let opts = PipelineOptions {
        pin: false,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic, |_| Box::new(Fixed));
    let g = 0;
    let to = 1 - pipeline.group_owners()[g as usize];
    assert_eq!(
        pipeline.move_group(g, to, Duration::from_secs(5)),
        Err(MoveError::AppCannotMove)
    );
    pipeline.shutdown();
}

/// Both ends in the pipeline, on the loopback backend (frames to our own
/// address come back in): a group move takes the connecting end, the
/// accepting end or both with it.
#[test]
fn moves_on_the_loopback_backend() {
    moves_on_loopback(two_owners());
}

/// The loopback backend steers looped frames in software: groups move
/// across replicas too, with both ends of each connection in the pipeline.
#[test]
fn moves_across_replicas_on_the_loopback_backend() {
    moves_on_loopback(two_replicas());
}

#[test]
fn moves_between_run_to_completion_replicas_on_the_loopback_backend() {
    moves_on_loopback(two_rtc_replicas());
}

fn moves_on_loopback(topology: Topology) {
    use dpu_datapath::pipeline::{LoopbackNic, NullNic};
    const CONNS: usize = 6;
    const SIZE: u64 = 8 << 20;
    let cfg = sim_engine_config(2, 21, |c| {
        c.topology = topology.clone();
        patient(c);
    });
    let nic = Arc::new(LoopbackNic::new(
        NullNic::default(),
        cfg.mac.0,
        topology.replicas as usize,
        GROUPS,
    ));
    let opts = PipelineOptions {
        pin: false,
        dma: slow_dma(21),
        ..PipelineOptions::default()
    };
    let finished: Arc<Mutex<Vec<Record>>> = Arc::default();
    let ip = cfg.ip;
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic.clone(), |o| {
        Box::new(Mover {
            owner: o,
            size: SIZE,
            connect: CONNS,
            peer: ip,
            conns: Vec::new(),
            finished: finished.clone(),
        })
    });
    let start = Instant::now();
    let (mut moves, mut moved_conns) = (0, 0);
    let mut took = Vec::new();
    while finished.lock().unwrap().len() < 2 * CONNS {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {} ends finished after {moves} moves",
            finished.lock().unwrap().len(),
            2 * CONNS
        );
        let g = moves as u32 % GROUPS;
        let to = next_owner(pipeline.group_owners()[g as usize], &topology);
        let t = Instant::now();
        moved_conns += pipeline
            .move_group(g, to, MOVE_TIMEOUT)
            .expect("move")
            .len();
        took.push(t.elapsed());
        moves += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(pipeline.wait_idle(Duration::from_secs(10)));
    let report = pipeline.shutdown();
    assert_eq!(report.reorder_leftover(), 0);
    let records = finished.lock().unwrap();
    let digest_of = |client: bool| records.iter().find(|r| r.3 == client).map(|r| r.2).unwrap();
    let (client_tx, server_tx) = (digest_of(true), digest_of(false));
    for (i, (got, rx, tx, client)) in records.iter().enumerate() {
        let (own, other) = match client {
            true => (client_tx, server_tx),
            false => (server_tx, client_tx),
        };
        assert_eq!(*got, SIZE, "end {i}: bytes");
        assert_eq!(*tx, own, "end {i}: its own stream");
        assert_eq!(*rx, other, "end {i}: SHA-256 of what it received");
    }
    let stats = report.total_stats();
    took.sort();
    eprintln!(
        "{moves} moves of {moved_conns} connection ends in {:?} (a move took {:?} median, \
         {:?} at most); drops {:?}; retransmits {}",
        start.elapsed(),
        took[took.len() / 2],
        took[took.len() - 1],
        stats.drop_breakdown(),
        stats.retransmit_segments
    );
    assert!(
        moves >= 20 && moved_conns >= moves / 2,
        "{moves} moves, {moved_conns} ends"
    );
    assert_eq!(stats.total_drops(), 0, "{:?}", stats.drop_breakdown());
    assert_eq!(stats.retransmit_segments, 0);
    assert_eq!(stats.rx_out_of_order_segments, 0);
    assert_eq!(nic.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
}
