//! A seeded impairment layer around any [`Nic`]: loss, duplication,
//! reordering, single-bit corruption and delay, on RX and TX independently,
//! configured from `port.impairment` (`pipeline_config::Impairments`).
//! Each queue has its own state and random streams behind a lock that only
//! that queue's pollers take (this is a test layer: the lock is the price of
//! releasing held TX frames from the RX poll).
//!
//! It exists because the test machines' kernels have no netem: faults are
//! injected between the NIC and the engine instead, reproducibly (one ChaCha
//! stream per direction and queue, seeded from `port.impairment.seed`), and the Linux
//! peer only sees wire-like effects.
//!
//! Per frame and direction, in this order:
//! 1. **drop** with probability `drop`;
//! 2. **duplicate** with probability `duplicate` (two copies follow);
//! 3. per copy, **corrupt** with probability `corrupt`: one bit flipped inside
//!    the TCP segment of an IPv4/TCP frame (after the IP header, inside the IP
//!    total length), so only the TCP checksum can catch it; other frames are
//!    left alone and not counted (as `sim::wire` does);
//! 4. per copy, **reorder** with probability `reorder`: the copy is held back
//!    until [`REORDER_DEPTH`] later frames of the same queue have passed it, or
//!    for at most [`REORDER_HOLD_US`] (plus `delay_us`) when traffic stops;
//! 5. **delay**: every frame is released `delay_us` after it arrived.
//!
//! Held TX frames go out on the next `tx_burst` or `rx_burst` of their queue
//! (the pipeline polls RX constantly), so a delay does not need more traffic.

use super::{Frame, FrameSource, IoStats, Nic};
use crate::proto::Nanos;
use parking_lot::Mutex;
use pipeline_config::{Impairment, Impairments};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Later frames that pass a reordered frame before it is released.
pub const REORDER_DEPTH: u32 = 3;
/// Longest a reordered frame is held when fewer than [`REORDER_DEPTH`]
/// frames follow it, in microseconds (on top of `delay_us`).
pub const REORDER_HOLD_US: u64 = 1_000;

/// What the layer did in one direction (shared, readable while it runs).
#[derive(Debug, Default)]
pub struct DirCounters {
    /// Frames that entered the layer.
    pub frames: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
    pub corrupted: AtomicU64,
    /// Frames held for `delay_us`.
    pub delayed: AtomicU64,
}

/// A plain copy of [`DirCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirSnapshot {
    pub frames: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub delayed: u64,
}

impl DirCounters {
    pub fn snapshot(&self) -> DirSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirSnapshot {
            frames: l(&self.frames),
            dropped: l(&self.dropped),
            duplicated: l(&self.duplicated),
            reordered: l(&self.reordered),
            corrupted: l(&self.corrupted),
            delayed: l(&self.delayed),
        }
    }

    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Both directions' counters.
#[derive(Debug, Default)]
pub struct ImpairCounters {
    /// Received frames (NIC -> engine).
    pub rx: DirCounters,
    /// Transmitted frames (engine -> NIC).
    pub tx: DirCounters,
}

/// True when `imp` changes anything.
pub fn is_active(imp: &Impairment) -> bool {
    imp.drop > 0.0
        || imp.duplicate > 0.0
        || imp.reorder > 0.0
        || imp.corrupt > 0.0
        || imp.delay_us > 0
}

/// A frame held back by reordering.
#[derive(Debug)]
struct Reordered {
    /// Frames still to pass it.
    remaining: u32,
    /// Released by time at the latest (ns on the layer's clock).
    deadline: u64,
    frame: Frame,
}

/// One direction of one queue.
#[derive(Debug, Default)]
struct Lane {
    reordered: Vec<Reordered>,
    /// (release time, frame), in release order (the delay is fixed).
    delayed: VecDeque<(u64, Frame)>,
    /// Released, waiting for the caller (RX) or the NIC (TX).
    ready: VecDeque<Frame>,
}

/// One direction of one queue: parameters, random stream, its lane.
#[derive(Debug)]
struct Direction {
    params: Impairment,
    rng: ChaCha8Rng,
    lane: Lane,
}

