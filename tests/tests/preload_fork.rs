//! Sockets shared across `fork()` under `flextoe-run`, as on Linux: a
//! conformance program (identical output on the kernel and on the engine),
//! a forking Python server (one process per connection), nginx with its
//! master process and two workers sharing the listener, and redis forking
//! its BGSAVE child during a benchmark. Each test skips (printing why) when
//! a binary is missing.

use flextoe_tests::hostif::Service;
use flextoe_tests::preload::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn sha256_hex(d: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cmd(prog: &str, args: &[&str]) -> Command {
    let mut c = Command::new(prog);
    c.args(args);
    c
}

/// Every process of the test gone: no application, context or connection
/// left in the service (the children's exits gave back what they held).
fn wait_drained(svc: &Service) {
    let left = |s: &serde_json::Value| {
        let h = &s["hostif"];
        [
            h["apps_active"].as_u64(),
            h["contexts"].as_u64(),
            s["app_conns"].as_u64(),
        ]
    };
    let (ok, s) = svc.wait_stat(Duration::from_secs(30), |s| {
        left(s) == [Some(0), Some(0), Some(0)]
    });
    assert!(
        ok,
        "left in the service (apps, contexts, connections): {:?}",
        left(&s)
    );
}

/// Compiles the conformance program `file` (host-shim/preload/tests), runs
/// it on the kernel and under flextoe-run, and checks the outputs are
/// identical and complete, the preload said nothing, and the service was
/// left with nothing.
fn conformance(file: &str) {
    let Some(run) = runner() else { return };
    if !need(&["cc"]) {
        return;
    }
    let name = file.trim_end_matches(".c");
    let dir = tmpdir(name);
    let bin = dir.join(name);
    let src = repo().join("host-shim/preload/tests").join(file);
    run_ok(
        {
            let mut c = Command::new("cc");
            c.args(["-O1", "-Wall", "-o"]).arg(&bin).arg(&src);
            c
        },
        Duration::from_secs(60),
        &format!("cc {file}"),
    );
    let kport = free_kernel_ports();
    let kernel = run_ok(
        cmd(bin.to_str().unwrap(), &["127.0.0.1", &kport.to_string()]),
        Duration::from_secs(60),
        &format!("{name} (kernel)"),
    );
    let Some(svc) = Service::start(&format!("preload-{name}"), 1) else {
        return;
    };
    let toe = run_ok(
        under(
            &run,
            &svc,
            bin.to_str().unwrap(),
            &[&svc.ip.to_string(), &engine_port(0).to_string()],
        ),
        Duration::from_secs(60),
        &format!("{name} (flextoe-run)"),
    );
    let (k, e) = (
        String::from_utf8_lossy(&kernel.stdout),
        String::from_utf8_lossy(&toe.stdout),
    );
    println!("kernel:\n{k}\nengine:\n{e}");
    assert!(k.trim_end().ends_with("done"), "kernel run incomplete");
    assert_eq!(k, e, "output differs between the kernel and the engine");
    assert!(
        !String::from_utf8_lossy(&toe.stderr).contains("libtoe_preload"),
        "preload warned: {}",
        String::from_utf8_lossy(&toe.stderr)
    );
    wait_drained(&svc);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fork_conformance_identical_on_kernel_and_engine() {
    conformance("fork_conformance.c");
}

/// Sockets across exec: an inetd-style child serving its stdin/stdout
/// after execl, a CLOEXEC socket closed in the exec'd program and kept by
/// the parent (execlp), and a process that execve's itself with a listener
/// and both ends of a connection holding unread data.
#[test]
fn exec_conformance_identical_on_kernel_and_engine() {
    conformance("exec_conformance.c");
}

#[test]
fn forking_python_server_echoes_50_concurrent_clients() {
    let Some(run) = runner() else { return };
    if !need(&["python3"]) {
        return;
    }
    let script = repo().join("scripts/fork_echo.py");
    let script = script.to_str().unwrap();
    let clients = |ip: &str, port: u16, c: Command| {
        let _ = (ip, port);
        run_ok(c, Duration::from_secs(120), "fork_echo clients")
    };
    // Linux first.
    let kport = free_kernel_ports();
    let ks = kport.to_string();
    let _kernel_server = spawn_server(
        cmd("python3", &[script, "server", "127.0.0.1", &ks]),
        "fork_echo server (kernel)",
    );
    let probe = format!(
        "import socket,time,sys\nfor i in range(200):\n  try:\n    socket.create_connection(('127.0.0.1',{kport}),timeout=2).close(); sys.exit(0)\n  except OSError:\n    time.sleep(0.05)\nsys.exit(1)"
    );
    run_ok(
        cmd("python3", &["-c", &probe]),
        Duration::from_secs(30),
        "probe",
    );
    let kernel = clients(
        "127.0.0.1",
        kport,
        cmd(
            "python3",
            &[script, "clients", "127.0.0.1", &ks, "50", "65536"],
        ),
    );
    let Some(svc) = Service::start("preload-forkecho", 1) else {
        return;
    };
    let ip = svc.ip.to_string();
    let port = engine_port(10);
    let ps = port.to_string();
    let server = spawn_server(
        under(&run, &svc, "python3", &[script, "server", &ip, &ps]),
        "fork_echo server (engine)",
    );
    wait_listening(&run, &svc, svc.ip, port);
    let t = Instant::now();
    let engine = clients(
        &ip,
        port,
        under(
            &run,
            &svc,
            "python3",
            &[script, "clients", &ip, &ps, "50", "65536"],
        ),
    );
    let (k, e) = (
        String::from_utf8_lossy(&kernel.stdout),
        String::from_utf8_lossy(&engine.stdout),
    );
    println!(
        "engine ({:?}): {}",
        t.elapsed(),
        e.lines().last().unwrap_or("")
    );
    assert!(k.contains("50 of 50 clients echoed"), "kernel run: {k}");
    assert_eq!(k, e, "output differs between the kernel and the engine");
    drop(server);
    wait_drained(&svc);
}

/// Where a program of a test runs: on the kernel (127.0.0.1), or under
/// flextoe-run with the service (its IP).
#[derive(Clone, Copy)]
enum Stack<'a> {
    Kernel,
    Toe { run: &'a Path, svc: &'a Service },
}

impl Stack<'_> {
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        match self {
            Stack::Kernel => cmd(prog, args),
            Stack::Toe { run, svc } => under(run, svc, prog, args),
        }
    }

    fn ip(&self) -> Ipv4Addr {
        match self {
            Stack::Kernel => Ipv4Addr::LOCALHOST,
            Stack::Toe { svc, .. } => svc.ip,
        }
    }

    fn port(&self, salt: u16) -> u16 {
        match self {
            Stack::Kernel => free_kernel_ports(),
            Stack::Toe { .. } => engine_port(salt),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Stack::Kernel => "kernel",
            Stack::Toe { .. } => "flextoe-run",
        }
    }

    /// Waits until ip:port accepts a connection on this stack.
    fn wait_listening(&self, ip: Ipv4Addr, port: u16) {
        let probe = format!(
            "import socket,time,sys\nfor i in range(200):\n  try:\n    socket.create_connection(('{ip}',{port}),timeout=2).close(); sys.exit(0)\n  except OSError:\n    time.sleep(0.05)\nsys.exit(1)"
        );
        run_ok(
            self.cmd("python3", &["-c", &probe]),
            Duration::from_secs(30),
            "listen probe",
        );
    }

    /// Every process gone: nothing left in the service.
    fn drained(&self) {
        if let Stack::Toe { svc, .. } = self {
            wait_drained(svc);
        }
    }
}

