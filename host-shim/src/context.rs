//! One context: a request ring (we produce), an event ring (the DPU
//! produces) and a doorbell, behind a mutex.
//!
//! Whoever holds the mutex polls the event ring and applies every event to
//! the context's state (replies by tag, connection states, listener
//! generations), so a thread waiting for a condition only ever checks state:
//! it does not matter which thread consumed the event. Waiting spins for
//! `spin`, then sleeps on the doorbell with `app_waiting` raised (one
//! thread per context; the others park until an event they wait for is
//! applied, see `waiters.rs`), never holding the mutex while sleeping.

use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use doca_bindings::abi::{self, Desc};
use doca_bindings::{Doorbell, RingConsumer, RingError, RingProducer};

use crate::activity::Activity;
use crate::conn::ConnState;
use crate::errors::from_errno;
use crate::shared::{lock, Shared};
use crate::waiters::{Role, WaitKey, WaitStats, Waiters};

/// Longest single sleep: a missed doorbell costs at most this much latency.
const MAX_SLEEP: Duration = Duration::from_millis(10);
/// Sleep while our requests wait for room in a full request ring (the DPU
/// does not ring us when it frees entries).
const RING_FULL_BACKOFF: Duration = Duration::from_micros(50);

/// How long a blocking call may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    /// Check once; fail with EAGAIN if the condition does not hold.
    pub nonblocking: bool,
    pub deadline: Option<Instant>,
    /// The errno of an expired deadline: EAGAIN for read/write timeouts
    /// (like std on Unix), ETIMEDOUT for connect timeouts.
    pub timeout_errno: i32,
}

impl Wait {
    pub(crate) const FOREVER: Wait = Wait {
        nonblocking: false,
        deadline: None,
        timeout_errno: libc::ETIMEDOUT,
    };

    /// Blocking unless `nonblocking`, with an optional timeout.
    pub(crate) fn new(nonblocking: bool, timeout: Option<Duration>, timeout_errno: i32) -> Wait {
        Wait {
            nonblocking,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            timeout_errno,
        }
    }
}

/// What happened to a request, by tag.
#[derive(Debug)]
enum Pending {
    Waiting,
    Done(Desc),
    /// The caller gave up: a late reply is dropped (and a connection it
    /// created is closed).
    Abandoned,
}

/// The mutable state of a context.
#[derive(Debug)]
pub(crate) struct CtxInner {
    req: RingProducer,
    evt: RingConsumer,
    /// Requests not yet in the ring (it was full), in order.
    outbox: VecDeque<Desc>,
    pending: FxHashMap<u64, Pending>,
    /// Connections bound to this context, by handle (FxHash: a handle is
    /// the service's, not an attacker's, and SipHash showed in profiles of
    /// every read and write).
    pub(crate) conns: FxHashMap<u64, ConnState>,
    /// Per connection, a count of the events it received, shared with
    /// whoever asked (`TcpStream::activity`): a reader that saw the same
    /// count before knows nothing arrived since. Created on first request,
    /// kept across an adoption's new state, dropped with the connection.
    activity: FxHashMap<u64, Arc<Activity>>,
    /// Set by `EV_FATAL` (the violation code).
    pub(crate) fatal: Option<u64>,
    scratch: Vec<Desc>,
    /// While followers wait (`track`): what the events being applied
    /// concern, so only their waiters are woken.
    track: bool,
    touched: Vec<WaitKey>,
}

impl CtxInner {
    /// Queues a request; a stream position update replaces a queued one of
    /// the same kind for the same connection.
    pub(crate) fn queue(&mut self, d: Desc) {
        if matches!(d.op, abi::OP_TX_PUSH | abi::OP_RX_POP) {
            if let Some(last) = self.outbox.back_mut() {
                if last.op == d.op && last.conn == d.conn {
                    last.a = d.a;
                    return;
                }
            }
        }
        self.outbox.push_back(d);
    }

