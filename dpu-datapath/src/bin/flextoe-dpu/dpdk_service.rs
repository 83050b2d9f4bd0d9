//! The service on the DPDK backend: EAL, one DPDK port with one queue pair
//! per replica (optionally behind the seeded impairment layer), the
//! parallel pipeline on it with the demo services (echo 7, discard 9,
//! source 19) on every flow-group owner, a stats line every second, and a
//! final summary (text, and JSON with `--stats-json`) on SIGINT/SIGTERM.
//!
//! Addressing. The engine is `identity.mac` / `identity.ipv4`: it answers
//! ARP for its address with `identity.mac` and sends from it. The DPDK
//! port's own MAC is left alone: `net_tap` gives its DPDK side and the
//! kernel TAP interface the *same* address, so setting it to
//! `identity.mac` (`rte_eth_dev_default_mac_addr_set`) would give both
//! ends of the link one MAC. A TAP hands the PMD every frame the kernel
//! transmits, whatever its destination, so neither that nor promiscuous
//! mode is needed; the engine's `pre` drops what is not addressed to
//! `identity.mac` (or broadcast). On a real NIC the port MAC must equal
//! `identity.mac` or the port must be promiscuous; a warning says so.

use crate::cli::RunArgs;
use crate::common::{
    choose_placement, io_json, isn_seed, observe, pipeline_options, start_host_interface,
    start_metrics, stats_json,
};
use dpu_datapath::io::dpdk::{
    driver_offloads_in_software, init_eal, max_queue_pairs, DpdkPort, DpdkPortConfig,
};
use dpu_datapath::io::impair::{is_active, DirSnapshot};
use dpu_datapath::io::{ImpairCounters, ImpairedNic, IoStats};
use dpu_datapath::pipeline::{LoopbackNic, Nic, OwnerSnapshot, Pipeline, Plan, SteeredNic};
use dpu_datapath::services::{ProbeApp, ProbeState, Services};
use dpu_datapath::xdp::{HookPoint, XdpHooks, XdpNic};
use dpu_datapath::EngineConfig;
use pipeline_config::Config;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Restores the calling thread's CPU affinity when dropped. `rte_eal_init`
/// pins the main thread to the main lcore's CPU; worker threads spawned
/// afterwards would inherit that one CPU, so it is undone right after init
/// (the pipeline pins its workers itself when `topology.cores` says so).
struct AffinityGuard(Option<libc::cpu_set_t>);

impl AffinityGuard {
    fn save() -> Self {
        // SAFETY: cpu_set_t is plain data for which all-zero is a valid value.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
        let ret =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        Self((ret == 0).then_some(set))
    }
}

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            // SAFETY: `set` is a valid cpu_set_t read by sched_getaffinity.
            let ret =
                unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
            if ret != 0 {
                tracing::warn!("cannot restore the CPU affinity EAL changed");
            }
        }
    }
}

