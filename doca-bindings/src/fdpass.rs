//! Control-socket framing over a Unix stream socket: a `u32` little-endian
//! length, then the payload; file descriptors travel as `SCM_RIGHTS` on the
//! first `sendmsg` of the frame.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Largest payload accepted or sent (4 MiB).
pub const MAX_FRAME: usize = 4 << 20;

/// Linux's `SCM_MAX_FD`: most fds one message can carry.
pub const MAX_FDS: usize = 253;

/// Sends one frame; `fds` are attached to the first `sendmsg` (and so
/// arrive with the frame's first bytes).
pub fn send_frame(sock: &UnixStream, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds MAX_FRAME ({MAX_FRAME})",
                payload.len()
            ),
        ));
    }
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} fds exceed the {MAX_FDS} one message can carry",
                fds.len()
            ),
        ));
    }
    let header = (payload.len() as u32).to_le_bytes();
    let total = header.len() + payload.len();
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut sent = 0usize;
    let mut first = true;
    while sent < total {
        let iov_owned;
        let iov: &[IoSlice<'_>] = if sent < header.len() {
            iov_owned = [IoSlice::new(&header[sent..]), IoSlice::new(payload)];
            &iov_owned
        } else {
            iov_owned = [
                IoSlice::new(&payload[sent - header.len()..]),
                IoSlice::new(&[]),
            ];
            &iov_owned[..1]
        };
        let mut control = SendAncillaryBuffer::new(&mut space);
        if first && !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("fds do not fit the control buffer"));
        }
        match rustix::net::sendmsg(sock, iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                sent += n;
                first = false;
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// State of one frame being received: fds collected so far and whether
/// some were dropped.
struct Rx<'a> {
    sock: &'a UnixStream,
    max_fds: usize,
    space: Vec<MaybeUninit<u8>>,
    fds: Vec<OwnedFd>,
    excess: bool,
}

impl Rx<'_> {
    /// One `recvmsg` into `buf`; returns the byte count (0 = EOF).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut iov = [IoSliceMut::new(buf)];
            let mut control = RecvAncillaryBuffer::new(&mut self.space);
            let msg = match rustix::net::recvmsg(
                self.sock,
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if msg.flags.contains(ReturnFlags::CTRUNC) {
                // The kernel closed the fds that did not fit.
                self.excess = true;
            }
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    for fd in fds {
                        if self.fds.len() < self.max_fds {
                            self.fds.push(fd);
                        } else {
                            self.excess = true; // dropped = closed
                        }
                    }
                }
            }
            return Ok(msg.bytes);
        }
    }

    /// Fills `buf` completely; `Ok(false)` on EOF before the first byte when
    /// `eof_ok`.
    fn fill(&mut self, buf: &mut [u8], eof_ok: bool) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.recv(&mut buf[got..])?;
            if n == 0 {
                if got == 0 && eof_ok {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "control socket closed in the middle of a frame ({got} of {} bytes)",
                        buf.len()
                    ),
                ));
            }
            got += n;
        }
        Ok(true)
    }
}

