//! Sleeping on kernel fds and offloaded sockets at once.
//!
//! Each thread has a private epoll instance (the *waiter*) watching,
//! edge-triggered (every ring is an edge for every waiter, and nobody needs
//! to drain them), the doorbells of the contexts its current wait involves
//! (kept in sync lazily: a thread that always waits on the same sockets
//! makes no extra system calls) and the control socket's hang-up. A thread
//! waiting only on a listener is therefore not woken by traffic of the
//! connections other threads serve. A blocking call checks readiness, raises
//! `app_waiting` (`Toe::arm_wakeups`), checks again, then sleeps in one
//! `ppoll` on the kernel fds plus the waiter. A signal ends the sleep with
//! EINTR like the kernel's calls.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libc::{c_int, pollfd, sigset_t};
use toe::Toe;

use crate::epoll_set::{EpollSet, Seen};
use crate::real;
use crate::state::{eval, eval_in, Polled, Sock, EPOCH, SERVICE_LOST};

/// Longest single sleep: a safety net against a missed doorbell (e.g. the
/// library's own sleep lowering `app_waiting` between our arm and sleep).
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// With offloaded events ready, an epoll wait also asks the kernel for its
/// members' events on one call in this many.
const KERNEL_CHECK_EVERY: u32 = 4;

/// The control socket's registration in the waiter.
const CONTROL_TOKEN: u64 = u64::MAX;

struct Waiter {
    epfd: c_int,
    toe: usize,
    epoch: u32,
    /// Which contexts' doorbells the waiter watches now.
    watched: Vec<bool>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // SAFETY: closes the epoll fd this thread created.
        unsafe { real::close(self.epfd) };
    }
}

thread_local! {
    static WAITER: RefCell<Option<Waiter>> = const { RefCell::new(None) };
}

fn new_waiter(toe: &Toe) -> c_int {
    // SAFETY: plain syscall wrappers on fds we own or the attachment's.
    unsafe {
        let ep = real::epoll_create1(libc::EPOLL_CLOEXEC);
        if ep < 0 {
            return -1;
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLET) as u32,
            u64: CONTROL_TOKEN,
        };
        real::epoll_ctl(ep, libc::EPOLL_CTL_ADD, toe.control_fd(), &mut ev);
        ep
    }
}

/// Makes the waiter watch exactly the doorbells of `ctxs`.
fn sync_doorbells(epfd: c_int, watched: &mut Vec<bool>, toe: &Toe, ctxs: &[u32]) {
    let fds = toe.doorbell_fds();
    watched.resize(fds.len(), false);
    for (i, fd) in fds.into_iter().enumerate() {
        let want = ctxs.contains(&(i as u32));
        if watched[i] == want {
            continue;
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        let op = if want {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_DEL
        };
        // SAFETY: `epfd` is this thread's waiter, `fd` an open doorbell of
        // the attachment, `ev` a valid event.
        if unsafe { real::epoll_ctl(epfd, op, fd, &mut ev) } == 0 {
            watched[i] = want;
        }
    }
}

/// This thread's waiter for `toe`, watching the doorbells of `ctxs` (-1
/// if it cannot be made).
fn waiter_fd(toe: &Arc<Toe>, ctxs: &[u32]) -> c_int {
    let key = Arc::as_ptr(toe) as usize;
    let epoch = EPOCH.load(Ordering::SeqCst);
    WAITER
        .try_with(|w| {
            let mut w = w.borrow_mut();
            let current = matches!(&*w, Some(x) if x.toe == key && x.epoch == epoch);
            if !current {
                if let Some(old) = w.take() {
                    if old.epoch != epoch {
                        // Inherited across fork: closing our copy is
                        // harmless, the parent keeps its own.
                        drop(old);
                    }
                }
                let epfd = new_waiter(toe);
                if epfd < 0 {
                    return -1;
                }
                *w = Some(Waiter {
                    epfd,
                    toe: key,
                    epoch,
                    watched: Vec::new(),
                });
            }
            let Some(x) = w.as_mut() else {
                return -1;
            };
            sync_doorbells(x.epfd, &mut x.watched, toe, ctxs);
            x.epfd
        })
        .unwrap_or(-1)
}

fn drain_waiter(epfd: c_int) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
    // SAFETY: `evs` has room for 16 events.
    let n = unsafe { real::epoll_wait(epfd, evs.as_mut_ptr(), 16, 0) };
    for e in evs.iter().take(n.max(0) as usize) {
        let (data, events) = (e.u64, e.events);
        if data == CONTROL_TOKEN && events & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0 {
            SERVICE_LOST.store(true, Ordering::Relaxed);
        }
    }
}

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
}

