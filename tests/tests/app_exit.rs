//! Applications that end without closing their connections (issue 12), on
//! the loopback backend: what they wrote is delivered, then a FIN, exactly
//! as Linux does at process exit; a reset only where Linux sends one
//! (unread received data, SO_LINGER 0). The same Python programs
//! (scripts/exit_peer.py) run under `flextoe-run` and on Linux TCP, and the
//! two results are compared; libtoe programs (the host-shim examples) end
//! the same way.

use flextoe_tests::hostif::{example, target_dir, Service};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn exit_peer() -> String {
    repo().join("scripts/exit_peer.py").display().to_string()
}

/// flextoe-run (with its library) and the libtoe examples, if built.
fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let run = target_dir().join("flextoe-run");
    let (send, echo) = (example("bulk_send"), example("echo_server"));
    match (
        run.exists() && target_dir().join("libtoe_preload.so").exists(),
        send,
        echo,
    ) {
        (true, Some(send), Some(echo)) => Some((run, send, echo)),
        _ => {
            flextoe_tests::skip(
                "flextoe-run or the host-shim examples not built (scripts/test.sh builds them)",
            );
            None
        }
    }
}

/// A child whose stdout lines arrive on a channel as it prints them.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
            what: what.to_owned(),
        }
    }

    /// Waits for a line containing `marker` (the program's ready or done
    /// line); fails after `limit`.
    fn wait_for(&mut self, marker: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(marker) => {
                    self.seen.push(l.clone());
                    return l;
                }
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "{}: no line with {marker:?} in {limit:?} (got {:?})",
                        self.what, self.seen
                    );
                }
            }
        }
    }

    /// Waits for the last JSON line and the exit.
    fn result(mut self, limit: Duration) -> Value {
        let line = self.wait_for("{", limit);
        let deadline = Instant::now() + limit;
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}: {line}", self.what))
    }

    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a program runs: on the engine under `flextoe-run`, or on Linux.
#[derive(Clone, Copy)]
enum Stack<'a> {
    Engine(&'a Path, &'a Service),
    Linux,
}

impl Stack<'_> {
    fn python(&self, args: &[&str]) -> Command {
        let mut c = match self {
            Stack::Engine(run, svc) => {
                let mut c = Command::new(run);
                c.arg("--control").arg(&svc.socket).arg("--").arg("python3");
                c
            }
            Stack::Linux => Command::new("python3"),
        };
        c.arg(exit_peer()).args(args);
        c
    }

    fn host(&self) -> String {
        match self {
            Stack::Engine(_, svc) => svc.ip.to_string(),
            Stack::Linux => "127.0.0.1".to_owned(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Stack::Engine(..) => "engine",
            Stack::Linux => "linux",
        }
    }
}

/// A port of its own for every run (an exited listener's port is freed
/// asynchronously), below Linux's ephemeral range (32768-60999): a port in
/// it can be some loopback connection's local port, or the reader's own, and
/// a connect to its own port on Linux connects to itself. The earlier
/// formula reached 59,799 and a Linux run once saw neither data nor EOF.
fn port(test: u16, run: u16) -> u16 {
    10000 + (std::process::id() % 20) as u16 * 1000 + test * 100 + run
}

/// One run: a Python writer (`write --end <end>`) listening, a Python
/// reader connecting; the reader's result.
fn python_pair(stack: Stack, port: u16, end: &str, extra: &[&str]) -> (Value, Value) {
    let p = port.to_string();
    let mut args = vec!["write", "--listen", &p, "--end", end, "--bytes", "1048576"];
    args.extend_from_slice(extra);
    let mut w = Proc::spawn(stack.python(&args), &format!("{} writer", stack.name()));
    w.wait_for("listening", Duration::from_secs(20));
    let to = format!("{}:{port}", stack.host());
    let r = Proc::spawn(
        stack.python(&["read", "--connect", &to]),
        &format!("{} reader", stack.name()),
    );
    let sent = w.wait_for("sha256", Duration::from_secs(30));
    let got = r.result(Duration::from_secs(60));
    (serde_json::from_str(&sent).expect("writer JSON"), got)
}

