//! State of an application's attachment that every context needs: the
//! region, its layout, the DPU doorbell, the control socket (kept open for
//! the application's lifetime), request tags and the listeners' accept
//! generations.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use doca_bindings::abi::Layout;
use doca_bindings::{Doorbell, Region};

/// Why the whole attachment stopped working.
#[derive(Debug)]
struct Broken {
    kind: io::ErrorKind,
    message: String,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) region: Arc<Region>,
    pub(crate) layout: Layout,
    dpu_doorbell: Doorbell,
    /// Its EOF tells the service the application is gone; we watch it the
    /// other way round (the service died) while sleeping.
    control: UnixStream,
    /// One request and its reply at a time on `control` (`fork`).
    control_exchange: Mutex<()>,
    broken: OnceLock<Broken>,
    next_tag: AtomicU64,
    /// Per listening port: its generation, bumped by every `EV_ACCEPTABLE`,
    /// and how many listeners of this process share it.
    listeners: Mutex<HashMap<u16, (Arc<AtomicU64>, usize)>>,
    /// How long blocking calls poll before sleeping on a doorbell.
    pub(crate) spin: Duration,
    /// Threads sleeping outside this crate on the doorbells (see
    /// `Toe::arm_wakeups`): while there are any, a context leader leaves
    /// `app_waiting` raised when its own sleep ends.
    pub(crate) external_waiters: AtomicU32,
}

/// Locks a mutex, ignoring poisoning: every critical section of this crate
/// leaves its state consistent at each step, so a panic elsewhere does not
/// make it unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(
        region: Arc<Region>,
        layout: Layout,
        dpu_doorbell: Doorbell,
        control: UnixStream,
        spin: Duration,
    ) -> Shared {
        Shared {
            region,
            layout,
            dpu_doorbell,
            control,
            control_exchange: Mutex::new(()),
            broken: OnceLock::new(),
            next_tag: AtomicU64::new(1),
            listeners: Mutex::new(HashMap::new()),
            spin,
            external_waiters: AtomicU32::new(0),
        }
    }

    /// A fresh request tag (never 0).
    pub(crate) fn next_tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the attachment unusable (the first reason wins) and returns the
    /// error every later call gets.
    pub(crate) fn set_broken(&self, kind: io::ErrorKind, message: String) -> io::Error {
        let _ = self.broken.set(Broken { kind, message });
        self.check_broken().unwrap_err()
    }

    pub(crate) fn check_broken(&self) -> io::Result<()> {
        match self.broken.get() {
            None => Ok(()),
            Some(b) => Err(io::Error::new(b.kind, b.message.clone())),
        }
    }

    /// After pushing requests: wakes the DPU's host-interface worker if it
    /// sleeps. The fence orders our ring store before the flag load (the
    /// DPU sets the flag, fences, and re-polls the rings before sleeping).
    pub(crate) fn kick_dpu(&self) -> io::Result<()> {
        fence(Ordering::SeqCst);
        let sleeping = self
            .region
            .atomic_u32(self.layout.dpu_sleeping_offset())
            .map(|a| a.load(Ordering::SeqCst))
            .unwrap_or(1);
        if sleeping != 0 {
            self.dpu_doorbell.ring()?;
        }
        Ok(())
    }

    /// One request on the control socket and its reply (with no fds).
    pub(crate) fn control_request<T: serde::de::DeserializeOwned>(
        &self,
        req: &doca_bindings::control::ControlRequest,
    ) -> io::Result<T> {
        use doca_bindings::control::{recv_json, send_json, ControlReply};
        let _one = lock(&self.control_exchange);
        self.control
            .set_read_timeout(Some(Duration::from_secs(10)))?;
        send_json(&self.control, req, &[])?;
        let reply = recv_json::<ControlReply>(&self.control, 0);
        let _ = self.control.set_read_timeout(None);
        let (envelope, _) = reply?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                "libtoe: the DPU service closed the control socket",
            )
        })?;
        envelope.into_result().map_err(io::Error::other)
    }

    /// The control socket's raw fd, polled for hang-up while sleeping.
    pub(crate) fn control_fd(&self) -> i32 {
        self.control.as_raw_fd()
    }

    /// Tracks a new listener; EADDRINUSE if this application already
    /// listens on `port`.
    /// Registers a listener on `port` (its `EV_ACCEPTABLE` generation);
    /// with `shared` (SO_REUSEPORT, or inherited across fork) a port this
    /// process already listens on is counted once more instead of refused.
    pub(crate) fn add_listener(&self, port: u16, shared: bool) -> io::Result<Arc<AtomicU64>> {
        let mut l = lock(&self.listeners);
        if let Some((g, n)) = l.get_mut(&port) {
            if !shared {
                return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
            }
            *n += 1;
            return Ok(g.clone());
        }
        let g = Arc::new(AtomicU64::new(0));
        l.insert(port, (g.clone(), 1));
        Ok(g)
    }

    pub(crate) fn remove_listener(&self, port: u16) {
        let mut l = lock(&self.listeners);
        if let Some((_, n)) = l.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                l.remove(&port);
            }
        }
    }

    /// `EV_ACCEPTABLE` for `port`.
    pub(crate) fn acceptable(&self, port: u16) {
        if let Some((g, _)) = lock(&self.listeners).get(&port) {
            g.fetch_add(1, Ordering::Release);
        }
    }
}
