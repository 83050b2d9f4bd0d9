//! Attaching to the DPU service: registration over the control socket,
//! mapping the region, one [`Context`] per granted context, and the
//! assignment of application threads to contexts.

use std::cell::RefCell;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use doca_bindings::abi::{self, Layout};
use doca_bindings::control::{self, ControlReply, ControlRequest, ForkReply, RegisterReply};
use doca_bindings::{Doorbell, Region};

use crate::context::Context;
use crate::shared::Shared;
use crate::waiters::WaitStats;

/// Control socket used when neither a path nor `FLEXTOE_CONTROL` is given.
pub const DEFAULT_CONTROL_PATH: &str = "/run/flextoe/control.sock";
/// Environment variable naming the control socket.
pub const CONTROL_ENV: &str = "FLEXTOE_CONTROL";
/// How long registration may take before we give up on the service.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToeOptions {
    /// Contexts to ask for (the service may grant fewer): one per
    /// application thread is ideal; more threads share them.
    pub contexts: u32,
    /// How long a blocking call polls before it sleeps on a doorbell.
    pub spin: Duration,
    /// Name shown by the service (`flextoe conns`, logs).
    pub name: String,
}

impl Default for ToeOptions {
    /// One context per CPU, at least 16 and at most 64 (threads beyond
    /// that share contexts), no spinning (sleep on the
    /// doorbell at once: on a host with few cores a spinning application
    /// takes the CPU its peer or the service needs; measured in
    /// docs/benchmarks.md, set `FLEXTOE_SPIN_US` where cores are spare), the
    /// program name.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let name = std::env::args()
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "libtoe".into());
        ToeOptions {
            contexts: u32::try_from(cpus.max(16)).unwrap_or(64).clamp(1, 64),
            spin: Duration::ZERO,
            name,
        }
    }
}

impl ToeOptions {
    /// The defaults, overridden by `FLEXTOE_CONTEXTS`, `FLEXTOE_SPIN_US`
    /// and `FLEXTOE_APP_NAME` when set (unparsable values are ignored).
    pub fn from_env() -> ToeOptions {
        let mut o = ToeOptions::default();
        if let Some(n) = env_parse::<u32>("FLEXTOE_CONTEXTS") {
            o.contexts = n.clamp(1, abi::MAX_CONTEXTS);
        }
        if let Some(us) = env_parse::<u64>("FLEXTOE_SPIN_US") {
            o.spin = Duration::from_micros(us);
        }
        if let Ok(name) = std::env::var("FLEXTOE_APP_NAME") {
            o.name = name;
        }
        o
    }
}

fn env_parse<T: std::str::FromStr>(var: &str) -> Option<T> {
    std::env::var(var).ok()?.trim().parse().ok()
}

/// The control socket path: `FLEXTOE_CONTROL`, else the default.
pub fn control_path_from_env() -> PathBuf {
    std::env::var_os(CONTROL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_PATH))
}

static NEXT_TOE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (toe id, context index) for every attachment this thread used.
    static THREAD_CTX: RefCell<Vec<(u64, u32)>> = const { RefCell::new(Vec::new()) };
}

/// An application's attachment to the DPU's TCP engine.
#[derive(Debug)]
pub struct Toe {
    id: u64,
    app_id: u32,
    local_ip: Ipv4Addr,
    /// The service's congestion control for connections whose
    /// application did not choose, and per listening port.
    cc_default: String,
    cc_by_port: std::collections::BTreeMap<u16, String>,
    shared: Arc<Shared>,
    /// This process's contexts, `first_ctx ..` in the region.
    contexts: Vec<Context>,
    first_ctx: u32,
    next_ctx: AtomicU32,
    next_accept: AtomicU32,
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// What a process about to fork gets from the service for its child
/// ([`Toe::fork_ticket`]), and the child presents ([`Toe::join`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkTicket {
    pub app_id: u32,
    pub token: u64,
    pub context: u32,
}