#[test]
fn exit_without_close_delivers_everything_then_eof() {
    let (Some(svc), Some((run, send, _))) = (Service::start("exit-nc", 2), tools()) else {
        return;
    };
    let engine = Stack::Engine(&run, &svc);
    // Linux first, as the reference: every byte, then EOF.
    let (sent, got) = python_pair(Stack::Linux, port(0, 0), "exit", &[]);
    assert_eq!(
        (got["bytes"].as_u64(), got["end"].as_str()),
        (Some(MIB), Some("eof")),
        "{got}"
    );
    assert_eq!(got["sha256"], sent["sha256"]);
    // Under flextoe-run, 20 runs.
    for i in 0..20 {
        let (sent, got) = python_pair(engine, port(1, i), "exit", &[]);
        assert_eq!(
            (got["bytes"].as_u64(), got["end"].as_str()),
            (Some(MIB), Some("eof")),
            "preload run {i}: {got}"
        );
        assert_eq!(got["sha256"], sent["sha256"], "preload run {i}");
    }
    // A libtoe writer (bulk_send --end exit) to a reader under flextoe-run,
    // 20 runs.
    for i in 0..20 {
        let p = port(2, i).to_string();
        let mut r = Proc::spawn(engine.python(&["read", "--listen", &p]), "reader");
        r.wait_for("listening", Duration::from_secs(20));
        let to = format!("{}:{p}", svc.ip);
        let mut cmd = Command::new(&send);
        cmd.args(["--connect", &to, "--mib", "1", "--end", "exit"])
            .env("FLEXTOE_CONTROL", &svc.socket);
        let sent = Proc::spawn(cmd, "bulk_send").result(Duration::from_secs(30));
        let got = r.result(Duration::from_secs(60));
        assert_eq!(
            (got["bytes"].as_u64(), got["end"].as_str()),
            (Some(MIB), Some("eof")),
            "libtoe run {i}: {got}"
        );
        assert_eq!(got["sha256"], sent["sha256"], "libtoe run {i}");
    }
}

#[test]
fn sigkill_after_the_last_write_delivers_then_eof() {
    let (Some(svc), Some((run, send, _))) = (Service::start("exit-kill", 2), tools()) else {
        return;
    };
    let engine = Stack::Engine(&run, &svc);
    // Killed by the test right after its last write: Python on Linux (the
    // reference), Python under flextoe-run, and libtoe.
    for (i, stack, libtoe) in [
        (0u16, Stack::Linux, false),
        (1, engine, false),
        (2, engine, true),
    ] {
        let p = port(3, i).to_string();
        let mut r = Proc::spawn(stack.python(&["read", "--listen", &p]), "reader");
        r.wait_for("listening", Duration::from_secs(20));
        let to = format!("{}:{p}", stack.host());
        let mut w = if libtoe {
            let mut cmd = Command::new(&send);
            cmd.args(["--connect", &to, "--mib", "8", "--end", "wait-kill"])
                .env("FLEXTOE_CONTROL", &svc.socket);
            Proc::spawn(cmd, "bulk_send")
        } else {
            let args = [
                "write",
                "--connect",
                &to,
                "--end",
                "kill",
                "--bytes",
                "8388608",
            ];
            Proc::spawn(stack.python(&args), "python writer")
        };
        let line = w.wait_for("sha256", Duration::from_secs(30));
        w.sigkill();
        let sent: Value = serde_json::from_str(&line).expect("writer JSON");
        let got = r.result(Duration::from_secs(60));
        assert_eq!(
            (got["bytes"].as_u64(), got["end"].as_str()),
            (Some(8 * MIB), Some("eof")),
            "{} libtoe {libtoe}: {got}",
            stack.name()
        );
        assert_eq!(
            got["sha256"],
            sent["sha256"],
            "{} libtoe {libtoe}",
            stack.name()
        );
    }
}

