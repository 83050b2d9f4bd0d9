//! The Prometheus exporter: the rendered text for known counters, the HTTP
//! endpoint, and `flextoe-dpu run` on the sim backend scraped during
//! traffic (and linted by `promtool check metrics` when it is installed).

use dpu_datapath::metrics::{
    EngineGauges, EngineSample, EngineStage, Exporter, HostIfSample, MetricsServer, Snapshot,
    StageTimeSample, TaskSample, WorkerSample,
};
use dpu_datapath::pipeline::timing::{StageHistogram, BUCKET_BOUNDS_NS};
use dpu_datapath::pipeline::TaskCounters;
use dpu_datapath::stats::{DropReason, Stats};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sample_stats() -> Stats {
    let mut s = Stats::default();
    s.rx_frames = 10;
    s.rx_bytes = 15_000;
    s.tx_frames = 7;
    s.tx_bytes = 9_000;
    s.rx_payload_bytes = 12_345;
    s.tx_payload_bytes = 6_789;
    s.fast_path_segments = 9;
    s.exceptions = 1;
    s.fast_retransmits = 2;
    s.timeout_retransmits = 3;
    s.retransmit_segments = 4;
    s.connections_accepted = 5;
    s.connect_failures = 6;
    s.rst_sent = 1;
    s.rst_received = 2;
    s.drop(DropReason::TcpBadChecksum);
    s.drop(DropReason::TcpBadChecksum);
    s.drop(DropReason::OutOfWindow);
    s
}

/// The value of the sample whose line starts with `series` (name and
/// labels exactly as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("numeric sample value"))
}

