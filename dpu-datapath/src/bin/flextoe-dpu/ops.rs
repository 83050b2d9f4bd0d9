//! Operator commands that talk to a running service over its control
//! socket: `stat` (a live, top-like view computed from counter deltas) and
//! `conns` (the connection table).

use doca_bindings::control::{recv_json, send_json, ControlReply, ControlRequest};
use serde_json::Value;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Sends one request and returns the reply document.
pub fn query(path: &Path, req: &ControlRequest) -> Result<Value, String> {
    let sock = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the service at {} ({e}); is `flextoe-dpu run` running? (--control PATH)",
            path.display()
        )
    })?;
    send_json(&sock, req, &[]).map_err(|e| e.to_string())?;
    let (reply, _) = recv_json::<ControlReply>(&sock, 0)
        .map_err(|e| e.to_string())?
        .ok_or("the service closed the control socket")?;
    reply.into_result()
}

fn num(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn rate(now: &Value, before: &Value, path: &[&str], secs: f64) -> f64 {
    num(now, path).saturating_sub(num(before, path)) as f64 / secs
}

/// Renders one screen of `stat` from two documents `secs` apart.
pub fn render(now: &Value, before: &Value, secs: f64) -> String {
    let e = |k: &str| rate(now, before, &["engine", k], secs);
    let mut out = String::new();
    out += &format!(
        "engine      rx {:>10.0} pps {:>9.1} Mbit/s | tx {:>10.0} pps {:>9.1} Mbit/s\n",
        e("rx_frames"),
        e("rx_bytes") * 8.0 / 1e6,
        e("tx_frames"),
        e("tx_bytes") * 8.0 / 1e6,
    );
    out += &format!(
        "payload     rx {:>9.1} Mbit/s | tx {:>9.1} Mbit/s | retransmits {:>8.0}/s (fast {:.0}/s, timeout {:.0}/s) | drops {:>8.0}/s\n",
        e("rx_payload_bytes") * 8.0 / 1e6,
        e("tx_payload_bytes") * 8.0 / 1e6,
        e("retransmit_segments"),
        e("fast_retransmits"),
        e("timeout_retransmits"),
        e("drops_total"),
    );
    out += &format!(
        "connections app {} | flows {} | handshakes {} | time-wait {} | accepted {:.0}/s opened {:.0}/s reset {:.0}/s\n",
        num(now, &["app_conns"]),
        num(now, &["flows"]),
        num(now, &["handshakes"]),
        num(now, &["time_wait"]),
        e("connections_accepted"),
        e("connections_opened"),
        e("connections_reset"),
    );
    let h = |k: &str| rate(now, before, &["hostif", k], secs);
    out += &format!(
        "host        apps {} | requests {:.0}/s | events {:.0}/s | sleeps {:.0}/s | violations {}\n",
        num(now, &["hostif", "apps_active"]),
        h("requests"),
        h("events"),
        h("sleeps"),
        num(now, &["hostif", "violations"]),
    );
    let empty = Vec::new();
    let prev = before["workers"].as_array().unwrap_or(&empty);
    for (i, w) in now["workers"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let p = prev.get(i).unwrap_or(w);
        let busy = num(w, &["busy_polls"]).saturating_sub(num(p, &["busy_polls"]));
        let idle = num(w, &["idle_polls"]).saturating_sub(num(p, &["idle_polls"]));
        let util = if busy + idle == 0 {
            0.0
        } else {
            100.0 * busy as f64 / (busy + idle) as f64
        };
        out += &format!(
            "worker      {:<24} busy {:>5.1}% of polls ({:.0} busy polls/s)\n",
            w["name"].as_str().unwrap_or("?"),
            util,
            busy as f64 / secs
        );
    }
    if let Some(drops) = now["engine"]["drops"].as_object() {
        let parts: Vec<String> = drops
            .iter()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !parts.is_empty() {
            out += &format!("drops since start: {}\n", parts.join(", "));
        }
    }
    out
}

/// `flextoe-dpu stat`.
pub fn stat(path: &Path, interval: f64, count: Option<u64>, json: bool) -> Result<(), String> {
    let interval = Duration::from_secs_f64(interval.max(0.05));
    let mut before = query(path, &ControlRequest::Stats)?;
    let mut at = Instant::now();
    let mut shown = 0;
    while count.is_none_or(|c| shown < c) {
        std::thread::sleep(interval);
        let now = query(path, &ControlRequest::Stats)?;
        let secs = at.elapsed().as_secs_f64();
        at = Instant::now();
        if json {
            println!("{now}");
        } else {
            println!("--- flextoe-dpu stat ({secs:.1} s) ---");
            print!("{}", render(&now, &before, secs));
        }
        before = now;
        shown += 1;
    }
    Ok(())
}

/// `flextoe-dpu conns`.
pub fn conns(path: &Path, json: bool) -> Result<(), String> {
    let rows = query(path, &ControlRequest::Conns)?;
    if json {
        println!("{rows:#}");
        return Ok(());
    }
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    println!(
        "{:<5} {:<20} {:<21} {:<21} {:<12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "OWNER", "APP", "LOCAL", "REMOTE", "STATE", "SND.UNA", "SND.NXT", "RCV.NXT", "SND.WND",
        "RCV.WND", "CWND", "SRTT.us", "READ", "WRITE"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        println!(
            "{:<5} {:<20} {:<21} {:<21} {:<12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            n("owner"),
            s("app"),
            s("local"),
            s("remote"),
            s("state"),
            n("snd_una"),
            n("snd_nxt"),
            n("rcv_nxt"),
            n("snd_wnd"),
            n("rcv_wnd"),
            n("cwnd"),
            n("srtt_us"),
            n("readable"),
            n("writable"),
        );
    }
    println!("{} connection(s)", rows.len());
    Ok(())
}
