//! `flextoe-dpu bpf`: the XDP-style hooks of a running service, over its
//! control socket (the service does the work: `xdp::ops`).

use crate::cli::{BpfCommand, MapCommand};
use crate::ops::query;
use doca_bindings::control::{BpfCommand as Request, ControlRequest};
use serde_json::Value;
use std::path::Path;

pub fn run(control: &Path, command: BpfCommand) -> Result<(), String> {
    if let BpfCommand::Capture { count, write } = command {
        let req = Request {
            cmd: "capture".into(),
            count,
            ..Default::default()
        };
        return crate::ops::capture_stream(
            control,
            &ControlRequest::Bpf(req),
            write.as_deref(),
            "flextoe-dpu bpf capture",
        );
    }
    let (req, table) = request(command)?;
    let doc = query(control, &ControlRequest::Bpf(req))?;
    match table {
        Some(Table::Programs) => print_programs(&doc),
        Some(Table::Maps) => print_maps(&doc),
        None => println!("{doc:#}"),
    }
    Ok(())
}

enum Table {
    Programs,
    Maps,
}

fn request(command: BpfCommand) -> Result<(Request, Option<Table>), String> {
    let mut r = Request::default();
    let mut table = None;
    match command {
        BpfCommand::Load {
            file,
            hook,
            section,
        } => {
            // The service runs elsewhere in the file system tree: send an
            // absolute path.
            let abs =
                std::fs::canonicalize(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            r.cmd = "load".into();
            r.file = abs.to_string_lossy().into_owned();
            r.hook = hook;
            r.section = section;
        }
        BpfCommand::List { json } => {
            r.cmd = "list".into();
            table = (!json).then_some(Table::Programs);
        }
        BpfCommand::Capture { .. } => unreachable!("handled by run"),
        BpfCommand::Unload { id } => {
            r.cmd = "unload".into();
            r.id = Some(id);
        }
        BpfCommand::Map { command } => match command {
            MapCommand::Show => {
                r.cmd = "map_show".into();
                table = Some(Table::Maps);
            }
            MapCommand::Dump { name } => {
                r.cmd = "map_dump".into();
                r.map = name;
            }
            MapCommand::Update {
                name,
                key,
                value,
                replica,
            } => {
                r.cmd = "map_update".into();
                r.map = name;
                r.key = key;
                r.value = value;
                r.replica = replica;
            }
            MapCommand::Delete { name, key, replica } => {
                r.cmd = "map_delete".into();
                r.map = name;
                r.key = key;
                r.replica = replica;
            }
        },
    }
    Ok((r, table))
}

fn print_programs(doc: &Value) {
    let empty = Vec::new();
    let rows = doc.as_array().unwrap_or(&empty);
    println!(
        "{:<4} {:<8} {:<6} {:<5} {:>12} {:>12} {:>10} {:>8} {:>8}  FILE",
        "ID", "HOOK", "INSNS", "JIT", "FRAMES", "PASS", "DROP", "TX", "ABORTED"
    );
    for p in rows {
        let c = &p["counters"];
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        println!(
            "{:<4} {:<8} {:<6} {:<5} {:>12} {:>12} {:>10} {:>8} {:>8}  {} [{}] maps: {}",
            n(&p["id"]),
            p["hook"].as_str().unwrap_or("?"),
            n(&p["insns"]),
            p["jit"].as_bool().unwrap_or(false),
            n(&c["frames"]),
            n(&c["pass"]),
            n(&c["drop"]),
            n(&c["tx"]),
            n(&c["aborted"]),
            p["file"].as_str().unwrap_or("?"),
            p["section"].as_str().unwrap_or("?"),
            p["maps"]
                .as_array()
                .map(|m| m
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default(),
        );
    }
    println!("{} program(s)", rows.len());
}

fn print_maps(doc: &Value) {
    let empty = Vec::new();
    let rows = doc.as_array().unwrap_or(&empty);
    println!(
        "{:<24} {:<12} {:>5} {:>6} {:>10} {:>10}",
        "NAME", "KIND", "KEY", "VALUE", "MAX", "ENTRIES"
    );
    for m in rows {
        let n = |k: &str| m[k].as_u64().unwrap_or(0);
        println!(
            "{:<24} {:<12} {:>5} {:>6} {:>10} {:>10}",
            m["name"].as_str().unwrap_or("?"),
            m["kind"].as_str().unwrap_or("?"),
            n("key_size"),
            n("value_size"),
            n("max_entries"),
            n("entries"),
        );
    }
}
