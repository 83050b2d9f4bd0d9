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
    if now["port"].is_object() {
        let p = |k: &str| rate(now, before, &["port", k], secs);
        // Frames lost below the engine: the NIC's ring or pool, the kernel
        // interface under a software port, or TX giving up.
        out += &format!(
            "port        rx {:>10.0} pps | tx {:>10.0} pps | lost rx missed {:.0}/s nombuf {:.0}/s kernel {:.0}/s, tx {:.0}/s | buffers {} in use, {} free\n",
            p("rx_frames"),
            p("tx_frames"),
            p("rx_missed"),
            p("rx_nombuf"),
            p("rx_dropped_kernel"),
            p("tx_dropped"),
            num(now, &["port", "pool_in_use"]),
            num(now, &["port", "pool_free"]),
        );
    }
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
        let busy_ns = num(w, &["busy_ns"]).saturating_sub(num(p, &["busy_ns"]));
        out += &format!(
            "worker      {:<24} busy {:>5.1}% of the time, {:>5.1}% of polls ({:.0} busy polls/s)\n",
            w["name"].as_str().unwrap_or("?"),
            100.0 * busy_ns as f64 / (secs * 1e9),
            util,
            busy as f64 / secs
        );
    }
    let prev_tasks = before["tasks"].as_array().unwrap_or(&empty);
    for t in now["tasks"].as_array().unwrap_or(&empty) {
        let name = t["name"].as_str().unwrap_or("?");
        let p = prev_tasks
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or(t);
        let d = |k: &str| num(t, &[k]).saturating_sub(num(p, &[k])) as f64 / secs;
        out += &format!(
            "task        {:<24} {:>10.0} items/s | ring full {:>6.0}/s | reorder holds {:>6.0}/s\n",
            name,
            d("items"),
            d("full_events"),
            d("reorder_holds"),
        );
    }
    for hook in ["ingress", "egress"] {
        let x = |k: &str| rate(now, before, &["xdp", hook, k], secs);
        if now["xdp"][hook]["frames"].as_u64().unwrap_or(0) > 0 {
            out += &format!(
                "xdp {hook:<7} {:>10.0} frames/s | pass {:.0}/s drop {:.0}/s tx {:.0}/s redirect {:.0}/s | aborted {}\n",
                x("frames"),
                x("pass"),
                x("drop"),
                x("tx"),
                x("redirect"),
                num(now, &["xdp", hook, "aborted"]),
            );
        }
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

/// `flextoe-dpu groups`: each owner with the flow groups it holds.
pub fn groups(path: &Path, json: bool) -> Result<(), String> {
    let doc = query(path, &ControlRequest::Groups)?;
    if json {
        println!("{doc:#}");
        return Ok(());
    }
    let owners = num(&doc, &["owners"]) as usize;
    let per_replica = num(&doc, &["owners_per_replica"]).max(1) as usize;
    let owner_of: Vec<usize> = doc["owner_of"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0) as usize).collect())
        .unwrap_or_default();
    let drained = |replica: usize| doc["drained"][replica].as_bool() == Some(true);
    println!("{:<6} {:<10} {:>7}  GROUPS", "OWNER", "REPLICA", "COUNT");
    for owner in 0..owners.max(owner_of.iter().max().map_or(0, |m| m + 1)) {
        let held: Vec<String> = (0..owner_of.len())
            .filter(|&g| owner_of[g] == owner)
            .map(|g| g.to_string())
            .collect();
        let replica = owner / per_replica;
        let replica = if drained(replica) {
            format!("{replica} drained")
        } else {
            replica.to_string()
        };
        println!(
            "{owner:<6} {replica:<10} {:>7}  {}",
            held.len(),
            held.join(",")
        );
    }
    Ok(())
}

/// `flextoe-dpu move-group`.
pub fn move_group(path: &Path, group: u32, to: usize) -> Result<(), String> {
    let doc = query(path, &ControlRequest::MoveGroup { group, to })?;
    println!(
        "flow group {group} moved from owner {} to owner {to}: {} connections, {} µs",
        doc["from"],
        num(&doc, &["connections"]),
        num(&doc, &["micros"]),
    );
    Ok(())
}

/// `flextoe-dpu drain-replica` and `rebalance`: each group moved, then a
/// summary.
pub fn resize(path: &Path, request: &ControlRequest, done: &str) -> Result<(), String> {
    let doc = query(path, request)?;
    let empty = Vec::new();
    let moved = doc["moved"].as_array().unwrap_or(&empty);
    for m in moved {
        println!(
            "flow group {} moved from owner {} to owner {}: {} connections",
            m["group"], m["from"], m["to"], m["connections"]
        );
    }
    println!(
        "{done}: {} flow groups moved with {} connections in {} µs",
        moved.len(),
        num(&doc, &["connections"]),
        num(&doc, &["micros"]),
    );
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
        "{:<5} {:<20} {:<21} {:<21} {:<12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>10} {:<11} {:>5} {:>9} {:>7} {:>8} {:>8} {:>8}",
        "OWNER", "APP", "LOCAL", "REMOTE", "STATE", "SND.UNA", "SND.NXT", "RCV.NXT", "SND.WND",
        "RCV.WND", "CWND", "SSTHRESH", "CC", "ALPHA", "RATE.Mb/s", "GRAD", "SRTT.us", "READ", "WRITE"
    );
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        println!(
            "{:<5} {:<20} {:<21} {:<21} {:<12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>10} {:<11} {:>5} {:>9} {:>7} {:>8} {:>8} {:>8}",
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
            n("ssthresh"),
            s("cc"),
            r["dctcp_alpha"]
                .as_f64()
                .map(|a| format!("{a:.3}"))
                .unwrap_or_else(|| "-".to_owned()),
            r["pacing_rate_bps"]
                .as_u64()
                .map(|b| format!("{:.0}", b as f64 / 1e6))
                .unwrap_or_else(|| "-".to_owned()),
            r["rtt_gradient"]
                .as_f64()
                .map(|g| format!("{g:.3}"))
                .unwrap_or_else(|| "-".to_owned()),
            n("srtt_us"),
            n("readable"),
            n("writable"),
        );
    }
    println!("{} connection(s)", rows.len());
    Ok(())
}

