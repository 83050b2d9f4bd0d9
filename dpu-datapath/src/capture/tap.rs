//! The capture tap the NIC wrapper calls on every burst: one relaxed load
//! when nobody captures; when a session is active, matching frames are
//! copied (with a nanosecond timestamp) into a bounded queue the session
//! drains. A full queue drops and counts: capture never slows the data path
//! down to the speed of its reader.

use super::Filter;
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Frames a session may hold before the tap drops.
pub const SESSION_QUEUE: usize = 65536;

/// A capture in progress.
#[derive(Debug)]
pub struct Session {
    pub filter: Filter,
    pub frames: ArrayQueue<(u64, Vec<u8>)>,
    /// Frames that matched but found the queue full.
    pub dropped: AtomicU64,
}

/// Where the NIC wrapper reports frames.
#[derive(Debug, Default)]
pub struct CaptureTap {
    active: AtomicBool,
    session: Mutex<Option<Arc<Session>>>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl CaptureTap {
    /// Starts a session; `None` if one is already running.
    pub fn start(&self, filter: Filter) -> Option<Arc<Session>> {
        let mut s = self.session.lock();
        if s.is_some() {
            return None;
        }
        let session = Arc::new(Session {
            filter,
            frames: ArrayQueue::new(SESSION_QUEUE),
            dropped: AtomicU64::new(0),
        });
        *s = Some(session.clone());
        self.active.store(true, Ordering::Release);
        Some(session)
    }

    /// Ends the running session.
    pub fn stop(&self) {
        self.active.store(false, Ordering::Release);
        *self.session.lock() = None;
    }

    /// Whether a capture session is running (frames are recorded).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Called by the NIC wrapper with each burst.
    #[inline]
    pub fn record<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let Some(session) = self.session.lock().clone() else {
            return;
        };
        let ts = now_ns();
        for f in frames {
            if session.filter.matches(f) && session.frames.push((ts, f.to_vec())).is_err() {
                session.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
