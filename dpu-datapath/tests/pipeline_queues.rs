//! A replica serves only the flow groups it owns: a frame the port put on
//! another replica's queue (an RSS that disagrees with the plan) is dropped
//! and counted as `misrouted`, in the fused run-to-completion replicas and
//! in the separate-task ones alike; the same frame on its own queue opens
//! the connection.

use dpu_datapath::flow::{flow_group, FourTuple};
use dpu_datapath::pipeline::{MemNic, Pipeline, PipelineOptions, Plan, ShardApp};
use dpu_datapath::sim::sim_engine_config;
use dpu_datapath::stats::DropReason;
use dpu_datapath::wire::TcpFlags;
use pipeline_config::Topology;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../benches/support/pipeline_load.rs"]
mod pipeline_load;
use pipeline_load::{frame, Sink, PORT};

/// A client port whose flow belongs to replica 1 of `plan`.
fn port_of_replica_1(plan: &Plan) -> u16 {
    (20_000..)
        .find(|&port| {
            let tuple = FourTuple {
                local_ip: Ipv4Addr::new(198, 18, 0, 2),
                local_port: PORT,
                remote_ip: Ipv4Addr::new(198, 19, 0, 1),
                remote_port: port,
            };
            plan.replica_of_group(flow_group(&tuple, plan.flow_groups)) == 1
        })
        .unwrap()
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn frames_on_another_replicas_queue_are_dropped_as_misrouted() {
    for run_to_completion in [true, false] {
        let topology = Topology {
            replicas: 2,
            flow_groups: 16,
            run_to_completion,
            ..Topology::default()
        };
        let cfg = sim_engine_config(2, 1, |c| c.topology = topology.clone());
        let plan = Plan::new(&topology);
        let nic = Arc::new(MemNic::new(&plan, 64));
        let opts = PipelineOptions {
            pin: false,
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::start(&cfg, &topology, opts, nic.clone(), |_| {
            Box::new(Sink(Vec::new())) as Box<dyn ShardApp>
        });
        let port = port_of_replica_1(&plan);
        let syn = frame(port, 1000, 0, TcpFlags::SYN, &[]);
        let misrouted = || {
            pipeline
                .stats_board()
                .total()
                .stats
                .drops(DropReason::Misrouted)
        };

        assert!(nic.inject_to(0, 0, syn.clone()));
        wait_for("the misrouted SYN counted", || misrouted() == 1);
        assert!(pipeline.wait_idle(Duration::from_secs(30)));
        assert_eq!(nic.take_tx().len(), 0, "no SYN-ACK from the wrong replica");

        assert!(nic.inject_to(1, 0, syn));
        wait_for("the SYN-ACK from replica 1", || nic.tx_count() == 1);
        let report = pipeline.shutdown();
        let stats = report.total_stats();
        assert_eq!(stats.drops(DropReason::Misrouted), 1, "{run_to_completion}");
        assert_eq!(stats.total_drops(), 1, "{run_to_completion}");
    }
}
