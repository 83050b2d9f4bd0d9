//! The service on the simulated backend: the configured engine and a peer
//! engine on a simulated wire with the configured impairments, moving
//! verified data both ways over several connections until stopped.
//! With `metrics.enabled`, the service engine's counters are served on
//! `metrics.listen` (`GET /metrics`), refreshed every [`METRICS_PERIOD`].

use crate::cli::RunArgs;
use crate::common::METRICS_PERIOD;
use dpu_datapath::app::ConnId;
use dpu_datapath::metrics::{Exporter, MetricsServer, Snapshot};
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{Direction, LinkParams, SimPair};
use dpu_datapath::{Engine, EngineConfig};
use pipeline_config::{Config, Impairment};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PORT: u16 = 7;

/// The `/metrics` endpoint of the service engine (`sim.a`): its exporter,
/// its server (stopped when this is dropped), and when it last published.
struct Metrics {
    exporter: Arc<Exporter>,
    server: MetricsServer,
    last: Instant,
    calls: u32,
}

impl Metrics {
    /// Starts the endpoint if `metrics.enabled`.
    fn start(config: &Config) -> Result<Option<Self>, String> {
        Ok(
            crate::common::start_metrics(config)?.map(|(exporter, server)| Self {
                exporter,
                server,
                last: Instant::now(),
                calls: 0,
            }),
        )
    }

    /// Publishes `engine`'s counters if [`METRICS_PERIOD`] has passed
    /// (the clock is read every 64 calls: this runs on every simulator step).
    fn tick(&mut self, engine: &Engine) {
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(64) && self.last.elapsed() >= METRICS_PERIOD {
            self.publish(engine);
        }
    }

    fn publish(&mut self, engine: &Engine) {
        self.exporter.publish(Snapshot::single_engine(engine));
        self.last = Instant::now();
    }
}

struct Flow {
    service: Option<ConnId>,
    peer: ConnId,
    peer_tx: StreamSender,
    peer_rx: StreamReceiver,
    service_tx: StreamSender,
    service_rx: StreamReceiver,
}

fn link(imp: &Impairment) -> LinkParams {
    LinkParams {
        loss: imp.drop,
        duplicate: imp.duplicate,
        reorder: imp.reorder,
        corrupt: imp.corrupt,
        latency_ns: 50_000 + imp.delay_us * 1000,
        ..LinkParams::default()
    }
}

/// The peer sits next to us on the subnet.
fn peer_address(ip: Ipv4Addr) -> Ipv4Addr {
    let v = u32::from(ip);
    Ipv4Addr::from(if v & 0xff == 1 { v + 1 } else { v - 1 })
}