/// Receives one frame and the fds that came with it (CLOEXEC). `None` on a
/// clean EOF before the frame; an error on EOF inside it, on a length above
/// [`MAX_FRAME`] (before allocating), or when more than `max_fds` fds
/// arrived (all of them are closed; the frame is consumed).
pub fn recv_frame(
    sock: &UnixStream,
    max_fds: usize,
) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let max_fds = max_fds.min(MAX_FDS);
    // Room for one fd more than allowed, so an excess is seen rather than
    // only inferred from MSG_CTRUNC.
    let mut rx = Rx {
        sock,
        max_fds,
        space: vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max_fds + 1))],
        fds: Vec::new(),
        excess: false,
    };
    let mut header = [0u8; 4];
    if !rx.fill(&mut header, true)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control frame of {len} bytes exceeds MAX_FRAME ({MAX_FRAME})"),
        ));
    }
    let mut payload = vec![0u8; len];
    rx.fill(&mut payload, false)?;
    if rx.excess {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("control frame carried more than {max_fds} fds; all were closed"),
        ));
    }
    Ok(Some((payload, rx.fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use crate::Doorbell;
    use std::io::Write;

    #[test]
    fn frames_without_fds() {
        let (a, b) = UnixStream::pair().unwrap();
        send_frame(&a, b"hello", &[]).unwrap();
        send_frame(&a, b"", &[]).unwrap();
        let (p, f) = recv_frame(&b, 4).unwrap().unwrap();
        assert_eq!(p, b"hello");
        assert!(f.is_empty());
        assert_eq!(recv_frame(&b, 4).unwrap().unwrap().0, b"");
        drop(a);
        assert!(recv_frame(&b, 4).unwrap().is_none());
    }

    #[test]
    fn large_frame_from_another_thread() {
        let (a, b) = UnixStream::pair().unwrap();
        let payload: Vec<u8> = (0..MAX_FRAME).map(|i| (i * 31) as u8).collect();
        let expect = payload.clone();
        let t = std::thread::spawn(move || {
            let d = Doorbell::new().unwrap();
            send_frame(&a, &payload, &[d.fd()]).unwrap();
        });
        let (p, fds) = recv_frame(&b, 1).unwrap().unwrap();
        t.join().unwrap();
        assert_eq!(p, expect);
        assert_eq!(fds.len(), 1);
    }

    #[test]
    fn passes_a_region_and_maps_it() {
        let (a, b) = UnixStream::pair().unwrap();
        let region = Region::create("pass", 8192).unwrap();
        region.write(4000, b"shared").unwrap();
        let bell = Doorbell::new().unwrap();
        send_frame(&a, b"{}", &[region.fd(), bell.fd()]).unwrap();
        let (p, mut fds) = recv_frame(&b, 2).unwrap().unwrap();
        assert_eq!(p, b"{}");
        assert_eq!(fds.len(), 2);
        // Received fds are close-on-exec.
        for fd in &fds {
            let flags = rustix::io::fcntl_getfd(fd).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
        let bell2 = Doorbell::from_fd(fds.pop().unwrap()).unwrap();
        let other = Region::from_fd(fds.pop().unwrap()).unwrap();
        assert_eq!(other.len(), 8192);
        let mut out = [0u8; 6];
        other.read(4000, &mut out).unwrap();
        assert_eq!(&out, b"shared");
        other.write(0, b"back").unwrap();
        let mut out = [0u8; 4];
        region.read(0, &mut out).unwrap();
        assert_eq!(&out, b"back");
        bell2.ring().unwrap();
        assert_eq!(bell.drain().unwrap(), 1);
    }

    #[test]
    fn too_many_fds_is_an_error_and_the_stream_stays_framed() {
        let (a, b) = UnixStream::pair().unwrap();
        let bells: Vec<Doorbell> = (0..5).map(|_| Doorbell::new().unwrap()).collect();
        let fds: Vec<BorrowedFd<'_>> = bells.iter().map(|d| d.fd()).collect();
        send_frame(&a, b"x", &fds).unwrap();
        send_frame(&a, b"y", &fds[..1]).unwrap();
        send_frame(&a, b"z", &fds[..1]).unwrap();
        let e = recv_frame(&b, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let (p, f) = recv_frame(&b, 2).unwrap().unwrap();
        assert_eq!((p.as_slice(), f.len()), (&b"y"[..], 1));
        assert!(recv_frame(&b, 0).is_err());
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&10u32.to_le_bytes()).unwrap();
        a.write_all(b"abc").unwrap();
        drop(a);
        let e = recv_frame(&b, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&[1, 0]).unwrap();
        drop(a);
        let e = recv_frame(&b, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn oversized_frame_is_rejected() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&u32::MAX.to_le_bytes()).unwrap();
        let e = recv_frame(&b, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("MAX_FRAME"), "{e}");

        let big = vec![0u8; MAX_FRAME + 1];
        let e = send_frame(&a, &big, &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