impl Direction {
    fn new(params: &Impairment, seed: u64) -> Self {
        Self {
            params: params.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            lane: Lane::default(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.clamp(0.0, 1.0))
    }

    /// Runs one frame through the impairments.
    fn process(&mut self, frame: Frame, now: u64, counters: &DirCounters) {
        DirCounters::add(&counters.frames);
        let p = self.params.clone();
        if self.chance(p.drop) {
            DirCounters::add(&counters.dropped);
            return;
        }
        let copies = if self.chance(p.duplicate) {
            DirCounters::add(&counters.duplicated);
            vec![frame.clone(), frame]
        } else {
            vec![frame]
        };
        let delay_ns = p.delay_us.saturating_mul(1000);
        for mut f in copies {
            if self.chance(p.corrupt) && corrupt(&mut f, &mut self.rng) {
                // The NIC's checksum verdict and hash no longer hold.
                f.forget_nic_rx_offloads();
                DirCounters::add(&counters.corrupted);
            }
            if self.chance(p.reorder) {
                DirCounters::add(&counters.reordered);
                self.lane.reordered.push(Reordered {
                    remaining: REORDER_DEPTH,
                    deadline: now + REORDER_HOLD_US * 1000 + delay_ns,
                    frame: f,
                });
                continue;
            }
            // A passing frame: release it, then whatever it was the last to pass.
            let lane = &mut self.lane;
            lane.pass(f, now, delay_ns, counters);
            let mut i = 0;
            while i < lane.reordered.len() {
                lane.reordered[i].remaining -= 1;
                if lane.reordered[i].remaining == 0 {
                    let r = lane.reordered.remove(i);
                    lane.pass(r.frame, now, delay_ns, counters);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Releases what is due at `now` into the lanes' `ready` queues.
    fn release_due(&mut self, now: u64) {
        let lane = &mut self.lane;
        let mut i = 0;
        while i < lane.reordered.len() {
            if lane.reordered[i].deadline <= now {
                let r = lane.reordered.remove(i);
                // Its hold already included the delay.
                lane.ready.push_back(r.frame);
            } else {
                i += 1;
            }
        }
        while lane.delayed.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, f)) = lane.delayed.pop_front() {
                lane.ready.push_back(f);
            }
        }
    }
}

impl Lane {
    fn pass(&mut self, frame: Frame, now: u64, delay_ns: u64, counters: &DirCounters) {
        if delay_ns == 0 {
            self.ready.push_back(frame);
        } else {
            DirCounters::add(&counters.delayed);
            self.delayed.push_back((now + delay_ns, frame));
        }
    }

    fn held(&self) -> usize {
        self.reordered.len() + self.delayed.len() + self.ready.len()
    }
}

/// Flips one bit of the TCP segment (see [`flip_tcp_bit`]) after computing
/// checksums left to the port: a port that computed them afterwards would
/// vouch for the flipped bit.
fn corrupt(f: &mut Frame, rng: &mut impl Rng) -> bool {
    f.finish_tx_checksums();
    flip_tcp_bit(f, rng)
}

/// Flips one random bit inside the TCP segment of an IPv4/TCP Ethernet
/// frame (never in the Ethernet or IP header, never in padding past the IP
/// total length); false, and the frame untouched, for anything else.
pub fn flip_tcp_bit(frame: &mut [u8], rng: &mut impl Rng) -> bool {
    const ETH: usize = 14;
    if frame.len() <= ETH + 20 || frame[12..14] != [0x08, 0x00] || frame[ETH + 9] != 6 {
        return false;
    }
    let ihl = ((frame[ETH] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([frame[ETH + 2], frame[ETH + 3]]) as usize;
    let seg_start = ETH + ihl;
    let seg_end = (ETH + total).min(frame.len());
    if ihl < 20 || seg_end <= seg_start {
        return false;
    }
    let byte = rng.gen_range(seg_start..seg_end);
    let bit = rng.gen_range(0..8);
    frame[byte] ^= 1 << bit;
    true
}

/// Both directions of one queue.
#[derive(Debug)]
struct QueueImpair {
    rx: Direction,
    tx: Direction,
    rx_scratch: Vec<(Nanos, Frame)>,
    tx_scratch: Vec<Frame>,
}

/// Seeds of queue `q`'s streams differ by this odd constant; queue 0 keeps
/// the single-queue seeds (`seed * 2 + 1` for RX, `+ 2` for TX).
const QUEUE_SEED_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// No fixed clock (the layer reads real time).
const REAL_TIME: u64 = u64::MAX;

/// Any [`Nic`] with the configured impairments applied on both directions;
/// see the module documentation.
#[derive(Debug)]
pub struct ImpairedNic<N> {
    inner: N,
    queues: Vec<Mutex<QueueImpair>>,
    counters: Arc<ImpairCounters>,
    start: Instant,
    /// Test hook: a fixed clock instead of `start.elapsed()`.
    fixed_now: AtomicU64,
}

impl<N: Nic> ImpairedNic<N> {
    /// Wraps `inner`'s first `queues` queues. RX and TX draw from separate
    /// streams derived from `cfg.seed`, so changing one direction's settings
    /// does not change the other's decisions.
    pub fn new(inner: N, cfg: &Impairments, queues: usize) -> Self {
        let queues = (0..queues.max(1) as u64)
            .map(|q| {
                let base = cfg
                    .seed
                    .wrapping_mul(2)
                    .wrapping_add(q.wrapping_mul(QUEUE_SEED_STEP));
                Mutex::new(QueueImpair {
                    rx: Direction::new(&cfg.rx, base.wrapping_add(1)),
                    tx: Direction::new(&cfg.tx, base.wrapping_add(2)),
                    rx_scratch: Vec::new(),
                    tx_scratch: Vec::new(),
                })
            })
            .collect();
        Self {
            inner,
            queues,
            counters: Arc::new(ImpairCounters::default()),
            start: Instant::now(),
            fixed_now: AtomicU64::new(REAL_TIME),
        }
    }

    /// The counters, shared: readable from another thread while frames flow.
    pub fn counters(&self) -> Arc<ImpairCounters> {
        self.counters.clone()
    }

    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// Frames held (reordered or delayed) in either direction right now.
    pub fn held(&self) -> usize {
        self.queues
            .iter()
            .map(|q| {
                let q = q.lock();
                q.rx.lane.held() + q.tx.lane.held()
            })
            .sum()
    }

    /// Test hook: freeze the layer's clock at `now_ns` (`None`: real time).
    pub fn set_clock(&self, now_ns: Option<u64>) {
        self.fixed_now
            .store(now_ns.unwrap_or(REAL_TIME), Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        match self.fixed_now.load(Ordering::Relaxed) {
            REAL_TIME => self.start.elapsed().as_nanos() as u64,
            fixed => fixed,
        }
    }

    /// Sends TX frames of queue `q` that are due.
    fn flush_tx(&self, q: usize, state: &mut QueueImpair, now: u64) {
        state.tx.release_due(now);
        if state.tx.lane.ready.is_empty() {
            return;
        }
        state.tx_scratch.clear();
        state.tx_scratch.extend(state.tx.lane.ready.drain(..));
        self.inner.tx_burst(q, &mut state.tx_scratch);
    }
}

impl<N: Nic> Nic for ImpairedNic<N> {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        let Some(state) = self.queues.get(q) else {
            return self.inner.rx_burst(q, max, out);
        };
        let mut state = state.lock();
        let state = &mut *state;
        let now = self.now();
        self.flush_tx(q, state, now);
        state.rx_scratch.clear();
        self.inner.rx_burst(q, max, &mut state.rx_scratch);
        for (_, frame) in state.rx_scratch.drain(..) {
            state.rx.process(frame, now, &self.counters.rx);
        }
        state.rx.release_due(now);
        let lane = &mut state.rx.lane;
        let n = lane.ready.len().min(max);
        out.extend(lane.ready.drain(..n).map(|f| (0, f)));
        n
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        let Some(state) = self.queues.get(q) else {
            return self.inner.tx_burst(q, frames);
        };
        let mut state = state.lock();
        let now = self.now();
        // Faults apply to what the wire carries: segments the port was to
        // cut (TSO) are cut first.
        if is_active(&state.tx.params) {
            super::gso::expand(frames);
        }
        for frame in frames.drain(..) {
            state.tx.process(frame, now, &self.counters.tx);
        }
        self.flush_tx(q, &mut state, now);
    }

    fn rx_pending(&self) -> usize {
        self.inner.rx_pending()
    }

    fn frame_source(&self) -> FrameSource {
        self.inner.frame_source()
    }

    fn stats(&self) -> IoStats {
        self.inner.stats()
    }

    fn attach_thread(&self) {
        self.inner.attach_thread()
    }

    fn detach_thread(&self) {
        self.inner.detach_thread()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory port: `rx` is what the wire delivers, `tx` what was sent.
    #[derive(Debug, Default)]
    struct Loop {
        rx: Mutex<VecDeque<Vec<u8>>>,
        tx: Mutex<Vec<Vec<u8>>>,
    }

    impl Nic for Loop {
        fn rx_burst(&self, _q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
            let mut rx = self.rx.lock();
            let n = rx.len().min(max);
            out.extend(rx.drain(..n).map(|f| (0, Frame::from(f))));
            n
        }
        fn tx_burst(&self, _q: usize, frames: &mut Vec<Frame>) {
            self.tx.lock().extend(frames.drain(..).map(Frame::into_vec));
        }
    }

    /// An Ethernet/IPv4/TCP frame whose payload carries `id` (big-endian),
    /// padded to `len` bytes past the IP total length.
    fn tcp_frame(id: u32) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + 4];
        f[12] = 0x08;
        f[14] = 0x45;
        let total = (20 + 20 + 4) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[14 + 9] = 6;
        f[54..58].copy_from_slice(&id.to_be_bytes());
        f
    }

    fn id_of(f: &[u8]) -> u32 {
        u32::from_be_bytes([f[54], f[55], f[56], f[57]])
    }

    fn imp(f: impl FnOnce(&mut Impairment)) -> Impairments {
        let mut i = Impairment::default();
        f(&mut i);
        Impairments {
            seed: 7,
            rx: i.clone(),
            tx: i,
        }
    }

    fn frames(out: Vec<(Nanos, Frame)>) -> Vec<Vec<u8>> {
        out.into_iter().map(|(_, f)| f.into_vec()).collect()
    }

    fn run_rx(cfg: &Impairments, n: u32) -> (Vec<Vec<u8>>, DirSnapshot) {
        let io = ImpairedNic::new(Loop::default(), cfg, 1);
        io.set_clock(Some(0));
        io.inner().rx.lock().extend((0..n).map(tcp_frame));
        let mut out = Vec::new();
        while io.rx_burst(0, 32, &mut out) > 0 {}
        // Let anything held by time go.
        io.set_clock(Some(10_000_000_000));
        while io.rx_burst(0, 32, &mut out) > 0 {}
        assert_eq!(io.held(), 0);
        (frames(out), io.counters().rx.snapshot())
    }

    #[test]
    fn no_impairment_passes_everything_in_order() {
        let (out, c) = run_rx(&Impairments::default(), 100);
        assert_eq!(
            out.iter().map(|f| id_of(f)).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        assert_eq!(c.frames, 100);
        assert_eq!(
            (c.dropped, c.duplicated, c.reordered, c.corrupted),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn drop_rate_is_close_and_counted() {
        let (out, c) = run_rx(&imp(|i| i.drop = 0.1), 10_000);
        assert_eq!(out.len() as u64 + c.dropped, 10_000);
        assert!((800..1200).contains(&c.dropped), "{c:?}");
        // What survives keeps its order.
        assert!(out.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])));
    }

    #[test]
    fn duplicates_arrive_twice() {
        let (out, c) = run_rx(&imp(|i| i.duplicate = 0.05), 10_000);
        assert_eq!(out.len() as u64, 10_000 + c.duplicated);
        assert!((350..650).contains(&c.duplicated), "{c:?}");
    }

    #[test]
    fn reorder_holds_back_behind_later_frames() {
        let (out, c) = run_rx(&imp(|i| i.reorder = 0.25), 2_000);
        assert_eq!(out.len(), 2_000, "reordering loses nothing");
        let mut ids: Vec<u32> = out.iter().map(|f| id_of(f)).collect();
        let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(c.reordered > 300, "{c:?}");
        assert!(inversions > 0);
        ids.sort_unstable();
        assert_eq!(ids, (0..2_000).collect::<Vec<_>>());
    }

    #[test]
    fn a_lone_reordered_frame_is_released_by_time() {
        let cfg = imp(|i| i.reorder = 1.0);
        let io = ImpairedNic::new(Loop::default(), &cfg, 1);
        io.set_clock(Some(0));
        io.inner().rx.lock().push_back(tcp_frame(1));
        let mut out = Vec::new();
        assert_eq!(io.rx_burst(0, 8, &mut out), 0);
        io.set_clock(Some(REORDER_HOLD_US * 1000 - 1));
        assert_eq!(io.rx_burst(0, 8, &mut out), 0);
        io.set_clock(Some(REORDER_HOLD_US * 1000));
        assert_eq!(io.rx_burst(0, 8, &mut out), 1);
    }

    #[test]
    fn corruption_flips_one_bit_inside_the_tcp_segment_only() {
        let (out, c) = run_rx(&imp(|i| i.corrupt = 1.0), 500);
        assert_eq!(c.corrupted, 500);
        for f in &out {
            let clean = tcp_frame(0);
            let diff: Vec<usize> = (0..f.len())
                .filter(|&i| f[i] != clean[i] && !(54..58).contains(&i))
                .collect();
            // Either the payload id bytes changed or exactly one header byte did.
            assert!(diff.len() <= 1, "{diff:?}");
            assert!(
                diff.iter().all(|&i| i >= 34),
                "bit flipped before the TCP header: {diff:?}"
            );
        }
        // Non-TCP frames are never touched nor counted.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut arp = vec![0u8; 60];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(!flip_tcp_bit(&mut arp, &mut rng));
        assert!(arp.iter().skip(14).all(|&b| b == 0));
    }

    #[test]
    fn delay_holds_every_frame_for_delay_us() {
        let cfg = imp(|i| i.delay_us = 100);
        let io = ImpairedNic::new(Loop::default(), &cfg, 1);
        io.set_clock(Some(1_000));
        io.inner().rx.lock().extend((0..3).map(tcp_frame));
        let mut out = Vec::new();
        assert_eq!(io.rx_burst(0, 8, &mut out), 0);
        io.set_clock(Some(1_000 + 100_000));
        assert_eq!(io.rx_burst(0, 8, &mut out), 3);
        assert_eq!(io.counters().rx.snapshot().delayed, 3);
    }

    #[test]
    fn delayed_tx_leaves_on_the_next_rx_poll() {
        let cfg = Impairments {
            tx: Impairment {
                delay_us: 50,
                ..Impairment::default()
            },
            ..Impairments::default()
        };
        let io = ImpairedNic::new(Loop::default(), &cfg, 1);
        io.set_clock(Some(0));
        let mut frames = vec![Frame::from(tcp_frame(1)), Frame::from(tcp_frame(2))];
        io.tx_burst(0, &mut frames);
        assert!(frames.is_empty());
        assert!(io.inner().tx.lock().is_empty(), "held for the delay");
        io.set_clock(Some(50_000));
        let mut out = Vec::new();
        io.rx_burst(0, 8, &mut out);
        assert_eq!(
            io.inner()
                .tx
                .lock()
                .iter()
                .map(|f| id_of(f))
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn same_seed_same_decisions_and_directions_are_independent() {
        let cfg = imp(|i| {
            i.drop = 0.1;
            i.duplicate = 0.1;
            i.reorder = 0.1;
            i.corrupt = 0.1;
        });
        let a = run_rx(&cfg, 1_000);
        let b = run_rx(&cfg, 1_000);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        let mut other = cfg.clone();
        other.tx.drop = 0.9;
        assert_eq!(
            run_rx(&other, 1_000).0,
            a.0,
            "TX settings must not move RX decisions"
        );
    }

    #[test]
    fn activity_check() {
        assert!(!is_active(&Impairment::default()));
        assert!(is_active(&Impairment {
            delay_us: 1,
            ..Impairment::default()
        }));
    }
}
