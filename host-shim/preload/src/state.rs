//! Process-wide state: the attachment to the service, the table of
//! offloaded file descriptors, the emulated epoll registrations, and fork
//! handling.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LockResult, MutexGuard, PoisonError, RwLockWriteGuard};

use libc::c_int;
use parking_lot::Mutex;
use toe::{ForkTicket, TcpListener, TcpStream, Toe};

use crate::epoll_set::{EpollSet, WatchSlots, EPOLLS};
use crate::real;

/// Bumped in the child after every fork: objects of an older epoch belong
/// to the parent's registration and are never touched again.
pub(crate) static EPOCH: AtomicU32 = AtomicU32::new(0);
/// Some fd was offloaded at least once (fast path for everything else).
pub(crate) static ANY: AtomicBool = AtomicBool::new(false);
/// The service's control socket hung up: offloaded sockets fail.
pub(crate) static SERVICE_LOST: AtomicBool = AtomicBool::new(false);

/// The attachment: not tried yet, attached, or unavailable.
enum Attach {
    Untried,
    Ready(Arc<Toe>),
    /// Fall back to the kernel for every socket.
    Kernel,
    /// `--no-fallback`: AF_INET stream sockets fail with this errno.
    Refuse(c_int),
}

struct ToeState {
    epoch: u32,
    attach: Attach,
}

// The three process-wide locks are std's (futex) locks, not parking_lot's:
// see `fork_prepare`.
static TOE: std::sync::Mutex<ToeState> = std::sync::Mutex::new(ToeState {
    epoch: 0,
    attach: Attach::Untried,
});

/// A lock's guard, poisoned or not (the tables stay consistent: nothing
/// panics while holding them).
pub(crate) fn relock<G>(r: LockResult<G>) -> G {
    r.unwrap_or_else(PoisonError::into_inner)
}

/// What `socket()` does with a new AF_INET stream socket.
pub(crate) enum Decision {
    Offload,
    Kernel,
    Refuse(c_int),
}

/// Writes one line to stderr without going through interposed calls'
/// bookkeeping (fd 2 is never offloaded anyway).
pub(crate) fn warn(msg: &str) {
    let line = format!("{msg}\n");
    // SAFETY: writes from a valid buffer of `line.len()` bytes.
    let _ = unsafe { real::write(2, line.as_ptr().cast(), line.len()) };
}

/// The attachment for this process (registering on first use, again in a
/// child after fork).
pub(crate) fn decide() -> Decision {
    let mut t = relock(TOE.lock());
    let epoch = EPOCH.load(Ordering::SeqCst);
    if t.epoch != epoch {
        // The parent's attachment: its rings are the parent's. Leak it
        // (dropping would post requests on the parent's rings).
        if let Attach::Ready(old) = std::mem::replace(&mut t.attach, Attach::Untried) {
            std::mem::forget(old);
        }
        t.epoch = epoch;
    }
    match &t.attach {
        Attach::Ready(_) => return Decision::Offload,
        Attach::Kernel => return Decision::Kernel,
        Attach::Refuse(e) => return Decision::Refuse(*e),
        Attach::Untried => {}
    }
    install_atfork();
    let path = toe::control_path_from_env();
    match Toe::from_env() {
        Ok(toe) => {
            t.attach = Attach::Ready(toe);
            Decision::Offload
        }
        Err(e) => {
            let no_fallback = std::env::var_os("FLEXTOE_NO_FALLBACK").is_some_and(|v| v != "0");
            if no_fallback {
                warn(&format!(
                    "libtoe_preload: cannot reach the FlexTOE service at {} ({e}); \
                     --no-fallback: TCP sockets fail with ECONNREFUSED",
                    path.display()
                ));
                t.attach = Attach::Refuse(libc::ECONNREFUSED);
                Decision::Refuse(libc::ECONNREFUSED)
            } else {
                warn(&format!(
                    "libtoe_preload: cannot reach the FlexTOE service at {} ({e}); \
                     using the kernel TCP stack for every socket",
                    path.display()
                ));
                t.attach = Attach::Kernel;
                Decision::Kernel
            }
        }
    }
}