/// nginx's default process model: the master opens the listener and
/// forks two workers, which all accept on it; 200 parallel downloads of
/// 1 MiB. Returns what is compared between the stacks, and the requests
/// each worker served.
fn nginx_workers(stack: Stack) -> (String, BTreeMap<String, usize>) {
    let name = stack.name();
    let dir = tmpdir(&format!("nginx-workers-{name}"));
    let www = dir.join("www");
    let out = dir.join("out");
    for d in [&www, &out, &dir.join("tmp")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut body = vec![0u8; 1 << 20];
    let mut x: u64 = 0x2545F4914F6CDD1D;
    for chunk in body.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(www.join("f.bin"), &body).unwrap();
    let port = stack.port(20);
    let ip = stack.ip();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; use epoll; }}\n\
         http {{\n log_format p '$pid $status $body_bytes_sent';\n access_log {d}/access.log p;\n sendfile on;\n\
         client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
         server {{ listen {ip}:{port}; root {www}; }}\n}}\n",
        www = www.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let server = spawn_server(
        stack.cmd(
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
    stack.wait_listening(ip, port);
    let url = format!("http://{ip}:{port}/f.bin");
    let files: Vec<String> = (0..200)
        .map(|i| out.join(format!("{i}.bin")).display().to_string())
        .collect();
    let mut args = vec!["-sS", "--fail", "-Z", "--parallel-max", "200"];
    for f in &files {
        args.extend(["-o", f.as_str(), url.as_str()]);
    }
    let t = Instant::now();
    run_ok(
        stack.cmd("curl", &args),
        Duration::from_secs(180),
        "curl -Z (200 downloads)",
    );
    println!("{name}: 200 x 1 MiB in {:?}", t.elapsed());
    let want = sha256_hex(&body);
    let intact = files
        .iter()
        .filter(|f| sha256_hex(&std::fs::read(f).unwrap_or_default()) == want)
        .count();
    // The log's first field is the worker's pid.
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(" 200 ")) {
        *by_worker
            .entry(line.split(' ').next().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    println!("{name}: requests per worker: {by_worker:?}");
    // SIGTERM: the master stops its workers (SIGKILL would orphan them).
    let mut server = server;
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(server.0.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(server);
    stack.drained();
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{intact} of 200 downloads intact; {} requests logged by the workers",
        by_worker.values().sum::<usize>()
    );
    (said, by_worker)
}

#[test]
fn nginx_master_and_two_workers_serve_200_parallel_downloads() {
    let Some(run) = runner() else { return };
    if !need(&["nginx", "curl"]) {
        return;
    }
    let (kernel, _) = nginx_workers(Stack::Kernel);
    let Some(svc) = Service::start("preload-nginx-workers", 1) else {
        return;
    };
    let (toe, by_worker) = nginx_workers(Stack::Toe {
        run: &run,
        svc: &svc,
    });
    assert_eq!(toe, kernel, "the same checks on both stacks");
    assert_eq!(
        kernel,
        "200 of 200 downloads intact; 200 requests logged by the workers"
    );
    assert_eq!(by_worker.len(), 2, "both workers accepted: {by_worker:?}");
}

/// redis forks a BGSAVE child 20 times during a benchmark; a long-lived
/// client that the children inherit must see every reply. Returns what is
/// compared between the stacks.
fn redis_bgsave(stack: Stack) -> String {
    let name = stack.name();
    let dir = tmpdir(&format!("redis-bgsave-{name}"));
    let port = stack.port(30).to_string();
    let ip = stack.ip().to_string();
    let log = dir.join("redis.log");
    let server = spawn_server(
        stack.cmd(
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
                log.to_str().unwrap(),
            ],
        ),
        "redis-server",
    );
    stack.wait_listening(stack.ip(), port.parse().unwrap());
    let cli = |args: &[&str]| {
        let mut a = vec!["-h", ip.as_str(), "-p", port.as_str()];
        a.extend_from_slice(args);
        let out = run_ok(
            stack.cmd("redis-cli", &a),
            Duration::from_secs(30),
            "redis-cli",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let watcher = format!(
        "import socket,sys\n\
         s=socket.create_connection(('{ip}',{port}))\n\
         f=s.makefile('rwb')\n\
         ok=0\n\
         for i in range(400):\n\
         \x20 f.write(b'*3\\r\\n$3\\r\\nSET\\r\\n$4\\r\\nw%03d\\r\\n$1\\r\\nx\\r\\n' % (i%1000)); f.flush()\n\
         \x20 ok += f.readline()==b'+OK\\r\\n'\n\
         print(ok)"
    );
    let watcher = stack
        .cmd("python3", &["-c", &watcher])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::thread::scope(|scope| {
        let saver = scope.spawn(|| {
            let mut started = 0;
            for _ in 0..20 {
                let out = stack
                    .cmd("redis-cli", &["-h", &ip, "-p", &port, "BGSAVE"])
                    .output()
                    .expect("redis-cli BGSAVE");
                started += usize::from(String::from_utf8_lossy(&out.stdout).contains("started"));
                std::thread::sleep(Duration::from_millis(50));
            }
            started
        });
        let bench = run_ok(
            stack.cmd(
                "redis-benchmark",
                &[
                    "-h", &ip, "-p", &port, "-n", "40000", "-c", "20", "-t", "set,get", "-q",
                ],
            ),
            Duration::from_secs(120),
            "redis-benchmark",
        );
        let text = String::from_utf8_lossy(&bench.stdout).into_owned();
        println!(
            "{name}: {}",
            text.lines()
                .filter(|l| l.contains("requests per second"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        assert!(
            text.matches("requests per second").count() == 2,
            "{name}: both benchmark runs completed: {text}"
        );
        assert!(
            !text.to_lowercase().contains("error"),
            "{name}: the benchmark saw an error: {text}"
        );
        saver.join().unwrap()
    });
    let watched = finish(watcher, Duration::from_secs(60), "long-lived client");
    // Wait for the last child to finish, then check that forks happened.
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = cli(&["INFO", "persistence"]);
        if info.contains("rdb_bgsave_in_progress:0") || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let saves: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("rdb_saves:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    println!("{name}: BGSAVE started {started} times, {saves} saves completed");
    let stats = cli(&["INFO", "stats"]);
    drop(server);
    stack.drained();
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "benchmark: 2 runs, no error; replies on the inherited connection: {}; at least 5 BGSAVEs started and completed: {}; last BGSAVE ok: {}; rejected_connections 0: {}",
        String::from_utf8_lossy(&watched.stdout).trim(),
        started >= 5 && saves >= 5,
        info.contains("rdb_last_bgsave_status:ok"),
        stats.contains("rejected_connections:0"),
    )
}

#[test]
fn redis_bgsave_children_during_a_benchmark_drop_nothing() {
    let Some(run) = runner() else { return };
    if !need(&["redis-server", "redis-cli", "redis-benchmark"]) {
        return;
    }
    let kernel = redis_bgsave(Stack::Kernel);
    let Some(svc) = Service::start("preload-redis-bgsave", 1) else {
        return;
    };
    let toe = redis_bgsave(Stack::Toe {
        run: &run,
        svc: &svc,
    });
    assert_eq!(toe, kernel, "the same checks on both stacks");
    assert_eq!(
        kernel,
        "benchmark: 2 runs, no error; replies on the inherited connection: 400; at least 5 BGSAVEs started and completed: true; last BGSAVE ok: true; rejected_connections 0: true"
    );
}
