//! The `flextoe-dpu` binary: configuration commands, exit codes, and the
//! service on the simulated backend, as a user runs them.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flextoe-dpu"))
}

fn write(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flextoe-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn default_config_round_trips_through_check_config() {
    let out = bin().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["topology"]["replicas"].is_number());
    let path = write("default.json", &json);
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_reports_every_problem_and_exits_2() {
    let path = write(
        "bad.json",
        r#"{ "topology": { "replicas": 0, "ring_sise": 64 }, "tcp": { "mss": "big" } }"#,
    );
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    // Unknown fields and type errors stop parsing before range checks; the
    // first problem names its JSON path and what is allowed.
    assert!(
        err.contains("topology.ring_sise") || err.contains("tcp.mss"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let path = write(
        "ranges.json",
        r#"{ "topology": { "replicas": 0 }, "tcp": { "mss": 20 } }"#,
    );
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("topology.replicas: 0 is out of range 1..=64"),
        "{err}"
    );
    assert!(err.contains("tcp.mss"), "{err}");
}

#[test]
fn malformed_json_gives_line_and_column() {
    let path = write(
        "broken.json",
        "{\n  \"tcp\": {\n    \"mss\": 1448,\n  }\n}\n",
    );
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("column"), "{err}");
}

#[test]
fn usage_errors_exit_2_without_a_backtrace() {
    let out = bin().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["check-config", "/nonexistent/flextoe.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("/nonexistent/flextoe.json") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn run_on_the_sim_backend_moves_verified_data_and_stops_cleanly() {
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&bin().arg("default-config").output().unwrap().stdout).unwrap();
    cfg["port"]["backend"] = "sim".into();
    // Tests run in parallel: not the default metrics port, any free one.
    cfg["metrics"]["listen"] = "127.0.0.1:0".into();
    cfg["port"]["impairment"]["rx"]["drop"] = 0.01.into();
    let path = write("sim.json", &cfg.to_string());
    let out = bin()
        .args([
            "run",
            "--duration",
            "2",
            "--connections",
            "2",
            "--bytes",
            "1048576",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("summary"), "{stdout}");
    // "verified N bytes (... MiB) in R round(s); data-path flows left: F":
    // each connection that completes a round adds its 1 MiB both ways (the
    // last round may be cut short by --duration).
    let line = stdout
        .lines()
        .find(|l| l.starts_with("verified "))
        .unwrap_or_else(|| panic!("no verified line: {stdout}"));
    let word = |i: usize| line.split_whitespace().nth(i).unwrap_or("");
    let bytes: u64 = word(1).parse().unwrap_or_else(|_| panic!("{line}"));
    let rounds: u64 = word(6).parse().unwrap_or_else(|_| panic!("{line}"));
    let per_flow = 2 * 1_048_576;
    assert!(bytes > 0 && bytes.is_multiple_of(per_flow), "{line}");
    assert!(
        (rounds - 1) * 2 * per_flow <= bytes && bytes <= rounds * 2 * per_flow,
        "{line}"
    );
    assert!(line.ends_with("flows left: 0"), "{line}");
}

#[test]
fn sigint_shuts_the_sim_service_down_cleanly() {
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&bin().arg("default-config").output().unwrap().stdout).unwrap();
    cfg["port"]["backend"] = "sim".into();
    // Tests run in parallel: not the default metrics port, any free one.
    cfg["metrics"]["listen"] = "127.0.0.1:0".into();
    let path = write("sigint.json", &cfg.to_string());
    let child = bin()
        .args([
            "run",
            "--connections",
            "1",
            "--bytes",
            "1048576",
            "--config",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SIGINT, as Ctrl-C in a terminal would send.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("summary"), "{stdout}");
}

/// The start names the placement it chose from the CPUs: always with
/// `topology.auto: true`; by default only on three CPUs or more (on two the
/// default stays one unpinned replica).
#[test]
fn the_placement_chosen_from_the_cpus_is_printed_at_start() {
    let cpus = pipeline_config::CpuSet::allowed().cpus().len();
    for (auto, expected) in [
        (
            serde_json::Value::Null,
            (cpus >= 3).then_some("the default placement on CPUs"),
        ),
        (true.into(), Some("topology.auto on CPUs")),
        (false.into(), None),
    ] {
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&bin().arg("default-config").output().unwrap().stdout).unwrap();
        cfg["port"]["backend"] = "sim".into();
        cfg["metrics"]["listen"] = "127.0.0.1:0".into();
        cfg["topology"]["auto"] = auto.clone();
        let path = write(&format!("placement-{auto}.json"), &cfg.to_string());
        let out = bin()
            .args(["run", "--duration", "0.5", "--connections", "1", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        match expected {
            Some(line) => assert!(stdout.contains(line), "auto {auto}: {stdout}"),
            None => assert!(!stdout.contains(" on CPUs "), "auto {auto}: {stdout}"),
        }
    }
}