/// The current attachment, if any.
pub(crate) fn toe() -> Option<Arc<Toe>> {
    let t = relock(TOE.lock());
    if t.epoch != EPOCH.load(Ordering::SeqCst) {
        return None;
    }
    match &t.attach {
        Attach::Ready(toe) => Some(toe.clone()),
        _ => None,
    }
}

fn install_atfork() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers handlers that only touch our own locks.
        unsafe {
            libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
        }
    });
}

/// The locks `fork_prepare` took, released by `fork_parent` and
/// `fork_child` (all three handlers run in the forking thread). Fields drop
/// in order: the reverse of the order they were taken.
struct ForkGuards {
    fds: RwLockWriteGuard<'static, Vec<Option<Arc<Sock>>>>,
    epolls: RwLockWriteGuard<'static, Option<HashMap<c_int, Arc<EpollSet>>>>,
    toe: MutexGuard<'static, ToeState>,
    /// The service's ticket for the child, when this process has offloaded
    /// sockets to share with it.
    ticket: Option<(ForkTicket, Arc<Toe>)>,
}

thread_local! {
    static FORK_GUARDS: RefCell<Option<ForkGuards>> = const { RefCell::new(None) };
}

/// Takes every lock so the child does not inherit one held by a thread
/// that does not exist there.
///
/// Threads that block on one of them meanwhile stay queued on it when the
/// process forks. These are std's locks, whose waiters are queued in the
/// kernel (a futex), so the child, where those threads do not exist,
/// unlocks them with nobody to wake. parking_lot's queue is in user memory
/// and its (eventually fair) unlock hands the lock to the first queued
/// thread: in the child, a thread that does not exist there, holding it
/// forever (seen with a thread writing to stdout during the fork).
///
/// With offloaded sockets open, it also asks the service for a ticket:
/// the child joins with it and shares them (see `fork_child`).
unsafe extern "C" fn fork_prepare() {
    let _ = FORK_GUARDS.try_with(|g| {
        let toe = relock(TOE.lock());
        // Before the table locks: the request goes through interposed
        // calls (setsockopt, sendmsg) that read the table.
        let ticket = fork_ticket(&toe);
        let epolls = relock(EPOLLS.write());
        let fds = relock(FDS.write());
        *g.borrow_mut() = Some(ForkGuards {
            fds,
            epolls,
            toe,
            ticket,
        });
    });
}

/// A ticket for the child if this process has sockets to share.
fn fork_ticket(t: &ToeState) -> Option<(ForkTicket, Arc<Toe>)> {
    let Attach::Ready(toe) = &t.attach else {
        return None;
    };
    let shared =
        ANY.load(Ordering::Relaxed) && relock(FDS.read()).iter().flatten().any(|s| !s.stale());
    if t.epoch != EPOCH.load(Ordering::SeqCst) || !shared {
        return None;
    }
    match toe.fork_ticket() {
        Ok(ticket) => Some((ticket, toe.clone())),
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                warn(&format!(
                    "libtoe_preload: fork: the child cannot share this process's sockets ({e})"
                ))
            });
            None
        }
    }
}

unsafe extern "C" fn fork_parent() {
    let _ = FORK_GUARDS.try_with(|g| g.borrow_mut().take());
}

