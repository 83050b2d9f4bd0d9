//! `topology`: how the pipeline is replicated and spread over worker threads.

use serde::{Deserialize, Serialize};

use super::placement::WorkerPlacement;

/// `topology`: pipeline replicas, per-stage workers, CPU pinning and rings.
///
/// Each replica is a complete pipeline (pre-processing, protocol, post-
/// processing, DMA) that owns `flow_groups / replicas` flow groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topology {
    /// `topology.replicas`: pipeline replicas, `1..=64`; must divide
    /// `flow_groups`. Default `1`.
    pub replicas: u32,
    /// `topology.flow_groups`: flow groups connections are hashed into, a
    /// power of two in `1..=4096`, at least `replicas * proto_workers`.
    /// Default `4`.
    pub flow_groups: u32,
    /// `topology.pre_workers`: pre-processing workers per replica, `1..=64`.
    /// Default `1`.
    pub pre_workers: u32,
    /// `topology.proto_workers`: protocol workers per replica, `1..=64`.
    /// Default `1`.
    pub proto_workers: u32,
    /// `topology.post_workers`: post-processing workers per replica, `1..=64`.
    /// Default `1`.
    pub post_workers: u32,
    /// `topology.dma_workers`: DMA workers per replica, `1..=64`. Default `1`.
    pub dma_workers: u32,
    /// `topology.run_to_completion`: one worker per replica runs every stage;
    /// then all per-stage worker counts must be `1`. Default `true`.
    pub run_to_completion: bool,
    /// `topology.cores`: CPU id for each worker thread in order (replica by
    /// replica; within a replica pre, proto, post, dma workers; see
    /// [`Topology::placement`]), or `[]` for
    /// no pinning. Its length must equal [`Topology::worker_threads`] and each
    /// id must be an online CPU. Default `[]`.
    pub cores: Vec<u32>,
    /// `topology.workers`: explicit placement, one entry per worker thread
    /// with its core and tasks (see [`WorkerPlacement`]); then
    /// `run_to_completion` must be `false` and `cores` empty. Default `[]`:
    /// the placement follows `run_to_completion` (see
    /// [`Topology::placement`]).
    pub workers: Vec<WorkerPlacement>,
    /// `topology.auto`: choose the placement when the service starts, from
    /// the CPUs it may run on ([`Topology::auto_for`]): it replaces
    /// `replicas`, `run_to_completion`, the per-stage worker counts and
    /// `cores`, and raises `flow_groups` to at least 4 per replica; then
    /// `cores` and `workers` must be empty. `true`: always; `false`: never;
    /// absent (the default, `null`): when the topology places nothing itself
    /// and the service has at least [`Topology::AUTO_MIN_CPUS`] CPUs (see
    /// [`Topology::chosen_for`]).
    pub auto: Option<bool>,
    /// `topology.ring_size`: entries per inter-stage ring, a power of two in
    /// `64..=65536`, at least `burst`. Default `1024`.
    pub ring_size: u32,
    /// `topology.burst`: packets moved per ring operation, `1..=256`.
    /// Default `32`.
    pub burst: u32,
    /// `topology.idle`: what an idle worker does.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub idle: Idle,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            replicas: 1,
            flow_groups: 4,
            pre_workers: 1,
            proto_workers: 1,
            post_workers: 1,
            dma_workers: 1,
            run_to_completion: true,
            cores: Vec::new(),
            workers: Vec::new(),
            auto: None,
            ring_size: 1024,
            burst: 32,
            idle: Idle::default(),
        }
    }
}

impl Topology {
    /// The topology `topology.auto` chooses on `cpus` (the CPUs the service
    /// may run on, ascending): the first CPU is left to everything that is
    /// not a worker (the host-interface front, the control socket, the
    /// service loop; on a DPU also the Arm cores' OS), and the others run
    /// one run-to-completion replica each, pinned, as many as the largest
    /// power of two that fits (flow groups are a power of two and split
    /// evenly across replicas; at most 64). On one CPU: one replica,
    /// unpinned. Everything else (`flow_groups` at least 4 per replica,
    /// rings, burst, idle policy) is kept.
    ///
    /// Why this rule (docs/benchmarks.md, "Stage placement"): on two cores,
    /// run-to-completion replicas gave 1.2-1.9x of one replica at 64
    /// connections, while splitting one connection's stages over two cores
    /// gave 0.4-1.45x of running them on one (pair medians 0.9-1.3x), and a
    /// service carries many connections: cores go to replicas. A few heavy
    /// connections may do better with an explicit split placement.
    pub fn auto_for(&self, cpus: &[u32]) -> Topology {
        self.auto_for_at_most(cpus, 64)
    }