pub fn run(config: &Config, args: &RunArgs) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot install the signal handler: {e}"))?;

    let service_cfg = EngineConfig::from_config(config, config.port.impairment.seed)?;
    let mut peer_config = config.clone();
    let peer_ip = peer_address(service_cfg.ip);
    peer_config.identity.ipv4 = peer_ip.to_string();
    peer_config.identity.mac = "02:00:c6:12:00:fe".into();
    peer_config.identity.gateway = None;
    let peer_cfg = EngineConfig::from_config(&peer_config, config.port.impairment.seed + 1)?;
    let service_ip = service_cfg.ip;
    // Engine `a` is the service; `tx` impairs what it sends, `rx` what it receives.
    let imp = &config.port.impairment;
    let mut sim = SimPair::new(
        service_cfg,
        peer_cfg,
        link(&imp.tx),
        link(&imp.rx),
        imp.seed,
    );
    if let Some(path) = &args.pcap {
        sim.wire
            .capture_to(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    }
    sim.a.listen(PORT, None).map_err(|e| e.to_string())?;
    let mut metrics = Metrics::start(config)?;
    if let Some(m) = &mut metrics {
        m.publish(&sim.a);
    }
    println!(
        "flextoe-dpu: service {service_ip} (sim backend), peer {peer_ip}; {} connection(s) x {} MiB each way per round; Ctrl-C to stop",
        args.connections,
        args.bytes / (1024 * 1024)
    );

    let started = Instant::now();
    let deadline = args
        .duration
        .map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let mut round = 0u64;
    let mut verified_bytes = 0u64;
    let mut last_report = Instant::now();
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        round += 1;
        let mut flows: Vec<Flow> = (0..args.connections)
            .map(|i| {
                let seed = round * 1000 + i as u64;
                Ok(Flow {
                    service: None,
                    peer: sim
                        .b
                        .connect(service_ip, PORT, sim.now)
                        .map_err(|e| e.to_string())?,
                    peer_tx: StreamSender::new(seed * 2, args.bytes),
                    peer_rx: StreamReceiver::default(),
                    service_tx: StreamSender::new(seed * 2 + 1, args.bytes),
                    service_rx: StreamReceiver::default(),
                })
            })
            .collect::<Result<_, String>>()?;
        let round_start = sim.now;
        let finished = sim.run_until(sim.now + 600_000_000_000, |s| {
            if let Some(m) = &mut metrics {
                m.tick(&s.a);
            }
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                return true;
            }
            while let Some(c) = s.a.accept(PORT) {
                let port = s.a.conn_tuple(c).map(|t| t.remote_port);
                if let Some(f) = flows.iter_mut().find(|f| {
                    f.service.is_none() && s.b.conn_tuple(f.peer).map(|t| t.local_port) == port
                }) {
                    f.service = Some(c);
                }
            }
            let mut all = true;
            for f in flows.iter_mut() {
                f.peer_tx.pump(&mut s.b, f.peer);
                f.peer_rx.pump(&mut s.b, f.peer);
                if let Some(c) = f.service {
                    f.service_tx.pump(&mut s.a, c);
                    f.service_rx.pump(&mut s.a, c);
                }
                all &= f.peer_rx.eof() && f.service_rx.eof();
            }
            all
        });
        let interrupted =
            stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d);
        if !finished && !interrupted {
            return Err(format!(
                "round {round} did not complete in 600 s of simulated time"
            ));
        }
        let mut ok = 0;
        for f in &flows {
            if f.peer_rx.eof() && f.service_rx.eof() {
                if f.peer_rx.digest() != f.service_tx.digest()
                    || f.service_rx.digest() != f.peer_tx.digest()
                {
                    return Err(format!("round {round}: data corrupted (SHA-256 mismatch)"));
                }
                ok += 1;
                verified_bytes += 2 * args.bytes;
            }
        }
        for f in &flows {
            let _ = sim.b.close(f.peer);
            if let Some(c) = f.service {
                let _ = sim.a.close(c);
            }
        }
        if ok == flows.len() && last_report.elapsed() >= Duration::from_millis(500) {
            report(
                &sim,
                round,
                verified_bytes,
                2 * args.bytes * flows.len() as u64,
                sim.now - round_start,
                started.elapsed(),
            );
            last_report = Instant::now();
        }
        if interrupted {
            break;
        }
    }
    // Drain: let closes and TIME-WAIT finish on the virtual clock. A round
    // cut short by --duration can leave a connection the service has not
    // accepted yet (its handshake completed after the last poll): accept
    // and close it, or it would sit in CLOSE-WAIT for ever (as an
    // unaccepted connection does on Linux until its listener closes).
    let until = sim.now + 120_000_000_000;
    sim.run_until(until, |s| {
        while let Some(c) = s.a.accept(PORT) {
            let _ = s.a.close(c);
        }
        if let Some(m) = &mut metrics {
            m.tick(&s.a);
        }
        s.a.flow_count() == 0 && s.b.flow_count() == 0
    });
    sim.wire.flush_capture();
    // The last scrape before exit shows the summary's numbers.
    if let Some(m) = &mut metrics {
        m.publish(&sim.a);
    }
    println!(
        "--- summary after {:.1} s ---",
        started.elapsed().as_secs_f64()
    );
    summary(&sim.a, "service", &sim);
    println!(
        "verified {verified_bytes} bytes ({:.1} MiB) in {round} round(s); data-path flows left: {}",
        verified_bytes as f64 / (1024.0 * 1024.0),
        sim.a.flow_count()
    );
    if let Some(m) = metrics {
        m.server.shutdown();
    }
    Ok(())
}

fn report(
    sim: &SimPair,
    round: u64,
    verified: u64,
    round_bytes: u64,
    round_ns: u64,
    wall: Duration,
) {
    let s = sim.a.stats();
    println!(
        "[{:6.1}s] round {round}: verified {} MiB total; this round {:.2} Gbit/s simulated; retransmits {} (fast {}, timeout {}); drops {}",
        wall.as_secs_f64(),
        verified / (1024 * 1024),
        round_bytes as f64 * 8.0 / round_ns.max(1) as f64,
        s.retransmit_segments,
        s.fast_retransmits,
        s.timeout_retransmits,
        s.total_drops()
    );
}

fn summary(e: &Engine, name: &str, sim: &SimPair) {
    let s = e.stats();
    println!(
        "{name}: rx {} frames / {} payload bytes, tx {} frames / {} payload bytes, fast-path segments {}, exceptions {}",
        s.rx_frames, s.rx_payload_bytes, s.tx_frames, s.tx_payload_bytes, s.fast_path_segments, s.exceptions
    );
    println!(
        "{name}: connections accepted {}, closed {}, reset {}; retransmits {} (fast {}, timeout {})",
        s.connections_accepted,
        s.connections_closed,
        s.connections_reset,
        s.retransmit_segments,
        s.fast_retransmits,
        s.timeout_retransmits
    );
    println!("{name}: drops {:?}", s.drop_breakdown());
    let (to_peer, from_peer) = (
        sim.wire.counters(Direction::AtoB),
        sim.wire.counters(Direction::BtoA),
    );
    println!(
        "wire: service->peer lost {} dup {} reordered {} corrupted {}; peer->service lost {} dup {} reordered {} corrupted {}",
        to_peer.lost, to_peer.duplicated, to_peer.reordered, to_peer.corrupted,
        from_peer.lost, from_peer.duplicated, from_peer.reordered, from_peer.corrupted
    );
}
