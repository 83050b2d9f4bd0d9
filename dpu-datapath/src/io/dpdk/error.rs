//! Errors from DPDK calls: what failed, the errno and DPDK's text for it.

use core::fmt;

/// Linux `EINVAL`: an argument or configuration value DPDK (or we) refuse.
pub(crate) const EINVAL: i32 = 22;
/// Linux `ENODEV`: no such port.
pub(crate) const ENODEV: i32 = 19;
/// Linux `ENOTSUP` / `EOPNOTSUPP`: the driver does not implement the operation.
pub(crate) const ENOTSUP: i32 = 95;
/// Linux `EALREADY`.
pub(crate) const EALREADY: i32 = 114;

/// A failed DPDK operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    /// The call or step that failed, e.g. `"rte_eth_dev_configure(port 0)"`.
    pub op: String,
    /// Positive errno (`rte_errno`, or the negated return value of an ethdev call).
    pub errno: i32,
    /// `rte_strerror(errno)`, or our own explanation for checks made before calling DPDK.
    pub message: String,
}

impl DpdkError {
    /// For calls that return -1 / NULL and set `rte_errno` (`rte_eal_init`,
    /// `rte_pktmbuf_pool_create`, ...). Call right after the failing call, on the same
    /// thread.
    pub(crate) fn from_rte_errno(op: impl Into<String>) -> Self {
        Self::from_errno(op, dpdk_sys::errno())
    }

    /// For calls that return a negative errno (most of ethdev).
    pub(crate) fn from_ret(op: impl Into<String>, ret: i32) -> Self {
        Self::from_errno(op, ret.saturating_abs())
    }

    fn from_errno(op: impl Into<String>, errno: i32) -> Self {
        DpdkError {
            op: op.into(),
            errno,
            message: dpdk_sys::strerror(errno),
        }
    }

    /// A check of ours failed before DPDK was called.
    pub(crate) fn invalid(op: impl Into<String>, errno: i32, message: impl Into<String>) -> Self {
        DpdkError {
            op: op.into(),
            errno,
            message: message.into(),
        }
    }

    /// `Ok(ret)` for `ret >= 0`, else the error for a negative-errno return.
    pub(crate) fn check(op: impl FnOnce() -> String, ret: i32) -> Result<i32, DpdkError> {
        if ret < 0 {
            Err(Self::from_ret(op(), ret))
        } else {
            Ok(ret)
        }
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (errno {})", self.op, self.message, self.errno)
    }
}

impl std::error::Error for DpdkError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_returns_carry_strerror_text() {
        let err = DpdkError::from_ret("rte_eth_dev_configure(port 0)", -EINVAL);
        assert_eq!(err.errno, EINVAL);
        assert!(err.message.contains("Invalid argument"), "{err}");
        assert_eq!(
            DpdkError::check(|| unreachable!(), 3),
            Ok(3),
            "non-negative returns pass"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("rte_eth_dev_configure(port 0): "),
            "{text}"
        );
        assert!(text.ends_with("(errno 22)"), "{text}");
    }
}
