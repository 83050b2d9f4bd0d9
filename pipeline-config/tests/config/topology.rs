//! Impossible topologies and CPU pinning.

use pipeline_config::{Config, CpuSet};

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
