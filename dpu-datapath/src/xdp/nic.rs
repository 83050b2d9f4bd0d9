//! [`XdpNic`]: the hooks as a wrapper of the port, like the impairment
//! layer. Queue `q`'s ingress program runs in queue `q`'s RX poll, on the
//! burst the port returned and before any stage sees it (a dropped frame
//! never takes a sequencer stamp); its egress program runs in queue `q`'s
//! TX burst, after `post`. Every pipeline placement polls the port through
//! this one trait, so the hooks behave the same in all of them.
//!
//! Verdicts:
//! - `XDP_PASS`: the frame goes on, as the program left it;
//! - `XDP_DROP`: dropped, counted (`xdp.<hook>.drop`);
//! - `XDP_TX` at ingress: out of the same queue's TX side (under the
//!   queue's TX lock, since another worker may own that side); at egress
//!   it is `XDP_PASS`;
//! - `XDP_REDIRECT` at ingress: into replica `flextoe_md.redirect`'s inbox,
//!   which that replica's next RX poll takes first, without running the
//!   program again;
//! - `XDP_ABORTED`, an unknown verdict, a redirect to no replica or at
//!   egress: a fault. The frame passes and the program is unloaded.

#![forbid(unsafe_code)]

use super::hooks::{HookPoint, QueueSlot, QueueState, Tally, XdpHooks};
use super::{Md, WINDOW};
use crate::io::{Frame, FrameSource, IoStats, Nic};
use crate::proto::Nanos;
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Redirected frames a replica's inbox holds.
const INBOX: usize = 1024;

const XDP_ABORTED: u64 = 0;
const XDP_DROP: u64 = 1;
const XDP_PASS: u64 = 2;
const XDP_TX: u64 = 3;
const XDP_REDIRECT: u64 = 4;

/// A port with programs at its hooks.
pub struct XdpNic<N: Nic> {
    inner: N,
    hooks: Arc<XdpHooks>,
    /// One per TX queue: the egress task and an ingress `XDP_TX` may run on
    /// different workers.
    tx_locks: Vec<Mutex<Vec<Frame>>>,
    inbox: Vec<ArrayQueue<(Nanos, Frame)>>,
}

impl<N: Nic> std::fmt::Debug for XdpNic<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpNic")
            .field("replicas", &self.hooks.replicas)
            .finish()
    }
}

/// What to do with one frame.
enum Action {
    Keep,
    Drop,
    Tx,
    Redirect(usize),
}

impl<N: Nic> XdpNic<N> {
    pub fn new(inner: N, hooks: Arc<XdpHooks>) -> XdpNic<N> {
        let n = hooks.replicas;
        XdpNic {
            inner,
            tx_locks: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            inbox: (0..n).map(|_| ArrayQueue::new(INBOX)).collect(),
            hooks,
        }
    }

    pub fn hooks(&self) -> &Arc<XdpHooks> {
        &self.hooks
    }

    /// Runs the queue's program on `frame`; counts into `t`.
    fn run_one(
        &self,
        hook: HookPoint,
        q: usize,
        now: u64,
        st: &mut QueueState,
        frame: &mut Frame,
        t: &mut Tally,
    ) -> Action {
        let QueueState { prog, scratch } = st;
        let Some(prog) = prog.as_mut() else {
            return Action::Keep;
        };
        if prog.0.faulted.load(Ordering::Relaxed) {
            // Unloaded at this burst's end; the rest of the burst passes.
            return Action::Keep;
        }
        let len = frame.len();
        if len > WINDOW {
            t.too_long += 1;
            return Action::Keep;
        }
        t.frames += 1;
        let md = Md {
            len: len as u32,
            replica: q as u32,
            hook: hook as u32,
            redirect: q as u32,
            rss: frame.nic_rss_hash().unwrap_or(0),
            reserved: 0,
            now_ns: now,
        };
        let (verdict, md) = if frame.is_nic_buffer() {
            // In place: an mbuf has the room (else it becomes a heap frame).
            let window = frame.window(WINDOW).expect("length checked above");
            let (v, md) = prog.1.run(window, md);
            frame.truncate((md.len as usize).min(WINDOW));
            (v, md)
        } else {
            scratch[..len].copy_from_slice(frame);
            let (v, md) = prog.1.run(scratch, md);
            let new_len = (md.len as usize).min(WINDOW);
            frame.clear();
            frame.extend_from_slice(&scratch[..new_len]);
            (v, md)
        };
        let fault = |t: &mut Tally, detail: &str| {
            t.aborted += 1;
            self.hooks.fault(&prog.0, verdict, detail);
            Action::Keep
        };
        match (verdict, hook) {
            (XDP_PASS, _) | (XDP_TX, HookPoint::Egress) => {
                t.pass += 1;
                Action::Keep
            }
            (XDP_DROP, _) => {
                t.drop += 1;
                Action::Drop
            }
            (XDP_TX, HookPoint::Ingress) => {
                t.tx += 1;
                Action::Tx
            }
            (XDP_REDIRECT, HookPoint::Ingress) => {
                let r = md.redirect as usize;
                if r >= self.hooks.replicas {
                    return fault(t, "redirect to a replica that does not exist");
                }
                t.redirect += 1;
                if r == q {
                    Action::Keep
                } else {
                    Action::Redirect(r)
                }
            }
            (XDP_REDIRECT, HookPoint::Egress) => fault(t, "XDP_REDIRECT at the egress hook"),
            (XDP_ABORTED, _) => fault(t, "XDP_ABORTED"),
            _ => fault(t, "unknown verdict"),
        }
    }

