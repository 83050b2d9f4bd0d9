//! Flow groups move between the two owners of a replica (or round four
//! owners in two replicas, across them every other move) while host
//! applications (separate processes on libtoe) move data through them, as
//! an operator does with `flextoe-dpu move-group`: the applications keep
//! their sockets, every byte arrives in order (SHA-256 and byte-for-byte
//! echo checks), and nothing is refused or reset.

use doca_bindings::control::ControlRequest;
use flextoe_tests::hostif::{query, service_binary, Service};
use flextoe_tests::programs::{examples, finish, json_line, ready_stderr, ready_stdout, spawn};
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const GROUPS: u64 = 8;

/// One replica whose protocol stage has two owners (a staged replica),
/// every other stage one worker. Retransmission timeouts far above any
/// scheduling stall: a retransmission then means a segment was lost or
/// reordered (as in `dpu-datapath/tests/pipeline_group_move.rs`).
fn two_owners(cfg: &mut Value) {
    let t = &mut cfg["topology"];
    t["replicas"] = 1.into();
    t["flow_groups"] = GROUPS.into();
    t["proto_workers"] = 2.into();
    t["run_to_completion"] = false.into();
    t["auto"] = false.into();
    let tcp = &mut cfg["tcp"];
    tcp["min_rto_ms"] = 20_000.into();
    tcp["initial_rto_ms"] = 20_000.into();
}

/// Two such replicas: the loopback backend steers in software, so groups
/// move across them too.
fn two_replicas(cfg: &mut Value) {
    two_owners(cfg);
    cfg["topology"]["replicas"] = 2.into();
}

/// Two run-to-completion replicas (one owner each, each on one worker).
fn two_rtc_replicas(cfg: &mut Value) {
    two_owners(cfg);
    let t = &mut cfg["topology"];
    t["replicas"] = 2.into();
    t["proto_workers"] = 1.into();
    t["run_to_completion"] = true.into();
}

/// `flextoe-dpu groups`: the owner of each flow group.
fn owners(svc: &Service) -> Vec<u64> {
    let doc = query(&svc.socket, &ControlRequest::Groups).expect("groups");
    doc["owner_of"]
        .as_array()
        .expect("owner_of")
        .iter()
        .map(|v| v.as_u64().expect("owner"))
        .collect()
}

/// Moves every group to the next owner, over and over, until stopped;
/// returns (moves, connections carried). A refused move fails the test.
struct Mover {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, u64)>,
}

impl Mover {
    fn start(svc: &Service) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let socket = svc.socket.clone();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut moves, mut carried) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                for group in 0..GROUPS as u32 {
                    let doc = query(&socket, &ControlRequest::Groups).expect("groups");
                    let owner = doc["owner_of"][group as usize].as_u64().expect("owner");
                    let owners = doc["owners"].as_u64().expect("owners");
                    let to = ((owner + 1) % owners) as usize;
                    let moved = query(&socket, &ControlRequest::MoveGroup { group, to })
                        .unwrap_or_else(|e| panic!("moving group {group} to {to}: {e}"));
                    moves += 1;
                    carried += moved["connections"].as_u64().expect("connections");
                    // A pace, not a wait: traffic runs between moves.
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
            (moves, carried)
        });
        Mover { stop, thread }
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the mover failed")
    }
}

#[test]
fn groups_move_back_and_forth_under_bulk_and_echo_traffic() {
    moves_under_traffic("group-moves", two_owners);
}

#[test]
fn groups_move_across_replicas_under_bulk_and_echo_traffic() {
    moves_under_traffic("group-moves-across", two_replicas);
}