/// Removes EAL's runtime directory (`/var/run/dpdk/<file-prefix>`) at exit,
/// so runs with per-process prefixes do not pile up.
struct RuntimeDir(Option<std::path::PathBuf>);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The TAP interface name of a `net_tap` vdev (`iface=` argument).
fn tap_iface(vdevs: &[String]) -> Option<String> {
    vdevs.iter().find(|v| v.starts_with("net_tap")).map(|v| {
        v.split(',')
            .find_map(|kv| kv.strip_prefix("iface="))
            .unwrap_or("dtap0")
            .to_owned()
    })
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn run(config: &Config, args: &RunArgs) -> Result<(), String> {
    if !is_root() {
        return Err(
            "the dpdk backend needs root (DPDK EAL and a TAP device); run as root, or use the \
             simulated backend: `flextoe-dpu run --backend sim` (FLEXTOE_BACKEND=sim \
             ./scripts/run.sh)"
                .to_owned(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot install the signal handler: {e}"))?;

    let dpdk = &config.port.dpdk;
    let affinity = AffinityGuard::save();
    let eal = init_eal(dpdk).map_err(|e| format!("DPDK EAL init: {e}"))?;
    drop(affinity);
    let _runtime_dir = RuntimeDir(
        eal.args()
            .iter()
            .find_map(|a| a.strip_prefix("--file-prefix="))
            .map(|p| std::path::Path::new("/var/run/dpdk").join(p)),
    );
    let port_id = *eal
        .ports()
        .first()
        .ok_or("DPDK found no port (check port.dpdk.vdevs / port.dpdk.allow)")?;
    // The placement chosen from the CPUs has no more replicas than the port
    // has queue pairs.
    let max_queues =
        max_queue_pairs(eal, port_id).map_err(|e| format!("DPDK port {port_id}: {e}"))?;
    let mut config = config.clone();
    choose_placement(&mut config, usize::from(max_queues));
    let config = &config;
    let topology = &config.topology;
    let replicas = topology.replicas.max(1) as usize;
    let queues = u16::try_from(replicas).map_err(|_| "too many replicas")?;
    let port = DpdkPort::open(
        eal,
        port_id,
        &DpdkPortConfig::from_port(&config.port, queues, topology.flow_groups),
    )
    .map_err(|e| format!("opening DPDK port {port_id}: {e}"))?;
    let mut engine_cfg = EngineConfig::from_config(config, isn_seed())?;
    let offloads = port.offloads();
    // `post` asks the port for the checksums of the segments it writes,
    // unless the driver would compute them in software, more slowly.
    let tx_sums_by_port = offloads.tx_ipv4_cksum && offloads.tx_tcp_cksum;
    // (DPDK 22.11's `net_tap` copies the headers aside and sums the
    // segment: offload -> Linux goodput 0.86x with it, docs/benchmarks.md.)
    let software_port = driver_offloads_in_software(port.driver());
    engine_cfg.caps.tx_offload =
        tx_sums_by_port && dpdk.tx_checksum_offload.unwrap_or(!software_port);
    // Segments of up to 64 KiB where the port cuts them (TSO), as much as
    // one of its 64 KiB buffers holds with the longest headers.
    if offloads.tx_tcp_tso {
        engine_cfg.proto.tso_max = port.tso_max_payload();
        engine_cfg.proto.tso_frame = port.tso_frame();
    }
    let port_mac = port.mac();
    let mbufs = port.mempool();
    let tso_mbufs = port.tso_mempool();
    let driver = port.driver().to_owned();
    let steering = port.steering().clone();
    let steer = !steering.follows_flow_groups();
    // Our flow hash must be the one that chose the queue.
    dpu_datapath::flow::select_hash_key(steering.hash_key());
    if driver != "net_tap" && port_mac != engine_cfg.mac.0 {
        tracing::warn!(
            port_mac = %mac_text(&port_mac),
            identity_mac = %mac_text(&engine_cfg.mac.0),
            "the NIC's MAC differs from identity.mac: frames to identity.mac reach us only if \
             the port is promiscuous"
        );
    }

    let imp = &config.port.impairment;
    let impaired = is_active(&imp.rx) || is_active(&imp.tx);
    let (port_nic, counters): (Arc<dyn Nic>, Option<Arc<ImpairCounters>>) = if impaired {
        let io = ImpairedNic::new(port, imp, replicas);
        let counters = io.counters();
        (Arc::new(io), Some(counters))
    } else {
        (Arc::new(port), None)
    };
    let wire: Arc<dyn Nic> = if steer {
        Arc::new(SteeredNic::new(
            port_nic.clone(),
            replicas,
            replicas,
            topology.flow_groups,
        ))
    } else {
        port_nic.clone()
    };
    // eBPF programs see what crosses the port (not looped-back frames).
    let xdp = XdpHooks::new(replicas);
    let wire: Arc<dyn Nic> = Arc::new(XdpNic::new(wire, xdp.clone()));
    for p in &config.xdp.programs {
        let hook = HookPoint::parse(&p.hook)?;
        let a = xdp
            .load(std::path::Path::new(&p.file), hook, &p.section)
            .map_err(|e| format!("xdp.programs: {}: {e}", p.file))?;
        println!(
            "flextoe-dpu: xdp program {} at {} ({} instructions, {})",
            p.file,
            hook.name(),
            a.insns,
            if a.jit { "JIT" } else { "interpreted" }
        );
    }
    // Connections to our own address (host applications talking to each
    // other) never reach the wire.
    let looped = Arc::new(LoopbackNic::new(
        wire,
        engine_cfg.mac.0,
        replicas,
        topology.flow_groups,
    ));
    let metrics_endpoint = start_metrics(config)?;
    let hostif = start_host_interface(config, Plan::new(topology).owners())?;
    hostif.set_capture_tap(looped.capture_tap());
    hostif.set_xdp_hooks(xdp.clone());
    let nic: Arc<dyn Nic> = looped;

    let probe = args.probe;
    let probe_at = (args.probe_after.max(0.0) * 1e9) as u64;
    let source_bytes = args.source_bytes;
    let opts = pipeline_options(config);
    let pipeline = Pipeline::start(&engine_cfg, topology, opts, nic, |owner| {
        let probe = probe.filter(|_| owner == 0).map(|addr| {
            ProbeApp::new(
                *addr.ip(),
                addr.port(),
                b"flextoe probe: active open".to_vec(),
                probe_at,
            )
        });
        hostif.shard(owner, Box::new(Services::new(source_bytes, probe)))
    });
    let board = pipeline.stats_board();
    let mut metrics = observe(&hostif, &pipeline, metrics_endpoint, Some(port_nic.clone()))
        .map(|m| m.with_xdp(xdp.clone()));
    println!(
        "flextoe-dpu: ready: {} {}/{} on DPDK port {port_id} ({driver}, mac {}, {} queue(s){}){}; \
         services echo 7, discard 9, source 19; control socket {}; workers {}; Ctrl-C to stop",
        tap_iface(&dpdk.vdevs)
            .map(|i| format!("TAP {i}:"))
            .unwrap_or_default(),
        engine_cfg.ip,
        engine_cfg.prefix_len,
        mac_text(&port_mac),
        replicas,
        if replicas > 1 {
            format!(", {}", steering.describe())
        } else {
            String::new()
        },
        if impaired { "; impairment ON" } else { "" },
        config.host.control_socket,
        pipeline.plan().workers.len(),
    );
    for line in pipeline.plan().describe().lines() {
        println!("flextoe-dpu: worker {line}");
    }
    println!(
        "flextoe-dpu: checksums: received ones {}, sent ones {}",
        if offloads.rx_ipv4_cksum && offloads.rx_tcp_cksum {
            "trusted when the port marks them good"
        } else {
            "checked in software"
        },
        if engine_cfg.caps.tx_offload {
            "computed by the port (TX checksum offload)"
        } else if tx_sums_by_port && dpdk.tx_checksum_offload.is_none() && software_port {
            "computed in software (the driver's TX checksum offload is software, slower than \
             ours; port.dpdk.tx_checksum_offload: true uses it)"
        } else {
            "computed in software"
        }
    );
    println!(
        "flextoe-dpu: segmentation: {}",
        if offloads.tx_tcp_tso {
            format!(
                "data segments of up to {} bytes, cut by the port (TSO) into frames of at most {}",
                engine_cfg.proto.tso_max, engine_cfg.proto.tso_frame
            )
        } else if dpdk.tso.is_none() && software_port {
            "MSS-sized segments (the driver's TSO is software; port.dpdk.tso: true uses it)"
                .to_owned()
        } else {
            "MSS-sized segments".to_owned()
        }
    );
    println!(
        "flextoe-dpu: engine identity {} mac {} (answers ARP with it)",
        engine_cfg.ip,
        mac_text(&engine_cfg.mac.0)
    );
    let _ = std::io::stdout().flush();

    let started = Instant::now();
    let deadline = args
        .duration
        .map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let interval =
        (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let mut next_line = interval.map(|i| started + i);
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(m) = &mut metrics {
            m.tick();
        }
        if let (Some(at), Some(i)) = (next_line, interval) {
            if Instant::now() >= at {
                let snap = board.total();
                let io = port_nic.stats();
                println!(
                    "{}",
                    stats_line(started.elapsed(), &snap, &io, counters.as_deref())
                );
                let _ = std::io::stdout().flush();
                next_line = Some(at + i);
            }
        }
    }

    hostif.stop();
    let mut report = pipeline.shutdown();
    // The last scrape before exit shows the final counters.
    if let Some(m) = metrics {
        m.shutdown();
    }
    let elapsed = started.elapsed();
    let total = report.total_stats();
    let mut conns = OwnerSnapshot::default();
    for (_, e) in &report.engines {
        conns.flows += e.flow_count();
        conns.app_conns += e.app_conn_count();
        let (h, t) = e.control_counts();
        conns.handshakes += h;
        conns.time_wait += t;
    }
    let io = port_nic.stats();
    let services: Vec<Services> = report.take_apps();
    let impair = counters
        .as_deref()
        .map(|c| (c.rx.snapshot(), c.tx.snapshot()));

    println!("--- summary after {:.1} s ---", elapsed.as_secs_f64());
    println!(
        "port: rx {} frames / {} bytes, tx {} frames / {} bytes, tx dropped {}, rx missed {}, rx nombuf {}, \
         dropped by the kernel interface {}",
        io.rx_frames, io.rx_bytes, io.tx_frames, io.tx_bytes, io.tx_dropped(), io.rx_missed, io.rx_nombuf,
        io.rx_dropped_kernel
    );
    println!(
        "engine: connections accepted {}, opened {}, closed {}, reset {}; retransmits {} (fast {}, timeout {}); rst sent {}, received {}",
        total.connections_accepted,
        total.connections_opened,
        total.connections_closed,
        total.connections_reset,
        total.retransmit_segments,
        total.fast_retransmits,
        total.timeout_retransmits,
        total.rst_sent,
        total.rst_received
    );
    println!("engine: drops {:?}", total.drop_breakdown());
    println!(
        "engine: left in tables: flows {}, app connections {}, handshakes {}, time-wait {}",
        conns.flows, conns.app_conns, conns.handshakes, conns.time_wait
    );
    let echoed: u64 = services.iter().map(|s| s.echo.echoed).sum();
    let discarded: u64 = services.iter().map(|s| s.discard.discarded).sum();
    let sourced: u64 = services.iter().map(|s| s.source.sent).sum();
    println!(
        "services: echoed {echoed} bytes, discarded {discarded} bytes, source sent {sourced} bytes"
    );
    if let Some((rx, tx)) = &impair {
        println!("impairment: rx {}; tx {}", dir_text(rx), dir_text(tx));
    }
    let probe = services.iter().find_map(|s| s.probe.as_ref());
    if let Some(p) = probe {
        println!(
            "probe: {:?}, {} bytes back, echoed {}{}",
            p.state,
            p.received.len(),
            p.echoed(),
            p.error
                .as_deref()
                .map(|e| format!(", error {e}"))
                .unwrap_or_default()
        );
    }
    let doc = args.stats_json.as_ref().map(|_| {
        json!({
            "backend": "dpdk",
            "driver": driver,
            "duration_s": elapsed.as_secs_f64(),
            "engine": stats_json(&total),
            "tables": {
                "flows": conns.flows,
                "app_conns": conns.app_conns,
                "handshakes": conns.handshakes,
                "time_wait": conns.time_wait,
            },
            "port": io_json(&io),
            "impairment": impair.map(|(rx, tx)| json!({"rx": dir_json(&rx), "tx": dir_json(&tx)})),
            "services": {
                "echo": {
                    "accepted": services.iter().map(|s| s.echo.accepted).sum::<u64>(),
                    "echoed": echoed,
                },
                "discard": {
                    "accepted": services.iter().map(|s| s.discard.accepted).sum::<u64>(),
                    "discarded": discarded,
                },
                "source": {
                    "accepted": services.iter().map(|s| s.source.accepted).sum::<u64>(),
                    "sent": sourced,
                    "received": services.iter().map(|s| s.source.received).sum::<u64>(),
                },
                "probe": probe.map(|p| json!({
                    "state": format!("{:?}", p.state),
                    "done": p.state == ProbeState::Done,
                    "echoed": p.echoed(),
                    "received": p.received.len(),
                    "error": p.error,
                })),
            },
            "pipeline": {
                "reorder_leftover": report.reorder_leftover(),
                "reorder_holds": report.reorder_holds(),
                "workers": report.workers.iter().map(|(n, b, i)| json!({"name": n, "busy_polls": b, "idle_polls": i})).collect::<Vec<_>>(),
                "tasks": report.tasks.iter().map(|t| json!({"name": t.name, "items": t.items})).collect::<Vec<_>>(),
            },
        })
    });
    drop(services);
    drop(report);
    // The last reference: closing the port deletes the TAP interface and
    // releases the mbufs its rings held. Every frame the stages held was
    // dropped with the pipeline, so the pool is whole again.
    drop(port_nic);
    let unreturned = mbufs.in_use() + tso_mbufs.map_or(0, |p| p.in_use());
    println!("port closed: {unreturned} packet buffers not returned to the pool");
    if let (Some(path), Some(mut doc)) = (&args.stats_json, doc) {
        doc["port"]["buffers_unreturned"] = json!(unreturned);
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn dir_text(d: &DirSnapshot) -> String {
    format!(
        "frames {} dropped {} duplicated {} reordered {} corrupted {} delayed {}",
        d.frames, d.dropped, d.duplicated, d.reordered, d.corrupted, d.delayed
    )
}

fn dir_json(d: &DirSnapshot) -> Value {
    json!({
        "frames": d.frames,
        "dropped": d.dropped,
        "duplicated": d.duplicated,
        "reordered": d.reordered,
        "corrupted": d.corrupted,
        "delayed": d.delayed,
    })
}

fn stats_line(
    t: Duration,
    snap: &OwnerSnapshot,
    io: &IoStats,
    impair: Option<&ImpairCounters>,
) -> String {
    let s = &snap.stats;
    let mut line = format!(
        "[{:6.1}s] frames in {} out {} | conns {} (accepted {}, opened {}, closed {}, reset {}) | \
         retransmits {} (fast {}, timeout {}) | drops {}",
        t.as_secs_f64(),
        io.rx_frames,
        io.tx_frames,
        snap.app_conns,
        s.connections_accepted,
        s.connections_opened,
        s.connections_closed,
        s.connections_reset,
        s.retransmit_segments,
        s.fast_retransmits,
        s.timeout_retransmits,
        s.total_drops(),
    );
    let breakdown = s.drop_breakdown();
    if !breakdown.is_empty() {
        let parts: Vec<String> = breakdown.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line += &format!(" ({})", parts.join(", "));
    }
    if let Some(c) = impair {
        let (rx, tx) = (c.rx.snapshot(), c.tx.snapshot());
        line += &format!(
            " | impaired rx lost/dup/reord/corrupt {}/{}/{}/{} tx {}/{}/{}/{}",
            rx.dropped,
            rx.duplicated,
            rx.reordered,
            rx.corrupted,
            tx.dropped,
            tx.duplicated,
            tx.reordered,
            tx.corrupted
        );
    }
    line
}
