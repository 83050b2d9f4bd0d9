//! How long moving a flow group to another owner takes
//! (`Pipeline::move_group`, from the request to the new owner's answer),
//! against the same pipeline's round trip for one segment (injected, its
//! ACK out), in one run, for three pipelines with C established
//! connections and no other traffic, every task on one worker
//! (`--threads`: a worker per task): one staged replica with two owners
//! (moves within the replica), two staged replicas of one owner and two
//! run-to-completion replicas (every move crosses replicas and changes the
//! NIC's steering).
//! `cargo bench -p dpu-datapath --bench group_move [-- --moves N --conns C]`;
//! `--test` (as `cargo bench -- --test` passes) runs a smoke version.

use dpu_datapath::pipeline::{MemNic, Pipeline, PipelineOptions, Plan};
use dpu_datapath::sim::sim_engine_config;
use dpu_datapath::wire::TcpFlags;
use pipeline_config::{Topology, WorkerPlacement};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/pipeline_load.rs"]
mod pipeline_load;
use pipeline_load::{frame, handshake, Sink};

const GROUPS: u32 = 16;

/// Median, 99th percentile and maximum, in µs.
fn summary(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
    (us(v[v.len() / 2]), us(p99), us(v[v.len() - 1]))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test");
    let arg = |name: &str, default: usize| pipeline_load::arg(&args, name, default);
    let moves = if smoke { 20 } else { arg("--moves", 400) };
    let conns = if smoke { 8 } else { arg("--conns", 64) };
    let threads = args.iter().any(|a| a == "--threads");
    let base = Topology {
        flow_groups: GROUPS,
        run_to_completion: false,
        ..Topology::default()
    };
    // (label, topology, fused where the placement allows)
    for (label, topology, fuse) in [
        (
            "1 staged replica, 2 owners (within)",
            Topology {
                replicas: 1,
                proto_workers: 2,
                ..base.clone()
            },
            true,
        ),
        (
            "2 staged replicas (across)",
            Topology {
                replicas: 2,
                ..base.clone()
            },
            false,
        ),
        (
            "2 run-to-completion replicas (across)",
            Topology {
                replicas: 2,
                run_to_completion: true,
                ..base.clone()
            },
            true,
        ),
    ] {
        measure(label, topology, fuse, threads, conns, moves);
    }
}

fn measure(
    label: &str,
    mut topology: Topology,
    fuse: bool,
    threads: bool,
    conns: usize,
    moves: usize,
) {
    // Every task on one worker by default: on a 2-core machine, a task per
    // thread measures the scheduler (each stage waits for a time slice);
    // `--threads` places one task per worker thread.
    if !threads {
        topology.workers = vec![WorkerPlacement {
            name: None,
            core: None,
            tasks: topology.tasks().iter().map(|t| t.to_string()).collect(),
        }];
        topology.idle.park_after_us = 1_000_000;
    }
    let cfg = sim_engine_config(2, 1, |c| {
        c.topology = topology.clone();
        c.tcp.delayed_ack_us = 0;
        c.tcp.timestamps = false;
        c.tcp.listen_backlog = 65535;
    });
    let nic = Arc::new(MemNic::new(&Plan::new(&topology), 4 * conns + 64));
    let opts = PipelineOptions {
        pin: false,
        fuse,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic.clone(), |_| {
        Box::new(Sink(Vec::new()))
    });
    let ports: Vec<u16> = (0..conns).map(|i| 10_000 + i as u16).collect();
    let iss = handshake(&nic, &pipeline, &ports);
    assert!(pipeline.wait_idle(Duration::from_secs(30)));
    nic.take_tx();

    // Baseline: one segment in, its ACK out, one at a time.
    let mut seq = 1001u32;
    let port = ports[0];
    let mut round_trips = Vec::with_capacity(moves);
    for _ in 0..moves {
        let f = frame(
            port,
            seq,
            iss[&port].wrapping_add(1),
            TcpFlags::ACK,
            &[0x5a; 64],
        );
        seq = seq.wrapping_add(64);
        let start = Instant::now();
        assert!(nic.inject(0, f));
        while nic.tx_count() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "no ACK");
            std::hint::spin_loop();
        }
        round_trips.push(start.elapsed());
        nic.take_tx();
    }

    // Moves: every group in turn to the other owner (there are two).
    let mut took = Vec::with_capacity(moves);
    let mut carried = 0;
    for i in 0..moves {
        let g = i as u32 % GROUPS;
        let to = 1 - pipeline.group_owners()[g as usize];
        let start = Instant::now();
        carried += pipeline
            .move_group(g, to, Duration::from_secs(10))
            .expect("move")
            .len();
        took.push(start.elapsed());
    }
    assert!(pipeline.wait_idle(Duration::from_secs(30)));
    let report = pipeline.shutdown();
    assert_eq!(report.total_stats().total_drops(), 0);

    let (rt50, rt99, rtmax) = summary(round_trips);
    let (mv50, mv99, mvmax) = summary(took);
    println!(
        "{label}: {conns} connections, {GROUPS} groups, 2 owners; {moves} moves carried {:.1} \
         connections each",
        carried as f64 / moves as f64
    );
    println!("segment round trip (µs): median {rt50:.1}, p99 {rt99:.1}, max {rtmax:.1}");
    println!("group move (µs):         median {mv50:.1}, p99 {mv99:.1}, max {mvmax:.1}");
    println!("move / round trip, medians: {:.1}x", mv50 / rt50);
}