    /// `conn`'s event count (see `activity`).
    pub(crate) fn activity(&mut self, conn: u64) -> Arc<Activity> {
        self.activity.entry(conn).or_default().clone()
    }

    /// Something arrived for `conn`.
    fn bump(&mut self, conn: u64) {
        if let Some(a) = self.activity.get(&conn) {
            a.bump();
        }
        self.touch(WaitKey::Conn(conn));
    }

    /// Something a blocked call may wait for happened.
    fn touch(&mut self, key: WaitKey) {
        if self.track {
            self.touched.push(key);
        }
    }

    /// The state of a connection bound to this context; `EREMCHG` when
    /// another process sharing it took its events (adopt it back, see
    /// `TcpStream::here`).
    pub(crate) fn conn(&mut self, conn: u64) -> io::Result<&mut ConnState> {
        match self.conns.get_mut(&conn) {
            Some(c) if c.moved => Err(from_errno(libc::EREMCHG)),
            Some(c) => Ok(c),
            None => Err(from_errno(libc::EBADF)),
        }
    }

    /// Consumes everything readable of `conn` (after `shutdown(Read)`).
    pub(crate) fn discard_rx(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.released || c.readable() == 0 {
            return;
        }
        c.rx_read = c.rx_ready;
        let a = c.rx_read;
        self.queue(Desc {
            op: abi::OP_RX_POP,
            conn,
            a,
            ..Desc::default()
        });
    }

    /// The state of a connection that still exists on the DPU (requests
    /// may name it); ENOTCONN after a local abort.
    pub(crate) fn live_conn(&mut self, conn: u64) -> io::Result<&mut ConnState> {
        let c = self.conn(conn)?;
        if c.released {
            return Err(from_errno(libc::ENOTCONN));
        }
        Ok(c)
    }

    /// Forgets a connection and queues its `OP_CLOSE` (reply ignored),
    /// unless the DPU already released it (`OP_ABORT`): a request naming a
    /// released connection is a protocol violation.
    pub(crate) fn close_conn(&mut self, conn: u64) {
        if let Some(a) = self.activity.remove(&conn) {
            a.bump();
        }
        if self.conns.remove(&conn).is_some_and(|c| c.released) {
            return;
        }
        self.queue(Desc {
            op: abi::OP_CLOSE,
            conn,
            ..Desc::default()
        });
    }
}

#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) idx: u32,
    shared: Arc<Shared>,
    doorbell: Doorbell,
    inner: Mutex<CtxInner>,
    /// Threads blocked on this context (`waiters.rs`).
    waiters: Waiters,
    /// The outbox was not empty after the last flush.
    backlog: AtomicBool,
}

