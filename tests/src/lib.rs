//! Helpers shared by the integration tests in `tests/`.

pub mod hostif;
pub mod preload;
pub mod programs;
pub mod rig;

/// Reports why a test cannot run here and lets it return early. Under
/// `FLEXTOE_REQUIRE_ALL=1` (set by scripts/test.sh as root, which installs
/// and builds everything) a skip is a failure instead: CI must run every
/// test. Otherwise the reason is also appended to `FLEXTOE_SKIP_LOG`, which
/// scripts/test.sh prints in its final summary (the test harness hides a
/// passing test's output).
pub fn skip(why: impl std::fmt::Display) {
    if std::env::var_os("FLEXTOE_REQUIRE_ALL").is_some_and(|v| v != "0") {
        panic!("this test must run here (FLEXTOE_REQUIRE_ALL): {why}");
    }
    eprintln!("SKIP: {why}");
    log_skip(&why.to_string());
}

/// Appends one line to the file named by `FLEXTOE_SKIP_LOG`, if set.
fn log_skip(why: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("FLEXTOE_SKIP_LOG") else {
        return;
    };
    let line = format!("{}\n", why.replace('\n', " "));
    // One write of a short line in append mode: lines from tests running in
    // parallel do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("SKIP log {}: {e}", std::path::Path::new(&path).display());
    }
}

use std::process::{Command, Output};

/// Runs a command (`args[0]` with the rest as arguments); its output, or an
/// error naming the command, its status, stdout and stderr.
pub fn run(args: &[&str]) -> Result<Output, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
