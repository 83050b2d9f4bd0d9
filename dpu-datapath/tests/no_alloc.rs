//! No heap allocation per segment in steady state (issue 13): a counting
//! global allocator over a bulk receive and a bulk send through the
//! pipeline (run to completion, and split over two workers), after
//! warm-up. On receive every data segment is answered by an ACK built in
//! the received frame's buffer; on send the segments are built in buffers
//! the pipeline recycles from the ACKs it received.
//!
//! Only the pipeline's threads are counted: the test thread (which builds
//! frames and plays the peer) marks itself excluded. Periodic work (stats
//! published every 100 ms, a few allocations per task each time, however
//! many segments went by) may allocate a little; the test allows one
//! allocation per 100 segments (a per-segment allocation gives at least
//! one per segment) and prints the count.

use dpu_datapath::pipeline::{MemNic, Pipeline, PipelineOptions, Plan, ShardApp};
use dpu_datapath::sim::sim_engine_config;
use dpu_datapath::wire::{parse_ingress, ChecksumCaps, TcpFlags, L3, L4};
use pipeline_config::Topology;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../benches/support/pipeline_load.rs"]
mod pipeline_load;
use pipeline_load::{data_batch, frame_with_window, handshake, Sink};

/// Counts allocations and reallocations (frees are not counted) made by
/// threads that did not exclude themselves.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set by the test thread: its own allocations are not the pipeline's.
    static EXCLUDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if !EXCLUDED.try_with(|e| e.get()).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

fn exclude_this_thread() {
    EXCLUDED.with(|e| e.set(true));
}

/// The counter is process-wide: the tests take turns, so one test's
/// pipeline never counts in another's window.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is an atomic and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONNS: usize = 8;
const PAYLOAD: usize = 1448;

