//! Real frames through DPDK: a `net_tap` port whose kernel side sits in a private
//! network namespace, and the kernel's `ping` as the peer.
//!
//! The test starts EAL (`--no-huge -m 256 --no-pci --no-telemetry
//! --vdev=net_tap0,iface=ftoetapNNN`), opens the port through
//! `dpu_datapath::io::dpdk`, moves the TAP interface into the namespace `ftoe-dpdk-<pid>` as 198.18.0.1/24 (IPv6 off), and answers ARP and ICMP
//! echo for 198.18.0.2 itself (`wire::parse_ingress` in, `emit_arp_frame` /
//! `emit_icmp_frame` out) while `ping -c 3 -W 1 198.18.0.2` runs in the namespace.
//! Passing needs frames in both directions. Traffic stays inside the namespace on
//! 198.18.0.0/24 (RFC 2544 benchmarking space).
//!
//! Needs root, iproute2, ping, /dev/net/tun and DPDK's net_tap plugin; without them it
//! prints `SKIP` and passes. EAL starts once per process, so everything is one #[test].

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dpu_datapath::io::dpdk::{init_eal, pmd_plugins, DpdkPort, DpdkPortConfig};
use dpu_datapath::io::{Frame, Nic};
use dpu_datapath::wire::{
    emit_arp_frame, emit_icmp_frame, parse_ingress, ArpOperation, ArpRepr, ChecksumCaps, EtherType,
    EthernetAddress, EthernetRepr, Icmpv4Repr, IngressFrame, IpProtocol, Ipv4Repr, L3, L4,
};

/// The address the test answers for (the DPDK side).
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The namespace side of the TAP.
const PEER_CIDR: &str = "198.18.0.1/24";
const PINGS: usize = 3;
/// Whole responder loop; ping itself needs about 2 s.
const DEADLINE: Duration = Duration::from_secs(20);

fn skip(reason: &str) {
    flextoe_tests::skip(format!("dpdk_port: {reason}"));
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

use flextoe_tests::run;

/// A network namespace, deleted on drop (also when the test fails).
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: &str) -> Result<Self, String> {
        // A leftover from a killed run with the same pid would make `add` fail.
        let _ = run(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name])?;
        Ok(Netns {
            name: name.to_owned(),
        })
    }

    fn exec(&self, args: &[&str]) -> Result<Output, String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("dpdk_port: cleanup: {e}");
        }
    }
}

/// EAL's runtime directory for this process (`--file-prefix=ftoe-<pid>`), empty after
/// init with `--no-shconf`; removed on drop so runs do not pile up in /var/run/dpdk.
struct EalRuntimeDir(std::path::PathBuf);

