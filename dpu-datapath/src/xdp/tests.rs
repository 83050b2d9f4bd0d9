//! The hook with real programs: the C modules of `xdp/examples` and
//! hostile ones, compiled by clang and run by librte_bpf on an in-memory
//! NIC, as the service runs them on its port.

use super::*;
use crate::io::{Frame, Nic};
use crate::pipeline::{MemNic, Plan};
use doca_bindings::control::BpfCommand;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PEER: [u8; 4] = [198, 18, 0, 1];
const ENGINE: [u8; 4] = [198, 18, 0, 2];

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("ftoe-xdp-unit-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles C `source` (with flextoe_xdp.h) to `<name>.o`.
fn compile(name: &str, source: &str) -> PathBuf {
    let d = dir();
    let c = d.join(format!("{name}.c"));
    let o = d.join(format!("{name}.o"));
    std::fs::write(&c, source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("xdp/include");
    let out = std::process::Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g", "-I"])
        .arg(&include)
        .arg("-c")
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .output()
        .expect("clang is needed to build BPF programs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "clang {name}.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    o
}

/// An example module from `xdp/examples`.
fn example(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("xdp/examples/{name}.c"));
    compile(name, &std::fs::read_to_string(src).unwrap())
}

/// An Ethernet + IPv4 + TCP frame (checksums are not the hook's business).
fn tcp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 54 + payload];
    f[0..6].copy_from_slice(&[2, 0, 0xc6, 0x12, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0xc6, 0x12, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x02; // SYN
    f
}

struct Rig {
    mem: Arc<MemNic>,
    nic: XdpNic<Arc<MemNic>>,
    hooks: Arc<XdpHooks>,
}

fn rig(replicas: u32) -> Rig {
    let topology = pipeline_config::Topology {
        replicas,
        ..Default::default()
    };
    let mem = Arc::new(MemNic::new(&Plan::new(&topology), 256));
    let hooks = XdpHooks::new(replicas as usize);
    Rig {
        nic: XdpNic::new(mem.clone(), hooks.clone()),
        mem,
        hooks,
    }
}

impl Rig {
    /// Injects `frames` on queue `q` and returns what the stack receives.
    fn receive(&self, q: usize, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        for f in frames {
            assert!(self.mem.inject_to(q, 0, f.clone()));
        }
        let mut out = Vec::new();
        self.nic.rx_burst(q, 64, &mut out);
        out.into_iter().map(|(_, f)| f.into_vec()).collect()
    }

    /// Sends `frames` on queue `q`; returns what reached the port.
    fn transmit(&self, q: usize, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut v: Vec<Frame> = frames.iter().map(|f| Frame::from(f.clone())).collect();
        self.nic.tx_burst(q, &mut v);
        self.mem.take_tx()
    }

    fn bpf(&self, cmd: &str, f: impl FnOnce(&mut BpfCommand)) -> Result<Value, String> {
        let mut c = BpfCommand {
            cmd: cmd.into(),
            ..Default::default()
        };
        f(&mut c);
        ops::handle(&self.hooks, &c)
    }

    fn load(&self, obj: &Path, hook: &str, section: &str) -> Result<Value, String> {
        self.bpf("load", |c| {
            c.file = obj.display().to_string();
            c.hook = hook.into();
            c.section = section.into();
        })
    }

    fn words(&self, map: &str) -> Vec<(String, Value)> {
        let d = self.bpf("map_dump", |c| c.map = map.into()).unwrap();
        d["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["key"].as_str().unwrap().to_owned(), e["words"].clone()))
            .collect()
    }
}

fn prefix_key(len: u32, addr: [u8; 4]) -> String {
    let mut k = len.to_le_bytes().to_vec();
    k.extend_from_slice(&addr);
    ops::hex(&k)
}

#[test]
fn firewall_rules_change_while_it_runs() {
    let r = rig(1);
    let loaded = r.load(&example("firewall"), "ingress", "").unwrap();
    assert!(loaded["insns"].as_u64().unwrap() > 20, "{loaded}");
    // librte_bpf has a JIT for x86_64 and arm64 (the latter runs here
    // under qemu in scripts/aarch64.sh).
    assert_eq!(loaded["jit"], true, "{loaded}");
    let syn = tcp_frame(PEER, 40000, ENGINE, 7, 0);
    let other = tcp_frame([198, 18, 1, 9], 40000, ENGINE, 7, 0);
    assert_eq!(r.receive(0, &[syn.clone(), other.clone()]).len(), 2);

    // Deny 198.18.0.0/24: the peer's frames stop, the other host's pass.
    r.bpf("map_update", |c| {
        c.map = "fw_prefixes".into();
        c.key = prefix_key(24, [198, 18, 0, 0]);
        c.value = "0000000000000000".into();
    })
    .unwrap();
    assert_eq!(
        r.receive(0, &[syn.clone(), other.clone()]),
        vec![other.clone()]
    );
    let hits = r.words("fw_prefixes");
    assert_eq!(
        hits,
        vec![(prefix_key(24, [198, 18, 0, 0]), serde_json::json!([1]))]
    );

    // An exact 5-tuple rule for the other host's flow.
    let mut flow = Vec::new();
    flow.extend_from_slice(&[198, 18, 1, 9]);
    flow.extend_from_slice(&ENGINE);
    flow.extend_from_slice(&40000u16.to_be_bytes());
    flow.extend_from_slice(&7u16.to_be_bytes());
    flow.extend_from_slice(&6u32.to_le_bytes());
    r.bpf("map_update", |c| {
        c.map = "fw_flows".into();
        c.key = ops::hex(&flow);
        c.value = "0000000000000000".into();
    })
    .unwrap();
    let other_port = tcp_frame([198, 18, 1, 9], 40001, ENGINE, 7, 0);
    assert_eq!(
        r.receive(0, &[other.clone(), other_port.clone()]),
        vec![other_port]
    );

    // Rules removed: everything passes again.
    r.bpf("map_delete", |c| {
        c.map = "fw_prefixes".into();
        c.key = prefix_key(24, [198, 18, 0, 0]);
    })
    .unwrap();
    assert_eq!(r.receive(0, std::slice::from_ref(&syn)), vec![syn]);
    let stats = r.words("fw_stats");
    assert_eq!(stats[0].1, serde_json::json!([[7]]), "checked: {stats:?}");
    assert_eq!(stats[1].1, serde_json::json!([[2]]), "dropped: {stats:?}");
    let c = &r.hooks.counters[0];
    assert_eq!(c.frames.load(std::sync::atomic::Ordering::Relaxed), 7);
    assert_eq!(c.drop.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn verdicts_tx_redirect_and_egress_drop() {
    let r = rig(2);
    let prog = compile(
        "verdicts",
        r#"#include "flextoe_xdp.h"
        SEC("xdp") u64 v(u8 *pkt) {
            if (pkt[54] == 'T') {            /* back out, MACs swapped */
                for (int i = 0; i < 6; i++) { u8 t = pkt[i]; pkt[i] = pkt[i + 6]; pkt[i + 6] = t; }
                return XDP_TX;
            }
            if (pkt[54] == 'R') { flextoe_md.redirect = 1; return XDP_REDIRECT; }
            if (pkt[54] == 'S') { flextoe_md.len = 54; return XDP_PASS; }  /* shortened */
            if (pkt[54] == 'D') return XDP_DROP;
            return XDP_PASS;
        }"#,
    );
    r.load(&prog, "ingress", "xdp").unwrap();
    let with = |b: u8| {
        let mut f = tcp_frame(PEER, 1, ENGINE, 2, 4);
        f[54] = b;
        f
    };
    let got = r.receive(
        0,
        &[with(b'T'), with(b'R'), with(b'S'), with(b'D'), with(b'P')],
    );
    assert_eq!(got, vec![with(b'S')[..54].to_vec(), with(b'P')]);
    let tx = r.mem.take_tx();
    assert_eq!(tx.len(), 1);
    assert_eq!(&tx[0][0..6], &[2, 0, 0xc6, 0x12, 0, 1], "MACs swapped");
    // The redirected frame is replica 1's, judged once.
    assert_eq!(r.receive(1, &[]), vec![with(b'R')]);

    r.load(&prog, "egress", "xdp").unwrap();
    let sent = r.transmit(0, &[with(b'D'), with(b'P'), with(b'T')]);
    assert_eq!(sent.len(), 2, "egress: drop dropped, TX is pass");
    let list = r.bpf("list", |_| {}).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn vlan_strip_at_ingress_and_insert_at_egress() {
    let r = rig(1);
    let obj = example("vlan");
    r.load(&obj, "ingress", "xdp").unwrap();
    r.load(&obj, "egress", "xdp_egress").unwrap();
    r.bpf("map_update", |c| {
        c.map = "vlan_cfg".into();
        c.key = "00000000".into();
        c.value = ops::hex(&100u64.to_ne_bytes());
    })
    .unwrap();
    let plain = tcp_frame(PEER, 1, ENGINE, 2, 10);
    let tag = |vid: u16| {
        let mut t = plain[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00]);
        t.extend_from_slice(&vid.to_be_bytes());
        t.extend_from_slice(&plain[12..]);
        t
    };
    assert_eq!(r.receive(0, &[tag(100), tag(200)]), vec![plain.clone()]);
    assert_eq!(r.transmit(0, std::slice::from_ref(&plain)), vec![tag(100)]);
    let w = r.words("vlan_cfg");
    assert_eq!(
        w.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        vec![
            serde_json::json!([100]),
            serde_json::json!([1]),
            serde_json::json!([1]),
            serde_json::json!([1])
        ]
    );
}

#[test]
fn replaced_program_keeps_the_maps_it_declares() {
    let r = rig(1);
    let obj = example("flow_stats");
    let first = r.load(&obj, "ingress", "").unwrap();
    let f = tcp_frame(PEER, 5, ENGINE, 6, 100);
    r.receive(0, &[f.clone(), f.clone()]);
    let second = r.load(&obj, "ingress", "").unwrap();
    assert_ne!(first["id"], second["id"]);
    r.receive(0, std::slice::from_ref(&f));
    let w = r.words("flow_stats");
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].1,
        serde_json::json!([3, 3 * 154]),
        "packets and bytes across the replace"
    );
    assert_eq!(r.bpf("list", |_| {}).unwrap().as_array().unwrap().len(), 1);
    // A different program declaring a map of that name differently is refused.
    let clash = compile(
        "clash",
        r#"#include "flextoe_xdp.h"
        FLEXTOE_MAP(flow_stats, FLEXTOE_MAP_ARRAY, u32, u64, 4);
        SEC("xdp") u64 p(u8 *pkt) { u32 k = 0; flow_stats_add(&k, 0, 1); return XDP_PASS; }"#,
    );
    let e = r.load(&clash, "egress", "").unwrap_err();
    assert!(
        e.starts_with("map flow_stats exists with another definition"),
        "{e}"
    );
    // Unloading the last user frees the map.
    r.bpf("unload", |c| c.id = second["id"].as_u64()).unwrap();
    assert!(r
        .bpf("map_show", |_| {})
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn faulting_program_is_unloaded_and_traffic_passes() {
    let r = rig(1);
    // Division by zero when the first payload byte is 0: the runtime makes
    // the program return 0 (XDP_ABORTED).
    let prog = compile(
        "divzero",
        r#"#include "flextoe_xdp.h"
        SEC("xdp") u64 p(u8 *pkt) { u64 d = pkt[54]; return (u64)(0x100 + pkt[55]) / d; }"#,
    );
    r.load(&prog, "ingress", "").unwrap();
    // 0x100 / 0x80 = 2: XDP_PASS.
    let ok = {
        let mut f = tcp_frame(PEER, 1, ENGINE, 2, 2);
        f[54] = 0x80;
        f
    };
    let bad = tcp_frame(PEER, 1, ENGINE, 2, 2);
    assert_eq!(r.receive(0, std::slice::from_ref(&ok)).len(), 1);
    assert_eq!(
        r.receive(0, &[bad.clone(), ok.clone()]).len(),
        2,
        "pass-through"
    );
    assert_eq!(r.bpf("list", |_| {}).unwrap(), serde_json::json!([]));
    assert_eq!(
        r.hooks.counters[0]
            .aborted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Later bursts no longer run it.
    r.receive(0, &[bad]);
    assert_eq!(
        r.hooks.counters[0]
            .frames
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert!(!r.hooks.slots[0][0]
        .armed
        .load(std::sync::atomic::Ordering::Relaxed));
}

#[test]
fn hostile_programs_are_refused_at_load() {
    let r = rig(1);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "oob",
            r#"SEC("xdp") u64 p(u8 *pkt) { return pkt[3000]; }"#.into(),
            "memory boundary violation",
        ),
        (
            "oob_md",
            r#"SEC("xdp") u64 p(u8 *pkt) { return ((u8 *)&flextoe_md)[64]; }"#.into(),
            "memory boundary violation",
        ),
        (
            "looping",
            r#"SEC("xdp") u64 p(u8 *pkt) { u64 n = 0;
                #pragma nounroll
                for (u32 i = 0; i < pkt[0]; i++) n += pkt[i & 7];
                return n; }"#
                .into(),
            "loop",
        ),
        (
            "unknown",
            r#"extern u64 bpf_ktime_get_ns(void);
               SEC("xdp") u64 p(u8 *pkt) { return bpf_ktime_get_ns() & 1; }"#
                .into(),
            "unknown function or variable \"bpf_ktime_get_ns\"",
        ),
        (
            "huge",
            {
                let mut body = String::from("SEC(\"xdp\") u64 p(u8 *pkt) { volatile u64 x = 0;\n");
                for i in 0..3000 {
                    body += &format!("x = x * {} + pkt[{}];\n", i + 3, i % 64);
                }
                body + "return x; }"
            },
            "instructions (at most 4096)",
        ),
        (
            "not_inlined",
            r#"__attribute__((noinline)) static u64 f(u8 *p) { return p[0] ? XDP_PASS : XDP_DROP; }
               SEC("xdp") u64 p(u8 *pkt) { return f(pkt); }"#
                .into(),
            "a function clang did not inline",
        ),
        (
            "small_key",
            r#"FLEXTOE_MAP(m, FLEXTOE_MAP_HASH, u64, u64, 4);
               SEC("xdp") u64 p(u8 *pkt) { u64 v; return m_lookup((u64 *)(pkt + 2044), &v); }"#
                .into(),
            "memory boundary violation",
        ),
    ];
    for (name, body, expect) in cases {
        let obj = compile(name, &format!("#include \"flextoe_xdp.h\"\n{body}"));
        let e = r.load(&obj, "ingress", "").unwrap_err();
        assert!(e.contains(expect), "{name}: {e:?} should say {expect:?}");
    }
    let junk = dir().join("junk.o");
    std::fs::write(&junk, b"not an object").unwrap();
    let e = r.load(&junk, "ingress", "").unwrap_err();
    assert!(e.starts_with("not an ELF object"), "{e}");
    let e = r.load(&example("pass"), "ingress", "nope").unwrap_err();
    assert_eq!(e, "no code section \"nope\" (the object has: xdp)");
    assert_eq!(r.bpf("list", |_| {}).unwrap(), serde_json::json!([]));
    // Traffic flows.
    let f = tcp_frame(PEER, 1, ENGINE, 2, 0);
    assert_eq!(r.receive(0, std::slice::from_ref(&f)), vec![f]);
}

#[test]
fn per_replica_counters_stay_apart() {
    let r = rig(2);
    let prog = compile(
        "perrep",
        r#"#include "flextoe_xdp.h"
        FLEXTOE_MAP(seen, FLEXTOE_MAP_PER_REPLICA, u32, u64, 1);
        SEC("xdp") u64 p(u8 *pkt) { u32 k = 0; seen_add(&k, 0, flextoe_md.replica + 1); return XDP_PASS; }"#,
    );
    r.load(&prog, "ingress", "").unwrap();
    let f = tcp_frame(PEER, 1, ENGINE, 2, 0);
    r.receive(0, &[f.clone(), f.clone()]);
    r.receive(1, std::slice::from_ref(&f));
    assert_eq!(r.words("seen")[0].1, serde_json::json!([[2], [2]]));
    let d = r.bpf("map_dump", |c| c.map = "seen".into()).unwrap();
    assert_eq!(d["entries"][0]["values"].as_array().unwrap().len(), 2);
}

#[test]
fn capture_module_samples_its_port_into_the_ring() {
    let r = rig(1);
    r.load(&example("capture"), "ingress", "").unwrap();
    let set = |i: u32, v: u64| {
        r.bpf("map_update", |c| {
            c.map = "cap_cfg".into();
            c.key = ops::hex(&i.to_le_bytes());
            c.value = ops::hex(&v.to_ne_bytes());
        })
        .unwrap();
    };
    set(0, 2); // one in two
    set(1, 7); // port 7
    set(2, 60); // snaplen
    let to7 = tcp_frame(PEER, 40000, ENGINE, 7, 100);
    let to9 = tcp_frame(PEER, 40000, ENGINE, 9, 100);
    // No reader: nothing is copied.
    r.receive(0, &[to7.clone(), to7.clone()]);
    assert!(r.hooks.capture.pop().is_none());
    assert!(r.hooks.capture.start());
    assert!(!r.hooks.capture.start(), "one reader at a time");
    let mut burst = vec![to7.clone(); 10];
    burst.extend(vec![to9.clone(); 5]);
    assert_eq!(r.receive(0, &burst).len(), 15, "capture never drops");
    let mut got = Vec::new();
    while let Some((ts, f)) = r.hooks.capture.pop() {
        assert!(ts > 1_600_000_000_000_000_000, "wall-clock ns");
        got.push(f);
    }
    assert_eq!(got.len(), 5, "every second port-7 frame");
    assert!(got.iter().all(|f| f[..] == to7[..60]));
    let seen = r.words("cap_seen");
    assert_eq!(seen[0].1, serde_json::json!([[12]]), "port-7 frames seen");
    assert_eq!(seen[1].1, serde_json::json!([[5]]), "captured");
    r.hooks.capture.stop();
}

/// Fills the IPv4 and TCP checksums of an option-less frame.
fn checksummed(mut f: Vec<u8>) -> Vec<u8> {
    let sum = |data: &[u8], mut s: u32| {
        for c in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    f[24..26].fill(0);
    let ip = sum(&f[14..34], 0);
    f[24..26].copy_from_slice(&ip.to_be_bytes());
    f[50..52].fill(0);
    let tcp_len = f.len() - 34;
    let mut pseudo = f[26..34].to_vec();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&f[34..]);
    let tcp = sum(&pseudo, 0);
    f[50..52].copy_from_slice(&tcp.to_be_bytes());
    f
}

#[test]
fn splice_rewrites_a_segment_with_valid_checksums() {
    use crate::wire::{parse_ingress, ChecksumCaps, L3, L4};
    let r = rig(1);
    r.load(&example("splice"), "ingress", "").unwrap();
    let server = [198, 18, 0, 3];
    let mut key = Vec::new();
    key.extend_from_slice(&PEER);
    key.extend_from_slice(&ENGINE);
    key.extend_from_slice(&40000u16.to_be_bytes());
    key.extend_from_slice(&8000u16.to_be_bytes());
    let mut to = Vec::new();
    to.extend_from_slice(&[2, 0, 0xc6, 0x12, 0, 3]); // server's MAC
    to.extend_from_slice(&[2, 0, 0xc6, 0x12, 0, 2]); // ours
    to.extend_from_slice(&ENGINE);
    to.extend_from_slice(&server);
    to.extend_from_slice(&51000u16.to_be_bytes());
    to.extend_from_slice(&7007u16.to_be_bytes());
    to.extend_from_slice(&0x8000_0010u32.to_le_bytes()); // seq delta (wraps)
    to.extend_from_slice(&0x1234u32.to_le_bytes()); // ack delta
    r.bpf("map_update", |c| {
        c.map = "splice".into();
        c.key = ops::hex(&key);
        c.value = ops::hex(&to);
    })
    .unwrap();
    for (payload, seq, ack) in [
        (0usize, 1u32, 2u32),
        (1000, 0x9000_0000, 0xffff_fff0),
        (7, 5, 6),
    ] {
        let mut f = tcp_frame(PEER, 40000, ENGINE, 8000, payload);
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[42..46].copy_from_slice(&ack.to_be_bytes());
        f[47] = 0x18; // PSH ACK
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let f = checksummed(f);
        assert!(
            parse_ingress(&f, &ChecksumCaps::default()).is_ok(),
            "input valid"
        );
        assert!(
            r.receive(0, std::slice::from_ref(&f)).is_empty(),
            "spliced, not passed up"
        );
        let out = r.mem.take_tx();
        assert_eq!(out.len(), 1);
        let o = &out[0];
        let p = parse_ingress(o, &ChecksumCaps::default()).expect("checksums valid");
        let L3::Ipv4 { ip, l4: L4::Tcp(t) } = p.l3 else {
            panic!("not TCP")
        };
        assert_eq!((ip.src.octets(), ip.dst.octets()), (ENGINE, server));
        assert_eq!((t.src_port, t.dst_port), (51000, 7007));
        assert_eq!(t.seq.0, seq.wrapping_add(0x8000_0010));
        assert_eq!(t.ack.0, ack.wrapping_add(0x1234));
        assert_eq!(&o[0..6], &[2, 0, 0xc6, 0x12, 0, 3]);
        assert_eq!(&o[54..], &f[54..], "payload untouched");
    }
    let stats = r.words("splice_stats");
    assert_eq!(stats[0].1, serde_json::json!([[3]]));
    assert_eq!(stats[1].1, serde_json::json!([[1007]]));
    // Another flow passes.
    let other = checksummed(tcp_frame(PEER, 40001, ENGINE, 8000, 0));
    assert_eq!(r.receive(0, std::slice::from_ref(&other)), vec![other]);
}
