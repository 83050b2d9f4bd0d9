//! libtoe_preload.so with unmodified programs, both ends under
//! `flextoe-run` against the service on the loopback backend: a
//! conformance program (identical output on the kernel and on the engine),
//! memcached, redis, python's http.server, nginx and iperf3. Each test
//! skips (printing why) when a binary is missing; servers run in the
//! foreground (no daemonizing, no nginx master process).

use flextoe_tests::hostif::Service;
use flextoe_tests::preload::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn conformance_identical_on_kernel_and_engine() {
    let Some(run) = runner() else { return };
    if !need(&["cc"]) {
        return;
    }
    let dir = tmpdir("conf");
    let bin = dir.join("conformance");
    let src = repo().join("host-shim/preload/tests/conformance.c");
    run_ok(
        {
            let mut c = Command::new("cc");
            c.args(["-O1", "-Wall", "-o"])
                .arg(&bin)
                .arg(&src)
                .arg("-lpthread");
            c
        },
        Duration::from_secs(60),
        "cc conformance.c",
    );
    let kport = free_kernel_ports();
    let kernel = run_ok(
        {
            let mut c = Command::new(&bin);
            c.args(["127.0.0.1", &kport.to_string()]);
            c
        },
        Duration::from_secs(60),
        "conformance (kernel)",
    );
    let Some(svc) = Service::start("preload-conf", 1) else {
        return;
    };
    let t = Instant::now();
    let toe = run_ok(
        under(
            &run,
            &svc,
            bin.to_str().unwrap(),
            &[&svc.ip.to_string(), &engine_port(0).to_string()],
        ),
        Duration::from_secs(60),
        "conformance (flextoe-run)",
    );
    let (k, e) = (
        String::from_utf8_lossy(&kernel.stdout),
        String::from_utf8_lossy(&toe.stdout),
    );
    println!("kernel:\n{k}\nengine ({:?}):\n{e}", t.elapsed());
    assert!(k.trim_end().ends_with("done"), "kernel run incomplete");
    assert_eq!(k, e, "output differs between the kernel and the engine");
    assert!(
        !String::from_utf8_lossy(&toe.stderr).contains("libtoe_preload"),
        "preload warned: {}",
        String::from_utf8_lossy(&toe.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_service_falls_back_or_fails() {
    let Some(run) = runner() else { return };
    let code = "import socket\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); c=socket.create_connection(s.getsockname()); a,_=s.accept(); c.sendall(b'hi'); print(a.recv(2).decode())";
    let out = run_ok(
        {
            let mut c = Command::new(&run);
            c.args([
                "--control",
                "/nonexistent/flextoe.sock",
                "--",
                "python3",
                "-c",
                code,
            ]);
            c
        },
        Duration::from_secs(30),
        "fallback",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("libtoe_preload").count(),
        1,
        "one warning: {err}"
    );
    let out = Command::new(&run)
        .args([
            "--control",
            "/nonexistent/flextoe.sock",
            "--no-fallback",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the FlexTOE service"));
}

#[test]
fn memcached_unmodified() {
    let Some(run) = runner() else { return };
    if !need(&["memcached", "python3"]) {
        return;
    }
    let Some(svc) = Service::start("preload-mc", 1) else {
        return;
    };
    let port = engine_port(10).to_string();
    let ip = svc.ip.to_string();
    let _mc = spawn_server(
        under(
            &run,
            &svc,
            "memcached",
            &["-l", &ip, "-p", &port, "-U", "0", "-t", "2", "-u", "root"],
        ),
        "memcached",
    );
    wait_listening(&run, &svc, svc.ip, port.parse().unwrap());
    let client = repo().join("host-shim/preload/tests/memcached_client.py");
    let t = Instant::now();
    let out = run_ok(
        under(
            &run,
            &svc,
            "python3",
            &[client.to_str().unwrap(), &ip, &port, "2000"],
        ),
        Duration::from_secs(120),
        "memcached client",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text} ({:?})", t.elapsed());
    assert!(text.contains("memcached OK"), "{text}");
}

#[test]
fn redis_unmodified() {
    let Some(run) = runner() else { return };
    if !need(&["redis-server", "redis-cli", "redis-benchmark"]) {
        return;
    }
    let Some(svc) = Service::start("preload-redis", 1) else {
        return;
    };
    let dir = tmpdir("redis");
    let port = engine_port(20).to_string();
    let ip = svc.ip.to_string();
    let _srv = spawn_server(
        under(
            &run,
            &svc,
            "redis-server",
            &[
                "--port",
                &port,
                "--bind",
                &ip,
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                dir.to_str().unwrap(),
                "--logfile",
                "",
            ],
        ),
        "redis-server",
    );
    wait_listening(&run, &svc, svc.ip, port.parse().unwrap());
    // A 1 MiB value through redis-cli -x (stdin), read back with --raw.
    let value: String = (0..1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let vfile = dir.join("value");
    std::fs::write(&vfile, &value).unwrap();
    let mut set = under(
        &run,
        &svc,
        "redis-cli",
        &["-h", &ip, "-p", &port, "-x", "SET", "big"],
    );
    set.stdin(std::fs::File::open(&vfile).unwrap());
    let out = run_ok(set, Duration::from_secs(60), "redis-cli SET");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let out = run_ok(
        under(
            &run,
            &svc,
            "redis-cli",
            &["-h", &ip, "-p", &port, "--raw", "GET", "big"],
        ),
        Duration::from_secs(60),
        "redis-cli GET",
    );
    let got = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got.trim_end_matches('\n').len(), value.len());
    assert!(got.trim_end_matches('\n') == value, "1 MiB value differs");
    println!("redis-cli: 1 MiB value set and read back");
    let out = run_ok(
        under(
            &run,
            &svc,
            "redis-benchmark",
            &[
                "-h",
                &ip,
                "-p",
                &port,
                "-n",
                "2000",
                "-c",
                "4",
                "-q",
                "-t",
                "set,get,incr,lpush",
            ],
        ),
        Duration::from_secs(120),
        "redis-benchmark",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    // Each of the four tests reports its rate (its final line; progress
    // lines before it end in a carriage return)...
    for test in ["SET", "GET", "INCR", "LPUSH"] {
        let rate = text
            .split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .find_map(|l| l.trim().strip_prefix(&format!("{test}: ")))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse::<f64>().ok());
        assert!(rate.is_some_and(|r| r > 0.0), "no {test} rate: {text}");
    }
    // ...and every request took effect: without -r the keys are literal,
    // so 2,000 INCRs leave the counter at 2,000 and 2,000 LPUSHes a list of
    // 2,000.
    for (cmd, want) in [
        (&["GET", "counter:__rand_int__"][..], "2000"),
        (&["LLEN", "mylist"][..], "2000"),
    ] {
        let mut args = vec!["-h", &ip, "-p", &port, "--raw"];
        args.extend_from_slice(cmd);
        let out = run_ok(
            under(&run, &svc, "redis-cli", &args),
            Duration::from_secs(60),
            "redis-cli",
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "{cmd:?} after redis-benchmark"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_http_server_unmodified() {
    let Some(run) = runner() else { return };
    if !need(&["python3"]) {
        return;
    }
    let Some(svc) = Service::start("preload-http", 1) else {
        return;
    };
    let dir = tmpdir("http");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &body).unwrap();
    let port = engine_port(30).to_string();
    let ip = svc.ip.to_string();
    let _srv = spawn_server(
        under(
            &run,
            &svc,
            "python3",
            &[
                "-m",
                "http.server",
                &port,
                "--bind",
                &ip,
                "--directory",
                dir.to_str().unwrap(),
            ],
        ),
        "http.server",
    );
    wait_listening(&run, &svc, svc.ip, port.parse().unwrap());
    let code = format!(
        "import urllib.request,hashlib\nfor i in range(5):\n  d=urllib.request.urlopen('http://{ip}:{port}/blob.bin',timeout=30).read()\n  print(len(d), hashlib.sha256(d).hexdigest())"
    );
    let out = run_ok(
        under(&run, &svc, "python3", &["-c", &code]),
        Duration::from_secs(120),
        "urllib client",
    );
    let want = format!("{} {}", body.len(), sha256_hex(&body));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| *l == want).count(), 5, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn sha256_hex(d: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn nginx_serves_64mib() {
    let Some(run) = runner() else { return };
    if !need(&["nginx", "curl"]) {
        return;
    }
    let Some(svc) = Service::start("preload-nginx", 1) else {
        return;
    };
    let dir = tmpdir("nginx");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let mut body = vec![0u8; 64 << 20];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for chunk in body.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(www.join("big.bin"), &body).unwrap();
    let port = engine_port(40);
    let ip = svc.ip;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; use epoll; }}\n\
         http {{\n access_log off;\n sendfile on;\n tcp_nopush on;\n client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
         server {{ listen {ip}:{port}; root {www}; }}\n}}\n",
        www = www.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let _srv = spawn_server(
        under(
            &run,
            &svc,
            "nginx",
            &[
                "-p",
                dir.to_str().unwrap(),
                "-c",
                dir.join("nginx.conf").to_str().unwrap(),
            ],
        ),
        "nginx",
    );
    wait_listening(&run, &svc, ip, port);
    let out_file = dir.join("down.bin");
    let t = Instant::now();
    run_ok(
        under(
            &run,
            &svc,
            "curl",
            &[
                "-sS",
                "--fail",
                "-o",
                out_file.to_str().unwrap(),
                &format!("http://{ip}:{port}/big.bin"),
            ],
        ),
        Duration::from_secs(180),
        "curl",
    );
    let got = std::fs::read(&out_file).unwrap();
    println!("curl: {} bytes in {:?}", got.len(), t.elapsed());
    assert_eq!(got.len(), body.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn iperf3_both_directions() {
    let Some(run) = runner() else { return };
    if !need(&["iperf3"]) {
        return;
    }
    let Some(svc) = Service::start("preload-iperf", 1) else {
        return;
    };
    let ip = svc.ip.to_string();
    for (i, reverse) in [false, true].into_iter().enumerate() {
        let port = (engine_port(50) + i as u16).to_string();
        let _srv = spawn_server(
            under(&run, &svc, "iperf3", &["-s", "-4", "-p", &port]),
            "iperf3 -s",
        );
        wait_listening(&run, &svc, svc.ip, port.parse().unwrap());
        // The probe's connection counts as the one-off client for a
        // server that has not started a test yet: iperf3 ignores it.
        let mut args = vec!["-4", "-c", &ip, "-p", &port, "-t", "2", "-J"];
        if reverse {
            args.push("-R");
        }
        let out = run_ok(
            under(&run, &svc, "iperf3", &args),
            Duration::from_secs(60),
            "iperf3 client",
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0);
        let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
        println!(
            "iperf3 reverse={reverse}: {:.1} Mbit/s, {bytes} bytes received",
            bps / 1e6
        );
        // The receiver stops counting when the test time ends, so it may
        // miss what was still in flight: at most the connection's send and
        // receive buffers (256 KiB each by default) and iperf3's own
        // blocks. 8 MiB is generous; a lost or duplicated stretch is not.
        let sent = v["end"]["sum_sent"]["bytes"].as_f64().unwrap_or(0.0);
        assert!(
            bytes > 0.0 && bytes <= sent && sent - bytes <= 8.0 * 1048576.0,
            "sent {sent}, received {bytes}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The engine's connection table (`flextoe-dpu conns --json`).
fn conns(svc: &Service) -> Vec<serde_json::Value> {
    let bin = flextoe_tests::hostif::service_binary().expect("flextoe-dpu");
    let out = Command::new(bin)
        .args(["conns", "--json", "--control"])
        .arg(&svc.socket)
        .output()
        .expect("flextoe-dpu conns");
    match serde_json::from_slice(&out.stdout) {
        Ok(serde_json::Value::Array(rows)) => rows,
        _ => Vec::new(),
    }
}

#[test]
fn iperf3_chooses_its_congestion_control_with_tcp_congestion() {
    let Some(run) = runner() else { return };
    if !need(&["iperf3"]) {
        return;
    }
    let Some(svc) = Service::start("preload-iperf-cc", 1) else {
        return;
    };
    let ip = svc.ip.to_string();
    let port = engine_port(60).to_string();
    let _srv = spawn_server(
        under(&run, &svc, "iperf3", &["-s", "-4", "-p", &port]),
        "iperf3 -s",
    );
    wait_listening(&run, &svc, svc.ip, port.parse().unwrap());
    // iperf3 sets TCP_CONGESTION on its data sockets (client and server)
    // and reads it back with getsockopt for its report.
    let client = under(
        &run,
        &svc,
        "iperf3",
        &["-4", "-c", &ip, "-p", &port, "-t", "3", "-C", "dctcp", "-J"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("iperf3 client");
    // Meanwhile the engine runs both ends of the data connection with DCTCP
    // (without ECN: the listener did not ask for it in its SYN-ACK, as a
    // Linux iperf3 server's listener does not).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = conns(&svc)
            .into_iter()
            .filter(|r| r["cc"].as_str().is_some_and(|c| c.starts_with("dctcp")))
            .collect();
        if seen.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = finish(client, Duration::from_secs(60), "iperf3 -C dctcp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        seen.len() >= 2,
        "the engine never ran both ends with DCTCP: {seen:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    assert_eq!(v["end"]["sender_tcp_congestion"], "dctcp", "{v}");
    assert_eq!(v["end"]["receiver_tcp_congestion"], "dctcp", "{v}");
    assert!(v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0) > 0.0);
    // An algorithm the engine does not have is refused (ENOENT), as Linux
    // refuses one it does not have: iperf3 reports it and exits.
    let out = run_ok_or_fail(
        under(
            &run,
            &svc,
            "iperf3",
            &["-4", "-c", &ip, "-p", &port, "-t", "1", "-C", "cubic", "-J"],
        ),
        "iperf3 -C cubic",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    // (iperf3 prints its own message for any setsockopt failure; the
    // preload's unit tests check the errno is ENOENT.)
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("TCP_CONGESTION") && e.contains("not supported")),
        "iperf3 -C cubic: {v}"
    );
}

/// `iperf3 --fq-rate` sets SO_MAX_PACING_RATE on its data socket: under
/// flextoe-run the DPU's flow scheduler paces the connection at that rate
/// (never above it; the goodput is the cap less the headers, about 0.956
/// of it, when the worker is not preempted), and
/// `iperf3 -C timely` runs its data connection with TIMELY, paced.
#[test]
fn iperf3_fq_rate_and_timely_pace_the_engine_connection() {
    let Some(run) = runner() else { return };
    if !need(&["iperf3"]) {
        return;
    }
    let Some(svc) = Service::start("preload-iperf-pace", 1) else {
        return;
    };
    let ip = svc.ip.to_string();
    let port = engine_port(70).to_string();
    let _srv = spawn_server(
        under(&run, &svc, "iperf3", &["-s", "-4", "-p", &port]),
        "iperf3 -s",
    );
    wait_listening(&run, &svc, svc.ip, port.parse().unwrap());
    const CAP_BITS: u64 = 200_000_000;
    let client = under(
        &run,
        &svc,
        "iperf3",
        &[
            "-4",
            "-c",
            &ip,
            "-p",
            &port,
            "-t",
            "3",
            "--fq-rate",
            "200M",
            "-J",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("iperf3 client");
    // The engine shows the cap on the client's data connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut paced = Vec::new();
    while Instant::now() < deadline && paced.is_empty() {
        paced = conns(&svc)
            .into_iter()
            .filter(|r| r["pacing_rate_bps"].as_u64() == Some(CAP_BITS))
            .collect();
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = finish(client, Duration::from_secs(60), "iperf3 --fq-rate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!paced.is_empty(), "no connection paced at {CAP_BITS} bit/s");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    println!("iperf3 --fq-rate 200M: {:.1} Mbit/s received", bps / 1e6);
    // Frames are paced at the cap: payload is 1448 of every 1514 bytes, so
    // 191 Mbit/s when the worker keeps every slot (190.1-190.3 measured
    // alone). This file's tests run in parallel on 2 cores: a preempted
    // worker misses slots (a late pacer catches up one segment, not the
    // lost time; 150 Mbit/s was seen in CI). Never above the cap is exact;
    // the rate within 5% is checked where nothing else runs
    // (`linux_interop::max_pacing_rate_from_libtoe_seen_in_a_linux_capture`).
    let cap = CAP_BITS as f64;
    assert!(
        bps <= cap * 1.02 && bps >= cap * 0.5,
        "{:.1} Mbit/s against a cap of 200",
        bps / 1e6
    );
    // TIMELY chosen by the application, paced by the engine.
    let client = under(
        &run,
        &svc,
        "iperf3",
        &[
            "-4", "-c", &ip, "-p", &port, "-t", "2", "-C", "timely", "-J",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("iperf3 client");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut timely = Vec::new();
    while Instant::now() < deadline && timely.len() < 2 {
        timely = conns(&svc)
            .into_iter()
            .filter(|r| r["cc"] == "timely" && r["pacing_rate_bps"].as_u64().is_some())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = finish(client, Duration::from_secs(60), "iperf3 -C timely");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        timely.len() >= 2,
        "the engine never ran both ends with TIMELY: {timely:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    assert_eq!(v["end"]["sender_tcp_congestion"], "timely", "{v}");
    assert!(v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0) > 0.0);
    println!(
        "iperf3 -C timely: {:.1} Mbit/s received",
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
}

/// Runs `c` to completion (bounded), whatever its exit status.
fn run_ok_or_fail(mut c: Command, what: &str) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    finish(child, Duration::from_secs(60), what)
}

/// Issue 15: the service dying under a running application. A read
/// blocked on an offloaded socket fails with ECONNRESET and a write then
/// fails with EPIPE (never a hang), and a service started again at the
/// same control socket serves new applications without anything else
/// being restarted.
#[test]
fn service_dying_fails_blocked_calls_and_a_new_one_serves() {
    let Some(run) = runner() else { return };
    if !need(&["python3"]) {
        return;
    }
    let Some(mut svc) = Service::start("preload-svcdeath", 1) else {
        return;
    };
    // Talks to the service's echo (port 7), then blocks in recv.
    let code = r#"import errno, socket, sys
s = socket.create_connection((sys.argv[1], 7), timeout=10)
s.settimeout(None)
s.sendall(b"hi")
assert s.recv(2) == b"hi"
print("echo ok", flush=True)
for what, call in (("recv", lambda: s.recv(1)), ("send", lambda: s.send(b"x"))):
    try:
        print(what, "returned", call(), flush=True)
    except OSError as e:
        print(what, "failed:", errno.errorcode.get(e.errno), flush=True)
"#;
    let ip = svc.ip.to_string();
    let mut client = under(&run, &svc, "python3", &["-c", code, &ip])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let mut out = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "echo ok");
    // The client is (about to be) blocked in recv: the service dies.
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    let died = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let _ = tx.send((rest, client.wait()));
    });
    let (rest, status) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the application hung after the service died");
    println!("after the service died ({:?}):\n{rest}", died.elapsed());
    assert!(status.unwrap().success());
    assert_eq!(
        rest.lines().collect::<Vec<_>>(),
        ["recv failed: ECONNRESET", "send failed: EPIPE"]
    );
    drop(svc);
    // A new service at the same control socket serves a new application.
    let Some(svc) = Service::start("preload-svcdeath", 1) else {
        return;
    };
    let again = r#"import socket, sys
s = socket.create_connection((sys.argv[1], 7), timeout=10)
s.sendall(b"again")
print(s.recv(5).decode())
"#;
    let out = run_ok(
        under(&run, &svc, "python3", &["-c", again, &ip]),
        Duration::from_secs(30),
        "a client of the new service",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "again");
}