impl Drop for EalRuntimeDir {
    fn drop(&mut self) {
        // remove_dir only removes an empty directory; anything else is left alone.
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[derive(Debug, Default)]
struct Answered {
    arp: usize,
    icmp: usize,
    other: usize,
}

/// The reply to `frame` when it is an ARP request or echo request for [`OUR_IP`].
fn answer(frame: &[u8], mac: EthernetAddress, seen: &mut Answered) -> Option<Vec<u8>> {
    let caps = ChecksumCaps::default();
    let Ok(IngressFrame { eth, l3 }) = parse_ingress(frame, &caps) else {
        seen.other += 1;
        return None;
    };
    let reply_eth = EthernetRepr {
        src: mac,
        dst: eth.src,
        vlan: None,
        ethertype: EtherType::Ipv4,
    };
    let mut buf = vec![0u8; frame.len() + 64];
    let len = match l3 {
        L3::Arp(arp)
            if arp.operation == ArpOperation::Request && arp.target_protocol_addr == OUR_IP =>
        {
            seen.arp += 1;
            let reply = ArpRepr {
                operation: ArpOperation::Reply,
                source_hardware_addr: mac,
                source_protocol_addr: OUR_IP,
                target_hardware_addr: arp.source_hardware_addr,
                target_protocol_addr: arp.source_protocol_addr,
            };
            emit_arp_frame(&mut buf, &reply_eth, &reply).ok()?
        }
        L3::Ipv4 {
            ip,
            l4:
                L4::Icmp(Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }),
        } if ip.dst == OUR_IP => {
            seen.icmp += 1;
            let reply_ip = Ipv4Repr {
                src: OUR_IP,
                dst: ip.src,
                protocol: IpProtocol::Icmp,
                payload_len: 0,
                ttl: 64,
                dscp_ecn: 0,
                ident: ip.ident,
                dont_frag: false,
            };
            let echo = Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            emit_icmp_frame(&mut buf, &reply_eth, &reply_ip, &echo, &caps).ok()?
        }
        _ => {
            seen.other += 1;
            return None;
        }
    };
    buf.truncate(len);
    Some(buf)
}

#[test]
fn dpdk_tap_port_answers_kernel_ping() {
    if !is_root() {
        return skip("needs root (network namespaces, TAP devices, DPDK EAL)");
    }
    if !runs("ip", "-V") || !runs("ping", "-V") {
        return skip("needs iproute2 and ping (apt-get install iproute2 iputils-ping)");
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("no /dev/net/tun");
    }
    let pid = std::process::id();
    let ns_name = format!("ftoe-dpdk-{pid}");
    let tap = format!("ftoetap{}", pid % 1000);
    let dpdk = pipeline_config::Dpdk {
        // No telemetry socket, so the runtime dir is empty and can be removed.
        eal_args: vec!["--no-pci".to_owned(), "--no-telemetry".to_owned()],
        vdevs: vec![format!("net_tap0,iface={tap}")],
        no_huge: true,
        memory_mb: 256,
        mempool_mbufs: 2047,
        rx_descriptors: 256,
        tx_descriptors: 256,
        ..pipeline_config::Dpdk::default()
    };
    if !pmd_plugins(&dpdk)
        .iter()
        .any(|p| p.ends_with("librte_net_tap.so"))
    {
        return skip("DPDK's net_tap PMD is not installed (apt-get install librte-net-tap23)");
    }
    // Declared before the port, so it is dropped after it: the port closes (deleting
    // the TAP) and then the namespace goes.
    let ns = match Netns::create(&ns_name) {
        Ok(ns) => ns,
        Err(e) => return skip(&format!("cannot create a network namespace: {e}")),
    };

    let _runtime_dir = EalRuntimeDir(format!("/var/run/dpdk/ftoe-{pid}").into());
    let started = Instant::now();
    let eal = init_eal(&dpdk).unwrap_or_else(|e| panic!("EAL init: {e}"));
    let ports = eal.ports();
    assert_eq!(
        ports.len(),
        1,
        "expected the one net_tap port, got {ports:?}"
    );
    let port_cfg = DpdkPortConfig {
        queues: 1,
        mtu: 1500,
        rx_descriptors: dpdk.rx_descriptors,
        tx_descriptors: dpdk.tx_descriptors,
        mempool_mbufs: dpdk.mempool_mbufs,
        flow_groups: 64,
        software_rss: false,
        tx_checksum_offload: true,
        tso: Some(false),
        devargs: None,
    };
    let port =
        DpdkPort::open(eal, ports[0], &port_cfg).unwrap_or_else(|e| panic!("open port: {e}"));
    eprintln!(
        "dpdk_port: EAL + port up in {:?}: driver {}, mac {:02x?}, rss {}, {:?}, link {:?}",
        started.elapsed(),
        port.driver(),
        port.mac(),
        port.rss_enabled(),
        port.offloads(),
        port.link()
    );

    run(&["ip", "link", "set", "dev", &tap, "netns", &ns_name]).unwrap();
    let sysctl = format!("net.ipv6.conf.{tap}.disable_ipv6=1");
    if let Err(e) = ns.exec(&["sysctl", "-q", "-w", &sysctl]) {
        eprintln!("dpdk_port: {e} (IPv6 may be off already)");
    }
    ns.exec(&["ip", "addr", "add", PEER_CIDR, "dev", &tap])
        .unwrap();
    ns.exec(&["ip", "link", "set", "dev", &tap, "up"]).unwrap();

    let count = PINGS.to_string();
    let target = OUR_IP.to_string();
    let mut ping = Command::new("ip")
        .args(["netns", "exec", &ns_name, "ping", "-c", &count, "-W", "1"])
        .arg(&target)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ping");

    let mac = EthernetAddress(port.mac());
    let mut seen = Answered::default();
    let (mut rx, mut tx) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        port.rx_burst(0, 32, &mut rx);
        for (_, frame) in rx.drain(..) {
            assert!(
                frame.is_nic_buffer(),
                "received frames are the port's mbufs"
            );
            tx.extend(answer(&frame, mac, &mut seen).map(Frame::from));
        }
        if !tx.is_empty() {
            port.tx_burst(0, &mut tx);
        }
        if let Some(status) = ping.try_wait().expect("wait for ping") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = ping.kill();
            let _ = ping.wait();
            panic!("ping did not finish in {DEADLINE:?}; answered {seen:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let out = ping.wait_with_output().expect("ping output");
    let ping_text = String::from_utf8_lossy(&out.stdout);
    let stats = port.stats();
    eprintln!("dpdk_port: ping: {}", ping_text.trim());
    eprintln!("dpdk_port: answered {seen:?}; {stats:?}");

    assert!(
        status.success(),
        "ping through DPDK failed ({status}): {ping_text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ping_text.contains(&format!("{PINGS} received")),
        "{ping_text}"
    );
    assert!(seen.arp >= 1, "no ARP request reached DPDK: {seen:?}");
    assert!(seen.icmp >= PINGS, "{seen:?}");
    assert!(stats.rx_frames >= (1 + PINGS) as u64, "{stats:?}");
    assert!(stats.tx_frames >= (1 + PINGS) as u64, "{stats:?}");
    assert_eq!(stats.tx_dropped(), 0, "{stats:?}");
    // Every mbuf goes back to the pool: the received ones when dropped
    // above, the sent ones when the NIC completes them or the port closes.
    let pool = port.mempool();
    drop(port);
    assert_eq!(pool.in_use(), 0, "mbufs not returned to the pool");
    drop(ns);
}