    /// Transmits `frames` on queue `q` under its TX lock.
    fn send(&self, q: usize, frames: &mut Vec<Frame>) {
        let _held = self.tx_locks[q].lock();
        self.inner.tx_burst(q, frames);
    }
}

/// True when the queue has a program to run; a faulted one is dropped
/// here, by the queue's own poller (under its lock).
fn runnable(slot: &QueueSlot, st: &mut parking_lot::MutexGuard<'_, QueueState>) -> bool {
    match &st.prog {
        None => false,
        Some((a, _)) if a.faulted.load(Ordering::Acquire) => {
            slot.armed.store(false, Ordering::Release);
            // The copy is destroyed after the lock is released.
            let old = st.prog.take();
            parking_lot::MutexGuard::unlocked(st, move || drop(old));
            false
        }
        Some(_) => true,
    }
}

impl<N: Nic> Nic for XdpNic<N> {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        let first = out.len();
        // Frames other replicas' programs sent here, already judged.
        let mut n = 0;
        if let Some(inbox) = self.inbox.get(q) {
            while n < max {
                let Some(item) = inbox.pop() else { break };
                out.push(item);
                n += 1;
            }
        }
        let from_port = self.inner.rx_burst(q, max - n, out);
        let slot = &self.hooks.slots[HookPoint::Ingress as usize][q];
        if from_port == 0 || !slot.armed.load(Ordering::Acquire) {
            return n + from_port;
        }
        let mut st = slot.state.lock();
        if !runnable(slot, &mut st) {
            return n + from_port;
        }
        let now = self.hooks.now_ns();
        let mut t = Tally::default();
        let mut tx = Vec::new();
        let start = first + n;
        let mut keep = start;
        for i in start..out.len() {
            // The program may rewrite the frame: the NIC's checksum verdict
            // and RSS hash no longer vouch for it.
            out[i].1.forget_nic_rx_offloads();
            let action = self.run_one(HookPoint::Ingress, q, now, &mut st, &mut out[i].1, &mut t);
            match action {
                Action::Keep => {
                    out.swap(keep, i);
                    keep += 1;
                }
                Action::Drop => {}
                Action::Tx => tx.push(std::mem::take(&mut out[i].1)),
                Action::Redirect(r) => {
                    let item = (out[i].0, std::mem::take(&mut out[i].1));
                    if self.inbox[r].push(item).is_err() {
                        t.redirect_full += 1;
                    }
                }
            }
        }
        if let Some((a, _)) = &st.prog {
            a.counters.add(&t);
        }
        drop(st);
        self.hooks.counters[HookPoint::Ingress as usize].add(&t);
        // Dropped and moved frames (now empty) go back to their pools here.
        out.truncate(keep);
        if !tx.is_empty() {
            self.send(q, &mut tx);
        }
        keep - first
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        let slot = &self.hooks.slots[HookPoint::Egress as usize][q];
        if !frames.is_empty() && slot.armed.load(Ordering::Acquire) {
            let mut st = slot.state.lock();
            if runnable(slot, &mut st) {
                // The program sees each segment the wire will carry.
                crate::io::gso::expand(frames);
                let now = self.hooks.now_ns();
                let mut t = Tally::default();
                let mut keep = 0;
                for i in 0..frames.len() {
                    // The program sees the frame as the wire will.
                    frames[i].finish_tx_checksums();
                    let action =
                        self.run_one(HookPoint::Egress, q, now, &mut st, &mut frames[i], &mut t);
                    if !matches!(action, Action::Drop) {
                        frames.swap(keep, i);
                        keep += 1;
                    }
                }
                if let Some((a, _)) = &st.prog {
                    a.counters.add(&t);
                }
                drop(st);
                self.hooks.counters[HookPoint::Egress as usize].add(&t);
                frames.truncate(keep);
            }
        }
        self.send(q, frames);
    }

    fn rx_pending(&self) -> usize {
        self.inner.rx_pending() + self.inbox.iter().map(|q| q.len()).sum::<usize>()
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

    /// A group moves with the port's steering unless an ingress program
    /// is loaded: it may redirect the group's frames to any queue.
    fn steer(&self, group: u32, to: usize) -> Option<Vec<u64>> {
        let slots = &self.hooks.slots[HookPoint::Ingress as usize];
        if slots.iter().any(|s| s.armed.load(Ordering::Acquire))
            || self.inbox.iter().any(|q| !q.is_empty())
        {
            return None;
        }
        self.inner.steer(group, to)
    }

    fn steer_passed(&self, q: usize, positions: &[u64]) -> bool {
        self.inner.steer_passed(q, positions)
    }
}