/// A tcpdump-like one-line summary of a frame.
pub fn summary(ts_ns: u64, f: &[u8]) -> String {
    let secs = ts_ns / 1_000_000_000;
    let t = format!(
        "{:02}:{:02}:{:02}.{:09}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ts_ns % 1_000_000_000
    );
    let b16 = |at: usize| f.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let b32 = |at: usize| {
        f.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match b16(12) {
        Some(0x0806) => format!("{t} ARP, length {}", f.len()),
        Some(0x0800) if f.len() >= 34 => {
            let ip = |at: usize| format!("{}.{}.{}.{}", f[at], f[at + 1], f[at + 2], f[at + 3]);
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let l4 = 14 + ihl;
            let total = usize::from(b16(16).unwrap_or(0));
            match f[23] {
                6 if f.len() >= l4 + 20 => {
                    let flags = f[l4 + 13];
                    let mut fl = String::new();
                    for (bit, c) in [(2, 'S'), (1, 'F'), (4, 'R'), (8, 'P'), (16, '.')] {
                        if flags & bit != 0 {
                            fl.push(c);
                        }
                    }
                    let doff = usize::from(f[l4 + 12] >> 4) * 4;
                    let len = total.saturating_sub(ihl + doff);
                    format!(
                        "{t} IP {}.{} > {}.{}: Flags [{fl}], seq {}, ack {}, win {}, length {len}",
                        ip(26),
                        b16(l4).unwrap_or(0),
                        ip(30),
                        b16(l4 + 2).unwrap_or(0),
                        b32(l4 + 4).unwrap_or(0),
                        b32(l4 + 8).unwrap_or(0),
                        b16(l4 + 14).unwrap_or(0),
                    )
                }
                1 => format!("{t} IP {} > {}: ICMP, length {total}", ip(26), ip(30)),
                p => format!("{t} IP {} > {}: proto {p}, length {total}", ip(26), ip(30)),
            }
        }
        Some(et) => format!("{t} ethertype 0x{et:04x}, length {}", f.len()),
        None => format!("{t} truncated frame, length {}", f.len()),
    }
}

/// `flextoe-dpu capture`: pcap (nanosecond timestamps) to `write`, or one
/// line per packet on stdout.
pub fn capture(path: &Path, count: u64, write: Option<&Path>, filter: &str) -> Result<(), String> {
    let req = ControlRequest::Capture {
        count,
        filter: filter.to_owned(),
    };
    capture_stream(path, &req, write, "flextoe-dpu capture")
}

/// Sends `req` (a capture request), then writes the frames the service
/// streams back: pcap to `write`, or one line per packet.
pub fn capture_stream(
    path: &Path,
    req: &ControlRequest,
    write: Option<&Path>,
    what: &str,
) -> Result<(), String> {
    use doca_bindings::control::{CAPTURE_END, CAPTURE_PACKET};
    use dpu_datapath::sim::PcapWriter;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let sock = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the service at {} ({e})", path.display()))?;
    send_json(&sock, req, &[]).map_err(|e| e.to_string())?;
    let (reply, _) = recv_json::<ControlReply>(&sock, 0)
        .map_err(|e| e.to_string())?
        .ok_or("the service closed the control socket")?;
    reply.into_result::<Value>()?;
    // Like tcpdump's: the tap is on from here (scripts wait for this line).
    eprintln!("{what}: listening (Ctrl-C to stop)");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let mut pcap = match write {
        None => None,
        Some(p) if p == Path::new("-") => Some(
            PcapWriter::new(Box::new(std::io::stdout()) as Box<dyn std::io::Write>)
                .map_err(|e| e.to_string())?,
        ),
        Some(p) => Some(
            PcapWriter::new(Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
            )) as Box<dyn std::io::Write>)
            .map_err(|e| e.to_string())?,
        ),
    };
    let mut got = 0u64;
    let mut end = Value::Null;
    while !stop.load(Ordering::SeqCst) {
        let frame = match doca_bindings::fdpass::recv_frame(&sock, 0) {
            Ok(Some((b, _))) => b,
            Ok(None) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("capture stream: {e}")),
        };
        match frame.first() {
            Some(&CAPTURE_PACKET) if frame.len() >= 9 => {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&frame[1..9]);
                let ts = u64::from_le_bytes(ts);
                match pcap.as_mut() {
                    Some(w) => w.write_frame(ts, &frame[9..]).map_err(|e| e.to_string())?,
                    None => println!("{}", summary(ts, &frame[9..])),
                }
                got += 1;
            }
            Some(&CAPTURE_END) => {
                end = serde_json::from_slice(&frame[1..]).unwrap_or(Value::Null);
                break;
            }
            _ => return Err("capture stream: unexpected frame".into()),
        }
    }
    if let Some(w) = pcap.as_mut() {
        w.flush().map_err(|e| e.to_string())?;
    }
    eprintln!(
        "{got} packets captured{}",
        end.get("dropped")
            .and_then(Value::as_u64)
            .map(|d| format!(", {d} dropped by the tap (reader too slow)"))
            .unwrap_or_default()
    );
    Ok(())
}