unsafe extern "C" fn fork_child() {
    let old_epoch = EPOCH.fetch_add(1, Ordering::SeqCst);
    let _ = FORK_GUARDS.try_with(|g| {
        if let Some(mut locks) = g.borrow_mut().take() {
            // The parent's epoll sets: their offloaded members are stale
            // here and never reported, and their own locks may be held by
            // threads of the parent. Forgotten (not dropped): epoll fds
            // inherited by the child are the kernel's alone.
            std::mem::forget(locks.epolls.take());
            // Their sockets stop reporting to them (a new set here with a
            // reused epoll fd number would get their notices).
            for sock in locks.fds.iter().flatten() {
                sock.watch.clear();
            }
            let ForkGuards {
                fds,
                epolls,
                mut toe,
                ticket,
            } = locks;
            let socks = ticket.as_ref().map(|_| inherited_socks(&fds, old_epoch));
            // The join goes through interposed calls that read the table.
            drop(fds);
            drop(epolls);
            if let (Some((ticket, parent)), Some(socks)) = (ticket, socks) {
                join_parent(&mut toe, old_epoch, ticket, parent, socks);
            }
            drop(toe);
        }
    });
}

/// The parent's sockets in the table, each once.
fn inherited_socks(fds: &[Option<Arc<Sock>>], old_epoch: u32) -> Vec<Arc<Sock>> {
    let mut socks: Vec<Arc<Sock>> = Vec::new();
    for s in fds.iter().flatten() {
        if s.epoch.load(Ordering::SeqCst) == old_epoch && !socks.iter().any(|x| Arc::ptr_eq(x, s)) {
            socks.push(s.clone());
        }
    }
    socks
}

/// In the child: joins the parent's application with the ticket, so the
/// sockets inherited from it keep working here (each adopted at its first
/// use, see `lookup`).
fn join_parent(
    t: &mut ToeState,
    old_epoch: u32,
    ticket: ForkTicket,
    parent: Arc<Toe>,
    socks: Vec<Arc<Sock>>,
) {
    // The parent's control connection: the service must see the parent
    // exit even while this child lives. Its rings are the parent's: the
    // attachment is forgotten, never dropped.
    // SAFETY: closes an fd this process inherited and never uses again
    // (the leaked attachment that owns it is never dropped).
    unsafe { real::close(parent.control_fd()) };
    let (mut conns, mut ports) = (Vec::new(), Vec::new());
    for s in &socks {
        // A lock held by a parent thread at the fork stays held here: such
        // a socket is not kept (it stays unusable, EBADF).
        match s.state.try_lock().as_deref() {
            Some(State::Stream {
                s, failed: None, ..
            }) => conns.push(s.handle()),
            Some(State::Listening { l, .. }) => {
                if let Ok(std::net::SocketAddr::V4(a)) = l.local_addr() {
                    ports.push(a.port());
                }
            }
            _ => {}
        }
    }
    let path = toe::control_path_from_env();
    match Toe::join(&path, &ticket, conns, ports, toe::ToeOptions::from_env()) {
        Ok(child) => {
            let epoch = old_epoch.wrapping_add(1);
            for s in &socks {
                s.epoch.store(epoch, Ordering::SeqCst);
                s.inherited.store(true, Ordering::SeqCst);
            }
            if let Attach::Ready(old) = std::mem::replace(&mut t.attach, Attach::Ready(child)) {
                std::mem::forget(old);
            }
            t.epoch = epoch;
        }
        Err(e) => warn(&format!(
            "libtoe_preload: fork: the child cannot share the parent's sockets ({e})"
        )),
    }
    std::mem::forget(parent);
}

