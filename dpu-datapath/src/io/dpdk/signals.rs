//! Turning off the `net_tap` PMD's per-frame RX signal.
//!
//! DPDK's TAP driver (22.11) takes the first free real-time signal from
//! `SIGRTMIN + 1` and has the kernel raise it for every frame the TAP
//! queues (`O_ASYNC`, `F_SETOWN` to the process), so that its RX burst can
//! skip the `readv` on empty polls. That trade is wrong for a data path that
//! polls anyway:
//! - one signal per received frame, taken by whichever thread does not
//!   block it: with the signal on, one connection over the TAP moved
//!   1.9-2.2 Gbit/s, without it 3.2-3.5 (docs/benchmarks.md);
//! - it landed on the main thread, and under a SYN flood (100k frames/s)
//!   its 20 ms status sleep never ended: each interrupted `nanosleep` hands
//!   back a remaining time that includes the timer slack, so the sleep grew
//!   instead of shrinking (seen: 5 s left of a 20 ms sleep) and the service
//!   took more than 20 s to answer SIGTERM.
//!
//! The driver turns the trigger off when no real-time signal is free ("No
//! Rx trigger signal available"), so the service takes them all with a
//! handler that does nothing, before the EAL probes the TAP.

extern "C" fn ignore(_: libc::c_int) {}

/// `SIGRTMIN + 1 ..= SIGRTMAX`: the signals the TAP driver picks from.
fn candidates() -> std::ops::RangeInclusive<libc::c_int> {
    libc::SIGRTMIN() + 1..=libc::SIGRTMAX()
}

/// Installs a do-nothing handler on every real-time signal the TAP driver
/// could use (one that already has a handler is left alone). Call before
/// the EAL initialises.
pub(super) fn occupy_tap_rx_signals() -> Result<(), String> {
    for sig in candidates() {
        // SAFETY: `sigaction` reads the current action into a zeroed local
        // and installs one whose handler is a plain `extern "C"` function
        // that touches nothing (async-signal-safe).
        let rc = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                -1
            } else if old.sa_sigaction != libc::SIG_DFL {
                0
            } else {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            }
        };
        if rc != 0 {
            return Err(format!(
                "sigaction({sig}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler_of(sig: libc::c_int) -> libc::sighandler_t {
        // SAFETY: reads the current action into a zeroed local.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
            old.sa_sigaction
        }
    }

    #[test]
    fn no_realtime_signal_is_left_for_the_tap_driver() {
        occupy_tap_rx_signals().unwrap();
        for sig in candidates() {
            assert_ne!(handler_of(sig), libc::SIG_DFL, "signal {sig} is free");
        }
        // Ctrl-C and SIGTERM are not ours to take.
        assert_eq!(handler_of(libc::SIGTERM), libc::SIG_DFL);
        // Idempotent.
        occupy_tap_rx_signals().unwrap();
    }
}