impl Toe {
    /// Attaches through the control socket at `path` with default options.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Arc<Toe>> {
        Toe::with_options(path, ToeOptions::from_env())
    }

    /// Attaches through `FLEXTOE_CONTROL` (default
    /// `/run/flextoe/control.sock`), options from the environment.
    pub fn from_env() -> io::Result<Arc<Toe>> {
        Toe::with_options(control_path_from_env(), ToeOptions::from_env())
    }

    /// Attaches through the control socket at `path`.
    pub fn with_options(path: impl AsRef<Path>, options: ToeOptions) -> io::Result<Arc<Toe>> {
        let path = path.as_ref();
        let sock = UnixStream::connect(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "libtoe: cannot reach the DPU service at {}: {e}",
                    path.display()
                ),
            )
        })?;
        sock.set_read_timeout(Some(REGISTER_TIMEOUT))?;
        let req = ControlRequest::Register {
            name: options.name.clone(),
            pid: std::process::id(),
            contexts: options.contexts.clamp(1, abi::MAX_CONTEXTS),
        };
        control::send_json(&sock, &req, &[])?;
        let max_fds = control::REGISTER_FDS_BASE + abi::MAX_CONTEXTS as usize;
        let (envelope, fds) =
            control::recv_json::<ControlReply>(&sock, max_fds)?.ok_or_else(|| {
                invalid_data("libtoe: the DPU service closed the control socket".into())
            })?;
        let reply: RegisterReply = envelope
            .into_result()
            .map_err(|e| io::Error::other(format!("libtoe: registration refused: {e}")))?;
        sock.set_read_timeout(None)?;
        Toe::attach(sock, reply, fds, options.spin).map(Arc::new)
    }

    /// Before `fork()`: asks the service to keep a context for the child
    /// and to make it a holder of this process's connections and
    /// listeners, so that they stay open for the child whatever this
    /// process closes meanwhile. The child calls [`Toe::join`] with the
    /// ticket (a ticket nobody joins with expires after 10 s).
    pub fn fork_ticket(&self) -> io::Result<ForkTicket> {
        self.shared.check_broken()?;
        let r: ForkReply = self.shared.control_request(&ControlRequest::Fork)?;
        Ok(ForkTicket {
            app_id: self.app_id,
            token: r.token,
            context: r.context,
        })
    }

    /// In a child after `fork()`: joins the parent's application with
    /// `ticket` through the control socket at `path`, keeping the
    /// connections (`conns`, handles) and listening `ports` it has
    /// descriptors for; the parent's other holdings are given back. Use
    /// [`TcpStream::inherit`](crate::TcpStream::inherit) and
    /// [`TcpListener::inherit`](crate::TcpListener::inherit) on the
    /// attachment it returns. The parent's [`Toe`] must not be used in the
    /// child (its rings are the parent's): forget it, and close its
    /// [`Toe::control_fd`] so the service sees the parent exit.
    pub fn join(
        path: impl AsRef<Path>,
        ticket: &ForkTicket,
        conns: Vec<u64>,
        ports: Vec<u16>,
        options: ToeOptions,
    ) -> io::Result<Arc<Toe>> {
        let sock = UnixStream::connect(path.as_ref())?;
        sock.set_read_timeout(Some(REGISTER_TIMEOUT))?;
        let req = ControlRequest::Join {
            app_id: ticket.app_id,
            token: ticket.token,
            pid: std::process::id(),
            name: options.name.clone(),
            conns,
            ports,
        };
        control::send_json(&sock, &req, &[])?;
        let (envelope, fds) = control::recv_json::<ControlReply>(&sock, 3)?.ok_or_else(|| {
            invalid_data("libtoe: the DPU service closed the control socket".into())
        })?;
        let reply: RegisterReply = envelope
            .into_result()
            .map_err(|e| io::Error::other(format!("libtoe: {e}")))?;
        sock.set_read_timeout(None)?;
        Toe::attach(sock, reply, fds, options.spin).map(Arc::new)
    }

    fn attach(
        sock: UnixStream,
        reply: RegisterReply,
        fds: Vec<std::os::fd::OwnedFd>,
        spin: Duration,
    ) -> io::Result<Toe> {
        if reply.abi_version != abi::ABI_VERSION {
            return Err(invalid_data(format!(
                "libtoe: the DPU service speaks ABI {}, this library ABI {}",
                reply.abi_version,
                abi::ABI_VERSION
            )));
        }
        let layout: Layout = reply.layout;
        layout
            .validate()
            .map_err(|e| invalid_data(format!("libtoe: {e}")))?;
        let granted = reply.granted_contexts.unwrap_or(layout.contexts);
        let first_ctx = reply.first_context;
        if granted == 0
            || first_ctx
                .checked_add(granted)
                .is_none_or(|e| e > layout.contexts)
        {
            return Err(invalid_data(format!(
                "libtoe: granted contexts {first_ctx}..+{granted} outside the layout's {}",
                layout.contexts
            )));
        }
        let want = control::REGISTER_FDS_BASE + granted as usize;
        if fds.len() != want {
            return Err(invalid_data(format!(
                "libtoe: registration came with {} fds, expected {want}",
                fds.len()
            )));
        }
        let mut fds = fds.into_iter();
        let region_fd = fds.next().expect("fd count checked");
        let dpu_fd = fds.next().expect("fd count checked");
        let region = Arc::new(Region::from_fd(region_fd)?);
        region
            .check_header(&layout)
            .map_err(|e| invalid_data(format!("libtoe: {e}")))?;
        let shared = Arc::new(Shared::new(
            region,
            layout,
            Doorbell::from_fd(dpu_fd)?,
            sock,
            spin,
        ));
        let contexts = fds
            .enumerate()
            .map(|(i, fd)| {
                Context::new(first_ctx + i as u32, shared.clone(), Doorbell::from_fd(fd)?)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Toe {
            id: NEXT_TOE_ID.fetch_add(1, Ordering::Relaxed),
            app_id: reply.app_id,
            local_ip: reply.local_ip,
            cc_default: reply.congestion_control,
            cc_by_port: reply.congestion_control_by_port,
            shared,
            contexts,
            first_ctx,
            next_ctx: AtomicU32::new(0),
            next_accept: AtomicU32::new(0),
        })
    }

    /// The DPU's IPv4 address (what peers connect to).
    pub fn local_ip(&self) -> Ipv4Addr {
        self.local_ip
    }

    /// The congestion control (`TCP_CONGESTION` name) the service gives a
    /// connection its application did not choose: accepted on
    /// `listening_port`, or opened by `connect` (None).
    pub fn default_congestion_control(&self, listening_port: Option<u16>) -> &str {
        listening_port
            .and_then(|p| self.cc_by_port.get(&p))
            .unwrap_or(&self.cc_default)
    }

    /// The id the service gave this application.
    pub fn app_id(&self) -> u32 {
        self.app_id
    }

    /// The region layout granted by the service.
    pub fn layout(&self) -> Layout {
        self.shared.layout
    }

    /// Number of contexts granted.
    /// In a process that joined after `fork` ([`Toe::join`]): lets go of
    /// an inherited connection it never used (its `close()`), without
    /// adopting it.
    pub fn close_inherited(&self, handle: u64) {
        self.thread_context().post(|g| g.close_conn(handle));
    }

    /// Like [`Toe::close_inherited`] for an inherited listener.
    pub fn unlisten_inherited(&self, port: u16) {
        self.thread_context().post(|g| {
            g.queue(abi::Desc {
                op: abi::OP_UNLISTEN,
                a: port.into(),
                ..abi::Desc::default()
            })
        });
    }

    /// The region index of this process's first context.
    pub(crate) fn first_context(&self) -> u32 {
        self.first_ctx
    }

    pub fn contexts(&self) -> u32 {
        self.contexts.len() as u32
    }

    /// Blocked calls over all contexts: threads sleeping now, and how
    /// often followers were woken (a thread per connection should cost
    /// one wake-up per event, not one per thread).
    pub fn wait_stats(&self) -> WaitStats {
        self.contexts
            .iter()
            .map(|c| c.wait_stats())
            .fold(WaitStats::default(), |a, b| WaitStats {
                leaders: a.leaders + b.leaders,
                followers: a.followers + b.followers,
                woken: a.woken + b.woken,
                handovers: a.handovers + b.handovers,
                timeouts: a.timeouts + b.timeouts,
            })
    }

    /// Context `idx` of the region (one of this process's).
    /// Takes context `idx`'s pending events (and pushes its queued
    /// requests), as any call on one of its connections does first. A
    /// context this process does not have is ignored.
    pub fn poll_context(&self, idx: u32) -> io::Result<()> {
        match idx
            .checked_sub(self.first_ctx)
            .and_then(|i| self.contexts.get(i as usize))
        {
            Some(c) => c.with(|_, _| ()),
            None => Ok(()),
        }
    }

    pub(crate) fn context(&self, idx: u32) -> &Context {
        &self.contexts[(idx - self.first_ctx) as usize]
    }

    /// The calling thread's context, assigned round-robin on first use.
    /// The context a newly accepted connection is bound to: round-robin
    /// over the contexts other than the listener's, so the listener's
    /// context carries only accept notices and a thread that only waits to
    /// accept is not woken by every connection's traffic (servers that
    /// accept on one thread and serve on others, like memcached).
    pub(crate) fn accept_context(&self, listener_ctx: u32) -> &Context {
        let n = self.contexts.len() as u32;
        if n <= 1 {
            return &self.contexts[0];
        }
        let listener_pos = listener_ctx - self.first_ctx;
        let k = self.next_accept.fetch_add(1, Ordering::Relaxed) % (n - 1);
        let i = if k >= listener_pos { k + 1 } else { k };
        &self.contexts[i as usize]
    }

    pub(crate) fn thread_context(&self) -> &Context {
        let n = self.contexts.len() as u32;
        let idx = THREAD_CTX.with(|t| {
            let mut t = t.borrow_mut();
            if let Some(&(_, i)) = t.iter().find(|(id, _)| *id == self.id) {
                return i;
            }
            let i = self.next_ctx.fetch_add(1, Ordering::Relaxed) % n;
            t.push((self.id, i));
            i
        });
        &self.contexts[idx as usize]
    }

    /// The doorbell eventfds of every context, for a caller that sleeps in
    /// its own `poll`/`epoll_wait` (an LD_PRELOAD interposer waiting on
    /// kernel fds and connections at once). The service writes to a
    /// doorbell only while its `app_waiting` flag is raised, see
    /// [`Toe::arm_wakeups`]. Watch them edge-triggered (e.g. `EPOLLET`)
    /// without reading them: the library's own sleeps drain them.
    pub fn doorbell_fds(&self) -> Vec<RawFd> {
        self.contexts.iter().map(Context::doorbell_fd).collect()
    }

    /// The control socket's fd: it hangs up when the service goes away.
    pub fn control_fd(&self) -> RawFd {
        self.shared.control_fd()
    }

    /// Before sleeping on [`Toe::doorbell_fds`]: raises `app_waiting` on
    /// every context (the service rings the doorbell at its next event and
    /// lowers the flag). The protocol is the library's own: arm, then check
    /// readiness again (e.g. `TcpStream::poll_events`), then sleep; after
    /// each wakeup arm again. While the guard lives, the library's own
    /// sleeps leave the flag raised when they end.
    pub fn arm_wakeups(&self) -> io::Result<WakeupGuard<'_>> {
        self.shared.external_waiters.fetch_add(1, Ordering::SeqCst);
        let guard = WakeupGuard { toe: self };
        for c in &self.contexts {
            c.arm()?;
        }
        // Pairs with the DPU's fence between posting events and reading
        // app_waiting: either it sees us waiting or our re-check sees its
        // events.
        std::sync::atomic::fence(Ordering::SeqCst);
        Ok(guard)
    }

    /// Applies pending events of every context (useful to an event loop
    /// that polls readiness of many connections).
    pub fn poll(&self) -> io::Result<()> {
        for c in &self.contexts {
            c.with(|_, _| ())?;
        }
        Ok(())
    }
}

/// Returned by [`Toe::arm_wakeups`]: a thread of the application sleeps
/// on the doorbells outside the library.
#[derive(Debug)]
pub struct WakeupGuard<'a> {
    toe: &'a Toe,
}

impl Drop for WakeupGuard<'_> {
    fn drop(&mut self) {
        self.toe
            .shared
            .external_waiters
            .fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