fn moves_under_traffic(name: &str, topology: fn(&mut Value)) {
    let (Some(svc), Some([echo, rpc, send, recv])) =
        (Service::start_with(name, 1, topology), examples())
    else {
        return;
    };
    assert_eq!(owners(&svc).len() as u64, GROUPS);
    let mut receiver = spawn(&svc, &recv, &["--listen", "0.0.0.0:7300"]);
    ready_stderr(&mut receiver);
    let mut server = spawn(
        &svc,
        &echo,
        &["--listen", "0.0.0.0:7301", "--exit-after", "16"],
    );
    ready_stdout(&mut server);
    let mover = Mover::start(&svc);
    let started = Instant::now();
    let bulk_to = format!("{}:7300", svc.ip);
    let sender = spawn(
        &svc,
        &send,
        // It exits right after its last write, without closing: the exit
        // closes the connection, wherever its group is by then, after
        // everything written.
        &[
            "--connect",
            &bulk_to,
            "--mib",
            "128",
            "--seed",
            "7",
            "--end",
            "exit",
        ],
    );
    let echo_to = format!("{}:7301", svc.ip);
    let client = spawn(
        &svc,
        &rpc,
        &[
            "--connect",
            &echo_to,
            "--conns",
            "16",
            "--requests",
            "3000",
            "--size",
            "700",
        ],
    );
    let sent = finish(sender, Duration::from_secs(300));
    let echoed = finish(client, Duration::from_secs(300));
    let (moves, carried) = mover.finish();
    let got = finish(receiver, Duration::from_secs(60));
    let served = finish(server, Duration::from_secs(60));
    for (what, out) in [
        ("bulk_send", &sent),
        ("rpc_client", &echoed),
        ("bulk_recv", &got),
        ("echo_server", &served),
    ] {
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (s, r, e) = (json_line(&sent), json_line(&got), json_line(&echoed));
    assert_eq!(r["bytes"], 128u64 << 20);
    assert_eq!(s["sha256"], r["sha256"], "payload hashes match");
    // rpc_client checks every response byte for byte against its request.
    assert_eq!(e["requests"], 16 * 3000, "{e}");
    let (ok, stat) = svc.wait_stat(Duration::from_secs(10), |s| s["app_conns"] == 0);
    assert!(ok, "tables back to empty: {stat}");
    let h = &stat["hostif"];
    println!(
        "{moves} moves carrying {carried} connections in {:.1} s; the front saw {} arrivals \
         and sent on {} bounced commands; engine: {} retransmitted segments, {} out of order, \
         {} resets",
        started.elapsed().as_secs_f64(),
        h["conns_moved"],
        h["commands_bounced"],
        stat["engine"]["retransmit_segments"],
        stat["engine"]["rx_out_of_order_segments"],
        stat["engine"]["connections_reset"],
    );
    assert!(moves >= 2 * GROUPS, "every group moved both ways: {moves}");
    assert!(carried > 0, "moves carried connections in use");
    // Connections the applications have closed and that are still
    // finishing move too, but are no longer the front's.
    let arrivals = h["conns_moved"].as_u64().expect("conns_moved");
    assert!(
        arrivals > 0 && arrivals <= carried,
        "{arrivals} of {carried}: {h}"
    );
    assert_eq!(h["violations"], 0, "{h}");
    let engine = &stat["engine"];
    for counter in [
        "retransmit_segments",
        "rx_out_of_order_segments",
        "connections_reset",
    ] {
        assert_eq!(engine[counter], 0, "{counter}: {engine}");
    }
}

/// The command line: `groups` lists the owners' groups; `move-group`
/// reports a move, and refuses one it cannot do with the reason.
#[test]
fn move_group_command_moves_and_refuses_with_the_reason() {
    let Some(svc) = Service::start_with("move-cli", 1, two_owners) else {
        return;
    };
    let bin = service_binary().expect("built, since the service runs");
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .arg("--control")
            .arg(&svc.socket)
            .output()
            .expect("flextoe-dpu")
    };
    let before = owners(&svc);
    let to = 1 - before[3];
    let out = run(&["move-group", "3", &to.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "flow group 3 moved from owner {} to owner {to}",
            before[3]
        )),
        "{text}"
    );
    let mut after = before.clone();
    after[3] = to;
    assert_eq!(owners(&svc), after);
    let listing = run(&["groups"]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&to.to_string())
                && l.split_whitespace()
                    .last()
                    .is_some_and(|g| g.split(',').any(|g| g == "3"))),
        "{listing}"
    );
    for (args, reason) in [
        (
            ["move-group", "3", "5"],
            "owner 5 does not exist (replicas x proto_workers is 2: 0 to 1)",
        ),
        (
            ["move-group", "8", "0"],
            "flow group 8 does not exist (topology.flow_groups is 8: 0 to 7)",
        ),
        (
            ["drain-replica", "0", ""],
            "no other replica can take the flow groups of replica 0 (the pipeline has one replica",
        ),
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
    assert_eq!(owners(&svc), after, "a refused move changes nothing");
}

