//! Host-shim example programs as child processes of a test: started
//! against a [`Service`], waited for with a deadline, their ready line and
//! their JSON result line read.

use crate::hostif::{example, Service};
use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The four host-shim examples (echo_server, rpc_client, bulk_send,
/// bulk_recv), or `None` (a skip) if they were not built.
pub fn examples() -> Option<[std::path::PathBuf; 4]> {
    let all = ["echo_server", "rpc_client", "bulk_send", "bulk_recv"].map(example);
    if all.iter().any(Option::is_none) {
        crate::skip("host-shim examples not built (cargo build --release -p host-shim --examples)");
        return None;
    }
    Some(all.map(Option::unwrap))
}

/// Starts `bin` as an application of `svc`, its output piped.
pub fn spawn(svc: &Service, bin: &std::path::Path, args: &[&str]) -> Child {
    Command::new(bin)
        .args(args)
        .env("FLEXTOE_CONTROL", &svc.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn example")
}

/// Waits for a child with a deadline; kills it on timeout.
pub fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "timed out after {limit:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last JSON line a program printed on stdout.
pub fn json_line(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON line in: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).expect("JSON")
}

/// Reads `pipe` byte by byte (nothing past the line is taken from it) until
/// a line containing `marker`; false at EOF.
pub fn wait_line(pipe: &mut impl std::io::Read, marker: &str) -> bool {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match pipe.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => {
                if String::from_utf8_lossy(&line).contains(marker) {
                    return true;
                }
                line.clear();
            }
            Ok(1) => line.push(byte[0]),
            _ => return false,
        }
    }
}

/// Waits (30 s at most) for the ready line a program prints on `pipe` once
/// it listens, then puts the pipe back for the test to read later.
pub fn ready_on<T: std::io::Read + Send + 'static>(pipe: &mut Option<T>) {
    let mut p = pipe.take().expect("the program's output is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ok = wait_line(&mut p, "listening");
        let _ = tx.send((ok, p));
    });
    let (ok, p) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no ready line within 30 s");
    assert!(ok, "the program ended before printing its ready line");
    *pipe = Some(p);
}

/// `echo_server` prints `{"listening":...}` on stdout once it listens.
pub fn ready_stdout(child: &mut Child) {
    ready_on(&mut child.stdout);
}

/// `bulk_recv`, the C echo and `flextoe-dpu capture` print their
/// `listening` line on stderr.
pub fn ready_stderr(child: &mut Child) {
    ready_on(&mut child.stderr);
}
