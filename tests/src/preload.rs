//! Helpers of the tests that run unmodified programs under `flextoe-run`
//! (`tests/preload.rs`, `tests/preload_fork.rs`): finding the binaries,
//! running a command under the preload against a service with a deadline,
//! servers killed on drop.

use crate::hostif::{target_dir, Service};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// flextoe-run and the library next to it, if built.
pub fn runner() -> Option<PathBuf> {
    let run = target_dir().join("flextoe-run");
    if !run.exists() || !target_dir().join("libtoe_preload.so").exists() {
        crate::skip(
            "flextoe-run/libtoe_preload.so not built (cargo build --release -p toe-preload)",
        );
        return None;
    }
    Some(run)
}

pub fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(cmd))
        .find(|p| p.exists())
}

pub fn need(cmds: &[&str]) -> bool {
    for c in cmds {
        if which(c).is_none() {
            crate::skip(format!("{c} not installed (scripts/setup.sh installs it)"));
            return false;
        }
    }
    true
}

/// A port for the engine (each test has its own service, so any port).
pub fn engine_port(salt: u16) -> u16 {
    20000 + (std::process::id() as u16 % 5000) + salt
}

/// `flextoe-run --control SOCK -- cmd args`.
pub fn under(run: &Path, svc: &Service, cmd: &str, args: &[&str]) -> Command {
    let mut c = Command::new(run);
    c.arg("--control")
        .arg(&svc.socket)
        .arg("--")
        .arg(cmd)
        .args(args);
    c
}

/// Runs to completion with a deadline (killed and failed on timeout). The
/// output is collected while the child runs (a full pipe would block it).
pub fn finish(child: Child, limit: Duration, what: &str) -> Output {
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv().expect("child output").expect("output");
            let text = String::from_utf8_lossy(&out.stdout);
            let tail = &text[text.len().saturating_sub(2000)..];
            panic!(
                "{what}: timed out after {limit:?}: ...{tail}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

pub fn run_ok(mut c: Command, limit: Duration, what: &str) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let out = finish(child, limit, what);
    assert!(
        out.status.success(),
        "{what} failed: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A server process killed on drop.
#[derive(Debug)]
pub struct Server(pub Child, pub &'static str);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        if let Ok(out) =
            std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap()).wait_with_output()
        {
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.trim().is_empty() {
                eprintln!("{} stderr: {err}", self.1);
            }
        }
    }
}

pub fn spawn_server(mut c: Command, name: &'static str) -> Server {
    Server(
        c.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}")),
        name,
    )
}

/// Waits until a TCP connection to ip:port through the engine succeeds
/// (probing with a client under flextoe-run).
pub fn wait_listening(run: &Path, svc: &Service, ip: Ipv4Addr, port: u16) {
    let probe = format!(
        "import socket,time,sys\nfor i in range(200):\n  try:\n    socket.create_connection(('{ip}',{port}),timeout=2).close(); sys.exit(0)\n  except OSError:\n    time.sleep(0.05)\nsys.exit(1)"
    );
    run_ok(
        under(run, svc, "python3", &["-c", &probe]),
        Duration::from_secs(30),
        "listen probe",
    );
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ftoe-pl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Four consecutive free kernel ports on 127.0.0.1.
pub fn free_kernel_ports() -> u16 {
    // The tests of one binary run as threads of one process: each call
    // tries its own candidates, so two calls never both find one base free
    // before either binds it (two fork tests once shared a port that way and
    // talked to each other's servers).
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let offset = (std::process::id() % 1000) as u16;
    loop {
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(k < 1400, "no free ports");
        let base = 30000 + (k * 7 + offset) % 9990;
        if (0..4).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}
