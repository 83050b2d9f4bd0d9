//! Rate-limited warnings: at most a few lines per second from one call
//! site, however often it fires, with a count of what was left out. For
//! conditions a misbehaving peer or application can trigger at will.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A per-call-site budget of log lines per second (usable in a `static`).
#[derive(Debug)]
pub struct LogLimit {
    per_second: u64,
    /// Second (since the epoch) of the current window, and lines in it.
    window: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub const fn new(per_second: u64) -> Self {
        Self {
            per_second,
            window: AtomicU64::new(0),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were suppressed
    /// since the last one); `None` when over budget (counted).
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_second_with_suppressed_count() {
        let l = LogLimit::new(3);
        let allowed = (0..100).filter(|_| l.allow().is_some()).count();
        // Within one second (or two if the test straddles a boundary).
        assert!((3..=6).contains(&allowed), "{allowed}");
    }
}
