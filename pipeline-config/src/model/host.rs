//! `host`: the control interface host applications connect to.

use serde::{Deserialize, Serialize};

/// `host`: the control socket and limits on attached applications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Host {
    /// `host.control_socket`: Unix socket applications connect to; an
    /// absolute path shorter than 108 bytes. Default
    /// `"/run/flextoe/control.sock"`.
    pub control_socket: String,
    /// `host.max_apps`: applications attached at once, `1..=4096`.
    /// Default `64`.
    pub max_apps: u32,
    /// `host.max_contexts_per_app`: queue contexts per application,
    /// `1..=256`. Default `16`.
    pub max_contexts_per_app: u32,
    /// `host.fork_contexts`: contexts of each application's region kept
    /// for the processes it forks (one each while it lives), so that a
    /// child shares the sockets it inherits; `0..=255`, and
    /// `max_contexts_per_app + fork_contexts` at most 256. 0: sockets
    /// inherited across fork are unusable in the child. Default `64`.
    pub fork_contexts: u32,
    /// `host.ring_entries`: descriptors per request ring and per event
    /// ring of each context, a power of two in `8..=65536`. Default `1024`.
    pub ring_entries: u32,
    /// `host.connections_per_app`: connection buffer slots in each
    /// application's region (each `tcp.rx_buffer + tcp.tx_buffer` bytes of
    /// address space; pages are used only when written), `1..=65536`.
    /// Default `1024`.
    pub connections_per_app: u32,
    /// `host.dma_latency_ns`: completion latency of the emulated DMA
    /// engine every payload copy between the data path and application
    /// memory goes through (a PCIe round trip on a DPU), `0..=1000000`;
    /// 0 completes copies at the engine's next poll. Default `1000`.
    pub dma_latency_ns: u64,
    /// `host.dma_max_outstanding`: copies in flight per `dma` task at most
    /// (the data path waits for a completion beyond it), `1..=65536`.
    /// Default `256`.
    pub dma_max_outstanding: u32,
    /// `host.dma_engine`: what carries the copies: `"emulated"` (a DPU's
    /// DMA engine emulated with CPU copies made at completion, with the
    /// latency, bound and reordering below) or `"memcpy_jobs"` (the
    /// job-based path a BlueField's DOCA DMA engine takes, with CPU copies:
    /// staged jobs; latency and reordering do not apply). Default
    /// `"emulated"`.
    pub dma_engine: DmaEngineKind,
    /// `host.dma_reorder`: complete copies out of submission order (each
    /// copy's latency drawn from `0..=2 * dma_latency_ns`), to exercise
    /// the data path's ordering. Default `false`.
    pub dma_reorder: bool,
    /// `host.front_yield_every`: the host-interface front, while idle,
    /// yields the CPU on one pass in this many (it spins on the others)
    /// before it sleeps, `1..=2048` (it sleeps after 2,048 idle passes).
    /// 1 suits a service that shares its CPUs with the applications (the
    /// loopback backend on a development host: iperf3 about 1.25x); the
    /// default keeps the front quick to
    /// answer where other threads share its core (docs/benchmarks.md).
    /// Default `64`.
    pub front_yield_every: u32,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            control_socket: "/run/flextoe/control.sock".to_owned(),
            max_apps: 64,
            max_contexts_per_app: 16,
            fork_contexts: 64,
            ring_entries: 1024,
            connections_per_app: 1024,
            dma_latency_ns: 1_000,
            dma_max_outstanding: 256,
            dma_engine: DmaEngineKind::Emulated,
            dma_reorder: false,
            front_yield_every: 64,
        }
    }
}

/// `host.dma_engine`, written in lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaEngineKind {
    /// `"emulated"`: completions after a latency, bounded, reordered on demand.
    Emulated,
    /// `"memcpy_jobs"`: the job-based engine path (DOCA's shape) over CPU copies.
    MemcpyJobs,
}