/// `drain-replica` takes a replica out of service under a bulk transfer
/// (every group moves to the other replica's owners) and `rebalance` gives
/// the groups back to the plan's owners; the transfer keeps every byte, in
/// order.
#[test]
fn drain_and_rebalance_under_a_bulk_transfer() {
    drain_and_rebalance("drain", two_replicas);
}

#[test]
fn drain_and_rebalance_run_to_completion_replicas() {
    drain_and_rebalance("drain-rtc", two_rtc_replicas);
}

fn drain_and_rebalance(name: &str, topology: fn(&mut Value)) {
    let (Some(svc), Some([_, _, send, recv])) =
        (Service::start_with(name, 1, topology), examples())
    else {
        return;
    };
    let doc = query(&svc.socket, &ControlRequest::Groups).expect("groups");
    let per_replica = doc["owners_per_replica"]
        .as_u64()
        .expect("owners_per_replica");
    let bin = service_binary().expect("built, since the service runs");
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .arg("--control")
            .arg(&svc.socket)
            .output()
            .expect("flextoe-dpu");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), text, err)
    };
    let planned = owners(&svc);
    assert!(
        planned.iter().any(|&o| o / per_replica == 1),
        "replica 1 holds groups"
    );
    let mut receiver = spawn(&svc, &recv, &["--listen", "0.0.0.0:7302"]);
    ready_stderr(&mut receiver);
    let to = format!("{}:7302", svc.ip);
    // Paced to about 4 s, so that it spans the drain and the rebalance.
    let sender = spawn(
        &svc,
        &send,
        &[
            "--connect",
            &to,
            "--mib",
            "64",
            "--seed",
            "9",
            "--max-pacing-rate",
            "16777216",
        ],
    );
    // The transfer is under way when replica 1 leaves, and while it is out.
    let started = Instant::now();
    let (ok, _) = svc.wait_stat(Duration::from_secs(30), |s| s["app_conns"] == 2);
    assert!(ok, "the transfer started");
    // Connections carried, from a summary line "... moved with N connections".
    let carried = |text: &str| -> u64 {
        let tail = text.rsplit("moved with ").next().unwrap_or("");
        tail.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary in {text}"))
    };
    // Each replica leaves in turn, so both ends' groups move.
    let mut moved = 0;
    for (replica, stays) in [(1, 0), (0, 1)] {
        let (ok, text, err) = run(&["drain-replica", &replica.to_string()]);
        assert!(ok, "{text}{err}");
        assert!(
            text.contains(&format!("replica {replica} drained:")),
            "{text}"
        );
        moved += carried(&text);
        let drained = owners(&svc);
        assert!(
            drained.iter().all(|&o| o / per_replica == stays),
            "{drained:?}"
        );
        let (_, listing, _) = run(&["groups"]);
        assert!(
            listing.contains(&format!(" {replica} drained ")),
            "{listing}"
        );
        let (ok, text, err) = run(&["rebalance"]);
        assert!(ok, "{text}{err}");
        assert!(
            text.contains("flow groups back where the plan put them"),
            "{text}"
        );
        moved += carried(&text);
        assert_eq!(owners(&svc), planned);
        let (_, listing, _) = run(&["groups"]);
        assert!(!listing.contains("drained"), "{listing}");
    }
    assert!(moved >= 4, "both ends moved out and back: {moved}");
    let (ok, text, err) = run(&["drain-replica", "2"]);
    assert!(!ok, "{text}");
    assert!(
        err.contains("replica 2 does not exist (topology.replicas is 2: 0 to 1)"),
        "{err}"
    );
    let sent = finish(sender, Duration::from_secs(300));
    let got = finish(receiver, Duration::from_secs(60));
    for (what, out) in [("bulk_send", &sent), ("bulk_recv", &got)] {
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (s, r) = (json_line(&sent), json_line(&got));
    assert_eq!(r["bytes"], 64u64 << 20);
    assert_eq!(s["sha256"], r["sha256"], "payload hashes match");
    let (_, stat) = svc.wait_stat(Duration::from_secs(10), |s| s["app_conns"] == 0);
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the transfer outlasted the moves"
    );
    let engine = &stat["engine"];
    for counter in [
        "retransmit_segments",
        "rx_out_of_order_segments",
        "connections_reset",
    ] {
        assert_eq!(engine[counter], 0, "{counter}: {engine}");
    }
}
