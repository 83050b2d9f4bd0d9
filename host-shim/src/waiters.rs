//! The threads blocked on one context, and waking only those an event
//! concerns.
//!
//! One blocked thread, the leader, sleeps on the context's doorbell. Every
//! other one, a follower, parks until something it waits for happens:
//! the thread that applies an event to the context's state (whichever
//! thread polled) wakes the followers registered under the event's key (its
//! connection, its request's tag, its listening port). When the leader
//! leaves, it hands the role to one follower. Before this, every wake of
//! the leader woke every follower, and a server with a thread per
//! connection paid for all of its threads at every event (a thundering
//! herd: 312 µs of CPU per request with 1,016 threads, docs/benchmarks.md).
//!
//! The invariant that keeps followers from sleeping through events: while
//! a follower is registered, there is a leader, or a follower has been
//! handed the role and will lead (or pass it on) when it runs.

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::shared::lock;

/// What a blocked call waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum WaitKey {
    /// Anything on the context (woken by every event).
    Any,
    /// An event of this connection.
    Conn(u64),
    /// The reply to the request with this tag.
    Reply(u64),
    /// A connection to accept on this port.
    Port(u16),
}

/// Longest park of a follower: the targeted wake-ups are the mechanism;
/// this only bounds what a wake-up source nobody thought of would cost.
static FOLLOWER_MAX_SLEEP_MS: AtomicU64 = AtomicU64::new(1_000);

/// Sets the longest park of a follower (tests that prove no wake-up
/// relies on it set it very long).
#[doc(hidden)]
pub fn set_follower_max_sleep(d: Duration) {
    FOLLOWER_MAX_SLEEP_MS.store(d.as_millis().max(1) as u64, Ordering::Relaxed);
}

/// A parked thread.
#[derive(Debug)]
pub(crate) struct Follower {
    thread: Thread,
    woken: AtomicBool,
    /// It was woken to take the leader's role: if it leaves without
    /// leading, it must hand the role on.
    handed: AtomicBool,
}

/// Counters of one context's waits (summed by `Toe::wait_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// A thread sleeps on the doorbell now.
    pub leaders: usize,
    /// Threads parked now, waiting for a follower's wake-up.
    pub followers: usize,
    /// Followers woken because something they wait for happened (or for
    /// everything: a fatal event, a local change).
    pub woken: u64,
    /// Followers woken to take the leader's role.
    pub handovers: u64,
    /// Follower parks that ended at their time limit.
    pub timeouts: u64,
}

#[derive(Debug, Default)]
struct Table {
    leader: bool,
    by_key: FxHashMap<WaitKey, Vec<Arc<Follower>>>,
    woken: u64,
    handovers: u64,
    timeouts: u64,
}

/// A context's blocked threads; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    table: Mutex<Table>,
    /// Followers registered: read without the lock by event consumers,
    /// which record keys only while someone may need them. Its updates are
    /// ordered with the consumers' reads by the context's lock (a follower
    /// registers before it takes that lock to check its condition).
    followers: AtomicUsize,
}

/// What a blocked thread became.
#[derive(Debug)]
pub(crate) enum Role {
    Leader,
    Follower(Arc<Follower>),
}

impl Waiters {
    /// Takes the leader's role if nobody has it, or registers as a follower
    /// of `key`.
    pub(crate) fn enter(&self, key: WaitKey) -> Role {
        let mut t = lock(&self.table);
        if !t.leader {
            t.leader = true;
            return Role::Leader;
        }
        let me = Arc::new(Follower {
            thread: std::thread::current(),
            woken: AtomicBool::new(false),
            handed: AtomicBool::new(false),
        });
        t.by_key.entry(key).or_default().push(me.clone());
        self.followers.fetch_add(1, Ordering::Relaxed);
        Role::Follower(me)
    }

    /// The leader's sleep ended (it hands the role over when it leaves the
    /// call, see [`Waiters::hand_over`]).
    pub(crate) fn end_lead(&self) {
        lock(&self.table).leader = false;
    }

