//! The embedded default and how partial documents fill in from it.

use pipeline_config::{Config, LogLevel};
use serde_json::json;

#[test]
fn default_validates() {
    assert_eq!(Config::default().validate(), Ok(()));
}

#[test]
fn default_round_trips() {
    let config = Config::default();
    let text = config.to_json_pretty();
    assert!(text.ends_with("}\n"));
    assert_eq!(Config::from_json_str(&text), Ok(config));
}

#[test]
fn changed_config_round_trips() {
    let mut config = Config::default();
    config.identity.gateway = Some("198.18.0.1".to_owned());
    config.port.impairment.tx.drop = 0.25;
    config.topology.cores = vec![0];
    let text = config.to_json_pretty();
    assert_eq!(Config::from_json_str(&text), Ok(config));
}

#[test]
fn empty_document_is_default() {
    assert_eq!(Config::from_json_str("{}"), Ok(Config::default()));
    assert_eq!(Config::from_json_str(" {\n}\n"), Ok(Config::default()));
}

#[test]
fn partial_document_keeps_other_defaults() {
    let config = Config::from_json_str(
        r#"{"tcp": {"mss": 1400}, "logging": {"level": "debug"}, "port": {}}"#,
    )
    .unwrap();
    let mut expected = Config::default();
    expected.tcp.mss = 1400;
    expected.logging.level = LogLevel::Debug;
    assert_eq!(config, expected);
}

#[test]
fn default_matches_reference_document() {
    let reference = json!({
        "identity": {"mac": "02:00:c6:12:00:02", "ipv4": "198.18.0.2", "prefix_len": 24, "gateway": null},
        "port": {
            "backend": "dpdk", "mtu": 1500,
            "dpdk": {
                "eal_args": [], "vdevs": ["net_tap0,iface=ftoe0"], "allow": [], "no_huge": true,
                "memory_mb": 256, "mempool_mbufs": 8191, "rx_descriptors": 1024, "tx_descriptors": 1024,
                "software_rss": false,
                "tx_checksum_offload": null,
                "tso": null
            },
            "impairment": {
                "seed": 1,
                "rx": {"drop": 0.0, "duplicate": 0.0, "reorder": 0.0, "corrupt": 0.0, "delay_us": 0},
                "tx": {"drop": 0.0, "duplicate": 0.0, "reorder": 0.0, "corrupt": 0.0, "delay_us": 0}
            }
        },
        "topology": {
            "replicas": 1, "flow_groups": 4, "pre_workers": 1, "proto_workers": 1, "post_workers": 1,
            "dma_workers": 1, "run_to_completion": true, "cores": [], "workers": [], "auto": null, "ring_size": 1024, "burst": 32,
            "idle": {"spin_polls": 1024, "park_after_us": 200, "when_oversubscribed_park": true}
        },
        "tcp": {
            "mss": 1448, "rx_buffer": 262144, "tx_buffer": 262144, "initial_rto_ms": 1000,
            "min_rto_ms": 200, "max_rto_ms": 60000, "delayed_ack_us": 500, "coalesce_acks": true, "max_connections": 65536,
            "time_wait_ms": 60000, "listen_backlog": 128, "synack_retries": 5, "syn_cookies": "auto", "syn_cookie_rate": 0, "window_scale": true, "timestamps": true,
            "sack": true, "ooo_intervals": 8, "congestion_control": "reno", "congestion_control_by_port": {},
            "timely": {
                "t_low_us": 30, "t_high_us": 150, "min_rtt_us": 11, "beta": 0.8,
                "ewma_alpha": 0.02, "hai_threshold": 5
            },
            "rate_control": {
                "step_mbps": 10, "initial_rate_mbps": 10, "min_rate_mbps": 10, "max_rate_mbps": 100000
            },
            "ecn": false, "initial_cwnd_segments": 10
        },
        "host": {
            "control_socket": "/run/flextoe/control.sock", "max_apps": 64, "max_contexts_per_app": 16,
            "fork_contexts": 64, "ring_entries": 1024, "connections_per_app": 1024, "dma_latency_ns": 1000,
            "dma_max_outstanding": 256, "dma_engine": "emulated", "dma_reorder": false,
            "front_yield_every": 64
        },
        "metrics": {"enabled": true, "listen": "127.0.0.1:9464"},
        "logging": {"level": "info", "format": "text"},
        "xdp": {"programs": []}
    });
    assert_eq!(serde_json::to_value(Config::default()).unwrap(), reference);
}

#[test]
fn worker_threads() {
    let mut topology = Config::default().topology;
    assert_eq!(topology.worker_threads(), 1);
    topology.replicas = 2;
    assert_eq!(topology.worker_threads(), 2);
    topology.run_to_completion = false;
    topology.proto_workers = 3;
    assert_eq!(topology.worker_threads(), 2 * (1 + 3 + 1 + 1));
}
