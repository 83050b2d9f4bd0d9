//! A connection's event count, and an optional hook run on each event.
//!
//! The count lets a reader that saw the same value before know that
//! nothing arrived since (an epoll emulation reuses its last look at the
//! connection). The hook tells it without a look at all: the preload's
//! epoll sets keep a list of the members that may have news, filled by the
//! hook, so a wait costs O(members with news), not O(members).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::shared::lock;

/// Called on every event of the connection, with its context's lock held:
/// it must not call into the library.
pub type ActivityHook = Arc<dyn Fn() + Send + Sync>;

/// See the module documentation.
#[derive(Default)]
pub struct Activity {
    count: AtomicU64,
    /// Set once a hook is installed: the bump checks it without locking.
    hooked: AtomicBool,
    hook: Mutex<Option<ActivityHook>>,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("count", &self.count())
            .field("hooked", &self.hooked.load(Ordering::Relaxed))
            .finish()
    }
}

impl Activity {
    /// Events counted so far.
    pub fn count(&self) -> u64 {
        // SeqCst with the bump: a reader that cleaned a notice flag before
        // this load sees a count its notice missed (see the preload's
        // `epoll_set`).
        self.count.load(Ordering::SeqCst)
    }

    /// Whether a hook is installed.
    pub fn has_hook(&self) -> bool {
        self.hooked.load(Ordering::Acquire)
    }

    /// Installs `hook` (replacing any earlier one); it runs after every
    /// later count.
    pub fn set_hook(&self, hook: ActivityHook) {
        *lock(&self.hook) = Some(hook);
        self.hooked.store(true, Ordering::Release);
    }

    /// Something arrived (or the connection went away).
    pub(crate) fn bump(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.hooked.load(Ordering::Acquire) {
            let hook = lock(&self.hook).clone();
            if let Some(h) = hook {
                h();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn counts_and_runs_the_hook_after_each_bump() {
        let a = Activity::default();
        a.bump();
        assert_eq!(a.count(), 1);
        assert!(!a.has_hook());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        a.set_hook(Arc::new(move || {
            c.fetch_add(1, Ordering::Relaxed);
        }));
        a.bump();
        a.bump();
        assert_eq!(a.count(), 3);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
