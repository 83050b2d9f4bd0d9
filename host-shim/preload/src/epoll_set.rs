//! The offloaded members of the program's epoll fds, and the ready list
//! that makes a wait cost O(members with news) instead of O(members).
//!
//! A member's readiness changes only by an event for its connection
//! (libtoe's `Activity`, counted as its context is polled), a call of the
//! program on it (`state::lookup`), the service going away, or a fork. The
//! first two tell the member's sets directly: each socket carries up to
//! [`WATCH_SLOTS`] (epoll fd, fd) slots ([`WatchSlots`]), and the first
//! notice after a pass pushes the fd onto each set's lock-free `dirty`
//! queue. A pass (`wait::epoll_collect_in`) then visits only:
//! - the members on the queue;
//! - the members whose readiness cannot be reused (`Reg::seen` is None:
//!   listeners, fresh sockets, sockets still connecting or failed), every
//!   pass;
//! - the level-triggered members it reported last time (reported again
//!   while they stay ready, as the kernel's ready list does);
//! - every member, when something not reported per member happened (the
//!   service went away), without the attachment at hand, or once a socket
//!   had no free slot for the set (from then on).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::SegQueue;
use libc::c_int;
use parking_lot::Mutex;
use toe::Activity;

use crate::state::{relock, Eval, Sock, State, SERVICE_LOST};

/// Epoll registrations a socket reports to directly; a socket in more
/// sets (or under more fds) makes those sets visit all members each pass.
pub(crate) const WATCH_SLOTS: usize = 2;

/// Set in a slot while its fd waits on its set's queue.
const DIRTY: u64 = 1 << 63;

/// A socket's registrations, each `(epfd + 1) << 32 | fd` plus [`DIRTY`]
/// (0, or a lone DIRTY: free). Atomics: a notice takes no lock of the
/// socket or the set, only the registry's read lock (a std lock, which a
/// fork never leaves held: `fork_prepare` takes it) to find the set.
#[derive(Default)]
pub(crate) struct WatchSlots {
    slots: [AtomicU64; WATCH_SLOTS],
}

fn pack(epfd: c_int, fd: c_int) -> u64 {
    ((epfd as u32 as u64 + 1) << 32) | fd as u32 as u64
}

fn unpack(v: u64) -> (c_int, c_int) {
    ((((v & !DIRTY) >> 32) - 1) as c_int, v as u32 as c_int)
}

impl WatchSlots {
    /// Takes a slot for `fd` in `epfd` (clean); false if none is free.
    pub(crate) fn claim(&self, epfd: c_int, fd: c_int) -> bool {
        let want = pack(epfd, fd);
        if let Some(s) = self
            .slots
            .iter()
            .find(|s| s.load(Ordering::Acquire) & !DIRTY == want)
        {
            s.store(want, Ordering::Release);
            return true;
        }
        self.slots.iter().any(|s| {
            let mut v = s.load(Ordering::Acquire);
            // A free slot may hold a lone DIRTY (a notice raced a release).
            while v & !DIRTY == 0 {
                match s.compare_exchange(v, want, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return true,
                    Err(now) => v = now,
                }
            }
            false
        })
    }

    /// Frees `fd`'s slot in `epfd`, if it has one (retrying while a
    /// notice marks it meanwhile).
    pub(crate) fn release(&self, epfd: c_int, fd: c_int) {
        let want = pack(epfd, fd);
        for s in &self.slots {
            let mut v = s.load(Ordering::Acquire);
            while v & !DIRTY == want {
                match s.compare_exchange(v, 0, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => v = now,
                }
            }
        }
    }

    /// Frees every slot (a fork child: its parent's sets are not its own).
    pub(crate) fn clear(&self) {
        for s in &self.slots {
            s.store(0, Ordering::Release);
        }
    }