#[test]
fn unread_data_or_linger_zero_at_exit_resets_as_on_linux() {
    let (Some(svc), Some((run, _, _))) = (Service::start("exit-rst", 2), tools()) else {
        return;
    };
    let engine = Stack::Engine(&run, &svc);
    for (k, stack) in [Stack::Linux, engine].into_iter().enumerate() {
        // Exit with unread received data: the peer gets a RST.
        let p = port(4, k as u16).to_string();
        let mut u = Proc::spawn(stack.python(&["unread", "--listen", &p]), "unread");
        u.wait_for("listening", Duration::from_secs(20));
        let to = format!("{}:{p}", stack.host());
        let got = Proc::spawn(
            stack.python(&["read", "--connect", &to, "--send", "1000"]),
            "reader",
        )
        .result(Duration::from_secs(60));
        u.wait_for("unread", Duration::from_secs(10));
        assert_eq!(got["end"], "reset", "{} unread: {got}", stack.name());
        // SO_LINGER {1, 0} then exit: a RST instead of the rest and a FIN
        // (the reader may have some of the data by then).
        let (_, got) = python_pair(stack, port(5, k as u16), "exit", &["--linger0"]);
        assert_eq!(got["end"], "reset", "{} linger 0: {got}", stack.name());
    }
}

/// The service's resident memory must come back after many exits: each
/// exited application's region stays mapped only until its connections
/// have finished.
#[test]
fn echo_server_exiting_at_its_last_byte_50_runs_then_memory_back() {
    let (Some(svc), Some((run, _, echo))) = (Service::start("exit-echo", 2), tools()) else {
        return;
    };
    let engine = Stack::Engine(&run, &svc);
    let bytes = 4 * MIB;
    let one = |i: u16| {
        let p = port(6, i);
        let mut cmd = Command::new(&echo);
        cmd.args(["--listen", &format!("0.0.0.0:{p}"), "--exit-at-bytes"])
            .arg(bytes.to_string())
            .env("FLEXTOE_CONTROL", &svc.socket);
        let mut server = Proc::spawn(cmd, "echo_server");
        server.wait_for("listening", Duration::from_secs(20));
        let to = format!("{}:{p}", svc.ip);
        let got = Proc::spawn(
            engine.python(&["read", "--connect", &to, "--send", &bytes.to_string()]),
            "echo client",
        )
        .result(Duration::from_secs(60));
        assert_eq!(
            (got["bytes"].as_u64(), got["end"].as_str()),
            (Some(bytes), Some("eof")),
            "run {i}: {got}"
        );
        assert_eq!(got["sha256"], got["sent_sha256"], "run {i}: echo intact");
    };
    one(0);
    let (ok, base) = svc.wait_stat(Duration::from_secs(20), |s| {
        s["app_conns"] == 0 && s["hostif"]["apps_active"] == 0
    });
    assert!(ok, "{base}");
    let base_rss = svc.rss_kib();
    for i in 1..=50 {
        one(i);
    }
    // 50 more exits of a libtoe writer that never closes.
    let send = example("bulk_send").expect("bulk_send");
    for i in 0..50 {
        let p = port(7, i).to_string();
        let mut r = Proc::spawn(engine.python(&["read", "--listen", &p]), "reader");
        r.wait_for("listening", Duration::from_secs(20));
        let mut cmd = Command::new(&send);
        cmd.args(["--connect", &format!("{}:{p}", svc.ip), "--mib", "1"])
            .args(["--end", "exit"])
            .env("FLEXTOE_CONTROL", &svc.socket);
        Proc::spawn(cmd, "bulk_send").result(Duration::from_secs(30));
        let got = r.result(Duration::from_secs(60));
        assert_eq!(got["end"], "eof", "libtoe exit {i}: {got}");
    }
    let (ok, after) = svc.wait_stat(Duration::from_secs(30), |s| {
        s["app_conns"] == 0 && s["flows"] == base["flows"] && s["hostif"]["apps_active"] == 0
    });
    assert!(ok, "tables back to baseline: {after}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rss = svc.rss_kib();
    while rss > base_rss + 8 * 1024 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        rss = svc.rss_kib();
    }
    println!("service RSS: baseline {base_rss} KiB, after 100 exits {rss} KiB");
    assert!(
        rss <= base_rss + 8 * 1024,
        "RSS back within 8 MiB: {base_rss} -> {rss} KiB"
    );
}