/// The first use of a socket inherited across fork in the child: its
/// connection or listener is adopted by this process's attachment. The
/// parent's objects are forgotten (dropping them would act on the
/// parent's rings).
fn adopt_inherited(sock: &Sock) {
    let Some(toe) = toe() else { return };
    let Some(mut st) = sock
        .state
        .try_lock_for(std::time::Duration::from_millis(100))
    else {
        return unusable(sock);
    };
    if !sock.inherited.swap(false, Ordering::SeqCst) {
        return;
    }
    let new = match &mut *st {
        State::Fresh { .. } => return,
        State::Listening { l, .. } => {
            let Ok(std::net::SocketAddr::V4(addr)) = l.local_addr() else {
                return unusable(sock);
            };
            match TcpListener::inherit(&toe, addr, l.congestion_control_id()) {
                Ok(nl) => {
                    let _ = nl.set_nonblocking(true);
                    State::Listening {
                        l: nl,
                        pending: VecDeque::new(),
                        seen: 0,
                    }
                }
                Err(_) => return unusable(sock),
            }
        }
        State::Stream {
            s,
            connecting,
            failed,
            reported,
        } => {
            let (Ok(std::net::SocketAddr::V4(peer)), Ok(std::net::SocketAddr::V4(local))) =
                (s.peer_addr(), s.local_addr())
            else {
                return unusable(sock);
            };
            match TcpStream::inherit(&toe, s.handle(), peer, local, s.is_accepted()) {
                Ok(ns) => {
                    let _ = ns.set_nonblocking(s.is_nonblocking());
                    ns.inherit_congestion_control(sock.cc.load(Ordering::Relaxed));
                    // SO_SNDBUF is the library's, not the engine's.
                    let sndbuf = sock.sndbuf.load(Ordering::Relaxed);
                    if sndbuf != 0 {
                        let _ = ns.set_send_buffer_size(sndbuf as usize);
                    }
                    State::Stream {
                        s: Arc::new(ns),
                        connecting: *connecting,
                        failed: *failed,
                        reported: *reported,
                    }
                }
                Err(_) => return unusable(sock),
            }
        }
    };
    let old = std::mem::replace(&mut *st, new);
    forget_state(old);
}

/// The parent's engine objects inside a state, forgotten.
fn forget_state(st: State) {
    match st {
        State::Listening { l, pending, .. } => {
            std::mem::forget(l);
            pending.into_iter().for_each(std::mem::forget);
        }
        State::Stream { s, .. } => std::mem::forget(s),
        State::Fresh { .. } => {}
    }
}

/// An inherited socket that could not be adopted: EBADF from now on.
fn unusable(sock: &Sock) {
    sock.inherited.store(false, Ordering::SeqCst);
    sock.epoch.store(u32::MAX, Ordering::SeqCst);
}

/// What an offloaded socket is.
pub(crate) enum State {
    /// Created, maybe bound, not yet listening or connected.
    Fresh { bound: Option<SocketAddrV4> },
    Listening {
        l: TcpListener,
        /// Connections accepted ahead (to know the listener is readable).
        pending: VecDeque<TcpStream>,
        /// Accept generation when the queue was last found empty.
        seen: u64,
    },
    Stream {
        s: Arc<TcpStream>,
        /// Nonblocking connect in progress.
        connecting: bool,
        /// The connect failed with this errno.
        failed: Option<c_int>,
        /// SO_ERROR (or connect) already reported `failed`.
        reported: bool,
    },
}

