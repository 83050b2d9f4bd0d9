//! Impossible topologies and CPU pinning.

use pipeline_config::{Config, CpuSet, Topology};

use super::{errors, invalid};

#[test]
fn more_proto_workers_than_flow_groups() {
    assert_eq!(
        errors(r#"{"topology": {"run_to_completion": false, "replicas": 2, "proto_workers": 4, "flow_groups": 4}}"#),
        ["topology.proto_workers: more proto workers than flow groups: 2 replicas x 4 proto_workers = 8 > 4 flow_groups; each proto worker needs at least one flow group"]
    );
}

#[test]
fn run_to_completion_with_two_post_workers() {
    assert_eq!(
        errors(r#"{"topology": {"post_workers": 2}}"#),
        ["topology.run_to_completion: true runs every stage on one worker per replica, so each per-stage worker count must be 1, but post_workers is 2; set run_to_completion to false or the counts to 1"]
    );
    let config =
        Config::from_json_str(r#"{"topology": {"post_workers": 2, "run_to_completion": false}}"#)
            .unwrap();
    assert_eq!(config.topology.worker_threads(), 5);
}

#[test]
fn flow_groups_must_split_across_replicas() {
    assert_eq!(
        errors(r#"{"topology": {"replicas": 8, "flow_groups": 4}}"#),
        ["topology.flow_groups: 4 flow groups cannot be split evenly across 8 replicas; flow_groups must be a multiple of replicas"]
    );
    assert_eq!(
        errors(r#"{"topology": {"flow_groups": 6}}"#),
        ["topology.flow_groups: 6 is not a power of two; use 4 or 8"]
    );
}

#[test]
fn cores_of_wrong_length() {
    assert_eq!(
        errors(r#"{"topology": {"run_to_completion": false, "cores": [0, 0, 0]}}"#),
        ["topology.cores: has 3 entries but the topology runs 4 worker threads (1 replicas x (pre 1 + proto 1 + post 1 + dma 1) workers); list one CPU per worker thread, or [] for no pinning"]
    );
    assert_eq!(
        errors(r#"{"topology": {"replicas": 2, "cores": [0]}}"#),
        ["topology.cores: has 1 entries but the topology runs 2 worker threads (2 replicas x 1 run-to-completion worker); list one CPU per worker thread, or [] for no pinning"]
    );
}

#[test]
fn cpu_that_does_not_exist() {
    let cpus = CpuSet::online();
    assert!(
        !cpus.contains(4096),
        "this test needs a machine with fewer than 4097 CPUs"
    );
    assert_eq!(
        errors(r#"{"topology": {"replicas": 2, "cores": [0, 4096]}}"#),
        [format!(
            "topology.cores[1]: CPU 4096 does not exist on this machine (CPUs {cpus})"
        )]
    );
}

#[test]
fn pinned_split_topology_validates() {
    let config = Config::from_json_str(
        r#"{"topology": {"run_to_completion": false, "cores": [0, 0, 0, 0]}}"#,
    )
    .unwrap();
    assert_eq!(
        config.topology.worker_threads(),
        config.topology.cores.len()
    );
}

#[test]
fn ring_must_hold_a_burst() {
    let mut config = Config::default();
    config.topology.ring_size = 128;
    config.topology.burst = 256;
    assert_eq!(
        invalid(&config),
        ["topology.ring_size: 128 is smaller than topology.burst 256; a ring must hold at least one burst"]
    );
}

/// `topology.workers` with `run_to_completion: false` and the given JSON
/// list of workers.
fn placed(workers: &str) -> String {
    format!(r#"{{"topology": {{"run_to_completion": false, "workers": {workers}}}}}"#)
}

#[test]
fn split_placement_validates_and_places_every_task() {
    let config = Config::from_json_str(&placed(
        r#"[{"name": "data", "core": 0, "tasks": ["r0.ingress", "r0.pre0", "r0.dma0", "r0.post0", "r0.egress"]},
            {"tasks": ["r0.ingress_reorder", "r0.proto0"]}]"#,
    ))
    .unwrap();
    assert_eq!(config.topology.worker_threads(), 2);
    let placement = config.topology.placement();
    assert_eq!(placement[0].name.as_deref(), Some("data"));
    assert_eq!(placement[1].name.as_deref(), Some("w1"));
    assert_eq!(placement[0].core, Some(0));
    assert_eq!(placement[1].core, None);
    // The preset builds the same split.
    let preset = config.topology.split_placement(&[]);
    assert_eq!(preset[0].tasks, placement[0].tasks);
    assert_eq!(preset[1].tasks, placement[1].tasks);
}

#[test]
fn pipelined_placement_validates_and_places_every_task() {
    let config = Config::from_json_str(&placed(
        r#"[{"name": "in", "core": 0, "tasks": ["r0.ingress", "r0.pre0", "r0.ingress_reorder", "r0.proto0"]},
            {"name": "out", "core": 1, "tasks": ["r0.dma0", "r0.post0", "r0.egress"]}]"#,
    ))
    .unwrap();
    let placement = config.topology.placement();
    // The preset builds the same cut, pinned as asked.
    let preset = config.topology.pipelined_placement(&[0, 1]);
    for (p, q) in preset.iter().zip(&placement) {
        assert_eq!(p.tasks, q.tasks);
        assert_eq!(p.core, q.core);
    }
    assert_eq!(preset[0].name.as_deref(), Some("r0-in"));
    assert_eq!(preset[1].name.as_deref(), Some("r0-out"));
}

#[test]
fn placement_task_placed_twice() {
    assert_eq!(
        errors(&placed(
            r#"[{"tasks": ["r0.ingress", "r0.pre0", "r0.dma0", "r0.post0", "r0.egress"]},
                {"tasks": ["r0.ingress_reorder", "r0.proto0", "r0.pre0"]}]"#
        )),
        [
            r#"topology.workers[1].tasks[2]: "r0.pre0" is already placed at topology.workers[0].tasks[1]; place each task exactly once"#
        ]
    );
}

#[test]
fn placement_task_never_placed() {
    assert_eq!(
        errors(&placed(
            r#"[{"tasks": ["r0.ingress", "r0.pre0", "r0.post0", "r0.egress"]},
                {"tasks": ["r0.proto0"]}]"#
        )),
        ["topology.workers: r0.ingress_reorder, r0.dma0 are not placed on any worker; place every task exactly once"]
    );
}

#[test]
fn placement_core_that_does_not_exist() {
    let cpus = CpuSet::online();
    assert_eq!(
        errors(&placed(
            r#"[{"core": 4096, "tasks": ["r0.ingress", "r0.pre0", "r0.dma0", "r0.post0", "r0.egress", "r0.ingress_reorder", "r0.proto0"]}]"#
        )),
        [format!(
            "topology.workers[0].core: CPU 4096 does not exist on this machine (CPUs {cpus})"
        )]
    );
}

#[test]
fn placement_task_of_a_replica_or_worker_that_does_not_exist() {
    let all = r#""r0.ingress", "r0.pre0", "r0.dma0", "r0.post0", "r0.egress", "r0.ingress_reorder", "r0.proto0""#;
    assert_eq!(
        errors(&placed(&format!(
            r#"[{{"tasks": [{all}, "r1.pre0", "r0.dma1"]}}]"#
        ))),
        [
            r#"topology.workers[0].tasks[7]: "r1.pre0" names replica 1, but topology.replicas is 1 (r0..=r0)"#,
            r#"topology.workers[0].tasks[8]: "r0.dma1" names task 1 of its stage, but topology.dma_workers is 1 (indexes 0..=0)"#,
        ]
    );
}

#[test]
fn placement_task_name_that_is_not_a_task() {
    assert_eq!(
        errors(&placed(r#"[{"tasks": ["r0.ingress", "pre0"]}, {"tasks": []}]"#)),
        [
            r#"topology.workers[0].tasks[1]: "pre0" is not a task; expected r<replica>.<task> with <task> one of ingress, pre<N>, ingress_reorder, proto<N>, dma<N>, post<N>, egress"#,
            "topology.workers[1].tasks: is empty; a worker runs at least one task",
            "topology.workers: r0.pre0, r0.ingress_reorder, r0.proto0, r0.dma0, r0.post0, r0.egress are not placed on any worker; place every task exactly once",
        ]
    );
}

#[test]
fn placement_with_run_to_completion_or_cores() {
    let doc = r#"{"topology": {"cores": [0], "workers": [{"tasks": ["r0.ingress", "r0.pre0", "r0.dma0", "r0.post0", "r0.egress", "r0.ingress_reorder", "r0.proto0"]}]}}"#;
    assert_eq!(
        errors(doc),
        [
            "topology.run_to_completion: true places every stage of a replica on one worker, but topology.workers places the tasks; set run_to_completion to false",
            "topology.cores: must be [] when topology.workers places the tasks; give each worker's CPU in topology.workers[i].core",
        ]
    );
}

#[test]
fn auto_with_cores_or_workers_is_an_error() {
    let msg = "topology.auto: chooses the placement from the CPUs available at start, so \
               topology.workers and topology.cores must be empty with it; remove them, or set \
               auto to false";
    assert_eq!(
        errors(r#"{"topology": {"auto": true, "cores": [0]}}"#),
        [msg]
    );
    assert_eq!(
        errors(
            r#"{"topology": {"auto": true, "run_to_completion": false, "workers": [
                {"tasks": ["r0.ingress", "r0.pre0", "r0.ingress_reorder", "r0.proto0",
                           "r0.dma0", "r0.post0", "r0.egress"]}]}}"#
        ),
        [msg]
    );
    let config = Config::from_json_str(r#"{"topology": {"auto": true}}"#).unwrap();
    assert_eq!(config.topology.auto, Some(true));
}

#[test]
fn auto_gives_cores_to_pinned_replicas_and_one_to_the_rest() {
    let base = Config::from_json_str(r#"{"topology": {"auto": true, "ring_size": 256}}"#)
        .unwrap()
        .topology;
    let pick = |cpus: &[u32]| {
        let t = base.auto_for(cpus);
        // What auto picks validates (where its CPUs exist on this machine).
        if t.cores.iter().all(|&c| CpuSet::online().contains(c)) {
            let doc = serde_json::json!({ "topology": t });
            Config::from_json_str(&doc.to_string()).unwrap_or_else(|e| panic!("{cpus:?}: {e}"));
        }
        assert!(t.run_to_completion && t.auto == Some(false) && t.workers.is_empty());
        assert_eq!(t.ring_size, 256, "the rest is kept");
        (t.replicas, t.flow_groups, t.cores)
    };
    assert_eq!(pick(&[0]), (1, 4, vec![]));
    assert_eq!(pick(&[0, 1]), (1, 4, vec![1]));
    assert_eq!(pick(&[0, 1, 2]), (2, 8, vec![1, 2]));
    // A BlueField-2's 8 Arm cores: 4 replicas (a power of two), on the
    // highest cores; 3 cores unused.
    assert_eq!(pick(&(0..8).collect::<Vec<_>>()), (4, 16, vec![4, 5, 6, 7]));
    assert_eq!(pick(&(0..16).collect::<Vec<_>>()).0, 8);
    // A cpuset: only the CPUs given.
    assert_eq!(pick(&[2, 5, 9]), (2, 8, vec![5, 9]));
    assert_eq!(pick(&(0..200).collect::<Vec<_>>()).0, 64);
}

#[test]
fn by_default_the_placement_is_chosen_on_three_cpus_or_more_unless_the_topology_places_workers() {
    let default = Topology::default();
    let eight: Vec<u32> = (0..8).collect();
    assert_eq!(
        default.chosen_for(&[0, 1], 64),
        (default.clone(), false),
        "two CPUs: one unpinned replica"
    );
    let (t, chosen) = default.chosen_for(&[0, 1, 2, 3], 64);
    assert!(chosen);
    assert_eq!((t.replicas, t.flow_groups, t.cores), (2, 8, vec![2, 3]));
    assert_eq!(default.chosen_for(&eight, 64).0.replicas, 4);
    // A port with one queue pair: one replica, on the last CPU.
    let (t, chosen) = default.chosen_for(&eight, 1);
    assert!(chosen);
    assert_eq!((t.replicas, t.cores), (1, vec![7]));
    assert_eq!(default.chosen_for(&eight, 3).0.replicas, 2);

    let two = Topology {
        replicas: 2,
        flow_groups: 8,
        ..Topology::default()
    };
    assert_eq!(
        two.chosen_for(&eight, 64),
        (two.clone(), false),
        "replicas set"
    );
    let staged = Topology {
        run_to_completion: false,
        ..Topology::default()
    };
    assert!(!staged.chosen_for(&eight, 64).1, "run_to_completion set");
    let off = Topology {
        auto: Some(false),
        ..Topology::default()
    };
    assert!(!off.chosen_for(&eight, 64).1, "auto: false");
    let on = Topology {
        auto: Some(true),
        ..Topology::default()
    };
    assert_eq!(
        on.chosen_for(&[0, 1], 64).0.cores,
        vec![1],
        "auto: true on two CPUs"
    );
}