    /// Parks follower `me` until it is woken or `timeout` (capped) passes,
    /// then unregisters it. Returns whether it was handed the leader's role
    /// (then it must lead or hand it over before it leaves its call).
    pub(crate) fn park(&self, me: &Arc<Follower>, key: WaitKey, timeout: Duration) -> bool {
        let cap = Duration::from_millis(FOLLOWER_MAX_SLEEP_MS.load(Ordering::Relaxed));
        let end = Instant::now() + timeout.min(cap);
        let mut timed_out = false;
        while !me.woken.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= end {
                timed_out = true;
                break;
            }
            std::thread::park_timeout(end - now);
        }
        let handed = self.leave(me, key);
        if timed_out && !handed {
            lock(&self.table).timeouts += 1;
        }
        handed
    }

    /// Unregisters follower `me` (woken or not); whether it was handed the
    /// leader's role.
    pub(crate) fn leave(&self, me: &Arc<Follower>, key: WaitKey) -> bool {
        let mut t = lock(&self.table);
        if let Some(list) = t.by_key.get_mut(&key) {
            if let Some(i) = list.iter().position(|f| Arc::ptr_eq(f, me)) {
                list.swap_remove(i);
                self.followers.fetch_sub(1, Ordering::Relaxed);
            }
            if list.is_empty() {
                t.by_key.remove(&key);
            }
        }
        // Read under the lock `hand_over` sets it under.
        me.handed.load(Ordering::Relaxed)
    }

    /// Whether any follower is registered (event consumers record keys
    /// only then).
    pub(crate) fn watched(&self) -> bool {
        self.followers.load(Ordering::Relaxed) > 0
    }

    /// Wakes the followers of `keys` (emptied) and those waiting for
    /// anything.
    pub(crate) fn wake_keys(&self, keys: &mut Vec<WaitKey>) {
        let mut t = lock(&self.table);
        let mut woken = 0;
        for key in keys.drain(..).chain([WaitKey::Any]) {
            if let Some(list) = t.by_key.get(&key) {
                for f in list {
                    woken += u64::from(wake(f));
                }
            }
        }
        t.woken += woken;
    }

    /// Wakes every follower (a fatal event, a broken attachment, a local
    /// change whose waiters are not known).
    pub(crate) fn wake_all(&self) {
        let mut t = lock(&self.table);
        let mut woken = 0;
        for f in t.by_key.values().flatten() {
            woken += u64::from(wake(f));
        }
        t.woken += woken;
    }

    /// A thread that led (or was handed the role) leaves its call: when
    /// nobody leads, one follower is woken to take the role.
    pub(crate) fn hand_over(&self) {
        let mut t = lock(&self.table);
        if t.leader {
            return;
        }
        let next = t
            .by_key
            .values()
            .flatten()
            .find(|f| !f.handed.load(Ordering::Relaxed))
            .cloned();
        if let Some(f) = next {
            f.handed.store(true, Ordering::Relaxed);
            wake(&f);
            t.handovers += 1;
        }
    }

    pub(crate) fn stats(&self) -> WaitStats {
        let t = lock(&self.table);
        WaitStats {
            leaders: usize::from(t.leader),
            followers: self.followers.load(Ordering::Relaxed),
            woken: t.woken,
            handovers: t.handovers,
            timeouts: t.timeouts,
        }
    }
}

/// Wakes `f` unless it already was; whether this call woke it.
fn wake(f: &Follower) -> bool {
    if f.woken.swap(true, Ordering::Release) {
        return false;
    }
    f.thread.unpark();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_then_followers_woken_by_key() {
        let w = Waiters::default();
        assert!(matches!(w.enter(WaitKey::Conn(1)), Role::Leader));
        let Role::Follower(a) = w.enter(WaitKey::Conn(2)) else {
            panic!("a second thread follows")
        };
        let Role::Follower(b) = w.enter(WaitKey::Conn(3)) else {
            panic!("a third thread follows")
        };
        assert!(w.watched());
        w.wake_keys(&mut vec![WaitKey::Conn(3), WaitKey::Conn(9)]);
        assert!(!a.woken.load(Ordering::Relaxed));
        assert!(b.woken.load(Ordering::Relaxed));
        // Woken already: park returns at once, not handed the role.
        assert!(!w.park(&b, WaitKey::Conn(3), Duration::from_secs(60)));
        assert_eq!(w.stats().woken, 1);
        assert_eq!(w.stats().followers, 1);
        // The leader leaves: the remaining follower is handed the role.
        w.end_lead();
        w.hand_over();
        assert!(w.park(&a, WaitKey::Conn(2), Duration::from_secs(60)));
        assert_eq!(w.stats().handovers, 1);
        assert!(!w.watched());
        assert!(matches!(w.enter(WaitKey::Conn(2)), Role::Leader));
    }

    #[test]
    fn hand_over_with_a_leader_present_does_nothing() {
        let w = Waiters::default();
        let _lead = w.enter(WaitKey::Any);
        let Role::Follower(a) = w.enter(WaitKey::Any) else {
            panic!("follows")
        };
        w.hand_over();
        assert!(!a.woken.load(Ordering::Relaxed));
        // `Any` followers wake at every batch of events.
        w.wake_keys(&mut vec![WaitKey::Port(80)]);
        assert!(a.woken.load(Ordering::Relaxed));
    }

    #[test]
    fn a_park_times_out() {
        let w = Waiters::default();
        let _lead = w.enter(WaitKey::Any);
        let Role::Follower(a) = w.enter(WaitKey::Conn(1)) else {
            panic!("follows")
        };
        assert!(!w.park(&a, WaitKey::Conn(1), Duration::from_millis(5)));
        assert_eq!(w.stats().timeouts, 1);
        assert_eq!(w.stats().followers, 0);
    }
}
