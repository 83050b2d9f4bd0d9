//! The hooks of one service: which program runs at each hook of each
//! queue, the maps by name, and what the programs decided.
//!
//! Loading a program loads one copy per queue, then swaps each queue's
//! copy under that queue's lock, which its poller takes once per burst: a
//! replacement takes effect between two bursts of a queue and never in the
//! middle of one, and no connection notices it. A map keeps its entries
//! while any loaded program declares it, so a new version of a program
//! that declares the same map finds the old one's entries.

#![forbid(unsafe_code)]

use super::maps::{Map, MapDef};
use super::object::{inspect, ObjectInfo};
use super::program::{Program, Runtime};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// Where a program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPoint {
    /// Frames from the port, before `pre` (and before they are stamped).
    Ingress = 0,
    /// Frames to the port, after `post`.
    Egress = 1,
}

impl HookPoint {
    pub fn parse(text: &str) -> Result<HookPoint, String> {
        match text {
            "ingress" => Ok(HookPoint::Ingress),
            "egress" => Ok(HookPoint::Egress),
            other => Err(format!(
                "hook {other:?} (allowed values: \"ingress\", \"egress\")"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HookPoint::Ingress => "ingress",
            HookPoint::Egress => "egress",
        }
    }
}

/// What the programs at one hook decided, frame by frame.
#[derive(Debug, Default)]
pub struct VerdictCounters {
    /// Frames a program ran on.
    pub frames: AtomicU64,
    pub pass: AtomicU64,
    pub drop: AtomicU64,
    pub tx: AtomicU64,
    pub redirect: AtomicU64,
    /// Program faults (XDP_ABORTED, an unknown verdict, a redirect to no
    /// replica): the frame passed and the program was unloaded.
    pub aborted: AtomicU64,
    /// Frames longer than the program's window: passed without a run.
    pub too_long: AtomicU64,
    /// Redirected frames the target replica's inbox could not take.
    pub redirect_full: AtomicU64,
}

/// Per-burst tallies, added to the shared counters once per burst.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub frames: u64,
    pub pass: u64,
    pub drop: u64,
    pub tx: u64,
    pub redirect: u64,
    pub aborted: u64,
    pub too_long: u64,
    pub redirect_full: u64,
}

impl VerdictCounters {
    pub fn add(&self, t: &Tally) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.frames, t.frames);
        add(&self.pass, t.pass);
        add(&self.drop, t.drop);
        add(&self.tx, t.tx);
        add(&self.redirect, t.redirect);
        add(&self.aborted, t.aborted);
        add(&self.too_long, t.too_long);
        add(&self.redirect_full, t.redirect_full);
    }

    pub fn json(&self) -> Value {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "frames": l(&self.frames),
            "pass": l(&self.pass),
            "drop": l(&self.drop),
            "tx": l(&self.tx),
            "redirect": l(&self.redirect),
            "aborted": l(&self.aborted),
            "too_long": l(&self.too_long),
            "redirect_full": l(&self.redirect_full),
        })
    }

    /// (verdict label, count) pairs for `/metrics`.
    pub fn pairs(&self) -> [(&'static str, u64); 7] {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("pass", l(&self.pass)),
            ("drop", l(&self.drop)),
            ("tx", l(&self.tx)),
            ("redirect", l(&self.redirect)),
            ("aborted", l(&self.aborted)),
            ("too_long", l(&self.too_long)),
            ("redirect_full", l(&self.redirect_full)),
        ]
    }
}

/// A loaded program (one copy per queue runs it).
#[derive(Debug)]
pub struct Attached {
    pub id: u64,
    pub path: PathBuf,
    pub section: String,
    pub hook: HookPoint,
    pub insns: usize,
    pub jit: bool,
    pub maps: Vec<Arc<Map>>,
    pub counters: VerdictCounters,
    /// Set by the first fault; every queue then drops its copy.
    pub faulted: AtomicBool,
    pub loaded_at: std::time::SystemTime,
}

