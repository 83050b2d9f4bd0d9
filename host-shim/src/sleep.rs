//! Sleeping on a context's doorbell while watching the control socket for
//! the service going away (one `ppoll` on both fds).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Why a sleep ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Woken {
    /// The doorbell was rung (it must be drained).
    pub rung: bool,
    /// The control socket hung up or failed: the service is gone.
    pub control_lost: bool,
}

/// Sleeps until `doorbell` is readable, `control` hangs up, or `timeout`
/// passes. EINTR counts as a (spurious) wakeup.
pub(crate) fn sleep(doorbell: RawFd, control: RawFd, timeout: Duration) -> io::Result<Woken> {
    let mut fds = [
        libc::pollfd {
            fd: doorbell,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: control,
            // Hang-up only: a message (none is expected) must not make us spin.
            events: libc::POLLRDHUP,
            revents: 0,
        },
    ];
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: `fds` is a valid array of 2 pollfd for the duration of the
    // call, `ts` a valid timespec, and a null sigmask means "unchanged".
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Woken::default());
        }
        return Err(e);
    }
    let bad = libc::POLLERR | libc::POLLNVAL;
    if fds[0].revents & bad != 0 {
        return Err(io::Error::other(format!(
            "doorbell eventfd polled with revents {:#x}",
            fds[0].revents
        )));
    }
    Ok(Woken {
        rung: fds[0].revents & libc::POLLIN != 0,
        control_lost: fds[1].revents & (libc::POLLRDHUP | libc::POLLHUP | bad) != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use doca_bindings::Doorbell;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn times_out_rings_and_sees_hangup() {
        let d = Doorbell::new().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let fd = d.fd().as_raw_fd();
        let t = Instant::now();
        let w = sleep(fd, a.as_raw_fd(), Duration::from_millis(5)).unwrap();
        assert_eq!(w, Woken::default());
        assert!(t.elapsed() >= Duration::from_millis(4));

        d.ring().unwrap();
        let w = sleep(fd, a.as_raw_fd(), Duration::from_secs(5)).unwrap();
        assert!(w.rung && !w.control_lost);
        d.drain().unwrap();

        // Data on the control socket is not a wakeup; its EOF is.
        use std::io::Write;
        (&b).write_all(b"x").unwrap();
        let w = sleep(fd, a.as_raw_fd(), Duration::from_millis(5)).unwrap();
        assert_eq!(w, Woken::default());
        drop(b);
        let w = sleep(fd, a.as_raw_fd(), Duration::from_secs(5)).unwrap();
        assert!(w.control_lost && !w.rung);
    }
}
