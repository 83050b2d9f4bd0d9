//! The capture tap the NIC wrapper calls on every burst: one relaxed load
//! when nobody captures; when a session is active, matching frames are
//! copied (with a nanosecond timestamp) into a bounded queue the session
//! drains. A full queue drops and counts: capture never slows the data path
//! down to the speed of its reader.

use super::Filter;
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Frames a session may hold before the tap drops.
pub const SESSION_QUEUE: usize = 65536;
/// Bytes a session may hold before the tap drops: frames to our own
/// address go whole, up to 64 KiB each on the loopback backend, so the
/// frame count alone would let a slow reader pin gigabytes.
pub const SESSION_BYTES: usize = 64 << 20;

/// A capture in progress.
#[derive(Debug)]
pub struct Session {
    pub filter: Filter,
    frames: ArrayQueue<(u64, Vec<u8>)>,
    /// Bytes of the frames queued (bounded by [`SESSION_BYTES`]).
    queued_bytes: AtomicUsize,
    /// Frames that matched but found the queue full.
    pub dropped: AtomicU64,
}

impl Session {
    /// The oldest frame recorded and not yet taken, with its timestamp.
    pub fn pop(&self) -> Option<(u64, Vec<u8>)> {
        let f = self.frames.pop()?;
        self.queued_bytes.fetch_sub(f.1.len(), Ordering::Relaxed);
        Some(f)
    }

    /// Queues a copy of `frame`; false (and counted) when the session
    /// holds as many frames or bytes as it may.
    fn push(&self, ts: u64, frame: &[u8]) -> bool {
        let len = frame.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > SESSION_BYTES || self.frames.push((ts, frame.to_vec())).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
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
            queued_bytes: AtomicUsize::new(0),
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
            if session.filter.matches(f) {
                session.push(ts, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_at_most_its_bytes() {
        let tap = CaptureTap::default();
        let session = tap.start(Filter::parse("").unwrap()).unwrap();
        let big = vec![0u8; 64 * 1024];
        let fits = SESSION_BYTES / big.len();
        tap.record((0..fits + 10).map(|_| &big[..]));
        assert_eq!(session.frames.len(), fits);
        assert_eq!(session.dropped.load(Ordering::Relaxed), 10);
        // Taking one makes room for one.
        assert_eq!(session.pop().map(|f| f.1.len()), Some(big.len()));
        tap.record([&big[..], &big[..]].into_iter());
        assert_eq!(session.frames.len(), fits);
        assert_eq!(session.dropped.load(Ordering::Relaxed), 11);
        tap.stop();
    }
}