/// One offloaded socket; every fd that refers to it (dup) shares it, like
/// an open file description.
pub(crate) struct Sock {
    pub(crate) state: Mutex<State>,
    pub(crate) nonblock: AtomicBool,
    pub(crate) nodelay: AtomicBool,
    /// The program turned TCP_NODELAY off itself: Nagle's algorithm on
    /// (the engine's default is off; Linux's on, see docs/preload.md).
    pub(crate) nagle: AtomicBool,
    /// TCP_CORK.
    pub(crate) cork: AtomicBool,
    /// SO_RCVBUF and SO_SNDBUF as the program asked (the placeholder's
    /// doubled values halved, as Linux's payload share of them), 0: unset.
    pub(crate) rcvbuf: AtomicU32,
    pub(crate) sndbuf: AtomicU32,
    /// SO_LINGER with a zero timeout: close (and exit) reset.
    pub(crate) linger_zero: AtomicBool,
    /// SO_LINGER with a timeout, in seconds (0: off): the last close
    /// waits up to that long for the written data to be acknowledged.
    pub(crate) linger_secs: AtomicU32,
    /// TCP_CONGESTION chosen (`abi::CC_*`; `CC_DEFAULT`: the service's).
    pub(crate) cc: AtomicU64,
    /// SO_MAX_PACING_RATE in bytes per second (0: no cap).
    pub(crate) max_pacing_rate: AtomicU64,
    /// Keepalive settings (`io::placeholder_keepalive`; 0: off), read from
    /// the placeholder kernel socket's options.
    pub(crate) keepalive: AtomicU64,
    /// Bytes the application consumed (edge-triggered epoll marks).
    pub(crate) rx_consumed: AtomicU64,
    /// Bytes the application wrote.
    pub(crate) tx_written: AtomicU64,
    /// Data read ahead by `MSG_PEEK`, returned first by the next reads.
    pub(crate) peeked: Mutex<Vec<u8>>,
    /// SO_RCVTIMEO / SO_SNDTIMEO in nanoseconds (0: none).
    pub(crate) rcvtimeo: AtomicU64,
    pub(crate) sndtimeo: AtomicU64,
    /// The fork epoch it belongs to: from an older one it is the parent's
    /// (unusable) unless the child joined and took it over.
    pub(crate) epoch: AtomicU32,
    /// Inherited across fork and not used here yet: its first use adopts
    /// it (`adopt_inherited`), its close lets go of it without.
    pub(crate) inherited: AtomicBool,
    /// Calls the application made on it (every `lookup`): with libtoe's
    /// event count, an epoll pass knows when its readiness cannot have
    /// changed (see `Seen`).
    pub(crate) ops: AtomicU64,
    /// The epoll registrations its calls and events are reported to.
    pub(crate) watch: Arc<WatchSlots>,
}

impl Sock {
    pub(crate) fn new(state: State, nonblock: bool) -> Arc<Sock> {
        Arc::new(Sock {
            state: Mutex::new(state),
            nonblock: AtomicBool::new(nonblock),
            nodelay: AtomicBool::new(false),
            nagle: AtomicBool::new(false),
            cork: AtomicBool::new(false),
            rcvbuf: AtomicU32::new(0),
            sndbuf: AtomicU32::new(0),
            linger_zero: AtomicBool::new(false),
            linger_secs: AtomicU32::new(0),
            cc: AtomicU64::new(0),
            max_pacing_rate: AtomicU64::new(0),
            keepalive: AtomicU64::new(0),
            rx_consumed: AtomicU64::new(0),
            tx_written: AtomicU64::new(0),
            peeked: Mutex::new(Vec::new()),
            rcvtimeo: AtomicU64::new(0),
            sndtimeo: AtomicU64::new(0),
            epoch: AtomicU32::new(EPOCH.load(Ordering::SeqCst)),
            inherited: AtomicBool::new(false),
            ops: AtomicU64::new(0),
            watch: Arc::default(),
        })
    }

    /// Inherited across fork and not shared with this process: unusable.
    pub(crate) fn stale(&self) -> bool {
        self.epoch.load(Ordering::Relaxed) != EPOCH.load(Ordering::SeqCst)
    }

    /// The libtoe context this socket's events arrive on (None before it
    /// listens or connects).
    pub(crate) fn context_index(&self) -> Option<u32> {
        match &*self.state.lock() {
            State::Stream { s, .. } => Some(s.context_index()),
            State::Listening { l, .. } => Some(l.context_index()),
            State::Fresh { .. } => None,
        }
    }

    /// The application acted on the socket: its readiness may differ from
    /// what an epoll pass saw. SeqCst, with the pass's clean and check
    /// (see `epoll_set`): either this notice finds the slot clean and
    /// queues it, or the pass sees the new count.
    fn touched(&self) {
        self.ops.fetch_add(1, Ordering::SeqCst);
        self.watch.notify();
    }

    /// The stream, once connected (or connecting).
    pub(crate) fn stream(&self) -> Option<Arc<TcpStream>> {
        match &*self.state.lock() {
            State::Stream { s, .. } => Some(s.clone()),
            _ => None,
        }
    }
}