pub(crate) fn errno() -> c_int {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// Sleeps until a kernel fd of `kernel` (offloaded positions set to -1) is
/// ready, a doorbell rings, `deadline` passes (capped), or a signal comes
/// (Err(EINTR)). `armed_ready` runs after arming: if it finds something
/// ready, no sleep.
fn sleep(
    toe: &Arc<Toe>,
    ctxs: &[u32],
    kernel: &mut Vec<pollfd>,
    deadline: Option<Instant>,
    sigmask: *const sigset_t,
    armed_ready: impl FnOnce() -> bool,
) -> Result<(), c_int> {
    let guard = toe.arm_wakeups().ok();
    if armed_ready() {
        return Ok(());
    }
    let wfd = waiter_fd(toe, ctxs);
    let mut t = MAX_SLEEP;
    if let Some(d) = deadline {
        t = t.min(d.saturating_duration_since(Instant::now()));
    }
    if wfd < 0 {
        // No waiter: poll the doorbells' state every millisecond.
        t = t.min(Duration::from_millis(1));
    }
    kernel.push(pollfd {
        fd: wfd,
        events: libc::POLLIN,
        revents: 0,
    });
    let ts = timespec(t);
    // SAFETY: `kernel` is a valid array of its length, `ts` a valid
    // timespec, `sigmask` null or the caller's valid mask.
    let r = unsafe { real::ppoll(kernel.as_mut_ptr(), kernel.len() as _, &ts, sigmask) };
    let e = errno();
    let rung = kernel.pop().is_some_and(|p| p.revents != 0);
    drop(guard);
    if r < 0 {
        return Err(e);
    }
    if rung {
        drain_waiter(wfd);
    }
    Ok(())
}

/// The contexts whose doorbells can announce news for `socks`.
fn contexts_of<'a>(socks: impl Iterator<Item = &'a Arc<Sock>>) -> Vec<u32> {
    let mut v: Vec<u32> = socks.filter_map(|s| s.context_index()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// poll(2) over kernel fds and offloaded sockets (`socks[i]` set for the
/// offloaded entries). Returns the count or Err(errno).
pub(crate) fn poll_core(
    fds: &mut [pollfd],
    socks: &[Option<Arc<Sock>>],
    deadline: Option<Instant>,
    sigmask: *const sigset_t,
) -> Result<c_int, c_int> {
    let toe = crate::state::toe();
    let mut kernel: Vec<pollfd> = fds
        .iter()
        .zip(socks)
        .map(|(p, s)| pollfd {
            fd: if s.is_some() { -1 } else { p.fd },
            events: p.events,
            revents: 0,
        })
        .collect();
    let off_ready = |fds: &mut [pollfd]| -> c_int {
        let mut n = 0;
        for (p, s) in fds.iter_mut().zip(socks) {
            if let Some(s) = s {
                let want =
                    (p.events as u32) | (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u32;
                p.revents = (eval(s).revents & want) as i16;
                if p.revents != 0 {
                    n += 1;
                }
            }
        }
        n
    };
    loop {
        let mut n = off_ready(fds);
        // SAFETY: `kernel` is a valid array of its length.
        let k = unsafe { real::poll(kernel.as_mut_ptr(), kernel.len() as _, 0) };
        if k < 0 {
            return Err(errno());
        }
        for (p, kp) in fds.iter_mut().zip(&kernel) {
            if kp.fd >= 0 || p.fd < 0 {
                p.revents = kp.revents;
                if kp.revents != 0 {
                    n += 1;
                }
            }
        }
        if n > 0 {
            return Ok(n);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(0);
        }
        let Some(toe) = &toe else {
            // Only stale sockets (they report POLLNVAL): nothing to wait for.
            return Ok(0);
        };
        let mut armed = false;
        let ctxs = contexts_of(socks.iter().flatten());
        sleep(toe, &ctxs, &mut kernel, deadline, sigmask, || {
            armed = off_ready(fds) > 0;
            armed
        })?;
        if armed {
            continue;
        }
        for kp in kernel.iter_mut() {
            kp.revents = 0;
        }
    }
}

/// Waits until `sock` (fd `fd`) reports one of `events`; Err(EAGAIN) when
/// `deadline` passes; Err(EINTR) on a signal, unless its handler asked for
/// `SA_RESTART` and no timeout is set (then it waits on, as the kernel
/// restarts the call).
pub(crate) fn wait_one(
    fd: c_int,
    sock: &Arc<Sock>,
    events: i16,
    deadline: Option<Instant>,
) -> Result<(), c_int> {
    let mut p = [pollfd {
        fd,
        events,
        revents: 0,
    }];
    // A restarted call leaves errno as it found it, as the kernel's does.
    let saved = errno();
    let n = loop {
        crate::signals::clear();
        match poll_core(&mut p, &[Some(sock.clone())], deadline, std::ptr::null()) {
            Err(libc::EINTR) if deadline.is_none() && !crate::signals::interrupted() => {
                set_errno(saved)
            }
            r => break r?,
        }
    };
    match n {
        0 => Err(libc::EAGAIN),
        _ => Ok(()),
    }
}

/// The offloaded members' events, in the kernel's epoll semantics (level,
/// EPOLLET, EPOLLONESHOT); at most `max`.
pub(crate) fn epoll_collect(set: &EpollSet, out: &mut Vec<libc::epoll_event>, max: usize) {
    epoll_collect_in(set, out, max, &mut Polled::default());
}

/// Members visited by epoll passes so far (tests check the ready list).
#[cfg(test)]
pub(crate) static VISITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// [`epoll_collect`] polling each context once. Visits the members the
/// ready list names (see `epoll_set`), or every member when something not
/// reported per member happened; `polled` ends up holding the contexts of
/// the members it evaluated.
fn epoll_collect_in(
    set: &EpollSet,
    out: &mut Vec<libc::epoll_event>,
    max: usize,
    polled: &mut Polled,
) {
    let mut m = set.regs.lock();
    // Events reach the members' counts (and ring their notices) only when
    // their contexts are polled: every member's context first, once each.
    let toe = crate::state::toe();
    if let Some(toe) = &toe {
        for &ctx in set.contexts.lock().iter() {
            if polled.poll_now(ctx) {
                let _ = toe.poll_context(ctx);
            }
        }
    }
    // Without the attachment at hand, only a look at each member polls
    // its context. (A fork needs nothing here: a child's sets are its own,
    // made after it forgot the parent's, and stale members report nothing.)
    let full = toe.is_none()
        || set.untracked.load(Ordering::Relaxed)
        || SERVICE_LOST.load(Ordering::Relaxed);
    while let Some(fd) = set.dirty.pop() {
        m.queue(fd);
    }
    let order: Vec<c_int> = if full {
        m.check.clear();
        m.map.keys().copied().collect()
    } else {
        std::mem::take(&mut m.check)
    };
    let mut gone = Vec::new();
    // Members to visit again next pass: the unvisited rest first (fair
    // when `max` cuts a pass short), then those still ready.
    let mut again = Vec::new();
    let mut visited = 0;
    for &fd in &order {
        if out.len() >= max {
            break;
        }
        visited += 1;
        #[cfg(test)]
        VISITS.fetch_add(1, Ordering::Relaxed);
        let Some(r) = m.map.get_mut(&fd) else {
            continue; // removed since it was queued
        };
        r.queued = false;
        if r.disabled {
            continue;
        }
        let Some(sock) = crate::state::lookup_quiet(fd) else {
            gone.push(fd);
            continue;
        };
        // A notice from here on queues it again.
        sock.watch.clean(set.epfd, fd);
        let e = match &r.seen {
            Some(seen) if seen.holds(&sock, polled) => {
                polled.watch(seen.ctx);
                seen.eval
            }
            _ => {
                let before = Seen::before_eval(&sock);
                let e = eval_in(&sock, polled);
                r.seen = before.map(|seen| Seen { eval: e, ..seen });
                e
            }
        };
        let want = r.events | (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let cur = e.revents & want & !(libc::POLLNVAL as u32);
        let level = r.events & libc::EPOLLET as u32 == 0;
        let fire = if level {
            cur != 0
        } else {
            let new_bits = cur & !r.prev;
            let more_in = cur & libc::EPOLLIN as u32 != 0 && e.rx_mark > r.rx_mark;
            let more_out = cur & libc::EPOLLOUT as u32 != 0 && e.tx_mark > r.tx_mark;
            new_bits != 0 || more_in || more_out
        };
        r.prev = cur;
        r.rx_mark = e.rx_mark;
        r.tx_mark = e.tx_mark;
        if fire && cur != 0 {
            out.push(libc::epoll_event {
                events: cur,
                u64: r.data,
            });
            if r.events & libc::EPOLLONESHOT as u32 != 0 {
                r.disabled = true;
            }
        }
        // Reported again while ready (level-triggered), or not known
        // without a look (no reusable evaluation).
        let stays = !r.disabled && ((level && cur != 0) || r.seen.is_none());
        if stays {
            r.queued = true;
            again.push(fd);
        }
    }
    let complete = visited == order.len();
    // Each fd is in `order` once, and nothing was queued meanwhile.
    for &fd in &order[visited..] {
        if let Some(r) = m.map.get_mut(&fd) {
            r.queued = true;
            m.check.push(fd);
        }
    }
    m.check.append(&mut again);
    for fd in gone {
        m.map.remove(&fd);
    }
    let mut contexts = set.contexts.lock();
    if full && complete {
        *contexts = polled.contexts();
    } else {
        for ctx in polled.contexts() {
            if !contexts.contains(&ctx) {
                contexts.push(ctx);
            }
        }
    }
}

/// epoll_wait over an epoll fd with offloaded members.
pub(crate) fn epoll_core(
    epfd: c_int,
    set: &EpollSet,
    events: *mut libc::epoll_event,
    max: c_int,
    deadline: Option<Instant>,
    sigmask: *const sigset_t,
) -> Result<c_int, c_int> {
    if max <= 0 || events.is_null() {
        return Err(libc::EINVAL);
    }
    let max = max as usize;
    let toe = crate::state::toe();
    let mut got: Vec<libc::epoll_event> = Vec::new();
    loop {
        got.clear();
        let mut polled = Polled::default();
        epoll_collect_in(set, &mut got, max, &mut polled);
        let n = got.len();
        // With offloaded events in hand, the kernel's members are checked
        // every KERNEL_CHECK_EVERY-th call only: a system call per wait
        // was the largest cost of a busy event loop, and a ready kernel fd
        // still shows within a few calls (epoll never promises every
        // ready fd in one call).
        let check_kernel = n == 0
            || set
                .calls
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(KERNEL_CHECK_EVERY);
        // SAFETY: the caller's array has room for `max` events; we write
        // at most `n` there and let the kernel fill at most `max - n` after.
        unsafe {
            std::ptr::copy_nonoverlapping(got.as_ptr(), events, n);
            if n < max && check_kernel {
                let k = real::epoll_wait(epfd, events.add(n), (max - n) as c_int, 0);
                if k < 0 {
                    return Err(errno());
                }
                if n + k as usize > 0 {
                    return Ok((n + k as usize) as c_int);
                }
            } else {
                return Ok(n as c_int);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(0);
        }
        let Some(toe) = &toe else { return Ok(0) };
        let mut kernel = vec![pollfd {
            fd: epfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        let mut early = Vec::new();
        // Every member's context: the pass left them in the set's list.
        let ctxs = set.contexts.lock().clone();
        sleep(toe, &ctxs, &mut kernel, deadline, sigmask, || {
            epoll_collect(set, &mut early, max);
            !early.is_empty()
        })?;
        if !early.is_empty() {
            let n = early.len();
            // SAFETY: at most `max` events into the caller's array.
            unsafe { std::ptr::copy_nonoverlapping(early.as_ptr(), events, n) };
            return Ok(n as c_int);
        }
    }
}

/// Sets errno from a result and returns the C value.
pub(crate) fn ret(r: Result<c_int, c_int>) -> c_int {
    match r {
        Ok(n) => n,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

pub(crate) fn ret_size(r: Result<usize, c_int>) -> libc::ssize_t {
    match r {
        Ok(n) => n as libc::ssize_t,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `ret_size` for a call that may have slept: on success errno is left as
/// the caller had it (`saved`), as the kernel never changes it then
/// (signals handled meanwhile, with `SA_RESTART`, set it inside).
pub(crate) fn ret_size_kept(r: Result<usize, c_int>, saved: c_int) -> libc::ssize_t {
    if r.is_ok() {
        set_errno(saved);
    }
    ret_size(r)
}

pub(crate) fn fail(e: c_int) -> c_int {
    set_errno(e);
    -1
}

/// A deadline `ms` milliseconds from now (negative: none).
pub(crate) fn deadline_ms(ms: c_int) -> Option<Instant> {
    (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64))
}

/// A deadline from a timespec (null: none).
///
/// # Safety
/// `ts` is null or valid.
pub(crate) unsafe fn deadline_ts(ts: *const libc::timespec) -> Option<Instant> {
    // SAFETY: the caller's contract.
    let ts = unsafe { ts.as_ref() }?;
    let d = Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    );
    Some(Instant::now() + d)
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