impl Context {
    pub(crate) fn new(idx: u32, shared: Arc<Shared>, doorbell: Doorbell) -> io::Result<Context> {
        let l = shared.layout;
        let ring_err = |e: RingError| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("context {idx}: bad ring: {e}"),
            )
        };
        let req =
            RingProducer::new(shared.region.clone(), l.request_ring(idx)).map_err(ring_err)?;
        let evt = RingConsumer::new(shared.region.clone(), l.event_ring(idx)).map_err(ring_err)?;
        if shared
            .region
            .atomic_u32(l.app_waiting_offset(idx))
            .is_none()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("context {idx}: app_waiting is outside the region"),
            ));
        }
        Ok(Context {
            idx,
            shared,
            doorbell,
            inner: Mutex::new(CtxInner {
                req,
                evt,
                outbox: VecDeque::new(),
                pending: FxHashMap::default(),
                conns: FxHashMap::default(),
                activity: FxHashMap::default(),
                fatal: None,
                scratch: Vec::new(),
                track: false,
                touched: Vec::new(),
            }),
            waiters: Waiters::default(),
            backlog: AtomicBool::new(false),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    fn lock(&self) -> MutexGuard<'_, CtxInner> {
        lock(&self.inner)
    }

    fn app_waiting(&self) -> io::Result<&AtomicU32> {
        self.shared
            .region
            .atomic_u32(self.shared.layout.app_waiting_offset(self.idx))
            .ok_or_else(|| io::Error::other("app_waiting is outside the region"))
    }

    fn ring_broken(&self, e: RingError) -> io::Error {
        self.shared.set_broken(
            io::ErrorKind::Other,
            format!("libtoe: context {}: {e}", self.idx),
        )
    }

    /// Pushes queued requests into the ring, as many as fit, and wakes the
    /// DPU if it sleeps.
    fn flush(&self, g: &mut CtxInner) -> io::Result<()> {
        let mut pushed = false;
        while let Some(d) = g.outbox.front() {
            match g.req.push(d) {
                Ok(true) => {
                    g.outbox.pop_front();
                    pushed = true;
                }
                Ok(false) => break,
                Err(e) => return Err(self.ring_broken(e)),
            }
        }
        self.backlog.store(!g.outbox.is_empty(), Ordering::Relaxed);
        if pushed {
            self.shared.kick_dpu()?;
        }
        Ok(())
    }

    /// Requests wait outside the ring (it was full at the last flush).
    pub(crate) fn has_backlog(&self) -> bool {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Waits until every queued request is in the ring (after a blocking
    /// write: its `OP_TX_PUSH` must not wait for the application's next
    /// call).
    pub(crate) fn push_backlog(&self, wait: Wait) -> io::Result<()> {
        self.wait_for(wait, WaitKey::Any, |g, _| {
            g.outbox.is_empty().then_some(Ok(()))
        })
    }

    /// Consumes every pending event, then pushes what they queued.
    fn poll_locked(&self, g: &mut CtxInner) -> io::Result<()> {
        self.shared.check_broken()?;
        self.flush(g)?;
        let mut events = std::mem::take(&mut g.scratch);
        let cap = g.evt.capacity() as usize;
        let r = g.evt.pop_many(&mut events, cap);
        g.track = !events.is_empty() && self.waiters.watched();
        for d in events.drain(..) {
            self.dispatch(g, d);
        }
        g.scratch = events;
        if !g.touched.is_empty() {
            self.waiters.wake_keys(&mut g.touched);
        }
        r.map_err(|e| self.ring_broken(e))?;
        self.flush(g)
    }

    fn dispatch(&self, g: &mut CtxInner, d: Desc) {
        match d.op {
            abi::EV_REPLY => {
                g.bump(d.conn);
                g.touch(WaitKey::Reply(d.tag));
                self.on_reply(g, d)
            }
            abi::EV_CONN => {
                g.bump(d.conn);
                if let Some(c) = g.conns.get_mut(&d.conn) {
                    c.apply(d.flags, d.a, d.b, d.status);
                    if c.shut_rd {
                        // shutdown(Read): discard data as it arrives.
                        g.discard_rx(d.conn);
                    }
                }
            }
            abi::EV_ACCEPTABLE => {
                if let Ok(port) = u16::try_from(d.a) {
                    self.shared.acceptable(port);
                    g.touch(WaitKey::Port(port));
                }
            }
            abi::EV_FATAL => {
                g.fatal = Some(d.a);
                for c in g.conns.values_mut() {
                    c.fail(libc::EPROTO);
                }
                for a in g.activity.values() {
                    a.bump();
                }
                self.waiters.wake_all();
            }
            // Unknown events are ignored (newer DPU, informational).
            _ => {}
        }
    }

    fn on_reply(&self, g: &mut CtxInner, mut d: Desc) {
        if d.flags == abi::OP_ADOPT && d.status == 0 {
            // Applied in event order: the EV_CONN that follows it updates
            // the state it sets up.
            let sticky = (d.c >> 32) as u16;
            let slot = (d.c & 0xFFFF_FFFF) as u32;
            let l = &self.shared.layout;
            if slot < l.slots {
                g.conns
                    .entry(d.conn)
                    .or_insert_with(|| ConnState::new(slot, l.rx_buf_size, l.tx_buf_size))
                    .rebase(d.a, d.b, sticky);
            }
        }
        let creates_conn = matches!(d.flags, abi::OP_ACCEPT | abi::OP_CONNECT) && d.status == 0;
        match g.pending.remove(&d.tag) {
            Some(Pending::Waiting) => {
                if creates_conn {
                    if let Err(errno) = self.adopt(g, &d) {
                        d.status = -errno;
                    }
                }
                g.pending.insert(d.tag, Pending::Done(d));
            }
            // Nobody waits: close what the request created.
            Some(Pending::Abandoned) if creates_conn && d.conn != 0 => g.close_conn(d.conn),
            Some(Pending::Abandoned) => {}
            // A duplicate reply: keep the first.
            Some(done @ Pending::Done(_)) => {
                g.pending.insert(d.tag, done);
            }
            // The reply to a fire-and-forget request.
            None => {}
        }
    }

    /// Starts tracking the connection an accept/connect reply created.
    fn adopt(&self, g: &mut CtxInner, d: &Desc) -> Result<(), i32> {
        let l = &self.shared.layout;
        let slot = u32::try_from(d.a).ok().filter(|&s| s < l.slots);
        let (Some(slot), true) = (slot, d.conn != 0 && !g.conns.contains_key(&d.conn)) else {
            if d.conn != 0 && !g.conns.contains_key(&d.conn) {
                g.close_conn(d.conn);
            }
            return Err(libc::EPROTO);
        };
        let mut c = ConnState::new(slot, l.rx_buf_size, l.tx_buf_size);
        // An accepted connection is established; a connecting one waits
        // for CONN_CONNECTED.
        c.connected = d.flags == abi::OP_ACCEPT;
        g.conns.insert(d.conn, c);
        Ok(())
    }

    /// One attempt: poll, run `f`, push what it queued. `Ok(None)`: the
    /// condition does not hold yet (and the context is alive).
    fn attempt<T>(
        &self,
        f: &mut impl FnMut(&mut CtxInner, &Shared) -> Option<io::Result<T>>,
        ring_full: &mut bool,
    ) -> io::Result<Option<io::Result<T>>> {
        let mut g = self.lock();
        self.poll_locked(&mut g)?;
        let r = f(&mut g, &self.shared);
        self.flush(&mut g)?;
        *ring_full = !g.outbox.is_empty();
        if r.is_none() && g.fatal.is_some() {
            return Err(from_errno(libc::EPROTO));
        }
        Ok(r)
    }

    /// Runs `f` on the freshly polled state until it returns `Some`, waiting
    /// as `wait` allows: spinning first, then sleeping until something
    /// `key` names happens (see `waiters.rs`).
    pub(crate) fn wait_for<T>(
        &self,
        wait: Wait,
        key: WaitKey,
        mut f: impl FnMut(&mut CtxInner, &Shared) -> Option<io::Result<T>>,
    ) -> io::Result<T> {
        let mut spin_until: Option<Instant> = None;
        let mut ring_full = false;
        // Set while this thread owes the leader's role to the others: it
        // led, or was handed the role; dropped, it hands the role over.
        let mut duty = LeaderDuty {
            waiters: &self.waiters,
            owed: false,
        };
        loop {
            if let Some(r) = self.attempt(&mut f, &mut ring_full)? {
                return r;
            }
            if wait.nonblocking {
                return Err(from_errno(libc::EAGAIN));
            }
            let now = Instant::now();
            let remaining = match wait.deadline {
                Some(d) if d <= now => return Err(from_errno(wait.timeout_errno)),
                Some(d) => d - now,
                None => Duration::MAX,
            };
            let spin_end = *spin_until.get_or_insert_with(|| now + self.shared.spin);
            if now < spin_end {
                std::hint::spin_loop();
                continue;
            }
            if ring_full {
                std::thread::sleep(RING_FULL_BACKOFF.min(remaining));
                continue;
            }
            if let Some(r) = self.sleep(key, &mut f, remaining, &mut duty.owed)? {
                return r;
            }
        }
    }

    /// Sleeps until something may have changed. One thread per context (the
    /// leader) sleeps on the doorbell with `app_waiting` raised; the others
    /// park until an event for `key` is applied, by whichever thread polls.
    /// (With several threads polling one eventfd, one thread's drain could
    /// eat the wakeup of another that was about to poll.) `owed` tells
    /// whether the caller must hand the leader's role over when it leaves.
    fn sleep<T>(
        &self,
        key: WaitKey,
        f: &mut impl FnMut(&mut CtxInner, &Shared) -> Option<io::Result<T>>,
        timeout: Duration,
        owed: &mut bool,
    ) -> io::Result<Option<io::Result<T>>> {
        match self.waiters.enter(key) {
            Role::Follower(me) => {
                // Registered first, then checked: an event applied after
                // this check wakes us; one applied before it is seen by it.
                let mut ring_full = false;
                let r = self.attempt(f, &mut ring_full);
                // With requests waiting for room in the ring, the caller
                // backs off and retries (the DPU does not ring when it
                // frees entries); a wait for anything is bounded as the
                // leader's sleep is (no event names it).
                let handed = if matches!(r, Ok(None)) && !ring_full {
                    let cap = if key == WaitKey::Any {
                        timeout.min(MAX_SLEEP)
                    } else {
                        timeout
                    };
                    self.waiters.park(&me, key, cap)
                } else {
                    self.waiters.leave(&me, key)
                };
                *owed = handed;
                r
            }
            Role::Leader => {
                *owed = true;
                let r = self.lead_sleep(f, timeout.min(MAX_SLEEP));
                self.waiters.end_lead();
                if r.is_err() {
                    // The attachment broke: every waiter must see it.
                    self.waiters.wake_all();
                }
                r
            }
        }
    }

    /// The leader's sleep: raise `app_waiting`, re-check, sleep on the
    /// doorbell (and the control socket), drain, lower `app_waiting`.
    fn lead_sleep<T>(
        &self,
        f: &mut impl FnMut(&mut CtxInner, &Shared) -> Option<io::Result<T>>,
        timeout: Duration,
    ) -> io::Result<Option<io::Result<T>>> {
        let waiting = self.app_waiting()?;
        waiting.store(1, Ordering::SeqCst);
        // Pairs with the DPU's fence between posting events and reading
        // app_waiting: either it sees us waiting or we see its events.
        fence(Ordering::SeqCst);
        let r = (|| {
            let mut ring_full = false;
            if let Some(r) = self.attempt(f, &mut ring_full)? {
                return Ok(Some(r));
            }
            let w = crate::sleep::sleep(
                self.doorbell.fd().as_raw_fd(),
                self.shared.control_fd(),
                timeout,
            )?;
            if w.rung {
                self.doorbell.drain()?;
            }
            if w.control_lost {
                return Err(self.shared.set_broken(
                    io::ErrorKind::ConnectionReset,
                    "libtoe: the DPU service closed the control socket".into(),
                ));
            }
            Ok(None)
        })();
        // The DPU also clears it when it rings. Threads sleeping outside
        // this crate (`Toe::arm_wakeups`) still need it raised.
        if self.shared.external_waiters.load(Ordering::SeqCst) == 0 {
            waiting.store(0, Ordering::SeqCst);
        }
        r
    }

    /// Raises `app_waiting` (for a sleep outside this crate).
    pub(crate) fn arm(&self) -> io::Result<()> {
        self.app_waiting()?.store(1, Ordering::SeqCst);
        Ok(())
    }

    /// The doorbell's eventfd.
    pub(crate) fn doorbell_fd(&self) -> std::os::fd::RawFd {
        self.doorbell.fd().as_raw_fd()
    }

    /// Runs `f` once on the freshly polled state (never waits).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut CtxInner, &Shared) -> T) -> io::Result<T> {
        let mut g = self.lock();
        self.poll_locked(&mut g)?;
        let r = f(&mut g, &self.shared);
        self.flush(&mut g)?;
        Ok(r)
    }

    /// Like [`Context::with`] without polling the rings first: `f` sees the
    /// state as of the last poll (for a caller that just polled, e.g. once
    /// per context in an epoll pass).
    pub(crate) fn with_unpolled<T>(&self, f: impl FnOnce(&mut CtxInner) -> T) -> io::Result<T> {
        let mut g = self.lock();
        self.shared.check_broken()?;
        Ok(f(&mut g))
    }

    /// Queues a request whose reply nobody waits for and pushes what fits.
    /// Never blocks (usable in `Drop`); errors only mean the attachment is
    /// already broken.
    pub(crate) fn post(&self, f: impl FnOnce(&mut CtxInner)) {
        let mut g = self.lock();
        f(&mut g);
        let _ = self.flush(&mut g);
    }

    /// Sends a request and waits for its `EV_REPLY`. The reply's status is
    /// not checked (the caller knows what its errors mean).
    pub(crate) fn request(&self, d: Desc, wait: Wait) -> io::Result<Desc> {
        self.request_if(d, wait, |_| Ok(()))
    }

    /// Like [`Context::request`], queued only if `check` passes; `check`
    /// runs under the same lock as the queueing (so a connection released
    /// by another thread cannot get a request after its release).
    pub(crate) fn request_if(
        &self,
        mut d: Desc,
        wait: Wait,
        check: impl FnOnce(&mut CtxInner) -> io::Result<()>,
    ) -> io::Result<Desc> {
        let tag = self.shared.next_tag();
        d.tag = tag;
        {
            let mut g = self.lock();
            self.shared.check_broken()?;
            if g.fatal.is_some() {
                return Err(from_errno(libc::EPROTO));
            }
            check(&mut g)?;
            g.pending.insert(tag, Pending::Waiting);
            g.queue(d);
            if let Err(e) = self.flush(&mut g) {
                g.pending.remove(&tag);
                return Err(e);
            }
        }
        let r = self.wait_for(wait, WaitKey::Reply(tag), |g, _| {
            match g.pending.get(&tag) {
                Some(Pending::Done(_)) => match g.pending.remove(&tag) {
                    Some(Pending::Done(reply)) => Some(Ok(reply)),
                    _ => None,
                },
                _ => None,
            }
        });
        if r.is_err() {
            self.abandon(tag);
        }
        r
    }

    /// The caller of request `tag` gave up: drop its reply, and close a
    /// connection it created.
    fn abandon(&self, tag: u64) {
        self.post(|g| match g.pending.remove(&tag) {
            Some(Pending::Waiting) => {
                g.pending.insert(tag, Pending::Abandoned);
            }
            Some(Pending::Done(d)) => {
                let created = matches!(d.flags, abi::OP_ACCEPT | abi::OP_CONNECT) && d.status == 0;
                if created && g.conns.contains_key(&d.conn) {
                    g.close_conn(d.conn);
                }
            }
            _ => {}
        });
    }

    /// Wakes the threads sleeping on this context for `conn` (after a
    /// local change they may wait for, e.g. a shutdown) and the one on the
    /// doorbell.
    pub(crate) fn wake(&self, conn: u64) {
        self.waiters.wake_keys(&mut vec![WaitKey::Conn(conn)]);
        let _ = self.doorbell.ring();
    }

    /// Counters of the waits on this context.
    pub(crate) fn wait_stats(&self) -> WaitStats {
        self.waiters.stats()
    }
}

/// A blocked call's duty to the context's other waiters: a thread that led
/// (or was handed the role) and leaves, on any path, wakes a follower to
/// lead in its place.
struct LeaderDuty<'a> {
    waiters: &'a Waiters,
    owed: bool,
}

impl Drop for LeaderDuty<'_> {
    fn drop(&mut self) {
        if self.owed {
            self.waiters.hand_over();
        }
    }
}