/// One queue's program at one hook, and the poller's scratch window.
#[derive(Debug)]
pub struct QueueState {
    pub prog: Option<(Arc<Attached>, Box<dyn Program>)>,
    /// A heap frame (not a NIC buffer) is run here: copied in and back,
    /// instead of growing its buffer to the window and zeroing it.
    pub scratch: Box<[u8]>,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState {
            prog: None,
            scratch: vec![0u8; super::WINDOW].into_boxed_slice(),
        }
    }
}

#[derive(Debug, Default)]
pub struct QueueSlot {
    /// A program is attached (read once per burst without the lock).
    pub armed: AtomicBool,
    pub state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct Registry {
    /// The program at each hook.
    attached: [Option<Arc<Attached>>; 2],
    maps: HashMap<String, Weak<Map>>,
}

/// Programs, maps and counters of one service.
#[derive(Debug)]
pub struct XdpHooks {
    pub replicas: usize,
    /// `[hook][queue]`.
    pub slots: [Vec<QueueSlot>; 2],
    /// Totals per hook, across programs.
    pub counters: [VerdictCounters; 2],
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    started: std::time::Instant,
    /// Where programs' `flextoe_capture` puts frames.
    pub capture: Arc<super::capture::CaptureRing>,
    runtime: Box<dyn Runtime>,
}

impl XdpHooks {
    pub fn new(replicas: usize) -> Arc<XdpHooks> {
        let replicas = replicas.max(1);
        let queues = || (0..replicas).map(|_| QueueSlot::default()).collect();
        Arc::new(XdpHooks {
            replicas,
            slots: [queues(), queues()],
            counters: Default::default(),
            registry: Mutex::new(Registry::default()),
            next_id: AtomicU64::new(1),
            started: std::time::Instant::now(),
            capture: Arc::default(),
            runtime: Box::new(super::DefaultRuntime::default()),
        })
    }

    /// Nanoseconds since the hooks were made (`flextoe_md.now_ns`).
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Loads `section` of the object at `path` at `hook` on every queue,
    /// replacing the program there. The error names what is wrong.
    pub fn load(
        &self,
        path: &Path,
        hook: HookPoint,
        section: &str,
    ) -> Result<Arc<Attached>, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let info: ObjectInfo = inspect(&bytes)?;
        info.check(section)?;
        let insns = info
            .sections
            .iter()
            .find(|(n, _)| n == section)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let maps = self.maps_for(&info.maps)?;
        let names: Vec<String> = info.maps.iter().map(|(n, _)| n.clone()).collect();
        let mut copies = Vec::with_capacity(self.replicas);
        for _ in 0..self.replicas {
            copies.push(self.runtime.load(
                path,
                section,
                &names,
                maps.clone(),
                self.capture.clone(),
            )?);
        }
        let attached = Arc::new(Attached {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            path: path.to_owned(),
            section: section.to_owned(),
            hook,
            insns,
            jit: copies.first().is_some_and(|c| c.jitted()),
            maps,
            counters: VerdictCounters::default(),
            faulted: AtomicBool::new(false),
            loaded_at: std::time::SystemTime::now(),
        });
        for (slot, copy) in self.slots[hook as usize].iter().zip(copies) {
            let old = slot.state.lock().prog.replace((attached.clone(), copy));
            slot.armed.store(true, Ordering::Release);
            drop(old);
        }
        let mut reg = self.registry.lock();
        reg.attached[hook as usize] = Some(attached.clone());
        reg.maps.retain(|_, m| m.strong_count() > 0);
        tracing::info!(
            id = attached.id,
            file = %path.display(),
            section,
            hook = hook.name(),
            insns,
            jit = attached.jit,
            "xdp: program loaded"
        );
        Ok(attached)
    }

