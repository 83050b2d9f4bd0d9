//! The service with no network port (`port.backend: "loopback"`): the full
//! pipeline, the host interface on `host.control_socket`, and the built-in
//! services, reachable only at `identity.ipv4` from host applications on
//! this machine (like Linux loopback). Needs no privileges or devices: it is
//! how host applications are developed and tested without a DPU or a NIC.

use crate::cli::RunArgs;
use crate::common::{
    hostif_json, isn_seed, observe, pipeline_options, start_host_interface, start_metrics,
    stats_json,
};
use dpu_datapath::pipeline::{LoopbackNic, NullNic, Pipeline, Plan};
use dpu_datapath::services::Services;
use dpu_datapath::EngineConfig;
use pipeline_config::Config;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(config: &Config, args: &RunArgs) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    let topology = &config.topology;
    let replicas = topology.replicas.max(1) as usize;
    let mut engine_cfg = EngineConfig::from_config(config, isn_seed())?;
    // Segments of up to 64 KiB, as over Linux's 65,536-byte loopback MTU:
    // the receiver is this engine, no port has to cut them.
    engine_cfg.proto.tso_max = dpu_datapath::proto::ProtoConfig::MAX_SEGMENT_PAYLOAD;
    engine_cfg.proto.tso_frame = u16::MAX;
    let nic = Arc::new(LoopbackNic::new(
        NullNic::default(),
        engine_cfg.mac.0,
        replicas,
        topology.flow_groups,
    ));
    let metrics_endpoint = start_metrics(config)?;
    let hostif = start_host_interface(config, Plan::new(topology).owners())?;
    hostif.set_capture_tap(nic.capture_tap());
    let opts = pipeline_options(config);
    let source_bytes = args.source_bytes;
    let pipeline = Pipeline::start(&engine_cfg, topology, opts, nic.clone(), |owner| {
        hostif.shard(owner, Box::new(Services::new(source_bytes, None)))
    });
    let board = pipeline.stats_board();
    let mut metrics = observe(&hostif, &pipeline, metrics_endpoint, None);
    for line in pipeline.plan().describe().lines() {
        println!("flextoe-dpu: worker {line}");
    }
    println!(
        "flextoe-dpu: ready: loopback {} (no network port); control socket {}; services echo 7, \
         discard 9, source 19; workers {}; Ctrl-C to stop",
        engine_cfg.ip,
        config.host.control_socket,
        pipeline.plan().workers.len(),
    );
    let _ = std::io::stdout().flush();

    let started = Instant::now();
    let deadline = args
        .duration
        .map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let interval =
        (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let mut next_line = interval.map(|i| started + i);
    let counters = hostif.counters();
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(m) = &mut metrics {
            m.tick();
        }
        if let (Some(at), Some(i)) = (next_line, interval) {
            if Instant::now() >= at {
                let t = board.total();
                println!(
                    "[{:6.1}s] looped frames {} | conns {} (accepted {}, opened {}, reset {}) | \
                     apps {} | requests {} events {} violations {} | drops {}",
                    started.elapsed().as_secs_f64(),
                    nic.looped.load(Ordering::Relaxed),
                    t.app_conns,
                    t.stats.connections_accepted,
                    t.stats.connections_opened,
                    t.stats.connections_reset,
                    counters.apps_active.load(Ordering::Relaxed),
                    counters.requests.load(Ordering::Relaxed),
                    counters.events.load(Ordering::Relaxed),
                    counters.violations_total(),
                    t.stats.total_drops(),
                );
                let _ = std::io::stdout().flush();
                next_line = Some(at + i);
            }
        }
    }

    hostif.stop();
    let report = pipeline.shutdown();
    // The last scrape before exit shows the final counters.
    if let Some(m) = metrics {
        m.shutdown();
    }
    let total = report.total_stats();
    let (mut flows, mut app_conns) = (0, 0);
    for (_, e) in &report.engines {
        flows += e.flow_count();
        app_conns += e.app_conn_count();
    }
    println!(
        "--- summary after {:.1} s --- looped frames {} (dropped {}); connections accepted {}, \
         opened {}, reset {}; host violations {}; left: flows {flows}, app conns {app_conns}",
        started.elapsed().as_secs_f64(),
        nic.looped.load(Ordering::Relaxed),
        nic.dropped.load(Ordering::Relaxed),
        total.connections_accepted,
        total.connections_opened,
        total.connections_reset,
        counters.violations_total(),
    );
    if let Some(path) = &args.stats_json {
        let doc = json!({
            "backend": "loopback",
            "seconds": started.elapsed().as_secs_f64(),
            "engine": stats_json(&total),
            "looped_frames": nic.looped.load(Ordering::Relaxed),
            "hostif": hostif_json(&counters),
            "flows_left": flows,
            "app_conns_left": app_conns,
        });
        std::fs::write(path, format!("{doc:#}\n"))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
