//! Field and cross-field validation: exact messages, all problems at once.

use pipeline_config::{Config, CongestionControl};

use super::{errors, invalid};

#[test]
fn range() {
    assert_eq!(
        errors(r#"{"topology": {"replicas": 0}}"#),
        ["topology.replicas: 0 is out of range 1..=64"]
    );
    assert_eq!(
        errors(r#"{"port": {"mtu": 9001}}"#),
        ["port.mtu: 9001 is out of range 576..=9000"]
    );
    assert_eq!(
        errors(r#"{"tcp": {"max_connections": 16777217}}"#),
        ["tcp.max_connections: 16777217 is out of range 1..=16777216"]
    );
}

#[test]
fn probability_range() {
    assert_eq!(
        errors(
            r#"{"port": {"impairment": {"rx": {"drop": 1.5}, "tx": {"corrupt": -0.0, "reorder": 2}}}}"#
        ),
        [
            "port.impairment.rx.drop: 1.5 is out of range 0.0..=1.0",
            "port.impairment.tx.reorder: 2.0 is out of range 0.0..=1.0",
        ]
    );
    let mut config = Config::default();
    config.port.impairment.rx.duplicate = f64::NAN;
    assert_eq!(
        invalid(&config),
        ["port.impairment.rx.duplicate: NaN is out of range 0.0..=1.0"]
    );
}

#[test]
fn power_of_two() {
    assert_eq!(
        errors(r#"{"port": {"dpdk": {"rx_descriptors": 1000, "tx_descriptors": 32}}}"#),
        [
            "port.dpdk.rx_descriptors: 1000 is not a power of two; use 512 or 1024",
            "port.dpdk.tx_descriptors: 32 is out of range 64..=16384",
        ]
    );
    assert_eq!(
        errors(r#"{"tcp": {"rx_buffer": 100000}}"#),
        ["tcp.rx_buffer: 100000 is not a power of two; use 65536 or 131072"]
    );
}

#[test]
fn bad_mac() {
    assert_eq!(
        errors(r#"{"identity": {"mac": "02:00:c6:12:00"}}"#),
        [
            r#"identity.mac: "02:00:c6:12:00" is not a MAC address; expected six two-digit hex octets separated by ':' like "02:00:c6:12:00:02""#
        ]
    );
    assert_eq!(
        errors(r#"{"identity": {"mac": "01:00:5e:00:00:01"}}"#),
        [
            r#"identity.mac: "01:00:5e:00:00:01" is a multicast address; expected a unicast MAC (first octet even) like "02:00:c6:12:00:02""#
        ]
    );
    assert_eq!(
        errors(r#"{"identity": {"mac": "00:00:00:00:00:00"}}"#),
        [
            r#"identity.mac: "00:00:00:00:00:00" is the all-zero address; expected a unicast MAC like "02:00:c6:12:00:02""#
        ]
    );
}

#[test]
fn bad_ipv4() {
    assert_eq!(
        errors(r#"{"identity": {"ipv4": "198.18.0.256"}}"#),
        [
            r#"identity.ipv4: "198.18.0.256" is not an IPv4 address; expected dotted decimal like "198.18.0.2""#
        ]
    );
    assert_eq!(
        errors(r#"{"identity": {"ipv4": "224.0.0.1"}}"#),
        ["identity.ipv4: 224.0.0.1 is a multicast address; expected a unicast host address like 198.18.0.2"]
    );
    assert_eq!(
        errors(r#"{"identity": {"ipv4": "198.18.0.255"}}"#),
        ["identity.ipv4: 198.18.0.255 is the broadcast address of 198.18.0.0/24; expected an address in 198.18.0.1..=198.18.0.254"]
    );
    assert_eq!(
        errors(r#"{"identity": {"prefix_len": 0}}"#),
        ["identity.prefix_len: 0 is out of range 1..=32"]
    );
}

#[test]
fn gateway_outside_subnet() {
    assert_eq!(
        errors(r#"{"identity": {"gateway": "198.18.1.1"}}"#),
        ["identity.gateway: 198.18.1.1 is outside the subnet 198.18.0.0/24 of identity.ipv4; expected an address in 198.18.0.1..=198.18.0.254"]
    );
    assert_eq!(
        errors(r#"{"identity": {"gateway": "198.18.0.2"}}"#),
        ["identity.gateway: 198.18.0.2 is identity.ipv4 itself; the gateway must be another host on the subnet"]
    );
    assert_eq!(
        errors(r#"{"identity": {"gateway": "198.18.0.0"}}"#),
        ["identity.gateway: 198.18.0.0 is the network address of 198.18.0.0/24; expected an address in 198.18.0.1..=198.18.0.254"]
    );
    assert_eq!(
        errors(r#"{"identity": {"gateway": "gw"}}"#),
        [
            r#"identity.gateway: "gw" is not an IPv4 address; expected dotted decimal like "198.18.0.2""#
        ]
    );
    let config = Config::from_json_str(r#"{"identity": {"gateway": "198.18.0.1"}}"#).unwrap();
    assert_eq!(
        config.identity.gateway_addr(),
        Ok(Some([198, 18, 0, 1].into()))
    );
}

#[test]
fn mss_must_fit_mtu() {
    assert_eq!(
        errors(r#"{"port": {"mtu": 1400}}"#),
        ["tcp.mss: 1448 + 40 header bytes exceeds port.mtu 1400; at most 1360 fits"]
    );
}

#[test]
fn rto_order() {
    assert_eq!(
        errors(r#"{"tcp": {"initial_rto_ms": 100}}"#),
        ["tcp.initial_rto_ms: 100 is below tcp.min_rto_ms 200; require min_rto_ms <= initial_rto_ms <= max_rto_ms"]
    );
    assert_eq!(
        errors(r#"{"tcp": {"min_rto_ms": 0, "max_rto_ms": 700000}}"#),
        [
            "tcp.min_rto_ms: 0 is out of range 1..=600000",
            "tcp.max_rto_ms: 700000 is out of range 1..=600000",
        ]
    );
}

#[test]
fn dctcp_needs_ecn() {
    assert_eq!(
        errors(r#"{"tcp": {"congestion_control": "dctcp"}}"#),
        [r#"tcp.congestion_control: "dctcp" needs ECN marks; set tcp.ecn to true"#]
    );
    let config =
        Config::from_json_str(r#"{"tcp": {"congestion_control": "dctcp", "ecn": true}}"#).unwrap();
    assert_eq!(config.tcp.congestion_control, CongestionControl::Dctcp);
}

#[test]
fn dctcp_rate_needs_ecn() {
    assert_eq!(
        errors(r#"{"tcp": {"congestion_control": "dctcp-rate"}}"#),
        ["tcp.congestion_control: \"dctcp-rate\" needs ECN marks; set tcp.ecn to true"]
    );
    let ok = pipeline_config::Config::from_json_str(
        r#"{"tcp": {"congestion_control": "dctcp-rate", "ecn": true}}"#,
    )
    .unwrap();
    assert_eq!(ok.validate(), Ok(()));
}

#[test]
fn timely_parameters() {
    assert_eq!(
        errors(r#"{"tcp": {"timely": {"t_low_us": 200, "beta": 1.5}}}"#),
        [
            "tcp.timely.t_high_us: 150 is not above tcp.timely.t_low_us 200; require t_low_us < t_high_us",
            "tcp.timely.beta: 1.5 is out of range 0.0..=1.0",
        ]
    );
    assert_eq!(
        errors(r#"{"tcp": {"rate_control": {"initial_rate_mbps": 5}}}"#),
        ["tcp.rate_control.initial_rate_mbps: 5 is below tcp.rate_control.min_rate_mbps 10; require min_rate_mbps <= initial_rate_mbps <= max_rate_mbps"]
    );
    assert_eq!(
        errors(
            r#"{"tcp": {"rate_control": {"max_rate_mbps": 0}, "timely": {"hai_threshold": 0}}}"#
        ),
        [
            "tcp.timely.hai_threshold: 0 is out of range 1..=255",
            "tcp.rate_control.max_rate_mbps: 0 is out of range 1..=400000",
        ]
    );
    assert!(
        errors(r#"{"tcp": {"timely": {"t_hgih_us": 9}}}"#)[0].contains("unknown field `t_hgih_us`")
    );
}

#[test]
fn congestion_control_by_port() {
    let config = Config::from_json_str(
        r#"{"tcp": {"congestion_control_by_port": {"11211": "dctcp", "80": "reno"}}}"#,
    )
    .unwrap();
    assert_eq!(
        config.tcp.congestion_control_by_port.get(&11211),
        Some(&CongestionControl::Dctcp)
    );
    assert_eq!(
        errors(r#"{"tcp": {"congestion_control_by_port": {"0": "dctcp"}}}"#),
        ["tcp.congestion_control_by_port: port 0 cannot listen; ports are 1..=65535"]
    );
    let bad = errors(r#"{"tcp": {"congestion_control_by_port": {"80": "cubic"}}}"#);
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].starts_with("tcp.congestion_control_by_port")
            && bad[0]
                .contains("unknown variant `cubic`, expected one of `reno`, `dctcp`, `timely`"),
        "{bad:?}"
    );
    let bad = errors(r#"{"tcp": {"congestion_control_by_port": {"70000": "reno"}}}"#);
    assert!(
        bad[0].starts_with("tcp.congestion_control_by_port"),
        "{bad:?}"
    );
}

#[test]
fn dpdk_devices() {
    assert_eq!(
        errors(
            r#"{"port": {"dpdk": {"allow": ["0000:03:00.0", "eth0"], "vdevs": ["net_tap0", "net_tap0,iface=x", ""], "eal_args": [""]}}}"#
        ),
        [
            r#"port.dpdk.eal_args[0]: an EAL argument must not be empty"#,
            r#"port.dpdk.vdevs[1]: device name "net_tap0" is already used by port.dpdk.vdevs[0]; names must be unique"#,
            r#"port.dpdk.vdevs[2]: "" is not a virtual device; expected "driver_name[,key=value...]" like "net_tap0,iface=ftoe0""#,
            r#"port.dpdk.allow[1]: "eth0" is not a PCI device; expected DOMAIN:BUS:DEVICE.FUNCTION or BUS:DEVICE.FUNCTION with optional ",devargs", like "0000:03:00.0" or "03:00.0,txq_inline_max=0""#,
        ]
    );
}

#[test]
fn syn_cookie_modes() {
    assert_eq!(
        errors(r#"{"tcp": {"syn_cookies": "yes"}}"#),
        ["tcp.syn_cookies: unknown variant `yes`, expected one of `auto`, `always`, `never` at line 1 column 29"]
    );
    let config = Config::from_json_str(r#"{"tcp": {"syn_cookies": "always"}}"#).unwrap();
    assert_eq!(config.tcp.syn_cookies, pipeline_config::SynCookies::Always);
}

#[test]
fn af_xdp_needs_hugepages() {
    assert_eq!(
        errors(r#"{"port": {"dpdk": {"vdevs": ["net_af_xdp0,iface=veth0"]}}}"#),
        [
            "port.dpdk.vdevs[0]: net_af_xdp needs hugepages (its UMEM is the mbuf pool, and buffers \
             crossing a 4 KiB page are rejected by the kernel); set port.dpdk.no_huge to false and \
             reserve 2 MiB pages (scripts/hugepages.sh)"
        ]
    );
    let ok = r#"{"port": {"dpdk": {"no_huge": false, "vdevs": ["net_af_xdp0,iface=veth0"]}}}"#;
    assert!(Config::from_json_str(ok).is_ok());
}

#[test]
fn control_socket_and_metrics_address() {
    let long = format!("/{}", "s".repeat(107));
    let doc = format!(
        r#"{{"host": {{"control_socket": "{long}"}}, "metrics": {{"listen": "localhost:9464"}}}}"#
    );
    assert_eq!(
        errors(&doc),
        [
            format!(r#"host.control_socket: "{long}" is 108 bytes long; a Unix socket path must be shorter than 108 bytes"#),
            r#"metrics.listen: "localhost:9464" is not a socket address; expected IP:port like "127.0.0.1:9464" or "[::1]:9464""#.to_owned(),
        ]
    );
    assert_eq!(
        errors(r#"{"host": {"control_socket": "control.sock"}}"#),
        [
            r#"host.control_socket: "control.sock" is not an absolute path; expected one like "/run/flextoe/control.sock""#
        ]
    );
}

#[test]
fn several_mistakes_at_once_are_all_reported() {
    let doc = r#"{
        "identity": {"mac": "ff:ff:ff:ff:ff:ff", "ipv4": "10.0.0.1", "gateway": "10.0.1.1"},
        "port": {"mtu": 100},
        "topology": {"replicas": 3, "burst": 0},
        "tcp": {"mss": 20000, "listen_backlog": 0, "synack_retries": 256, "syn_cookie_rate": 100000001},
        "host": {"max_apps": 5000}
    }"#;
    assert_eq!(
        errors(doc),
        [
            r#"identity.mac: "ff:ff:ff:ff:ff:ff" is a multicast address; expected a unicast MAC (first octet even) like "02:00:c6:12:00:02""#,
            "identity.gateway: 10.0.1.1 is outside the subnet 10.0.0.0/24 of identity.ipv4; expected an address in 10.0.0.1..=10.0.0.254",
            "port.mtu: 100 is out of range 576..=9000",
            "topology.flow_groups: 4 flow groups cannot be split evenly across 3 replicas; flow_groups must be a multiple of replicas",
            "topology.burst: 0 is out of range 1..=256",
            "tcp.mss: 20000 is out of range 88..=9000",
            "tcp.listen_backlog: 0 is out of range 1..=65535",
            "tcp.synack_retries: 256 is out of range 0..=255",
            "tcp.syn_cookie_rate: 100000001 is out of range 0..=100000000",
            "host.max_apps: 5000 is out of range 1..=4096",
        ]
    );
    let shown = Config::from_json_str(doc).unwrap_err().to_string();
    assert_eq!(shown.lines().count(), 10);
}

#[test]
fn host_interface_limits_are_checked_by_name() {
    let doc = r#"{"host": {"ring_entries": 1000, "connections_per_app": 0}}"#;
    assert_eq!(
        errors(doc),
        [
            "host.ring_entries: 1000 is not a power of two; use 512 or 1024",
            "host.connections_per_app: 0 is out of range 1..=65536",
        ]
    );
    let doc = r#"{"host": {"dma_latency_ns": 2000000, "dma_max_outstanding": 0, "front_yield_every": 0}}"#;
    assert_eq!(
        errors(doc),
        [
            "host.dma_latency_ns: 2000000 is out of range 0..=1000000",
            "host.dma_max_outstanding: 0 is out of range 1..=65536",
            "host.front_yield_every: 0 is out of range 1..=2048",
        ]
    );
    let doc = r#"{"host": {"max_contexts_per_app": 200, "fork_contexts": 64}}"#;
    assert_eq!(
        errors(doc),
        ["host.fork_contexts: 64 plus host.max_contexts_per_app 200 is 264; a region holds at most 256 contexts"]
    );
    let doc = r#"{"host": {"fork_contexts": 300}}"#;
    assert_eq!(
        errors(doc),
        ["host.fork_contexts: 300 is out of range 0..=255"]
    );
    let doc = r#"{"host": {"ring_entries": 4}, "port": {"backend": "loopback"}}"#;
    assert_eq!(
        errors(doc),
        ["host.ring_entries: 4 is out of range 8..=65536"]
    );
}