    /// A pass is about to look at `fd` in `epfd`: a notice from now on
    /// queues it again. SeqCst, as the counts the pass reads next and the
    /// notices' counts and slot loads: either a notice sees the slot clean
    /// (and queues it), or the pass sees the count the notice follows.
    pub(crate) fn clean(&self, epfd: c_int, fd: c_int) {
        let want = pack(epfd, fd);
        for s in &self.slots {
            let _ = s.compare_exchange(want | DIRTY, want, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Something may have changed the socket: queues each registration
    /// not already queued.
    pub(crate) fn notify(&self) {
        for s in &self.slots {
            // SeqCst: see `clean`.
            let v = s.load(Ordering::SeqCst);
            if v & !DIRTY == 0 || v & DIRTY != 0 {
                continue;
            }
            let old = s.fetch_or(DIRTY, Ordering::AcqRel);
            if old & DIRTY == 0 && old != 0 {
                let (epfd, fd) = unpack(old);
                if let Some(set) = epoll_set(epfd) {
                    set.dirty.push(fd);
                }
            }
        }
    }
}

/// One offloaded fd in an epoll set.
#[derive(Clone, Debug)]
pub(crate) struct Reg {
    pub events: u32,
    pub data: u64,
    /// Bits seen at the last evaluation (edge detection).
    pub prev: u32,
    pub rx_mark: u64,
    pub tx_mark: u64,
    /// EPOLLONESHOT fired: silent until EPOLL_CTL_MOD.
    pub disabled: bool,
    /// The last evaluation of an established stream, reused while nothing
    /// could have changed it.
    pub seen: Option<Seen>,
    /// On the set's `check` list.
    pub queued: bool,
}

impl Reg {
    pub(crate) fn new(events: u32, data: u64) -> Reg {
        Reg {
            events,
            data,
            prev: 0,
            rx_mark: 0,
            tx_mark: 0,
            disabled: false,
            seen: None,
            queued: false,
        }
    }
}

/// What an epoll pass learned of an established stream member (see the
/// module documentation for what can change it). While nothing did, the
/// last evaluation stands, and the pass does not lock the socket or its
/// context to find that out.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub activity: Arc<Activity>,
    /// `activity` and `Sock::ops` read before that evaluation.
    pub events: u64,
    pub ops: u64,
    pub ctx: u32,
    pub eval: Eval,
}

impl Seen {
    /// Nothing happened to `sock` since, and its context was polled in
    /// this pass (so events that arrived are counted).
    pub(crate) fn holds(&self, sock: &Sock, polled: &crate::state::Polled) -> bool {
        polled.was_polled(self.ctx)
            && self.activity.count() == self.events
            && sock.ops.load(Ordering::SeqCst) == self.ops
            && !sock.stale()
            && !SERVICE_LOST.load(Ordering::Relaxed)
    }

    /// Before evaluating `sock`: what to compare with later (None unless
    /// it is an established stream); the caller fills in `eval`. Makes
    /// the connection's events notify the socket's registrations.
    pub(crate) fn before_eval(sock: &Sock) -> Option<Seen> {
        let ops = sock.ops.load(Ordering::SeqCst);
        let (activity, ctx) = match &*sock.state.lock() {
            State::Stream {
                s,
                connecting: false,
                failed: None,
                ..
            } => (s.activity().ok()?, s.context_index()),
            _ => return None,
        };
        if !activity.has_hook() {
            let watch = sock.watch.clone();
            activity.set_hook(Arc::new(move || watch.notify()));
        }
        let events = activity.count();
        Some(Seen {
            activity,
            events,
            ops,
            ctx,
            eval: Eval::default(),
        })
    }
}

/// A set's registrations and what its next pass visits.
#[derive(Default)]
pub(crate) struct Members {
    pub map: HashMap<c_int, Reg>,
    /// Members the next pass visits besides the queued ones (each once:
    /// `Reg::queued`).
    pub check: Vec<c_int>,
}

impl Members {
    /// Adds or replaces `fd`'s registration; the next pass visits it.
    /// Returns false when `sock` had no slot left to report to this set.
    pub(crate) fn register(
        &mut self,
        epfd: c_int,
        fd: c_int,
        events: u32,
        data: u64,
        sock: &Sock,
    ) -> bool {
        let mut r = Reg::new(events, data);
        r.queued = true;
        let was_queued = self.map.insert(fd, r).is_some_and(|old| old.queued);
        if !was_queued {
            self.check.push(fd);
        }
        sock.watch.claim(epfd, fd)
    }

    /// Removes `fd`'s registration (and its slot in `sock`, if given).
    pub(crate) fn unregister(&mut self, epfd: c_int, fd: c_int, sock: Option<&Sock>) -> bool {
        if let Some(s) = sock {
            s.watch.release(epfd, fd);
        }
        match self.map.remove(&fd) {
            Some(r) => {
                if r.queued {
                    // A later registration of the fd queues it afresh.
                    self.check.retain(|&f| f != fd);
                }
                true
            }
            None => false,
        }
    }

    /// Queues `fd` for the next pass unless it already is.
    pub(crate) fn queue(&mut self, fd: c_int) {
        if let Some(r) = self.map.get_mut(&fd) {
            if !r.queued {
                r.queued = true;
                self.check.push(fd);
            }
        }
    }
}

/// The offloaded members of one epoll fd (kernel fds are in the kernel's
/// epoll set itself).
pub(crate) struct EpollSet {
    pub epfd: c_int,
    pub regs: Mutex<Members>,
    /// Members with news since they were last visited (see the module
    /// documentation).
    pub dirty: SegQueue<c_int>,
    /// Some member could not report here (no free slot): every pass visits
    /// every member.
    pub untracked: AtomicBool,
    /// The contexts of the members: a pass polls them first, so the
    /// members' event counts (and notices) are current.
    pub contexts: Mutex<Vec<u32>>,
    /// Waits that found offloaded events (see `wait::epoll_core`).
    pub calls: AtomicU32,
}

impl EpollSet {
    pub(crate) fn new(epfd: c_int) -> EpollSet {
        EpollSet {
            epfd,
            regs: Mutex::new(Members::default()),
            dirty: SegQueue::new(),
            untracked: AtomicBool::new(false),
            contexts: Mutex::new(Vec::new()),
            calls: AtomicU32::new(0),
        }
    }
}

/// Every epoll fd with offloaded members.
pub(crate) static EPOLLS: std::sync::RwLock<Option<HashMap<c_int, Arc<EpollSet>>>> =
    std::sync::RwLock::new(None);
/// Whether any epoll fd got an offloaded member.
pub(crate) static ANY_EPOLL: AtomicBool = AtomicBool::new(false);

pub(crate) fn epoll_set(epfd: c_int) -> Option<Arc<EpollSet>> {
    if !ANY_EPOLL.load(Ordering::Relaxed) {
        return None;
    }
    relock(EPOLLS.read()).as_ref()?.get(&epfd).cloned()
}

pub(crate) fn epoll_set_or_new(epfd: c_int) -> Arc<EpollSet> {
    let mut m = relock(EPOLLS.write());
    ANY_EPOLL.store(true, Ordering::Relaxed);
    m.get_or_insert_with(HashMap::new)
        .entry(epfd)
        .or_insert_with(|| Arc::new(EpollSet::new(epfd)))
        .clone()
}

/// `epfd` was closed: its members' sockets stop reporting to it.
pub(crate) fn epoll_closed(epfd: c_int) {
    if !ANY_EPOLL.load(Ordering::Relaxed) {
        return;
    }
    let set = relock(EPOLLS.write())
        .as_mut()
        .and_then(|m| m.remove(&epfd));
    if let Some(set) = set {
        let fds: Vec<c_int> = set.regs.lock().map.keys().copied().collect();
        for fd in fds {
            if let Some(s) = crate::state::lookup_quiet(fd) {
                s.watch.release(epfd, fd);
            }
        }
    }
}

/// Removes the registrations of a closed (or kernel-bound) fd, whose
/// socket was `sock`; returns them with their epoll fds.
pub(crate) fn purge(fd: c_int, sock: Option<&Sock>) -> Vec<(c_int, Reg)> {
    let mut out = Vec::new();
    if !ANY_EPOLL.load(Ordering::Relaxed) {
        return out;
    }
    // The sets first, then each one's lock: a pass holding its set's lock
    // may take the registry's read lock (a notice), so the registry's lock
    // is never held while waiting for a set's.
    let sets: Vec<Arc<EpollSet>> = match relock(EPOLLS.read()).as_ref() {
        Some(m) => m.values().cloned().collect(),
        None => return out,
    };
    for set in sets {
        let mut m = set.regs.lock();
        if let Some(r) = m.map.get(&fd).cloned() {
            m.unregister(set.epfd, fd, sock);
            out.push((set.epfd, r));
        }
    }
    out
}
