//! Doorbells: a nonblocking eventfd one side rings and the other sleeps on.
//!
//! The protocol that makes sleeping safe (see `docs/hostif-abi.md`): the
//! sleeper sets its flag in the region (`app_waiting` / `dpu_sleeping`),
//! issues a SeqCst fence, re-checks its ring, and only then calls
//! [`Doorbell::wait`]; the other side, after publishing, issues a SeqCst
//! fence and, if the flag is set, clears it and calls [`Doorbell::ring`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};

/// An eventfd doorbell (`EFD_NONBLOCK | EFD_CLOEXEC`).
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        let fd = rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(Doorbell { fd })
    }

    /// Wraps an eventfd received from the peer. It is made nonblocking, so a
    /// peer that sent a blocking eventfd cannot make [`Doorbell::drain`] or
    /// [`Doorbell::ring`] block.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Doorbell> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(Doorbell { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Adds 1 to the counter. A counter at its maximum (EAGAIN) is already
    /// rung, which is fine.
    pub fn ring(&self) -> io::Result<()> {
        loop {
            return match rustix::io::write(&self.fd, &1u64.to_ne_bytes()) {
                Ok(8) => Ok(()),
                Ok(n) => Err(io::Error::other(format!(
                    "short write of {n} bytes to a doorbell eventfd"
                ))),
                Err(rustix::io::Errno::AGAIN) => Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// Reads and resets the counter without blocking; 0 if it was not rung.
    pub fn drain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            return match rustix::io::read(&self.fd, &mut buf) {
                Ok(8) => Ok(u64::from_ne_bytes(buf)),
                Ok(n) => Err(io::Error::other(format!(
                    "short read of {n} bytes from a doorbell eventfd"
                ))),
                Err(rustix::io::Errno::AGAIN) => Ok(0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// Waits until the doorbell is rung or `timeout` passes (`None`: no
    /// limit). Returns true if it is readable; does not drain it. A signal
    /// (EINTR) returns `Ok(false)`.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let ts = timeout.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => Ok(false),
            Ok(_) => {
                let rev = fds[0].revents();
                if rev.intersects(PollFlags::ERR | PollFlags::NVAL) {
                    return Err(io::Error::other(format!(
                        "doorbell eventfd polled with {rev:?}"
                    )));
                }
                Ok(rev.contains(PollFlags::IN))
            }
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn ring_drain_wait() {
        let d = Doorbell::new().unwrap();
        assert_eq!(d.drain().unwrap(), 0);
        assert!(!d.wait(Some(Duration::from_millis(1))).unwrap());
        d.ring().unwrap();
        d.ring().unwrap();
        assert!(d.wait(Some(Duration::ZERO)).unwrap());
        assert!(d.wait(None).unwrap());
        assert_eq!(d.drain().unwrap(), 2);
        assert_eq!(d.drain().unwrap(), 0);
    }

    #[test]
    fn wakes_a_sleeper_in_another_thread() {
        let d = std::sync::Arc::new(Doorbell::new().unwrap());
        let d2 = d.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let woke = d2.wait(Some(Duration::from_secs(10))).unwrap();
            (woke, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20));
        d.ring().unwrap();
        let (woke, took) = t.join().unwrap();
        assert!(woke);
        assert!(took < Duration::from_secs(5));
    }

    #[test]
    fn from_fd_shares_the_counter_and_is_nonblocking() {
        let a = Doorbell::new().unwrap();
        let blocking = rustix::event::eventfd(0, EventfdFlags::CLOEXEC).unwrap();
        let b = Doorbell::from_fd(blocking).unwrap();
        assert_eq!(b.drain().unwrap(), 0);
        let c = Doorbell::from_fd(a.fd().try_clone_to_owned().unwrap()).unwrap();
        c.ring().unwrap();
        assert_eq!(a.drain().unwrap(), 1);
    }

    #[test]
    fn saturated_counter_is_fine() {
        let d = Doorbell::new().unwrap();
        // Max counter value is u64::MAX - 1; fill it, then ring once more.
        rustix::io::write(d.fd(), &(u64::MAX - 1).to_ne_bytes()).unwrap();
        d.ring().unwrap();
        assert_eq!(d.drain().unwrap(), u64::MAX - 1);
    }
}