    /// The maps `defs` name: existing ones of the same definition, or new.
    fn maps_for(&self, defs: &[(String, MapDef)]) -> Result<Vec<Arc<Map>>, String> {
        let mut reg = self.registry.lock();
        let mut out = Vec::with_capacity(defs.len());
        for (name, def) in defs {
            def.validate(name, self.replicas)?;
            if let Some(m) = reg.maps.get(name).and_then(Weak::upgrade) {
                if m.def != *def {
                    return Err(format!(
                        "map {name} exists with another definition ({:?}, key {} B, value {} B, \
                         {} entries); unload the programs that use it first",
                        m.def.kind, m.def.key_size, m.def.value_size, m.def.max_entries
                    ));
                }
                out.push(m);
                continue;
            }
            let m = Arc::new(Map::new(name, *def, self.replicas));
            reg.maps.insert(name.clone(), Arc::downgrade(&m));
            out.push(m);
        }
        Ok(out)
    }

    /// Detaches program `id` from every queue.
    pub fn unload(&self, id: u64) -> Result<(), String> {
        let hook = {
            let mut reg = self.registry.lock();
            let Some(h) = reg
                .attached
                .iter()
                .position(|a| a.as_ref().is_some_and(|a| a.id == id))
            else {
                return Err(format!(
                    "no program with id {id} (see `flextoe-dpu bpf list`)"
                ));
            };
            reg.attached[h] = None;
            h
        };
        self.detach(hook, id);
        tracing::info!(id, "xdp: program unloaded");
        Ok(())
    }

    /// Removes program `id`'s copies at `hook` (each queue's under its lock).
    fn detach(&self, hook: usize, id: u64) {
        for slot in &self.slots[hook] {
            let mut st = slot.state.lock();
            if st.prog.as_ref().is_some_and(|(a, _)| a.id == id) {
                slot.armed.store(false, Ordering::Release);
                let old = st.prog.take();
                drop(st);
                drop(old);
            }
        }
    }

    /// Called by a poller that saw `attached` fault: unloads it once, with
    /// the log line operators look for.
    pub fn fault(&self, attached: &Attached, verdict: u64, detail: &str) {
        if attached.faulted.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            id = attached.id,
            file = %attached.path.display(),
            hook = attached.hook.name(),
            verdict,
            "xdp: program faulted ({detail}); unloaded, frames pass through"
        );
        let mut reg = self.registry.lock();
        let h = attached.hook as usize;
        if reg.attached[h]
            .as_ref()
            .is_some_and(|a| a.id == attached.id)
        {
            reg.attached[h] = None;
        }
    }

    /// The loaded programs, for `bpf list`.
    pub fn list(&self) -> Value {
        let reg = self.registry.lock();
        let rows: Vec<Value> = reg
            .attached
            .iter()
            .flatten()
            .map(|a| {
                json!({
                    "id": a.id,
                    "hook": a.hook.name(),
                    "file": a.path.display().to_string(),
                    "section": a.section,
                    "insns": a.insns,
                    "jit": a.jit,
                    "maps": a.maps.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
                    "counters": a.counters.json(),
                })
            })
            .collect();
        Value::Array(rows)
    }

    /// A map in use, by name.
    pub fn map(&self, name: &str) -> Result<Arc<Map>, String> {
        let reg = self.registry.lock();
        reg.maps.get(name).and_then(Weak::upgrade).ok_or_else(|| {
            let mut names: Vec<&String> = reg
                .maps
                .iter()
                .filter(|(_, m)| m.strong_count() > 0)
                .map(|(n, _)| n)
                .collect();
            names.sort();
            format!(
                "no map named {name:?} (maps of loaded programs: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })
    }

    /// Every map in use.
    pub fn maps(&self) -> Vec<Arc<Map>> {
        let reg = self.registry.lock();
        let mut maps: Vec<Arc<Map>> = reg.maps.values().filter_map(Weak::upgrade).collect();
        maps.sort_by(|a, b| a.name.cmp(&b.name));
        maps
    }

    /// The `xdp` part of the stat document.
    pub fn json(&self) -> Value {
        json!({
            "ingress": self.counters[0].json(),
            "egress": self.counters[1].json(),
            "programs": self.list(),
        })
    }
}
