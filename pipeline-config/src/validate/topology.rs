//! Checks of `topology`, including the impossible combinations.

use super::report::Report;
use crate::{CpuSet, Topology};

pub(crate) fn check(topology: &Topology, cpus: &CpuSet, report: &mut Report) {
    let t = topology;
    let replicas_ok = report.range("topology.replicas", t.replicas, 1..=64);
    let groups_ok = report.power_of_two("topology.flow_groups", t.flow_groups.into(), 1..=4096);
    let stages = [
        ("pre_workers", t.pre_workers),
        ("proto_workers", t.proto_workers),
        ("post_workers", t.post_workers),
        ("dma_workers", t.dma_workers),
    ];
    let stage_ok = stages.map(|(name, n)| report.range(&format!("topology.{name}"), n, 1..=64));
    if t.run_to_completion {
        check_run_to_completion(&stages, report);
    }
    if replicas_ok && groups_ok {
        if !t.flow_groups.is_multiple_of(t.replicas) {
            report.error(
                "topology.flow_groups",
                format!(
                    "{} flow groups cannot be split evenly across {} replicas; flow_groups must be \
                     a multiple of replicas",
                    t.flow_groups, t.replicas
                ),
            );
        } else if stage_ok[1] && t.replicas * t.proto_workers > t.flow_groups {
            report.error(
                "topology.proto_workers",
                format!(
                    "more proto workers than flow groups: {} replicas x {} proto_workers = {} > \
                     {} flow_groups; each proto worker needs at least one flow group",
                    t.replicas,
                    t.proto_workers,
                    t.replicas * t.proto_workers,
                    t.flow_groups
                ),
            );
        }
    }
    if !t.cores.is_empty() {
        if replicas_ok && stage_ok.iter().all(|&ok| ok) {
            check_cores_len(t, report);
        }
        for (i, &cpu) in t.cores.iter().enumerate() {
            if !cpus.contains(cpu) {
                report.error(
                    format!("topology.cores[{i}]"),
                    format!("CPU {cpu} does not exist on this machine (CPUs {cpus})"),
                );
            }
        }
    }
    let ring_ok = report.power_of_two("topology.ring_size", t.ring_size.into(), 64..=65536);
    let burst_ok = report.range("topology.burst", t.burst, 1..=256);
    if ring_ok && burst_ok && t.ring_size < t.burst {
        report.error(
            "topology.ring_size",
            format!(
                "{} is smaller than topology.burst {}; a ring must hold at least one burst",
                t.ring_size, t.burst
            ),
        );
    }
    report.range("topology.idle.spin_polls", t.idle.spin_polls, 0..=1_000_000);
    report.range(
        "topology.idle.park_after_us",
        t.idle.park_after_us,
        0..=1_000_000,
    );
}

fn check_run_to_completion(stages: &[(&str, u32)], report: &mut Report) {
    let extra: Vec<String> = stages
        .iter()
        .filter(|(_, n)| *n != 1)
        .map(|(name, n)| format!("{name} is {n}"))
        .collect();
    if !extra.is_empty() {
        report.error(
            "topology.run_to_completion",
            format!(
                "true runs every stage on one worker per replica, so each per-stage worker count \
                 must be 1, but {}; set run_to_completion to false or the counts to 1",
                extra.join(", ")
            ),
        );
    }
}

fn check_cores_len(t: &Topology, report: &mut Report) {
    let threads = t.worker_threads();
    if t.cores.len() == threads {
        return;
    }
    let per_replica = if t.run_to_completion {
        "1 run-to-completion worker".to_owned()
    } else {
        format!(
            "(pre {} + proto {} + post {} + dma {}) workers",
            t.pre_workers, t.proto_workers, t.post_workers, t.dma_workers
        )
    };
    report.error(
        "topology.cores",
        format!(
            "has {} entries but the topology runs {threads} worker threads ({} replicas x \
             {per_replica}); list one CPU per worker thread, or [] for no pinning",
            t.cores.len(),
            t.replicas
        ),
    );
}
