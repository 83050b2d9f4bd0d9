//! Checks of `topology`, including the impossible combinations.

use super::report::Report;
use crate::{CpuSet, TaskName, Topology, TASK_SYNTAX};
use std::collections::HashMap;

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
    if t.auto == Some(true) && (!t.workers.is_empty() || !t.cores.is_empty()) {
        report.error(
            "topology.auto",
            "chooses the placement from the CPUs available at start, so topology.workers and \
             topology.cores must be empty with it; remove them, or set auto to false"
                .to_owned(),
        );
    }
    if !t.workers.is_empty() {
        let counts_ok = replicas_ok && stage_ok.iter().all(|&ok| ok);
        check_workers(t, cpus, counts_ok, report);
    } else if !t.cores.is_empty() {
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

/// Most worker threads an explicit placement may list.
const MAX_WORKERS: usize = 1024;

/// `topology.workers`: every task placed exactly once, on existing cores.
/// `counts_ok`: replicas and per-stage counts are valid, so task ranges can
/// be checked.
fn check_workers(t: &Topology, cpus: &CpuSet, counts_ok: bool, report: &mut Report) {
    if t.run_to_completion {
        report.error(
            "topology.run_to_completion",
            "true places every stage of a replica on one worker, but topology.workers places \
             the tasks; set run_to_completion to false",
        );
    }
    if !t.cores.is_empty() {
        report.error(
            "topology.cores",
            "must be [] when topology.workers places the tasks; give each worker's CPU in \
             topology.workers[i].core",
        );
    }
    if t.workers.len() > MAX_WORKERS {
        report.error(
            "topology.workers",
            format!("{} workers; at most {MAX_WORKERS}", t.workers.len()),
        );
        return;
    }
    let mut placed: HashMap<TaskName, String> = HashMap::new();
    for (i, w) in t.workers.iter().enumerate() {
        if let Some(cpu) = w.core.filter(|&c| !cpus.contains(c)) {
            report.error(
                format!("topology.workers[{i}].core"),
                format!("CPU {cpu} does not exist on this machine (CPUs {cpus})"),
            );
        }
        if w.tasks.is_empty() {
            report.error(
                format!("topology.workers[{i}].tasks"),
                "is empty; a worker runs at least one task",
            );
        }
        for (j, text) in w.tasks.iter().enumerate() {
            let path = format!("topology.workers[{i}].tasks[{j}]");
            let Some(task) = TaskName::parse(text) else {
                report.error(
                    path,
                    format!("{text:?} is not a task; expected {TASK_SYNTAX}"),
                );
                continue;
            };
            if !counts_ok {
                continue;
            }
            if task.replica >= t.replicas {
                report.error(
                    path,
                    format!(
                        "{text:?} names replica {}, but topology.replicas is {} (r0..=r{})",
                        task.replica,
                        t.replicas,
                        t.replicas - 1
                    ),
                );
                continue;
            }
            let count = t.stage_count(task.stage);
            if task.index >= count {
                let field = task.stage.count_field().unwrap_or("replicas");
                report.error(
                    path,
                    format!(
                        "{text:?} names task {} of its stage, but topology.{field} is {count} \
                         (indexes 0..={})",
                        task.index,
                        count - 1
                    ),
                );
                continue;
            }
            if let Some(first) = placed.get(&task) {
                report.error(
                    path,
                    format!("{text:?} is already placed at {first}; place each task exactly once"),
                );
                continue;
            }
            placed.insert(task, format!("topology.workers[{i}].tasks[{j}]"));
        }
    }
    if !counts_ok {
        return;
    }
    let missing: Vec<String> = t
        .tasks()
        .into_iter()
        .filter(|task| !placed.contains_key(task))
        .map(|task| task.to_string())
        .collect();
    if !missing.is_empty() {
        report.error(
            "topology.workers",
            format!(
                "{} not placed on any worker; place every task exactly once",
                if missing.len() == 1 {
                    format!("{} is", missing[0])
                } else {
                    format!("{} are", missing.join(", "))
                }
            ),
        );
    }
}