#[test]
fn renders_stats_with_names_labels_and_values() {
    let exporter = Exporter::new();
    exporter.publish(Snapshot {
        engines: vec![EngineSample {
            replica: 0,
            stage: EngineStage::Engine,
            worker: 0,
            stats: sample_stats(),
            gauges: Some(EngineGauges {
                flows: 3,
                app_connections: 2,
                handshakes: 1,
                time_wait: 4,
            }),
        }],
        ..Snapshot::default()
    });
    let text = exporter.render();
    let l = r#"{replica="0",stage="engine",worker="0""#;
    let get = |name: &str, extra: &str| {
        let series = format!("{name}{l}{extra}}}");
        value(&text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(get("flextoe_rx_frames_total", ""), 10.0);
    assert_eq!(get("flextoe_rx_bytes_total", ""), 15_000.0);
    assert_eq!(get("flextoe_tx_frames_total", ""), 7.0);
    assert_eq!(get("flextoe_tx_bytes_total", ""), 9_000.0);
    assert_eq!(
        get("flextoe_payload_bytes_total", r#",direction="rx""#),
        12_345.0
    );
    assert_eq!(
        get("flextoe_payload_bytes_total", r#",direction="tx""#),
        6_789.0
    );
    assert_eq!(get("flextoe_fast_path_segments_total", ""), 9.0);
    assert_eq!(get("flextoe_exceptions_total", ""), 1.0);
    assert_eq!(get("flextoe_retransmits_total", r#",kind="fast""#), 2.0);
    assert_eq!(get("flextoe_retransmits_total", r#",kind="timeout""#), 3.0);
    assert_eq!(get("flextoe_retransmitted_segments_total", ""), 4.0);
    assert_eq!(
        get("flextoe_connections_total", r#",event="accepted""#),
        5.0
    );
    assert_eq!(
        get("flextoe_connections_total", r#",event="connect_failed""#),
        6.0
    );
    assert_eq!(get("flextoe_connections_total", r#",event="closed""#), 0.0);
    assert_eq!(get("flextoe_rsts_total", r#",direction="tx""#), 1.0);
    assert_eq!(get("flextoe_rsts_total", r#",direction="rx""#), 2.0);
    assert_eq!(get("flextoe_flows", ""), 3.0);
    assert_eq!(get("flextoe_app_connections", ""), 2.0);
    assert_eq!(get("flextoe_handshakes", ""), 1.0);
    assert_eq!(get("flextoe_time_wait", ""), 4.0);
    // Every drop reason is there, zeros included.
    for r in DropReason::ALL {
        let expected = match r {
            DropReason::TcpBadChecksum => 2.0,
            DropReason::OutOfWindow => 1.0,
            _ => 0.0,
        };
        let extra = format!(r#",reason="{}""#, r.as_str());
        assert_eq!(
            get("flextoe_drops_total", &extra),
            expected,
            "{}",
            r.as_str()
        );
    }
    assert!(
        text.contains("# TYPE flextoe_rx_frames_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE flextoe_flows gauge\n"), "{text}");
    assert!(text.contains("# HELP flextoe_drops_total "), "{text}");
    let info = format!(
        r#"flextoe_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &info), Some(1.0), "{text}");
    assert!(value(&text, "flextoe_snapshot_timestamp_seconds").unwrap() > 1.6e9);
    // No pipeline here: no task or worker series.
    assert!(!text.contains("flextoe_ring_full_total"), "{text}");
    // Counters follow the naming guide.
    for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
        let parts: Vec<&str> = line.split(' ').collect();
        assert!(parts[2].starts_with("flextoe_"), "{line}");
        assert_eq!(
            parts[3] == "counter",
            parts[2].ends_with("_total"),
            "{line}"
        );
    }
}

#[test]
fn pipeline_snapshots_label_tasks_workers_and_pre_drops() {
    let mut pre = Stats::default();
    pre.drop(DropReason::IpBadChecksum);
    let tasks = [
        TaskCounters {
            name: "r1-pre0".into(),
            items: 100,
            full_events: 3,
            ..Default::default()
        },
        TaskCounters {
            name: "r0-ingress-reorder".into(),
            items: 50,
            reorder_holds: 7,
            ..Default::default()
        },
        TaskCounters {
            name: "owner3".into(),
            items: 20,
            full_events: 1,
            ..Default::default()
        },
    ];
    let exporter = Exporter::new();
    exporter.publish(Snapshot {
        engines: vec![EngineSample::pre(1, 0, &pre)],
        tasks: tasks
            .iter()
            .map(|t| TaskSample::from_counters(t, 2).unwrap())
            .collect(),
        workers: vec![WorkerSample::from_name("r1-proto1", 40, 60)
            .unwrap()
            .with_busy_ns(1_500_000_000)],
        ..Snapshot::default()
    });
    let text = exporter.render();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        v(r#"flextoe_drops_total{replica="1",stage="pre",worker="0",reason="ip_bad_checksum"}"#),
        1.0
    );
    assert_eq!(
        v(r#"flextoe_task_items_total{replica="1",stage="pre",worker="0"}"#),
        100.0
    );
    assert_eq!(
        v(r#"flextoe_ring_full_total{replica="1",stage="pre",worker="0"}"#),
        3.0
    );
    assert_eq!(
        v(r#"flextoe_reorder_holds_total{replica="0",stage="ingress_reorder",worker="0"}"#),
        7.0
    );
    // owner3 with two owners per replica: replica 1, worker 1.
    assert_eq!(
        v(r#"flextoe_ring_full_total{replica="1",stage="owner",worker="1"}"#),
        1.0
    );
    assert_eq!(
        v(r#"flextoe_worker_polls_total{replica="1",stage="proto",worker="1",state="busy"}"#),
        40.0
    );
    assert_eq!(
        v(r#"flextoe_worker_polls_total{replica="1",stage="proto",worker="1",state="idle"}"#),
        60.0
    );
    assert_eq!(
        v(r#"flextoe_worker_busy_seconds_total{replica="1",stage="proto",worker="1"}"#),
        1.5
    );
    // A pre worker counts only drops: no frame counters, no gauges for it.
    assert!(!text.contains(r#"flextoe_rx_frames_total{"#), "{text}");
    assert!(!text.contains(r#"flextoe_flows{"#), "{text}");
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"),
    )
}

#[test]
fn http_endpoint_serves_metrics_and_404s_the_rest() {
    let exporter = Arc::new(Exporter::new());
    exporter.publish(Snapshot {
        engines: vec![EngineSample {
            replica: 0,
            stage: EngineStage::Engine,
            worker: 0,
            stats: sample_stats(),
            gauges: None,
        }],
        ..Snapshot::default()
    });
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), exporter.clone()).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, exporter.render());
    assert!(body.contains("flextoe_rx_frames_total"), "{body}");

    let (status, _, body) = get(addr, "/metrics?name[]=x");
    assert_eq!(status, 200);
    assert!(body.contains("flextoe_build_info"));
    let (status, head, body) = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""), "{head}");
    assert_eq!(get(addr, "/").0, 404);
    assert_eq!(get(addr, "/metricsx").0, 404);
    let (status, head, _) = http(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    assert_eq!(http(addr, "hello\r\n\r\n").0, 400);
    // A client that connects and leaves does not stop the server.
    drop(TcpStream::connect(addr).unwrap());
    assert_eq!(get(addr, "/metrics").0, 200);

    assert!(
        listening_here(addr.port()),
        "the listener check sees nothing"
    );
    let t = Instant::now();
    server.shutdown();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The listener is closed: no socket of this process listens on the
    // port any more. (Probing with a connect is not enough: another test's
    // server may get the freed ephemeral port at once.)
    assert!(
        !listening_here(addr.port()),
        "the metrics listener outlived shutdown"
    );
}

/// Whether a socket of this process listens on TCP port `port` (IPv4).
fn listening_here(port: u16) -> bool {
    let ours: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = f
            .get(1)
            .and_then(|a| a.split(':').nth(1))
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        // State 0A is LISTEN; field 9 is the socket's inode.
        local_port == Some(port)
            && f.get(3) == Some(&"0A")
            && f.get(9).is_some_and(|inode| ours.contains(*inode))
    })
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flextoe-dpu"))
}

fn sim_config(name: &str, listen: &str) -> std::path::PathBuf {
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&bin().arg("default-config").output().unwrap().stdout).unwrap();
    cfg["port"]["backend"] = "sim".into();
    cfg["metrics"]["enabled"] = true.into();
    cfg["metrics"]["listen"] = listen.into();
    let dir = std::env::temp_dir().join(format!("flextoe-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// The labelled sample of `name` whose labels contain `label`.
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        required("promtool is not installed (scripts/setup.sh installs it)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Any finding (naming, types, help) fails the check, warnings included.
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool:\n{report}\n{text}"
    );
}

#[test]
fn sim_service_serves_growing_counters_that_match_its_summary() {
    let path = sim_config("run.json", "127.0.0.1:0");
    // 128 KiB per connection and round: less than `tcp.rx_buffer`, so the
    // round that the deadline interrupts never fills a receive buffer. (A
    // peer FIN arriving at a full, unread buffer underflows
    // `ProtoFlow::rcv_free` in debug builds: a data-path bug of its own,
    // not what this test is about.)
    let mut child = bin()
        .args([
            "run",
            "--duration",
            "4",
            "--connections",
            "2",
            "--bytes",
            "131072",
            "--config",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the service announces its metrics address");
        if let Some(rest) = line.strip_prefix("flextoe-dpu: metrics on http://") {
            break rest.trim_end_matches("/metrics").parse().unwrap();
        }
        lines.push(line);
    };

    // Scrape during traffic until the payload counter was seen growing.
    let rx_payload = r#"direction="rx""#;
    let started = Instant::now();
    let mut seen: Vec<f64> = Vec::new();
    let mut last_text = String::new();
    while started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(400));
        let Ok(mut s) = TcpStream::connect(addr) else {
            break;
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .unwrap();
        let mut raw = String::new();
        if s.read_to_string(&mut raw).is_err() {
            break;
        }
        let Some((head, body)) = raw.split_once("\r\n\r\n") else {
            break;
        };
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let v = sample(body, "flextoe_payload_bytes_total", rx_payload).expect(body);
        seen.push(v);
        last_text = body.to_owned();
        if seen.len() >= 2 && seen.windows(2).any(|w| w[1] > w[0]) && seen[0] > 0.0 {
            break;
        }
    }
    assert!(
        seen.windows(2).all(|w| w[1] >= w[0]),
        "counter went backwards: {seen:?}"
    );
    assert!(
        seen.windows(2).any(|w| w[1] > w[0]),
        "payload counter never grew: {seen:?}"
    );

    let status = child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let out = lines.join("\n");
    assert!(status.success(), "{out}\n{stderr}");
    // "service: rx N frames / P payload bytes, ..."
    let summary = lines
        .iter()
        .find_map(|l| l.strip_prefix("service: rx "))
        .unwrap_or_else(|| panic!("no summary in\n{out}"));
    let words: Vec<&str> = summary.split(' ').collect();
    let (frames, payload): (f64, f64) = (words[0].parse().unwrap(), words[3].parse().unwrap());
    let last = *seen.last().unwrap();
    assert!(
        last > 0.0 && last <= payload,
        "scraped {last}, summary {payload}\n{out}"
    );
    let scraped_frames = sample(&last_text, "flextoe_rx_frames_total", "worker=\"0\"").unwrap();
    assert!(scraped_frames > 0.0 && scraped_frames <= frames);
    // The sim backend's labels: one engine.
    assert!(
        last_text.contains(r#"flextoe_flows{replica="0",stage="engine",worker="0"}"#),
        "{last_text}"
    );
    for name in dpu_datapath::metrics::metric_names() {
        let pipeline_only = name.starts_with("flextoe_task_")
            || name.starts_with("flextoe_host_")
            || name == "flextoe_stage_processing_seconds"
            || name == "flextoe_ring_full_total"
            || name == "flextoe_reorder_holds_total"
            || name == "flextoe_worker_polls_total"
            || name == "flextoe_worker_busy_seconds_total"
            || name == "flextoe_xdp_frames_total"
            || name.starts_with("flextoe_port_");
        assert_eq!(
            last_text.contains(&format!("# TYPE {name} ")),
            !pipeline_only,
            "{name}"
        );
    }
    promtool_check(&last_text);
}

#[test]
fn an_unusable_metrics_listen_address_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let path = sim_config("taken.json", &addr.to_string());
    let out = bin()
        .args(["run", "--duration", "1", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("metrics.listen {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A metric name the exporter knows, or a histogram's `_bucket`, `_sum`
/// or `_count` series.
fn known_metric(token: &str) -> bool {
    let known = dpu_datapath::metrics::metric_names();
    known.contains(&token)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            token
                .strip_suffix(suffix)
                .is_some_and(|base| base == "flextoe_stage_processing_seconds")
        })
}

/// `flextoe_*` identifiers in a text.
fn metric_tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("flextoe_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

fn promtool_check_rules(name: &str, yaml: &str) {
    let path = std::env::temp_dir().join(format!("flextoe-{}-{name}.yml", std::process::id()));
    std::fs::write(&path, yaml).unwrap();
    match Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Err(_) => required("promtool check rules: promtool is not installed"),
        Ok(out) => assert!(
            out.status.success(),
            "{name}: {}{}\n{yaml}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn docs_and_dashboard_match_the_exported_metrics() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let known = dpu_datapath::metrics::metric_names();
    let ops = std::fs::read_to_string(docs.join("operations.md")).unwrap();
    for name in &known {
        assert!(
            ops.contains(&format!("`{name}`")),
            "operations.md does not list {name}"
        );
    }
    for token in metric_tokens(&ops) {
        assert!(
            known_metric(token),
            "operations.md names unknown metric {token}"
        );
    }
    let alerts = ops
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("operations.md has the alert rules");
    promtool_check_rules("alerts", alerts);

    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(docs.join("grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is valid JSON");
    let panels = dash["panels"].as_array().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .enumerate()
    {
        for token in metric_tokens(&expr) {
            assert!(known_metric(token), "dashboard uses unknown metric {token}");
        }
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        rules += &format!("      - record: dashboard:expr{i}\n        expr: {expr:?}\n");
    }
    for title in [
        "Drops by reason",
        "Retransmissions",
        "Ring full events by stage",
        "Reorder holds",
        "Stage processing time (p99)",
        "Host interface descriptors",
        "Host protocol violations",
    ] {
        assert!(
            panels.iter().any(|p| p["title"] == title),
            "no panel {title}"
        );
    }
    promtool_check_rules("dashboard", &rules);
}

#[test]
fn stage_histograms_and_host_interface_render_as_prometheus_types() {
    let mut hist = StageHistogram::default();
    for ns in [50, 150, 150, 700, 3_000_000] {
        hist.record(ns);
    }
    let mut violations = [0u64; dpu_datapath::hostif::VIOLATION_KINDS];
    violations[doca_bindings::abi::VIOLATION_TX_BOUNDS as usize] = 2;
    let exporter = Exporter::new();
    exporter.publish(Snapshot {
        stage_times: vec![StageTimeSample {
            stage: "dma".into(),
            replica: 1,
            hist,
        }],
        hostif: Some(HostIfSample {
            apps_registered: 3,
            apps_connected: 2,
            apps_active: 1,
            contexts: 4,
            requests: 10,
            events: 11,
            front_sleeps: 5,
            conns_moved: 6,
            commands_bounced: 7,
            violations,
        }),
        ..Snapshot::default()
    });
    let text = exporter.render();
    let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert!(text.contains("# TYPE flextoe_stage_processing_seconds histogram\n"));
    let l = r#"replica="1",stage="dma""#;
    assert_eq!(
        v(&format!(
            r#"flextoe_stage_processing_seconds_bucket{{{l},le="0.0000001"}}"#
        )),
        1.0
    );
    assert_eq!(
        v(&format!(
            r#"flextoe_stage_processing_seconds_bucket{{{l},le="0.0000002"}}"#
        )),
        3.0
    );
    assert_eq!(
        v(&format!(
            r#"flextoe_stage_processing_seconds_bucket{{{l},le="0.001"}}"#
        )),
        4.0
    );
    assert_eq!(
        v(&format!(
            r#"flextoe_stage_processing_seconds_bucket{{{l},le="+Inf"}}"#
        )),
        5.0
    );
    assert_eq!(
        v(&format!(r#"flextoe_stage_processing_seconds_count{{{l}}}"#)),
        5.0
    );
    let sum = v(&format!(r#"flextoe_stage_processing_seconds_sum{{{l}}}"#));
    assert!((sum - 3_001_050e-9).abs() < 1e-12, "{sum}");
    assert_eq!(
        text.matches("flextoe_stage_processing_seconds_bucket{")
            .count(),
        BUCKET_BOUNDS_NS.len() + 1
    );
    assert_eq!(v("flextoe_host_apps_registered_total"), 3.0);
    assert_eq!(v("flextoe_host_apps_connected"), 2.0);
    assert_eq!(v("flextoe_host_apps_active"), 1.0);
    assert_eq!(v("flextoe_host_contexts"), 4.0);
    assert_eq!(v("flextoe_host_front_sleeps_total"), 5.0);
    assert_eq!(v("flextoe_host_conns_moved_total"), 6.0);
    assert_eq!(v("flextoe_host_commands_bounced_total"), 7.0);
    assert_eq!(
        v(r#"flextoe_host_descriptors_total{direction="request"}"#),
        10.0
    );
    assert_eq!(
        v(r#"flextoe_host_descriptors_total{direction="event"}"#),
        11.0
    );
    for reason in [
        "ring_index",
        "unknown_op",
        "foreign_conn",
        "tx_bounds",
        "rx_bounds",
        "bad_argument",
    ] {
        let n = v(&format!(
            r#"flextoe_host_violations_total{{reason="{reason}"}}"#
        ));
        assert_eq!(n, if reason == "tx_bounds" { 2.0 } else { 0.0 }, "{reason}");
    }
    promtool_check(&text);
}

/// `target/<profile>/examples/NAME`, if built.
fn host_example(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?.parent()?;
    Some(profile.join("examples").join(name)).filter(|p| p.exists())
}

/// GET /metrics; the body.
fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    body
}

/// Sum of every sample of `name` whose labels contain `label` (all
/// replicas, stages and workers).
fn total(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The loopback service with metrics on: host applications move data
/// through it while `/metrics` is scraped; the data-path counters agree
/// with what the application received, the stage histograms and the host
/// interface series are there and sane, and promtool accepts the output.
#[test]
fn loopback_service_metrics_agree_with_host_traffic() {
    let (Some(recv), Some(send)) = (host_example("bulk_recv"), host_example("bulk_send")) else {
        required("host-shim examples not built (cargo build --release -p host-shim --examples)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("flextoe-metrics-lo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&bin().arg("default-config").output().unwrap().stdout).unwrap();
    cfg["port"]["backend"] = "loopback".into();
    cfg["host"]["control_socket"] = socket.display().to_string().into();
    cfg["metrics"]["enabled"] = true.into();
    // Port 0: any free port; the service prints the one it bound.
    cfg["metrics"]["listen"] = "127.0.0.1:0".into();
    cfg["topology"]["replicas"] = 2.into();
    cfg["topology"]["flow_groups"] = 8.into();
    let ip = cfg["identity"]["ipv4"].as_str().unwrap().to_owned();
    let path = dir.join("config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let service_started = Instant::now();
    let mut child = bin()
        .args([
            "run",
            "--stats-interval",
            "0",
            "--duration",
            "120",
            "--config",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr: Option<SocketAddr> = None;
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the service becomes ready");
        if let Some(rest) = line.strip_prefix("flextoe-dpu: metrics on http://") {
            addr = Some(rest.trim_end_matches("/metrics").parse().unwrap());
        }
        if line.contains("ready") {
            break;
        }
    }
    let addr = addr.expect("the service announces its metrics address");
    assert_ne!(addr.port(), 0);
    let rx_label = r#"direction="rx""#;
    let tx_label = r#"direction="tx""#;
    let before = scrape(addr);
    let rx0 = total(&before, "flextoe_payload_bytes_total", rx_label);
    let tx0 = total(&before, "flextoe_payload_bytes_total", tx_label);

    let started = Instant::now();
    let receiver = Command::new(&recv)
        .args(["--listen", "0.0.0.0:9000"])
        .env("FLEXTOE_CONTROL", &socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The receiver listens once its registration shows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while total(&scrape(addr), "flextoe_host_apps_registered_total", "") < 1.0 {
        assert!(Instant::now() < deadline, "the receiver never registered");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut sender = Command::new(&send)
        .args(["--connect", &format!("{ip}:9000"), "--mib", "4"])
        .env("FLEXTOE_CONTROL", &socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Scrape during the transfer.
    let mut during = Vec::new();
    while sender.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the transfer did not finish"
        );
        let text = scrape(addr);
        during.push(total(&text, "flextoe_payload_bytes_total", rx_label) - rx0);
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = sender.wait_with_output().unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let got = receiver.wait_with_output().unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(got.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let received = report["bytes"].as_u64().unwrap() as f64;
    assert_eq!(received, (4u64 << 20) as f64);
    assert!(!during.is_empty(), "no scrape during the transfer");
    assert!(
        during.windows(2).all(|w| w[1] >= w[0]),
        "rx payload went backwards: {during:?}"
    );

    // The counters are published every 100 ms by the tasks and every
    // 250 ms by the service: wait until they settle on the transfer, and
    // until both applications' departure shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(addr);
        let rx = total(&text, "flextoe_payload_bytes_total", rx_label) - rx0;
        let gone = total(&text, "flextoe_host_apps_connected", "") == 0.0;
        if (rx == received && gone) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rx = total(&text, "flextoe_payload_bytes_total", rx_label) - rx0;
    let tx = total(&text, "flextoe_payload_bytes_total", tx_label) - tx0;
    println!(
        "4 MiB through the loopback service in {:.2} s; rx payload delta {rx}, tx payload \
         delta {tx}, application received {received}; {} scrapes during the transfer",
        started.elapsed().as_secs_f64(),
        during.len()
    );
    // Bytes the application received = payload the data path placed into
    // receive buffers (= what `dma` copied to host buffers) = payload sent.
    assert_eq!(rx, received, "{text}");
    assert_eq!(tx, received, "{text}");
    // Both replicas' owners are there.
    for r in 0..2 {
        assert!(
            text.contains(&format!(
                r#"flextoe_rx_frames_total{{replica="{r}",stage="proto",worker="0"}}"#
            )),
            "{text}"
        );
    }

    // Task counters are live (published by the tasks while they run): the
    // service is still up here, and its tasks moved every frame.
    assert!(
        total(&text, "flextoe_task_items_total", "") > 0.0,
        "live task counters: {text}"
    );

    // Stage histograms: every timed stage sampled something, cumulative
    // buckets never decrease, +Inf equals the count, the mean is sane.
    for stage in ["pre", "proto", "dma", "post"] {
        let l = format!(r#"stage="{stage}""#);
        let count = total(&text, "flextoe_stage_processing_seconds_count", &l);
        let sum = total(&text, "flextoe_stage_processing_seconds_sum", &l);
        assert!(count > 0.0, "no {stage} samples\n{text}");
        assert!(
            sum > 0.0 && sum / count < 0.01,
            "{stage}: sum {sum} count {count}"
        );
        for r in 0..2 {
            let series = format!(r#"flextoe_stage_processing_seconds_bucket{{replica="{r}",{l},"#);
            let buckets: Vec<f64> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&series))
                .filter_map(|rest| rest.rsplit(' ').next()?.parse().ok())
                .collect();
            assert_eq!(buckets.len(), BUCKET_BOUNDS_NS.len() + 1, "{series}");
            assert!(
                buckets.windows(2).all(|w| w[1] >= w[0]),
                "{series}: {buckets:?}"
            );
            let count = value(
                &text,
                &format!(r#"flextoe_stage_processing_seconds_count{{replica="{r}",{l}}}"#),
            )
            .unwrap();
            assert_eq!(*buckets.last().unwrap(), count, "{series}");
        }
    }
    // Sampling one item in 64: the proto samples are about a 64th of the
    // segments the owners handled (plus handshakes and ACKs).
    let segments = total(&text, "flextoe_rx_frames_total", "");
    let proto = total(
        &text,
        "flextoe_stage_processing_seconds_count",
        r#"stage="proto""#,
    );
    let expected = segments / 64.0;
    assert!(
        (proto - expected).abs() <= expected * 0.1 + 4.0,
        "proto samples {proto}, frames {segments}"
    );

    // Host interface.
    assert_eq!(total(&text, "flextoe_host_apps_registered_total", ""), 2.0);
    assert_eq!(
        total(&text, "flextoe_host_apps_connected", ""),
        0.0,
        "{text}"
    );
    assert_eq!(total(&text, "flextoe_host_apps_active", ""), 0.0);
    assert_eq!(total(&text, "flextoe_host_contexts", ""), 0.0);
    let requests = total(
        &text,
        "flextoe_host_descriptors_total",
        r#"direction="request""#,
    );
    let events = total(
        &text,
        "flextoe_host_descriptors_total",
        r#"direction="event""#,
    );
    assert!(requests > 0.0 && events > 0.0, "{requests} {events}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("flextoe_host_violations_total{"))
            .count(),
        6
    );
    assert_eq!(total(&text, "flextoe_host_violations_total", ""), 0.0);
    // Workers: one run-to-completion worker per replica, busy at times.
    assert!(total(&text, "flextoe_worker_polls_total", r#"state="busy""#) > 0.0);
    // Busy time is measured, and no worker (two here) is busy longer
    // than the service ran.
    let busy = total(&text, "flextoe_worker_busy_seconds_total", "");
    let ran = service_started.elapsed().as_secs_f64();
    assert!(busy > 0.0 && busy <= 2.0 * ran, "busy {busy} s in {ran} s");
    assert!(text.contains(
        r#"flextoe_worker_polls_total{replica="1",stage="rtc",worker="0",state="idle"}"#
    ));
    promtool_check(&text);

    // SIGINT: a clean stop.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}");
}

/// A skipped check: printed, or a failure under `FLEXTOE_REQUIRE_ALL=1`
/// (scripts/test.sh sets it: CI must run every check).
fn required(why: &str) {
    if std::env::var_os("FLEXTOE_REQUIRE_ALL").is_some_and(|v| v != "0") {
        panic!("this check must run here (FLEXTOE_REQUIRE_ALL): {why}");
    }
    println!("SKIPPED: {why}");
}
