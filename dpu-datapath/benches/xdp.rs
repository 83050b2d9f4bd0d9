//! Cost of the XDP-style hook (issue 17), per 64-byte TCP frame:
//! - `xdp/program/*`: one program run on a frame (`Instance::run`), JIT and
//!   interpreter: the empty program (`pass.c`) and the firewall
//!   (`firewall.c`) holding 10,000 flow rules and 10,000 prefix rules, for
//!   a frame no rule matches (every frame of a healthy service) and one a
//!   prefix rule drops;
//! - `xdp/hook/*`: a 32-frame RX burst through the hook wrapper of an
//!   in-memory NIC with no program, the empty one and the firewall: the
//!   difference from `none` is what a loaded hook adds to each frame
//!   (window, metadata, per-burst lock and counters).
//!
//! `cargo bench -p dpu-datapath --bench xdp` (needs clang, as the service's
//! users do). docs/benchmarks.md has the figures.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dpu_datapath::io::Nic;
use dpu_datapath::pipeline::{MemNic, Plan};
use dpu_datapath::xdp::{Instance, Map, Md, XdpHooks, XdpNic, WINDOW};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PEER: [u8; 4] = [198, 18, 0, 1];
const ENGINE: [u8; 4] = [198, 18, 0, 2];
const RULES: u32 = 10_000;
const BURST: usize = 32;

fn compile(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("xdp");
    let dir = std::env::temp_dir().join(format!("ftoe-xdp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.o"));
    let ok = std::process::Command::new("clang")
        .args(["-target", "bpf", "-O2", "-I"])
        .arg(root.join("include"))
        .arg("-c")
        .arg(root.join(format!("examples/{name}.c")))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("clang is needed to build the programs");
    assert!(ok.success());
    out
}

fn tcp_frame(src: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 118];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&104u16.to_be_bytes());
    f[23] = 6;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&ENGINE);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&7u16.to_be_bytes());
    f[46] = 0x50;
    f[47] = 0x10;
    f
}

/// The firewall's maps with 10,000 flow rules and 10,000 /24 prefix rules
/// (none matching 198.18.0.1, one matching 10.1.1.1).
fn firewall_rules(maps: &[Arc<Map>]) {
    let by = |n: &str| maps.iter().find(|m| m.name == n).unwrap().clone();
    let flows = by("fw_flows");
    let prefixes = by("fw_prefixes");
    for i in 0..RULES {
        let mut k = Vec::new();
        k.extend_from_slice(&[10, (i >> 8) as u8, i as u8, 1]);
        k.extend_from_slice(&ENGINE);
        k.extend_from_slice(&(1000 + i as u16).to_be_bytes());
        k.extend_from_slice(&80u16.to_be_bytes());
        k.extend_from_slice(&6u32.to_le_bytes());
        flows.update(None, &k, &[0; 8]).unwrap();
        let mut p = 24u32.to_le_bytes().to_vec();
        p.extend_from_slice(&[10, (i >> 8) as u8, i as u8, 0]);
        prefixes.update(None, &p, &[0; 8]).unwrap();
    }
}

fn program(c: &mut Criterion) {
    let hooks = XdpHooks::new(1);
    let mut g = c.benchmark_group("xdp/program");
    g.throughput(Throughput::Elements(1));
    for name in ["pass", "firewall"] {
        let obj = compile(name);
        // Load through the hooks (maps created), then take copies directly.
        let attached = hooks
            .load(&obj, dpu_datapath::xdp::HookPoint::Ingress, "xdp")
            .unwrap();
        if name == "firewall" {
            firewall_rules(&attached.maps);
        }
        let names: Vec<String> = attached.maps.iter().map(|m| m.name.clone()).collect();
        let cases: &[(&str, [u8; 4])] = if name == "firewall" {
            &[("10k-rules-miss", PEER), ("10k-rules-drop", [10, 1, 1, 1])]
        } else {
            &[("empty", PEER)]
        };
        for (label, src) in cases {
            for jit in [true, false] {
                let mut inst = Instance::load(
                    &obj,
                    "xdp",
                    &names,
                    attached.maps.clone(),
                    hooks.capture.clone(),
                )
                .unwrap();
                if !jit {
                    inst = inst.interpreted();
                }
                let frame = tcp_frame(*src);
                let mut window = vec![0u8; WINDOW];
                let id = format!("{name}-{label}/{}", if jit { "jit" } else { "interp" });
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| {
                        window[..frame.len()].copy_from_slice(&frame);
                        let md = Md {
                            len: frame.len() as u32,
                            ..Md::default()
                        };
                        std::hint::black_box(inst.run(&mut window, md).0)
                    })
                });
            }
        }
    }
    g.finish();
}

fn hook(c: &mut Criterion) {
    let mut g = c.benchmark_group("xdp/hook");
    g.throughput(Throughput::Elements(BURST as u64));
    let frame = tcp_frame(PEER);
    for name in ["none", "pass", "firewall"] {
        let plan = Plan::new(&pipeline_config::Topology::default());
        let mem = Arc::new(MemNic::new(&plan, 1024));
        let hooks = XdpHooks::new(1);
        let nic = XdpNic::new(mem.clone(), hooks.clone());
        if name != "none" {
            let a = hooks
                .load(&compile(name), dpu_datapath::xdp::HookPoint::Ingress, "xdp")
                .unwrap();
            if name == "firewall" {
                firewall_rules(&a.maps);
            }
        }
        let mut out = Vec::with_capacity(BURST);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                for _ in 0..BURST {
                    mem.inject_to(0, 0, frame.clone());
                }
                out.clear();
                std::hint::black_box(nic.rx_burst(0, BURST, &mut out));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, program, hook);
criterion_main!(benches);