/// Offloaded fds, indexed by fd number.
static FDS: std::sync::RwLock<Vec<Option<Arc<Sock>>>> = std::sync::RwLock::new(Vec::new());

/// The offloaded socket of `fd`, for a call the application makes on it:
/// counted in `Sock::ops` and told to its epoll sets when the call starts
/// and again when it ends (dropping the [`Call`]), so a pass that looked
/// at the socket meanwhile does not keep what it saw before the call's
/// effect (a `shutdown`, a read that emptied it).
pub(crate) fn lookup(fd: c_int) -> Option<Call> {
    let s = lookup_quiet(fd)?;
    s.touched();
    Some(Call(s))
}

/// A socket for the duration of one call of the application on it.
pub(crate) struct Call(Arc<Sock>);

impl std::ops::Deref for Call {
    type Target = Arc<Sock>;
    fn deref(&self) -> &Arc<Sock> {
        &self.0
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.touched();
    }
}

/// [`lookup`] for the library's own look (an epoll pass): not counted.
pub(crate) fn lookup_quiet(fd: c_int) -> Option<Arc<Sock>> {
    if fd < 0 || !ANY.load(Ordering::Relaxed) {
        return None;
    }
    let s = relock(FDS.read()).get(fd as usize).cloned().flatten()?;
    if s.inherited.load(Ordering::Relaxed) {
        adopt_inherited(&s);
    }
    Some(s)
}

/// Every offloaded descriptor and its socket (exec).
pub(crate) fn offloaded_fds() -> Vec<(c_int, Arc<Sock>)> {
    relock(FDS.read())
        .iter()
        .enumerate()
        .filter_map(|(fd, s)| Some((fd as c_int, s.clone()?)))
        .collect()
}

/// The attachment a program started by an exec joined with (see
/// `exec::join_at_start`).
pub(crate) fn attach_joined(toe: Arc<Toe>) {
    install_atfork();
    let mut t = relock(TOE.lock());
    t.epoch = EPOCH.load(Ordering::SeqCst);
    t.attach = Attach::Ready(toe);
}

pub(crate) fn insert(fd: c_int, sock: Arc<Sock>) {
    let Ok(i) = usize::try_from(fd) else { return };
    let mut t = relock(FDS.write());
    if t.len() <= i {
        t.resize(i + 1, None);
    }
    t[i] = Some(sock);
    ANY.store(true, Ordering::Relaxed);
}

/// Forgets `fd` (closed, or handed to the kernel); returns its socket.
pub(crate) fn remove(fd: c_int) -> Option<Arc<Sock>> {
    if fd < 0 || !ANY.load(Ordering::Relaxed) {
        return None;
    }
    let s = relock(FDS.write())
        .get_mut(fd as usize)
        .and_then(Option::take)?;
    crate::epoll_set::purge(fd, Some(&s));
    Some(s)
}

/// Drops a socket whose fd went away: a stale one (inherited across fork,
/// not shared) is leaked, since closing it would act on the parent's
/// rings; an inherited one never used here is let go of without adopting
/// it.
pub(crate) fn release(sock: Arc<Sock>) {
    if sock.stale() {
        std::mem::forget(sock);
        return;
    }
    if sock.inherited.load(Ordering::SeqCst) && Arc::strong_count(&sock) == 1 {
        let Some(mut st) = sock
            .state
            .try_lock_for(std::time::Duration::from_millis(100))
        else {
            return std::mem::forget(sock);
        };
        if let Some(toe) = toe() {
            match &*st {
                State::Stream { s, .. } => toe.close_inherited(s.handle()),
                State::Listening { l, .. } => {
                    if let Ok(std::net::SocketAddr::V4(a)) = l.local_addr() {
                        toe.unlisten_inherited(a.port());
                    }
                }
                State::Fresh { .. } => {}
            }
        }
        let old = std::mem::replace(&mut *st, State::Fresh { bound: None });
        forget_state(old);
    }
}

