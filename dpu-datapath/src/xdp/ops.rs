//! The control-socket operations behind `flextoe-dpu bpf`: one function
//! per command, each answering a JSON document or an error that says what
//! was wrong.

#![forbid(unsafe_code)]

use super::hooks::{HookPoint, XdpHooks};
use super::maps::{Map, MapKind};
use doca_bindings::control::BpfCommand;
use serde_json::{json, Value};
use std::path::Path;

/// Carries out `cmd`.
pub fn handle(hooks: &XdpHooks, cmd: &BpfCommand) -> Result<Value, String> {
    match cmd.cmd.as_str() {
        "load" => load(hooks, cmd),
        "list" => Ok(hooks.list()),
        "unload" => {
            let id = cmd
                .id
                .ok_or("unload: which program? (id, from `bpf list`)")?;
            hooks.unload(id).map(|_| json!({ "unloaded": id }))
        }
        "map_show" => Ok(Value::Array(hooks.maps().iter().map(|m| show(m)).collect())),
        "map_dump" => dump(&*hooks.map(&cmd.map)?),
        "map_update" => update(hooks, cmd),
        "map_delete" => delete(hooks, cmd),
        other => Err(format!(
            "bpf: unknown command {other:?} (allowed: load, list, unload, map_show, map_dump, \
             map_update, map_delete)"
        )),
    }
}

fn load(hooks: &XdpHooks, cmd: &BpfCommand) -> Result<Value, String> {
    if cmd.file.is_empty() {
        return Err("load: no file (the program's object, e.g. firewall.o)".into());
    }
    let path = Path::new(&cmd.file);
    if !path.is_absolute() {
        return Err(format!(
            "load: {:?} is relative; the service resolves files from its own directory, so \
             give an absolute path",
            cmd.file
        ));
    }
    let hook = if cmd.hook.is_empty() {
        HookPoint::Ingress
    } else {
        HookPoint::parse(&cmd.hook)?
    };
    let section = if cmd.section.is_empty() {
        "xdp"
    } else {
        cmd.section.as_str()
    };
    let a = hooks.load(path, hook, section)?;
    Ok(json!({
        "id": a.id,
        "hook": hook.name(),
        "section": section,
        "insns": a.insns,
        "jit": a.jit,
        "maps": a.maps.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
    }))
}

fn show(m: &Map) -> Value {
    json!({
        "name": m.name,
        "kind": m.def.kind.name(),
        "key_size": m.def.key_size,
        "value_size": m.def.value_size,
        "max_entries": m.def.max_entries,
        "entries": m.len(),
    })
}

/// Bytes as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hexadecimal (spaces, `0x` and `:` allowed) as bytes.
pub fn unhex(field: &str, text: &str) -> Result<Vec<u8>, String> {
    let clean: String = text
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if !clean.len().is_multiple_of(2) || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{field} {text:?} is not hexadecimal bytes (e.g. \"c6120001\")"
        ));
    }
    Ok((0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap_or(0))
        .collect())
}

fn dump(m: &Map) -> Result<Value, String> {
    let rows: Vec<Value> = m
        .entries()
        .into_iter()
        .map(|(k, values)| {
            let words = |v: &[u8]| -> Vec<u64> {
                v.chunks(8)
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b[..c.len()].copy_from_slice(c);
                        u64::from_ne_bytes(b)
                    })
                    .collect()
            };
            if m.def.kind == MapKind::PerReplica {
                json!({
                    "key": hex(&k),
                    "values": values.iter().map(|v| hex(v)).collect::<Vec<_>>(),
                    "words": values.iter().map(|v| words(v)).collect::<Vec<_>>(),
                })
            } else {
                let v = values.first().cloned().unwrap_or_default();
                json!({ "key": hex(&k), "value": hex(&v), "words": words(&v) })
            }
        })
        .collect();
    Ok(json!({ "map": show(m), "entries": rows }))
}

fn sized(field: &str, text: &str, size: u32) -> Result<Vec<u8>, String> {
    let bytes = unhex(field, text)?;
    if bytes.len() != size as usize {
        return Err(format!(
            "{field} has {} bytes; the map's {field} is {size} bytes",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn replica_of(hooks: &XdpHooks, cmd: &BpfCommand) -> Result<Option<usize>, String> {
    match cmd.replica {
        Some(r) if r as usize >= hooks.replicas => {
            Err(format!("replica {r} (allowed 0-{})", hooks.replicas - 1))
        }
        r => Ok(r.map(|r| r as usize)),
    }
}

fn update(hooks: &XdpHooks, cmd: &BpfCommand) -> Result<Value, String> {
    let m = hooks.map(&cmd.map)?;
    let key = sized("key", &cmd.key, m.def.key_size)?;
    let value = sized("value", &cmd.value, m.def.value_size)?;
    let replica = replica_of(hooks, cmd)?;
    m.update(replica, &key, &value)
        .map_err(|e| format!("map {}: {e}", m.name))?;
    Ok(json!({ "map": m.name, "entries": m.len() }))
}

fn delete(hooks: &XdpHooks, cmd: &BpfCommand) -> Result<Value, String> {
    let m = hooks.map(&cmd.map)?;
    let key = sized("key", &cmd.key, m.def.key_size)?;
    let replica = replica_of(hooks, cmd)?;
    m.delete(replica, &key)
        .map_err(|e| format!("map {}: {e}", m.name))?;
    Ok(json!({ "map": m.name, "entries": m.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(
            unhex("key", "0xc6:12 00 01").unwrap(),
            vec![0xc6, 0x12, 0, 1]
        );
        assert_eq!(hex(&[0xc6, 0x12, 0, 1]), "c6120001");
        assert_eq!(
            unhex("key", "abc").unwrap_err(),
            "key \"abc\" is not hexadecimal bytes (e.g. \"c6120001\")"
        );
    }

    #[test]
    fn commands_name_what_is_wrong() {
        let hooks = XdpHooks::new(2);
        let cmd = |c: &str| BpfCommand {
            cmd: c.into(),
            ..Default::default()
        };
        assert!(handle(&hooks, &cmd("frobnicate"))
            .unwrap_err()
            .starts_with("bpf: unknown command \"frobnicate\""));
        assert_eq!(
            handle(&hooks, &cmd("unload")).unwrap_err(),
            "unload: which program? (id, from `bpf list`)"
        );
        let mut c = cmd("load");
        c.file = "fw.o".into();
        assert!(handle(&hooks, &c).unwrap_err().contains("is relative"));
        c.file = "/nonexistent/fw.o".into();
        c.hook = "sideways".into();
        assert_eq!(
            handle(&hooks, &c).unwrap_err(),
            "hook \"sideways\" (allowed values: \"ingress\", \"egress\")"
        );
        let mut d = cmd("map_dump");
        d.map = "nope".into();
        assert_eq!(
            handle(&hooks, &d).unwrap_err(),
            "no map named \"nope\" (maps of loaded programs: none)"
        );
        assert_eq!(handle(&hooks, &cmd("list")).unwrap(), json!([]));
    }
}
