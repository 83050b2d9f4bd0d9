//! Helpers shared by the integration tests in `tests/`.

pub mod hostif;

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