// ---- readiness -------------------------------------------------------

/// Readiness of an offloaded socket (poll bits) and the marks used for
/// edge-triggered epoll (they grow when data arrives / space frees).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Eval {
    pub revents: u32,
    pub rx_mark: u64,
    pub tx_mark: u64,
}

const IN: u32 = (libc::POLLIN | libc::POLLRDNORM) as u32;
const OUT: u32 = (libc::POLLOUT | libc::POLLWRNORM) as u32;
const ERR: u32 = libc::POLLERR as u32;
const HUP: u32 = libc::POLLHUP as u32;
const RDHUP: u32 = libc::POLLRDHUP as u32;

/// Applies a finished handshake to the state.
pub(crate) fn settle_connect(sock: &Sock, st: &mut State) {
    if let State::Stream {
        s,
        connecting,
        failed,
        ..
    } = st
    {
        if *connecting {
            match s.connect_result() {
                Ok(None) => {}
                Ok(Some(Ok(()))) => {
                    *connecting = false;
                    // TCP_NODELAY on is the engine's default.
                    if sock.nagle.load(Ordering::Relaxed) {
                        let _ = s.set_nodelay(false);
                    }
                    if sock.cork.load(Ordering::Relaxed) {
                        let _ = s.set_cork(true);
                    }
                    crate::io::apply_buffer_sizes(sock, s);
                    if sock.linger_zero.load(Ordering::Relaxed) {
                        let _ = s.set_linger_zero(true);
                    }
                    let rate = sock.max_pacing_rate.load(Ordering::Relaxed);
                    if rate > 0 {
                        let _ = s.set_max_pacing_rate(Some(rate));
                    }
                    if sock.keepalive.load(Ordering::Relaxed) != 0 {
                        crate::io::apply_keepalive(sock, s);
                    }
                }
                Ok(Some(Err(e))) | Err(e) => {
                    *connecting = false;
                    *failed = Some(toe::errno_of(&e));
                }
            }
        }
    }
}

/// Accepts one connection ahead into an empty queue, only after an
/// `EV_ACCEPTABLE` moved the generation (the service sends another while
/// more wait). One, not all: processes sharing the listener (pre-fork
/// servers) each take their own, and a process that exits leaves the rest
/// for the others.
pub(crate) fn refill(l: &TcpListener, pending: &mut VecDeque<TcpStream>, seen: &mut u64) {
    if !pending.is_empty() {
        return;
    }
    let Ok(g) = l.accept_generation() else { return };
    if g == *seen {
        return;
    }
    // Before accepting: a notice arriving meanwhile moves it again.
    *seen = g;
    if let Ok((s, _)) = l.accept() {
        let _ = s.set_nonblocking(true);
        pending.push_back(s);
    }
}

/// One pass over many sockets (an epoll wait): the contexts polled so far
/// (each is polled once per pass, not once per socket) and the contexts
/// the sockets evaluated depend on (whose doorbells a sleep must watch).
#[derive(Default)]
pub(crate) struct Polled {
    polled: Vec<u64>,
    watched: Vec<u64>,
}

/// Sets `ctx`'s bit; true if it was clear.
fn mark(bits: &mut Vec<u64>, ctx: u32) -> bool {
    let (word, bit) = (ctx as usize / 64, 1u64 << (ctx % 64));
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    let first = bits[word] & bit == 0;
    bits[word] |= bit;
    first
}

impl Polled {
    /// A socket of `ctx` was evaluated.
    pub(crate) fn watch(&mut self, ctx: u32) {
        mark(&mut self.watched, ctx);
    }

    /// True if `ctx` must be polled now (the first time in this pass); the
    /// caller polls it.
    pub(crate) fn poll_now(&mut self, ctx: u32) -> bool {
        self.watch(ctx);
        mark(&mut self.polled, ctx)
    }