/// Allocations per received segment over `frames` segments after a
/// warm-up of the same size.
fn allocations_per_segment(topology: Topology, frames: usize) -> (u64, f64) {
    exclude_this_thread();
    let cfg = sim_engine_config(2, 1, |c| {
        c.topology = topology.clone();
        c.tcp.delayed_ack_us = 0;
        c.tcp.timestamps = false;
        c.tcp.rx_buffer = 1 << 24;
    });
    let plan = Plan::new(&topology);
    let nic = Arc::new(MemNic::new(&plan, 2 * frames + 4 * CONNS));
    let opts = PipelineOptions {
        pin: false,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic.clone(), |_| {
        Box::new(Sink(Vec::with_capacity(CONNS))) as Box<dyn ShardApp>
    });
    let ports: Vec<u16> = (0..CONNS).map(|i| 20_000 + i as u16).collect();
    let iss = handshake(&nic, &pipeline, &ports);
    let data = vec![0x5au8; PAYLOAD];
    let mut seqs = [1001u32; CONNS];
    let mut batch = |n: usize| data_batch(&nic, &ports, &iss, &mut seqs, &data, n);
    let run = |frames: Vec<(usize, Vec<u8>)>| {
        let n = frames.len();
        nic.hold(true);
        nic.discard_tx(true);
        for (q, f) in frames {
            assert!(nic.inject_to(q, 0, f));
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        nic.hold(false);
        let start = Instant::now();
        while nic.tx_count() < n {
            assert!(start.elapsed() < Duration::from_secs(60), "ACKs missing");
            std::thread::sleep(Duration::from_millis(1));
        }
        let counted = ALLOCATIONS.load(Ordering::SeqCst) - before;
        nic.take_tx();
        counted
    };
    // Warm-up: pools, rings and tables reach their steady size.
    let warm = batch(frames);
    run(warm);
    let measured = batch(frames);
    let counted = run(measured);
    let report = pipeline.shutdown();
    assert_eq!(report.total_stats().total_drops(), 0);
    (counted, counted as f64 / frames as f64)
}

fn split() -> Topology {
    let mut t = Topology {
        run_to_completion: false,
        ..Topology::default()
    };
    t.workers = t.split_placement(&[]);
    t
}

fn pipelined() -> Topology {
    let mut t = Topology {
        run_to_completion: false,
        ..Topology::default()
    };
    t.workers = t.pipelined_placement(&[]);
    t
}

#[test]
fn receive_path_allocates_nothing_per_segment() {
    let _turn = serial();
    for (name, topology) in [
        ("run to completion", Topology::default()),
        ("split", split()),
        ("pipelined", pipelined()),
    ] {
        let frames = 20_000;
        let (counted, per) = allocations_per_segment(topology, frames);
        println!("{name}: {counted} allocations over {frames} segments ({per:.5} per segment)");
        assert!(
            counted * 100 <= frames as u64,
            "{name}: {counted} allocations over {frames} segments"
        );
    }
}

/// Sends from a static buffer on every accepted connection.
struct Source(Vec<dpu_datapath::app::ConnId>);

static CHUNK: [u8; 16384] = [0x3c; 16384];

impl ShardApp for Source {
    fn start(&mut self, e: &mut dpu_datapath::engine::Engine) {
        e.listen(pipeline_load::PORT, Some(1024)).unwrap();
    }
    fn poll(&mut self, e: &mut dpu_datapath::engine::Engine) {
        while let Some(c) = e.accept(pipeline_load::PORT) {
            self.0.push(c);
        }
        for c in &self.0 {
            while e.writable(*c) > 0 {
                let n = e.writable(*c).min(CHUNK.len());
                if e.send(*c, &CHUNK[..n]).is_err() {
                    break;
                }
            }
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// Allocations while the pipeline sends `segments` data segments (after a
/// warm-up of the same size), each acknowledged by the test as it leaves.
/// With `tso`, segments of up to 64 KiB as the loopback service sends
/// them, each acknowledged in its own buffer as the loopback's receiver
/// does (so the 64 KiB buffers come back to the sender).
/// Returns the count and the longest payload sent.
fn send_allocations(topology: Topology, segments: usize, tso: bool) -> (u64, usize) {
    exclude_this_thread();
    let mut cfg = sim_engine_config(2, 1, |c| {
        c.topology = topology.clone();
        c.tcp.delayed_ack_us = 0;
        c.tcp.timestamps = false;
    });
    if tso {
        cfg.proto.tso_max = dpu_datapath::proto::ProtoConfig::MAX_SEGMENT_PAYLOAD;
        cfg.proto.tso_frame = u16::MAX;
    }
    let plan = Plan::new(&topology);
    let nic = Arc::new(MemNic::new(&plan, 1 << 16));
    let opts = PipelineOptions {
        pin: false,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::start(&cfg, &topology, opts, nic.clone(), |_| {
        Box::new(Source(Vec::with_capacity(CONNS))) as Box<dyn ShardApp>
    });
    let ports: Vec<u16> = (0..CONNS).map(|i| 30_000 + i as u16).collect();
    handshake(&nic, &pipeline, &ports);
    // Acknowledge every data segment as it leaves; count over the second
    // `segments` of them.
    let mut sent = 0usize;
    let mut largest = 0usize;
    let mut before = None;
    let start = Instant::now();
    while sent < 2 * segments {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {sent} segments sent"
        );
        if sent >= segments && before.is_none() {
            before = Some(ALLOCATIONS.load(Ordering::SeqCst));
        }
        let out = nic.take_tx();
        if out.is_empty() {
            std::thread::yield_now();
            continue;
        }
        for mut f in out {
            let Ok(p) = parse_ingress(&f, &ChecksumCaps::default()) else {
                continue;
            };
            let L3::Ipv4 { l4: L4::Tcp(t), .. } = p.l3 else {
                continue;
            };
            if t.payload.is_empty() {
                continue;
            }
            sent += 1;
            largest = largest.max(t.payload.len());
            let end = t.seq.0.wrapping_add(t.payload.len() as u32);
            // A 64 KiB window (512 << 7): the flight settles at the
            // peer's window, as against a real receiver, and the
            // congestion window stops growing once it no longer limits
            // the sender (RFC 7661).
            let ack = frame_with_window(t.dst_port, 1001, end, TcpFlags::ACK, &[], 512);
            let ack = if tso {
                f.clear();
                f.extend_from_slice(&ack);
                f
            } else {
                ack
            };
            assert!(nic.inject(0, ack));
        }
    }
    let counted = ALLOCATIONS.load(Ordering::SeqCst) - before.unwrap_or(0);
    drop(pipeline.shutdown());
    (counted, largest)
}

#[test]
fn send_path_allocates_nothing_per_segment() {
    let _turn = serial();
    for (name, topology, tso) in [
        ("run to completion", Topology::default(), false),
        ("split", split(), false),
        (
            "run to completion, 64 KiB segments",
            Topology::default(),
            true,
        ),
        ("split, 64 KiB segments", split(), true),
    ] {
        let segments = if tso { 2_000 } else { 20_000 };
        let (counted, largest) = send_allocations(topology, segments, tso);
        println!(
            "{name}: {counted} allocations over {segments} sent segments ({:.5} per segment), \
             longest payload {largest} B",
            counted as f64 / segments as f64
        );
        assert_eq!(tso, largest > 1460, "{name}: longest payload {largest} B");
        assert!(
            counted * 100 <= segments as u64,
            "{name}: {counted} allocations over {segments} sent segments"
        );
    }
}
