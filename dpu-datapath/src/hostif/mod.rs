//! `hostif`: the host interface. Applications on the host reach the engine
//! through descriptor rings in a shared memory region (PCIe DMA on a
//! BlueField; memfd here) instead of running any TCP themselves:
//!
//! - [`control_socket`]: registration over a Unix socket; the region and the
//!   doorbells travel as file descriptors (SCM_RIGHTS); EOF = app gone.
//! - [`front`]: the worker that reads requests and writes events, checking
//!   every descriptor (the host is untrusted).
//! - [`shard`]: the per-owner part that runs requests on the flow-group
//!   engine and reports connection events.
//! - [`slots`]: per-connection RX/TX buffers in the application's region;
//!   the `dma` stage writes payload straight into them.
//!
//! The ABI is `doca_bindings::abi`, documented in `docs/hostif-abi.md`.

pub mod app;
mod control_socket;
pub mod front;
mod front_moves;
pub mod handle;
pub mod link;
pub mod shard;
pub mod slots;

pub use control_socket::StatsFn;
pub use link::{FrontWaker, OwnerLink};
pub use shard::HostIfShard;

use control_socket::Shared;
use front::Front;
use parking_lot::Mutex;
use std::net::Ipv4Addr;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Number of `VIOLATION_*` reasons (index 0 unused).
pub const VIOLATION_KINDS: usize = 7;

/// Counters of the host interface (written by its threads only).
#[derive(Debug, Default)]
pub struct HostIfCounters {
    pub apps_registered: AtomicU64,
    /// Control-socket clients registered now.
    pub apps_connected: AtomicU64,
    /// Applications the front serves (not closed for a violation).
    pub apps_active: AtomicU64,
    pub requests: AtomicU64,
    pub events: AtomicU64,
    pub sleeps: AtomicU64,
    /// Contexts (request/event ring pairs) of the active applications.
    pub contexts: AtomicU64,
    /// Host connections that arrived at another owner with their flow
    /// group (`flextoe-dpu move-group`).
    pub conns_moved: AtomicU64,
    /// Commands that reached the owner a connection had just left and
    /// were sent on to the new one.
    pub commands_bounced: AtomicU64,
    /// By `VIOLATION_*` reason.
    pub violations: [AtomicU64; VIOLATION_KINDS],
}

impl HostIfCounters {
    pub fn violations_total(&self) -> u64 {
        self.violations
            .iter()
            .map(|v| v.load(Ordering::Relaxed))
            .sum()
    }
}

/// How the host interface is set up.
#[derive(Clone, Debug)]
pub struct HostIfOptions {
    pub socket: PathBuf,
    pub max_apps: u32,
    pub max_contexts: u32,
    /// Contexts of each region kept for processes forked from the
    /// application (`host.fork_contexts`).
    pub fork_contexts: u32,
    pub ring_entries: u32,
    /// Connection slots per application.
    pub slots: u32,
    pub rx_buf_size: u32,
    pub tx_buf_size: u32,
    pub local_ip: Ipv4Addr,
    /// What applications are told their connections use unless they
    /// choose (`TCP_CONGESTION` names; see [`cc_name`]).
    pub congestion_control: String,
    pub congestion_control_by_port: std::collections::BTreeMap<u16, String>,
    /// The DMA engine each context's rings are read and written through.
    pub dma: crate::dma::DmaConfig,
    /// The front yields on one idle pass in this many (`host.front_yield_every`).
    pub front_yield_every: u32,
}

/// The `TCP_CONGESTION` name of a configured controller.
pub fn cc_name(cc: pipeline_config::CongestionControl) -> String {
    match cc {
        pipeline_config::CongestionControl::Dctcp => "dctcp",
        pipeline_config::CongestionControl::Timely => "timely",
        pipeline_config::CongestionControl::DctcpRate => "dctcp-rate",
        pipeline_config::CongestionControl::Reno => "reno",
    }
    .into()
}

impl HostIfOptions {
    /// From the service configuration.
    pub fn from_config(c: &pipeline_config::Config) -> Result<Self, String> {
        Ok(Self {
            socket: PathBuf::from(&c.host.control_socket),
            max_apps: c.host.max_apps,
            max_contexts: c.host.max_contexts_per_app,
            fork_contexts: c.host.fork_contexts,
            ring_entries: c.host.ring_entries,
            slots: c.host.connections_per_app,
            rx_buf_size: c.tcp.rx_buffer,
            tx_buf_size: c.tcp.tx_buffer,
            local_ip: c.identity.ipv4_addr().map_err(|e| e.to_string())?,
            congestion_control: cc_name(c.tcp.congestion_control),
            congestion_control_by_port: c
                .tcp
                .congestion_control_by_port
                .iter()
                .map(|(&port, &cc)| (port, cc_name(cc)))
                .collect(),
            dma: crate::dma::DmaConfig {
                latency_ns: c.host.dma_latency_ns,
                max_outstanding: c.host.dma_max_outstanding as usize,
                reorder: c.host.dma_reorder,
                seed: 1,
                jobs: c.host.dma_engine == pipeline_config::DmaEngineKind::MemcpyJobs,
                fail_every: 0,
            },
            front_yield_every: c.host.front_yield_every,
        })
    }
}