    /// [`Topology::auto_for`] with at most `max_replicas` replicas (a port
    /// with that many queue pairs).
    pub fn auto_for_at_most(&self, cpus: &[u32], max_replicas: usize) -> Topology {
        let spare = cpus.get(1..).unwrap_or(&[]);
        let replicas = match spare.len().min(max_replicas.clamp(1, 64)) {
            0 => 1,
            n => 1 << n.ilog2(),
        };
        let cores = match spare.len() {
            0 => Vec::new(),
            n => spare[n - replicas..].to_vec(),
        };
        Topology {
            replicas: replicas as u32,
            flow_groups: self
                .flow_groups
                .max(4 * replicas as u32)
                .next_power_of_two(),
            pre_workers: 1,
            proto_workers: 1,
            post_workers: 1,
            dma_workers: 1,
            run_to_completion: true,
            cores,
            workers: Vec::new(),
            auto: Some(false),
            ..self.clone()
        }
    }

    /// Fewest CPUs on which the default (`auto` absent) chooses the
    /// placement. On two CPUs the service shares both with the host
    /// applications (and here with the tests' Linux peer and load
    /// generators), and one unpinned replica measured best: pinned workers
    /// on both cores left the Linux sender no core of its own
    /// (docs/benchmarks.md, "Stage placement").
    pub const AUTO_MIN_CPUS: usize = 3;

    /// Whether the topology places anything itself: replicas, stage worker
    /// counts, run to completion off, cores or workers differ from the
    /// defaults.
    pub fn places_workers(&self) -> bool {
        let d = Topology::default();
        self.replicas != d.replicas
            || self.run_to_completion != d.run_to_completion
            || [
                self.pre_workers,
                self.proto_workers,
                self.post_workers,
                self.dma_workers,
            ] != [1, 1, 1, 1]
            || !self.cores.is_empty()
            || !self.workers.is_empty()
    }

    /// The topology the service runs on `cpus` (the CPUs it may use,
    /// ascending) with a port of `max_replicas` queue pairs, and whether it
    /// was chosen from them: [`Topology::auto_for_at_most`] when `auto` is
    /// `true`, or absent while the topology places nothing and there are at
    /// least [`Topology::AUTO_MIN_CPUS`] CPUs; `self` otherwise.
    pub fn chosen_for(&self, cpus: &[u32], max_replicas: usize) -> (Topology, bool) {
        let choose = match self.auto {
            Some(on) => on,
            None => !self.places_workers() && cpus.len() >= Self::AUTO_MIN_CPUS,
        };
        if choose {
            (self.auto_for_at_most(cpus, max_replicas), true)
        } else {
            (self.clone(), false)
        }
    }

    /// Number of worker threads: `replicas` times one (run to completion) or
    /// `pre_workers + proto_workers + post_workers + dma_workers`. Saturates
    /// instead of overflowing on unvalidated values.
    pub fn worker_threads(&self) -> usize {
        if !self.workers.is_empty() {
            return self.workers.len();
        }
        let per_replica = if self.run_to_completion {
            1
        } else {
            [
                self.pre_workers,
                self.proto_workers,
                self.post_workers,
                self.dma_workers,
            ]
            .iter()
            .fold(0usize, |sum, &n| sum.saturating_add(n as usize))
        };
        (self.replicas as usize).saturating_mul(per_replica)
    }
}

/// `topology.idle`: how a worker with no work backs off, so idle workers
/// leave the CPU to others on a small machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Idle {
    /// `topology.idle.spin_polls`: empty polls an idle worker makes back to
    /// back before it starts backing off, `0..=1000000`. Default `1024`.
    pub spin_polls: u32,
    /// `topology.idle.park_after_us`: microseconds of continuous idleness
    /// after which a worker parks (sleeps until woken), `0..=1000000`.
    /// Default `200`.
    pub park_after_us: u32,
    /// `topology.idle.when_oversubscribed_park`: when worker threads must
    /// share CPUs (more workers than the CPUs the service may use, or two
    /// pinned to one core), idle workers spin at most
    /// `min(spin_polls, 64)` polls and then park at once (a worker of the
    /// same replica that produces work wakes them): yielding between polls
    /// keeps CPUs from the threads that have work. `false`: `spin_polls`
    /// and `park_after_us` apply anyway. Default `true`.
    pub when_oversubscribed_park: bool,
}

impl Default for Idle {
    fn default() -> Self {
        Idle {
            spin_polls: 1024,
            park_after_us: 200,
            when_oversubscribed_park: true,
        }
    }
}