    /// Whether `ctx` was polled in this pass.
    pub(crate) fn was_polled(&self, ctx: u32) -> bool {
        self.polled
            .get(ctx as usize / 64)
            .is_some_and(|w| w & (1 << (ctx % 64)) != 0)
    }

    /// The contexts watched, in order.
    pub(crate) fn contexts(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for (w, &bits) in self.watched.iter().enumerate() {
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    v.push((w * 64 + b) as u32);
                }
            }
        }
        v
    }
}

pub(crate) fn eval(sock: &Sock) -> Eval {
    eval_in(sock, &mut Polled::default())
}

/// Evaluations so far (tests check that an epoll pass skips members).
#[cfg(test)]
pub(crate) static EVALUATIONS: AtomicU64 = AtomicU64::new(0);

/// [`eval`] within a pass: a context already polled in `polled` is not
/// polled again.
pub(crate) fn eval_in(sock: &Sock, polled: &mut Polled) -> Eval {
    #[cfg(test)]
    EVALUATIONS.fetch_add(1, Ordering::Relaxed);
    if sock.stale() {
        return Eval {
            revents: libc::POLLNVAL as u32,
            ..Eval::default()
        };
    }
    let mut st = sock.state.lock();
    settle_connect(sock, &mut st);
    let lost = SERVICE_LOST.load(Ordering::Relaxed);
    match &mut *st {
        State::Fresh { .. } => Eval {
            revents: OUT | HUP,
            ..Eval::default()
        },
        State::Listening { l, pending, seen } => {
            polled.watch(l.context_index());
            refill(l, pending, seen);
            Eval {
                revents: if pending.is_empty() { 0 } else { IN },
                rx_mark: *seen,
                tx_mark: 0,
            }
        }
        State::Stream {
            s,
            connecting,
            failed,
            ..
        } => {
            polled.watch(s.context_index());
            if failed.is_some() || lost {
                return Eval {
                    revents: IN | OUT | ERR | HUP | RDHUP,
                    ..Eval::default()
                };
            }
            if *connecting {
                return Eval::default();
            }
            let peeked = sock.peeked.lock().len() as u64;
            let p = if polled.poll_now(s.context_index()) {
                s.poll_events()
            } else {
                s.poll_events_unpolled()
            };
            let Ok(p) = p else {
                return Eval {
                    revents: IN | OUT | ERR | HUP,
                    ..Eval::default()
                };
            };
            let mut r = 0;
            if p.readable || peeked > 0 {
                r |= IN;
            }
            if p.writable {
                r |= OUT;
            }
            if p.eof {
                r |= RDHUP;
            }
            if p.hangup {
                r |= HUP;
            }
            if p.error {
                r |= ERR;
            }
            Eval {
                revents: r,
                rx_mark: sock.rx_consumed.load(Ordering::Relaxed) + p.readable_bytes + peeked,
                tx_mark: sock.tx_written.load(Ordering::Relaxed) + p.writable_bytes,
            }
        }
    }
}

/// A fresh socket turned out to be the kernel's (loopback bind/connect):
/// forget it and move its epoll registrations to the kernel.
pub(crate) fn to_kernel(fd: c_int) {
    let sock = relock(FDS.write())
        .get_mut(usize::try_from(fd).unwrap_or(usize::MAX))
        .and_then(Option::take);
    for (ep, r) in crate::epoll_set::purge(fd, sock.as_deref()) {
        let mut ev = libc::epoll_event {
            events: r.events,
            u64: r.data,
        };
        // SAFETY: `ev` is a valid epoll_event for the call.
        unsafe { real::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    }
}

/// Is `ip` served by the engine (not the host's loopback)?
pub(crate) fn offloadable_dest(ip: Ipv4Addr) -> bool {
    !ip.is_loopback()
}

#[cfg(test)]
#[path = "state_tests.rs"]
pub(crate) mod tests;