/// The running host interface: the front worker and the control socket.
pub struct HostInterface {
    links: Vec<Arc<OwnerLink>>,
    counters: Arc<HostIfCounters>,
    stats: Arc<Mutex<Option<StatsFn>>>,
    clients: Arc<Mutex<std::collections::HashMap<u64, UnixStreamHandle>>>,
    tap: Arc<Mutex<Option<Arc<crate::capture::CaptureTap>>>>,
    xdp: Arc<Mutex<Option<Arc<crate::xdp::XdpHooks>>>>,
    mover: Arc<Mutex<Option<crate::pipeline::GroupMover>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    socket: PathBuf,
}

type UnixStreamHandle = std::os::unix::net::UnixStream;

impl std::fmt::Debug for HostInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostInterface")
            .field("socket", &self.socket)
            .finish()
    }
}

impl HostInterface {
    /// Binds the control socket and starts the front for `owners` owners.
    /// Give each owner its shard with [`HostInterface::shard`].
    pub fn start(opts: HostIfOptions, owners: usize) -> Result<Self, String> {
        let path = opts.socket.clone();
        let dma = opts.dma;
        let yield_every = opts.front_yield_every;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!("host.control_socket: cannot create {}: {e}", dir.display())
            })?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_socket() {
                let _ = std::fs::remove_file(&path);
            } else {
                return Err(format!(
                    "host.control_socket: {} exists and is not a socket",
                    path.display()
                ));
            }
        }
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| format!("host.control_socket: cannot bind {}: {e}", path.display()))?;
        let waker = Arc::new(FrontWaker::new().map_err(|e| format!("eventfd: {e}"))?);
        let links: Vec<Arc<OwnerLink>> = (0..owners.max(1))
            .map(|_| Arc::new(OwnerLink::new(waker.clone())))
            .collect();
        let counters = Arc::new(HostIfCounters::default());
        let inbox = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(None));
        let clients = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let tap = Arc::new(Mutex::new(None));
        let xdp = Arc::new(Mutex::new(None));
        let mover = Arc::new(Mutex::new(None));
        let shared = Shared {
            opts,
            inbox: inbox.clone(),
            waker: waker.clone(),
            counters: counters.clone(),
            next_key: Arc::new(AtomicU64::new(1)),
            clients: clients.clone(),
            next_client: Arc::new(AtomicU64::new(0)),
            stats: stats.clone(),
            links: links.clone(),
            names: Arc::new(Mutex::new(std::collections::HashMap::new())),
            tap: tap.clone(),
            xdp: xdp.clone(),
            mover: mover.clone(),
            stop: stop.clone(),
        };
        let front = Front::new(links.clone(), waker, inbox, counters.clone())
            .with_dma(dma)
            .with_yield_every(yield_every);
        let mut threads = Vec::new();
        let s = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ftoe-hostif".into())
                .spawn(move || front.run(s))
                .map_err(|e| format!("cannot start the host-interface worker: {e}"))?,
        );
        let s = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ftoe-control".into())
                .spawn(move || control_socket::accept_loop(listener, shared, s))
                .map_err(|e| format!("cannot start the control socket thread: {e}"))?,
        );
        Ok(Self {
            links,
            counters,
            stats,
            clients,
            tap,
            xdp,
            mover,
            stop,
            threads,
            socket: path,
        })
    }

    /// The shard for owner `owner`, wrapping its DPU-resident services.
    pub fn shard(
        &self,
        owner: usize,
        inner: Box<dyn crate::pipeline::ShardApp>,
    ) -> Box<dyn crate::pipeline::ShardApp> {
        let link = self.links[owner.min(self.links.len() - 1)].clone();
        Box::new(HostIfShard::new(owner, link, inner))
    }

    pub fn counters(&self) -> Arc<HostIfCounters> {
        self.counters.clone()
    }

    /// Sets what `stat` requests on the control socket return.
    pub fn set_stats(&self, f: StatsFn) {
        *self.stats.lock() = Some(f);
    }

    /// Lets `flextoe-dpu capture` use the NIC's tap.
    pub fn set_capture_tap(&self, tap: Arc<crate::capture::CaptureTap>) {
        *self.tap.lock() = Some(tap);
    }

    /// Lets `flextoe-dpu bpf` reach the port's hooks.
    pub fn set_xdp_hooks(&self, hooks: Arc<crate::xdp::XdpHooks>) {
        *self.xdp.lock() = Some(hooks);
    }

    /// Lets `flextoe-dpu groups` and `move-group` reach the pipeline.
    pub fn set_group_mover(&self, mover: crate::pipeline::GroupMover) {
        *self.mover.lock() = Some(mover);
    }

    /// Stops the threads and removes the socket. Applications still
    /// connected see their control socket close.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(l) = self.links.first() {
            l.front.sleeping.store(true, Ordering::SeqCst);
            l.front.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for (_, c) in self.clients.lock().drain() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
