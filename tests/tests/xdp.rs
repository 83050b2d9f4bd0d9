//! The XDP-style hook of the real service on a DPDK TAP port, with the
//! Linux TCP stack as the peer in a namespace (the rig of
//! `linux_interop`), driven the way an operator does: programs from
//! `dpu-datapath/xdp/examples` compiled by clang, loaded from the
//! configuration or with `flextoe-dpu bpf`, maps changed with
//! `flextoe-dpu bpf map` while traffic runs.

use flextoe_tests::rig::*;
use flextoe_tests::skip_unless_ready;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Compiles an example module into `dir`.
fn module(dir: &Path, name: &str) -> PathBuf {
    let root = repo().join("dpu-datapath/xdp");
    let out = dir.join(format!("{name}.o"));
    let status = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g", "-I"])
        .arg(root.join("include"))
        .arg("-c")
        .arg(root.join(format!("examples/{name}.c")))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang (scripts/setup.sh installs it)");
    assert!(status.success(), "clang {name}.c failed");
    out
}

/// `flextoe-dpu bpf ARGS` against the rig's service.
fn bpf(rig: &Rig, args: &[&str]) -> Output {
    let out = Command::new(binary().unwrap())
        .arg("bpf")
        .arg("--control")
        .arg(rig.dir.join("control.sock"))
        .args(args)
        .output()
        .expect("run flextoe-dpu bpf");
    eprintln!(
        "{}: bpf {args:?} -> {}\n{}{}",
        rig.name,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn bpf_ok(rig: &Rig, args: &[&str]) -> String {
    let out = bpf(rig, args);
    assert!(out.status.success(), "{}: bpf {args:?} failed", rig.name);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn xdp_stat(rig: &Rig) -> Value {
    flextoe_tests::hostif::stat(&rig.dir.join("control.sock")).unwrap_or_default()["xdp"].clone()
}

/// A connect from the namespace with a timeout: Ok, or the error text.
fn try_connect(rig: &Rig, secs: u32) -> Result<(), String> {
    let code = format!(
        "import socket\ns = socket.create_connection(('{ENGINE_IP}', 7), timeout={secs})\n\
         s.sendall(b'x'); assert s.recv(1) == b'x'"
    );
    let out = rig
        .ns_cmd(&["timeout", &(secs + 5).to_string(), "python3", "-c", &code])
        .output()
        .expect("python3");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `GET /metrics` of the service's endpoint.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The key of `fw_prefixes` for `len` bits of `addr`.
fn prefix_key(len: u32, addr: [u8; 4]) -> String {
    let mut k: Vec<u8> = len.to_le_bytes().to_vec();
    k.extend_from_slice(&addr);
    k.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn firewall_denies_a_linux_client_at_run_time_then_lets_it_back() {
    let _g = serial();
    skip_unless_ready!("firewall_denies_a_linux_client_at_run_time_then_lets_it_back");
    let dir = std::env::temp_dir().join(format!("ftoe-xdp-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fw = module(&dir, "firewall");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut rig = Rig::start(
        "xdp_firewall",
        Opts {
            config: Some(json!({
                "xdp": {"programs": [{"file": fw.display().to_string()}]},
                "metrics": {"enabled": true, "listen": format!("127.0.0.1:{metrics_port}")},
            })),
            ..Default::default()
        },
    );
    let r = rig.peer(
        &["echo", "--bytes", &(4 * MIB).to_string()],
        Duration::from_secs(30),
    );
    assert!(ok(&r), "echo through the firewall without rules: {r}");
    let accepted_before = rig.wait_stat("echo connection counted and closed", |s| {
        s["flows"] == 0 && s["engine"]["connections_accepted"].as_u64() >= Some(1)
    });

    // Deny the peer's /24 while the service runs.
    let key = prefix_key(24, [198, 18, 0, 0]);
    bpf_ok(
        &rig,
        &["map", "update", "fw_prefixes", &key, "0000000000000000"],
    );
    let t0 = Instant::now();
    let denied = try_connect(&rig, 2);
    assert!(
        denied.as_ref().is_err_and(|e| e.contains("timed out")),
        "a denied client must time out: {denied:?}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(2));
    let x = xdp_stat(&rig);
    assert!(x["ingress"]["drop"].as_u64().unwrap() >= 1, "{x}");
    let now = rig.fresh_stat();
    assert_eq!(
        now["engine"]["connections_accepted"], accepted_before["engine"]["connections_accepted"],
        "a denied SYN reached the engine"
    );
    let dump: Value = serde_json::from_str(&bpf_ok(&rig, &["map", "dump", "fw_prefixes"])).unwrap();
    assert!(
        dump["entries"][0]["words"][0].as_u64().unwrap() >= 1,
        "{dump}"
    );
    // Prometheus sees the drops (published every 100 ms).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(metrics_port);
        let line = text
            .lines()
            .find(|l| l.starts_with(r#"flextoe_xdp_frames_total{hook="ingress",verdict="drop"}"#))
            .unwrap_or("");
        let drops: f64 = line
            .rsplit(' ')
            .next()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0);
        // The port's own counters are there too.
        let port_rx = text
            .lines()
            .find_map(|l| l.strip_prefix(r#"flextoe_port_frames_total{direction="rx"} "#))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if drops >= 1.0 && port_rx >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no XDP drops or port frames in /metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = bpf_ok(&rig, &["list"]);
    assert!(
        list.contains("firewall.o") && list.contains("1 program(s)"),
        "{list}"
    );

    // A hostile program is refused with the validator's reason; the
    // firewall stays and traffic goes on.
    let bad = dir.join("oob.c");
    std::fs::write(
        &bad,
        "#include \"flextoe_xdp.h\"\nSEC(\"xdp\") u64 p(u8 *pkt) { return pkt[4000]; }\n",
    )
    .unwrap();
    let bad_o = dir.join("oob.o");
    let built = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-I"])
        .arg(repo().join("dpu-datapath/xdp/include"))
        .arg("-c")
        .arg(&bad)
        .arg("-o")
        .arg(&bad_o)
        .status()
        .unwrap();
    assert!(built.success());
    let refused = bpf(&rig, &["load", &bad_o.display().to_string()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("memory boundary violation"), "{err}");

    // Another user, even one the socket's mode lets in, may not touch the
    // hooks: programs see every frame.
    let sock = rig.dir.join("control.sock");
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::set_permissions(
        &rig.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary().unwrap())
        .args(["bpf", "--control"])
        .arg(&sock)
        .args(["map", "delete", "fw_prefixes", &key])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && err.contains("only root or the service's own user"),
        "user 65534: {} {err}",
        other.status
    );

    // Rule removed: the same client connects again.
    bpf_ok(&rig, &["map", "delete", "fw_prefixes", &key]);
    try_connect(&rig, 5).expect("connect after the rule is removed");
    let r = rig.peer(
        &["echo", "--bytes", &MIB.to_string()],
        Duration::from_secs(30),
    );
    assert!(ok(&r), "{r}");
    rig.settled();
    let stats = rig.stop();
    assert_eq!(n(&stats, "engine.connections_reset"), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_replace_under_bulk_transfer_keeps_connection_and_maps() {
    let _g = serial();
    skip_unless_ready!("live_replace_under_bulk_transfer_keeps_connection_and_maps");
    let dir = std::env::temp_dir().join(format!("ftoe-xdp-it2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats_o = module(&dir, "flow_stats");
    let pass_o = module(&dir, "pass");
    let mut rig = Rig::start("xdp_replace", Opts::default());
    let ingress = stats_o.display().to_string();
    bpf_ok(&rig, &["load", &ingress]);
    bpf_ok(&rig, &["load", &ingress, "--hook", "egress"]);

    // 256 MiB echoed while the programs are replaced, back and forth.
    let ns = rig.ns.clone();
    let script = repo().join("scripts/peer.py");
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, "timeout", "120", "python3"])
        .arg(&script)
        .args(["echo", "--bytes", &(256 * MIB).to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut replaced = 0;
    let mut last_packets = 0;
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut child = child;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let obj = if replaced % 3 == 2 { &pass_o } else { &stats_o };
        bpf_ok(&rig, &["load", &obj.display().to_string()]);
        replaced += 1;
        // flow_stats stays declared by the egress program: its counts only
        // grow, whichever ingress program runs.
        let dump: Value =
            serde_json::from_str(&bpf_ok(&rig, &["map", "dump", "flow_stats"])).unwrap();
        let packets: u64 = dump["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["words"][0].as_u64().unwrap())
            .sum();
        assert!(
            packets >= last_packets,
            "flow_stats went back: {packets} < {last_packets}"
        );
        last_packets = packets;
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap_or_default();
    assert!(
        ok(&r),
        "echo during {replaced} replacements: {r}\n{}",
        rig.logs()
    );
    assert_eq!(r["sha256_sent"], r["sha256_received"]);
    assert!(
        replaced >= 5,
        "only {replaced} replacements during the transfer"
    );
    let x = xdp_stat(&rig);
    assert_eq!(x["ingress"]["aborted"], 0, "{x}");
    assert!(
        x["egress"]["frames"].as_u64().unwrap() > 1000,
        "egress program ran: {x}"
    );
    assert!(
        last_packets > 1000,
        "flow_stats counted {last_packets} packets"
    );
    rig.settled();
    let stats = rig.stop();
    assert_eq!(n(&stats, "engine.connections_reset"), 0);
    eprintln!(
        "xdp_replace: {replaced} replacements during 256 MiB, {last_packets} packets counted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// This machine's kernel has no 802.1Q (`CONFIG_VLAN_8021Q` is off), so
/// the VLAN peer is `scripts/vlan_peer.py`: tagged ARP and ICMP echo
/// frames through an AF_PACKET socket on the TAP's namespace end, the
/// answers' tags read back from the kernel's packet metadata.
#[test]
fn vlan_module_tags_and_untags_for_a_vlan_peer() {
    let _g = serial();
    skip_unless_ready!("vlan_module_tags_and_untags_for_a_vlan_peer");
    let dir = std::env::temp_dir().join(format!("ftoe-xdp-it3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vlan = module(&dir, "vlan").display().to_string();
    let mut rig = Rig::start(
        "xdp_vlan",
        Opts {
            config: Some(json!({"xdp": {"programs": [
                {"file": vlan, "hook": "ingress"},
                {"file": vlan, "hook": "egress", "section": "xdp_egress"}
            ]}})),
            ..Default::default()
        },
    );
    bpf_ok(
        &rig,
        &["map", "update", "vlan_cfg", "00000000", "6400000000000000"],
    );
    let script = repo().join("scripts/vlan_peer.py").display().to_string();
    let out = rig
        .ns_cmd(&[
            "timeout",
            "30",
            "python3",
            &script,
            "--iface",
            &rig.peer_if,
            "--vid",
            "100",
            "--pings",
            "20",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("xdp_vlan: {text}{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap_or_default();
    assert!(ok(&r), "VLAN peer: {r}\n{}", rig.logs());
    let dump: Value = serde_json::from_str(&bpf_ok(&rig, &["map", "dump", "vlan_cfg"])).unwrap();
    let word = |i: u64| {
        dump["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == format!("{:02x}000000", i))
            .map(|e| e["words"][0].as_u64().unwrap())
            .unwrap_or(0)
    };
    // [vid, stripped, tagged, other VLANs dropped]
    assert_eq!(word(0), 100);
    assert!(word(1) >= 21 && word(2) >= 21, "{dump}");
    assert_eq!(word(3), 1, "the VLAN 200 frame: {dump}");
    let stats = rig.stop();
    assert!(n(&stats, "engine.icmp_echo_replies") >= 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capture_module_writes_a_sampled_pcap_tcpdump_reads() {
    let _g = serial();
    skip_unless_ready!("capture_module_writes_a_sampled_pcap_tcpdump_reads");
    let dir = std::env::temp_dir().join(format!("ftoe-xdp-it4-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cap = module(&dir, "capture").display().to_string();
    let mut rig = Rig::start(
        "xdp_capture",
        Opts {
            config: Some(json!({"xdp": {"programs": [
                {"file": cap, "hook": "ingress"},
                {"file": cap, "hook": "egress"}
            ]}})),
            ..Default::default()
        },
    );
    // One frame in 4 of port 7, both directions, 96 bytes of each.
    for (i, v) in [(0u32, 4u64), (1, 7), (2, 96)] {
        let key: String = i.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let val: String = v.to_ne_bytes().iter().map(|b| format!("{b:02x}")).collect();
        bpf_ok(&rig, &["map", "update", "cap_cfg", &key, &val]);
    }
    let pcap = dir.join("sample.pcap");
    let mut reader = Command::new(binary().unwrap())
        .arg("bpf")
        .arg("--control")
        .arg(rig.dir.join("control.sock"))
        .args(["capture", "-c", "40", "-w"])
        .arg(&pcap)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Traffic once the reader is attached (it says so, as tcpdump does).
    {
        use std::io::{BufRead, BufReader};
        let mut err = BufReader::new(reader.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "{line}");
        std::thread::spawn(move || for _ in err.lines() {});
    }
    let r = rig.peer(
        &["echo", "--bytes", &MIB.to_string()],
        Duration::from_secs(30),
    );
    assert!(ok(&r), "{r}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reader.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "bpf capture did not end after 40 frames"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(reader.wait().unwrap().success());
    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .output()
        .expect("tcpdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        40,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains(".7 >") || l.contains(".7:")),
        "only port 7: {text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("198.18.0.2.7 >"))
            && lines.iter().any(|l| l.contains("> 198.18.0.2.7:")),
        "both directions: {text}"
    );
    // Each record holds at most the 96 bytes asked for.
    let bytes = std::fs::read(&pcap).unwrap();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        assert!(caplen <= 96, "a record of {caplen} bytes");
        at += 16 + caplen;
    }
    assert_eq!(at, bytes.len());
    let dump: Value = serde_json::from_str(&bpf_ok(&rig, &["map", "dump", "cap_seen"])).unwrap();
    let seen: u64 = dump["entries"][0]["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[0].as_u64().unwrap())
        .sum();
    assert!(
        seen >= 4 * 40,
        "at least 160 frames of port 7 seen for 40 captured: {dump}"
    );
    rig.settled();
    rig.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A network namespace removed on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = flextoe_tests::run(&["ip", "netns", "del", &self.0]);
    }
}

/// A child killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first line of `child`'s stdout, as JSON.
fn first_json(
    child: &mut std::process::Child,
    what: &str,
) -> (Value, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v = serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("{what}: {line:?}"));
    (v, out)
}

fn next_json(out: &mut std::io::BufReader<std::process::ChildStdout>, what: &str) -> Value {
    use std::io::BufRead;
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("{what}: {line:?}"))
}

fn mac_of(ns: &str, dev: &str) -> Vec<u8> {
    let out = rig_run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{dev}/address"),
    ]);
    out.trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

fn rig_run(args: &[&str]) -> String {
    let out = flextoe_tests::run(args).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn addr_bytes(text: &str) -> (Vec<u8>, u16) {
    let (ip, port) = text.rsplit_once(':').unwrap();
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    (ip.octets().to_vec(), port.parse().unwrap())
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn splice_moves_64mib_between_two_linux_peers_past_the_proxy() {
    let _g = serial();
    skip_unless_ready!("splice_moves_64mib_between_two_linux_peers_past_the_proxy");
    let Some(run) = flextoe_tests::preload::runner() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ftoe-xdp-it5-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let splice = module(&dir, "splice").display().to_string();
    let rig = Rig::start(
        "xdp_splice",
        Opts {
            config: Some(json!({
                "tcp": {"timestamps": false, "sack": false, "window_scale": false},
                "xdp": {"programs": [{"file": splice}]},
            })),
            ..Default::default()
        },
    );
    // Client A stays in the rig's namespace, now behind a bridge that also
    // holds a veth to server B's own namespace: B is reachable from the
    // service, and A talks only to the service.
    let ns = rig.ns.clone();
    let ns_b = Netns(format!("{ns}-b"));
    let sh = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend_from_slice(args);
        rig_run(&full);
    };
    sh(&["ip", "link", "add", "br0", "type", "bridge"]);
    sh(&["ip", "addr", "del", PEER_CIDR, "dev", &rig.peer_if]);
    sh(&["ip", "link", "set", &rig.peer_if, "master", "br0"]);
    sh(&["ip", "addr", "add", PEER_CIDR, "dev", "br0"]);
    sh(&["ip", "link", "set", "br0", "up"]);
    rig_run(&["ip", "netns", "add", &ns_b.0]);
    sh(&[
        "ip", "link", "add", "vba", "type", "veth", "peer", "name", "vbb", "netns", &ns_b.0,
    ]);
    sh(&["ip", "link", "set", "vba", "master", "br0"]);
    sh(&["ip", "link", "set", "vba", "up"]);
    let shb = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", &ns_b.0];
        full.extend_from_slice(args);
        rig_run(&full);
    };
    shb(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    shb(&["ip", "addr", "add", "198.18.0.3/24", "dev", "vbb"]);
    shb(&["ip", "link", "set", "vbb", "up"]);
    shb(&["ip", "link", "set", "lo", "up"]);
    let _ = flextoe_tests::run(&[
        "ip", "netns", "exec", &ns_b.0, "ethtool", "-K", "vbb", "tso", "off", "gso", "off", "tx",
        "off",
    ]);
    let _ = flextoe_tests::run(&[
        "ip", "netns", "exec", &ns, "ethtool", "-K", "vba", "tso", "off", "gso", "off", "tx", "off",
    ]);
    let mac_a = mac_of(&ns, "br0");
    let mac_b = mac_of(&ns_b.0, "vbb");
    let ours: Vec<u8> = ENGINE_MAC
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let peer_py = repo().join("scripts/peer.py").display().to_string();
    let proxy_py = repo().join("scripts/splice_proxy.py").display().to_string();
    let control = rig.dir.join("control.sock");

    let mut goodput = Vec::new();
    for (mode, port, server_port) in [("splice", "8000", "7007"), ("copy", "8001", "7008")] {
        let mut b = Killed(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns_b.0,
                    "python3",
                    &peer_py,
                    "--host",
                    "198.18.0.3",
                ])
                .args(["--timeout", "60", "listen", "--port", server_port])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let (listening, _b_out) = first_json(&mut b.0, "server B");
        assert_eq!(listening["listening"].as_u64(), server_port.parse().ok());
        let mut proxy_cmd = Command::new(&run);
        proxy_cmd
            .arg("--control")
            .arg(&control)
            .args(["--", "python3", &proxy_py])
            .args(["--listen", &format!("{ENGINE_IP}:{port}")])
            .args(["--to", &format!("198.18.0.3:{server_port}")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if mode == "copy" {
            proxy_cmd.arg("--copy");
        }
        let mut proxy = Killed(proxy_cmd.spawn().unwrap());
        let (_, mut proxy_out) = first_json(&mut proxy.0, "proxy");
        let trigger = dir.join(format!("go-{mode}"));
        let mut a_cmd = Command::new("ip");
        a_cmd
            .args([
                "netns", "exec", &ns, "python3", &peer_py, "--host", ENGINE_IP,
            ])
            .args(["--timeout", "60", "echo", "--port", port])
            .args(["--bytes", &(64 * MIB).to_string()])
            .stdout(std::process::Stdio::piped());
        if mode == "splice" {
            a_cmd.arg("--start-after").arg(&trigger);
        }
        let mut a = Killed(a_cmd.spawn().unwrap());
        let tuples = next_json(&mut proxy_out, "proxy's connections");
        let (mut a_out, before) = if mode == "splice" {
            let (connected, a_out) = first_json(&mut a.0, "client A");
            assert!(connected["connected"].as_u64().is_some(), "{connected}");
            // Both connections idle (nothing in flight), read from the
            // engine's table: the offsets between their sequence spaces.
            let conns: Value = serde_json::from_str(&bpf_conns(&control)).expect("conns --json");
            let row = |c: &Value| {
                conns
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["local"] == c["local"] && r["remote"] == c["remote"])
                    .unwrap_or_else(|| panic!("no row for {c} in {conns}"))
                    .clone()
            };
            let (c1, c2) = (row(&tuples["c1"]), row(&tuples["c2"]));
            for c in [&c1, &c2] {
                assert_eq!(c["snd_una"], c["snd_nxt"], "not idle: {c}");
            }
            let u = |c: &Value, k: &str| c[k].as_u64().unwrap() as u32;
            let (a_ip, a_port) = addr_bytes(tuples["c1"]["remote"].as_str().unwrap());
            let (our_ip, p1) = addr_bytes(tuples["c1"]["local"].as_str().unwrap());
            let (_, p2) = addr_bytes(tuples["c2"]["local"].as_str().unwrap());
            let (b_ip, b_port) = addr_bytes(tuples["c2"]["remote"].as_str().unwrap());
            let entry = |src: (&[u8], u16),
                         dst: (&[u8], u16),
                         mac: &[u8],
                         to_src: u16,
                         to_dst: (&[u8], u16),
                         seq: u32,
                         ack: u32| {
                let mut k = Vec::new();
                k.extend_from_slice(src.0);
                k.extend_from_slice(dst.0);
                k.extend_from_slice(&src.1.to_be_bytes());
                k.extend_from_slice(&dst.1.to_be_bytes());
                let mut v = Vec::new();
                v.extend_from_slice(mac);
                v.extend_from_slice(&ours);
                v.extend_from_slice(&our_ip);
                v.extend_from_slice(to_dst.0);
                v.extend_from_slice(&to_src.to_be_bytes());
                v.extend_from_slice(&to_dst.1.to_be_bytes());
                v.extend_from_slice(&seq.to_le_bytes());
                v.extend_from_slice(&ack.to_le_bytes());
                (hexs(&k), hexs(&v))
            };
            // A -> B: A's bytes continue C2's send space, A's ACKs cover
            // what C1 sent (B's bytes in C2's receive space).
            let ab = entry(
                (&a_ip, a_port),
                (&our_ip, p1),
                &mac_b,
                p2,
                (&b_ip, b_port),
                u(&c2, "snd_nxt").wrapping_sub(u(&c1, "rcv_nxt")),
                u(&c2, "rcv_nxt").wrapping_sub(u(&c1, "snd_nxt")),
            );
            let ba = entry(
                (&b_ip, b_port),
                (&our_ip, p2),
                &mac_a,
                p1,
                (&a_ip, a_port),
                u(&c1, "snd_nxt").wrapping_sub(u(&c2, "rcv_nxt")),
                u(&c1, "rcv_nxt").wrapping_sub(u(&c2, "snd_nxt")),
            );
            for (k, v) in [&ab, &ba] {
                bpf_ok(&rig, &["map", "update", "splice", k, v]);
            }
            std::fs::write(&trigger, b"go").unwrap();
            (a_out, Some((c1, c2)))
        } else {
            (std::io::BufReader::new(a.0.stdout.take().unwrap()), None)
        };
        let r = next_json(&mut a_out, "client A's result");
        assert!(
            ok(&r),
            "{mode}: echo through the proxy: {r}\n{}",
            rig.logs()
        );
        assert_eq!(r["sha256_sent"], r["sha256_received"], "{mode}");
        goodput.push((mode, r["mbit_s"].as_f64().unwrap_or(0.0)));
        if let Some((c1, c2)) = before {
            // The engine never saw the spliced bytes.
            let conns: Value = serde_json::from_str(&bpf_conns(&control)).unwrap();
            for c in [&c1, &c2] {
                if let Some(now) = conns
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["local"] == c["local"] && r["remote"] == c["remote"])
                {
                    assert_eq!(
                        now["rcv_nxt"], c["rcv_nxt"],
                        "the engine received spliced data"
                    );
                }
            }
            let dump: Value =
                serde_json::from_str(&bpf_ok(&rig, &["map", "dump", "splice_stats"])).unwrap();
            let bytes = dump["entries"][1]["words"][0][0].as_u64().unwrap_or(0);
            assert!(
                bytes >= 2 * 64 * MIB,
                "spliced payload {bytes} < 128 MiB: {dump}"
            );
        }
        drop(proxy.0.stdin.take());
        let mut last = next_json(&mut proxy_out, "proxy's end");
        if last.get("copied").is_some() {
            last = next_json(&mut proxy_out, "proxy's CPU time");
        }
        let cpu = last["cpu_s"].as_f64().unwrap_or(f64::NAN);
        let _ = proxy.0.wait();
        goodput.push((mode, cpu));
    }
    eprintln!(
        "xdp_splice: goodput through the proxy (Mbit/s, both ways at once) and the proxy's \
         CPU seconds: {goodput:?}"
    );
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flextoe-dpu conns --json`.
fn bpf_conns(control: &Path) -> String {
    let out = Command::new(binary().unwrap())
        .args(["conns", "--json", "--control"])
        .arg(control)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}
