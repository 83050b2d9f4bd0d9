//! `SA_RESTART` for offloaded sockets. The kernel restarts a blocking
//! read, write, accept or connect interrupted by a signal whose handler was
//! installed with `SA_RESTART` (and `signal()`'s BSD semantics ask for it);
//! the library's blocking calls sleep in `ppoll`, which the kernel never
//! restarts. So every handler the program installs is wrapped: the wrapper
//! notes on its thread whether the handler asked for restarts, then runs
//! it; a blocking call that wakes with EINTR goes back to waiting when
//! every handler that ran meanwhile asked for it (`interrupted`). What
//! `sigaction` reports back is always the program's own handler.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use libc::{c_int, c_void, siginfo_t};

use crate::real;

/// Signals 1..NSIG (64 on Linux, plus one for indexing).
const NSIG: usize = 65;

/// The program's handler and flags per signal (0: none wrapped).
static HANDLER: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
static FLAGS: [AtomicI32; NSIG] = [const { AtomicI32::new(0) }; NSIG];

/// A wrapped handler ran on this thread since the last `clear`: bit 0 one
/// with `SA_RESTART`, bit 1 one without.
const RAN_RESTART: u8 = 1;
const RAN_INTERRUPT: u8 = 2;

thread_local! {
    // No destructor and a const initialiser: usable in a signal handler.
    static RAN: Cell<u8> = const { Cell::new(0) };
}

/// Before a blocking wait: forget earlier handlers.
pub(crate) fn clear() {
    let _ = RAN.try_with(|r| r.set(0));
}

/// After a wait ended with EINTR: whether the call must return EINTR
/// (false: every handler that ran asked for `SA_RESTART`, wait again).
pub(crate) fn interrupted() -> bool {
    let ran = RAN.try_with(|r| r.replace(0)).unwrap_or(RAN_INTERRUPT);
    ran & RAN_INTERRUPT != 0 || ran == 0
}

extern "C" fn wrapper(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i < NSIG) else {
        return;
    };
    let flags = FLAGS[i].load(Ordering::Relaxed);
    let h = HANDLER[i].load(Ordering::Relaxed);
    let bit = if flags & libc::SA_RESTART != 0 {
        RAN_RESTART
    } else {
        RAN_INTERRUPT
    };
    let _ = RAN.try_with(|r| r.set(r.get() | bit));
    if h == 0 || h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed `h` with SA_SIGINFO, so it has the
        // three-argument prototype; the arguments are the kernel's.
        let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: installed without SA_SIGINFO: a one-argument handler.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// `sigaction` with the program's handler wrapped (see the module).
///
/// # Safety
/// `act` and `old` are null or valid, as for `sigaction(2)`.
pub(crate) unsafe fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let Some(i) = usize::try_from(sig)
        .ok()
        .filter(|&i| (1..NSIG).contains(&i))
    else {
        // SAFETY: forwards the caller's arguments.
        return unsafe { real::sigaction(sig, act, old) };
    };
    let prev = (
        HANDLER[i].load(Ordering::Relaxed),
        FLAGS[i].load(Ordering::Relaxed),
    );
    let mut mine: libc::sigaction;
    let mut installing = act;
    if !act.is_null() {
        // SAFETY: the caller passes a valid sigaction.
        let a = unsafe { *act };
        if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN {
            FLAGS[i].store(a.sa_flags, Ordering::Relaxed);
            HANDLER[i].store(a.sa_sigaction, Ordering::Relaxed);
            mine = a;
            mine.sa_sigaction = wrapper as *const () as usize;
            mine.sa_flags |= libc::SA_SIGINFO;
            installing = &mine;
        } else {
            HANDLER[i].store(0, Ordering::Relaxed);
        }
    }
    // SAFETY: `installing` is null, the caller's, or `mine` (valid here).
    let r = unsafe { real::sigaction(sig, installing, old) };
    if r != 0 {
        HANDLER[i].store(prev.0, Ordering::Relaxed);
        FLAGS[i].store(prev.1, Ordering::Relaxed);
    } else if !old.is_null() {
        // SAFETY: the kernel filled `old`.
        let o = unsafe { &mut *old };
        if o.sa_sigaction == wrapper as *const () as usize {
            o.sa_sigaction = prev.0;
            o.sa_flags = prev.1;
        }
    }
    r
}

/// `signal()` (glibc's BSD semantics: `SA_RESTART`, the signal blocked
/// while its handler runs) or `sysv_signal()` (reset to the default on
/// delivery, not blocked, no restart), through [`sigaction`].
///
/// # Safety
/// As `signal(2)`.
pub(crate) unsafe fn signal(
    sig: c_int,
    handler: libc::sighandler_t,
    bsd: bool,
) -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is a valid value of the C struct.
    let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a zeroed sigaction is a valid value of the C struct.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    a.sa_sigaction = handler;
    // SAFETY: `a.sa_mask` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut a.sa_mask) };
    if bsd {
        // SAFETY: as above; an invalid signal makes sigaction fail below.
        unsafe { libc::sigaddset(&mut a.sa_mask, sig) };
        a.sa_flags = libc::SA_RESTART;
    } else {
        a.sa_flags = libc::SA_RESETHAND | libc::SA_NODEFER;
    }
    // SAFETY: both structs are valid for the call.
    if unsafe { sigaction(sig, &a, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}
