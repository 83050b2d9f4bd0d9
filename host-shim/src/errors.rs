//! Mapping between the engine's errno values, `io::Error` and the C API's
//! negative return codes.
//!
//! The DPU reports failures as negative errno values (`Desc::status`); the
//! Rust API turns them into `io::Error::from_raw_os_error`, so the
//! `io::ErrorKind` is exactly what std gives for the same errno
//! (ECONNREFUSED -> ConnectionRefused, ...). The C API turns any `io::Error`
//! back into a negative errno.

use std::io;

/// An `io::Error` for a positive errno value.
pub(crate) fn from_errno(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// An `io::Error` for a descriptor status (a negative errno). A status that
/// is not negative (the DPU promised an error but sent none) becomes EIO.
pub(crate) fn from_status(status: i32) -> io::Error {
    from_errno(errno_of_status(status))
}

/// The positive errno of a descriptor status; EIO if it is not a negative
/// errno.
pub(crate) fn errno_of_status(status: i32) -> i32 {
    match status.checked_neg() {
        Some(e) if e > 0 => e,
        _ => libc::EIO,
    }
}

/// `Ok(())` for status 0, the error otherwise.
pub(crate) fn check_status(status: i32) -> io::Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(from_status(status))
    }
}

/// An `InvalidInput` error with a message (EINVAL in the C API).
pub(crate) fn invalid_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// The positive errno for an `io::Error`: its OS error if it has one,
/// otherwise the errno std would have mapped to its kind.
pub fn errno_of(e: &io::Error) -> i32 {
    if let Some(code) = e.raw_os_error() {
        if code > 0 {
            return code;
        }
    }
    use io::ErrorKind as K;
    match e.kind() {
        K::NotFound => libc::ENOENT,
        K::PermissionDenied => libc::EACCES,
        K::ConnectionRefused => libc::ECONNREFUSED,
        K::ConnectionReset => libc::ECONNRESET,
        K::ConnectionAborted => libc::ECONNABORTED,
        K::HostUnreachable => libc::EHOSTUNREACH,
        K::NetworkUnreachable => libc::ENETUNREACH,
        K::NotConnected => libc::ENOTCONN,
        K::AddrInUse => libc::EADDRINUSE,
        K::AddrNotAvailable => libc::EADDRNOTAVAIL,
        K::BrokenPipe => libc::EPIPE,
        K::AlreadyExists => libc::EEXIST,
        K::WouldBlock => libc::EAGAIN,
        K::InvalidInput => libc::EINVAL,
        K::InvalidData => libc::EPROTO,
        K::TimedOut => libc::ETIMEDOUT,
        K::Interrupted => libc::EINTR,
        K::Unsupported => libc::EOPNOTSUPP,
        K::OutOfMemory => libc::ENOMEM,
        _ => libc::EIO,
    }
}

/// The C API's return value for an error: `-errno`.
pub(crate) fn neg_errno(e: &io::Error) -> i32 {
    -errno_of(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use io::ErrorKind as K;

    #[test]
    fn engine_errnos_have_std_kinds() {
        for (errno, kind) in [
            (libc::ECONNREFUSED, K::ConnectionRefused),
            (libc::ECONNRESET, K::ConnectionReset),
            (libc::ETIMEDOUT, K::TimedOut),
            (libc::EHOSTUNREACH, K::HostUnreachable),
            (libc::EPIPE, K::BrokenPipe),
            (libc::EAGAIN, K::WouldBlock),
            (libc::EADDRINUSE, K::AddrInUse),
        ] {
            let e = from_status(-errno);
            assert_eq!(e.kind(), kind, "errno {errno}");
            assert_eq!(errno_of(&e), errno);
            assert_eq!(neg_errno(&e), -errno);
        }
    }

    #[test]
    fn odd_statuses_become_eio() {
        assert_eq!(errno_of_status(0), libc::EIO);
        assert_eq!(errno_of_status(5), libc::EIO);
        assert_eq!(errno_of_status(i32::MIN), libc::EIO);
        assert_eq!(errno_of_status(-libc::EPROTO), libc::EPROTO);
        assert!(check_status(0).is_ok());
        assert_eq!(
            check_status(-libc::ECONNREFUSED).unwrap_err().kind(),
            K::ConnectionRefused
        );
    }

    #[test]
    fn kinds_without_os_error_map_back() {
        assert_eq!(errno_of(&invalid_input("x")), libc::EINVAL);
        assert_eq!(errno_of(&io::Error::from(K::WouldBlock)), libc::EAGAIN);
        assert_eq!(errno_of(&io::Error::from(K::TimedOut)), libc::ETIMEDOUT);
        assert_eq!(errno_of(&io::Error::from(K::BrokenPipe)), libc::EPIPE);
        assert_eq!(errno_of(&io::Error::other("x")), libc::EIO);
    }
}
