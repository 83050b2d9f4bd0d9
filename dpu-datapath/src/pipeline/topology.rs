//! Where everything runs: replicas, workers and the tasks on each, the
//! flow-group map, and the core each worker is pinned to.
//!
//! Flow group `g` (RSS hash of the 4-tuple, masked to G groups) belongs to
//! replica `g % R` and, within it, to `proto` worker `(g / R) % Q`. The
//! NIC's RSS indirection table must send group `g` to queue `g % R` so a
//! replica only ever receives its own groups.

use pipeline_config::{Stage, TaskName, Topology};

/// A stage task and its index within its replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// NIC RX and the ingress sequencer.
    Ingress,
    Pre(usize),
    /// Releases `pre` results in arrival order to the flow-group owners.
    IngressReorder,
    /// A flow-group owner: `proto` and the control plane for its groups.
    Proto(usize),
    Dma(usize),
    Post(usize),
    /// Egress reorder, NIC TX and commits back to the owners.
    Egress,
}

impl TaskKind {
    /// The task's name within its replica, as in `topology.workers`.
    pub fn label(&self) -> String {
        match self {
            TaskKind::Ingress => "ingress".into(),
            TaskKind::Pre(i) => format!("pre{i}"),
            TaskKind::IngressReorder => "ingress_reorder".into(),
            TaskKind::Proto(i) => format!("proto{i}"),
            TaskKind::Dma(i) => format!("dma{i}"),
            TaskKind::Post(i) => format!("post{i}"),
            TaskKind::Egress => "egress".into(),
        }
    }
}

/// One pinned worker thread and the tasks it polls, each a task of one
/// replica (a worker may mix replicas).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlan {
    pub name: String,
    pub core: Option<usize>,
    pub tasks: Vec<(usize, TaskKind)>,
}

/// The resolved topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub replicas: usize,
    pub flow_groups: u32,
    pub pre: usize,
    pub proto: usize,
    pub post: usize,
    pub dma: usize,
    pub ring_size: usize,
    pub burst: usize,
    pub workers: Vec<WorkerPlan>,
}

impl TaskKind {
    fn from_name(n: &TaskName) -> Self {
        let i = n.index as usize;
        match n.stage {
            Stage::Ingress => TaskKind::Ingress,
            Stage::Pre => TaskKind::Pre(i),
            Stage::IngressReorder => TaskKind::IngressReorder,
            Stage::Proto => TaskKind::Proto(i),
            Stage::Dma => TaskKind::Dma(i),
            Stage::Post => TaskKind::Post(i),
            Stage::Egress => TaskKind::Egress,
        }
    }
}

impl Plan {
    /// Builds the plan from a validated topology: its placement
    /// (`topology.workers`, or the one `run_to_completion` implies).
    pub fn new(t: &Topology) -> Self {
        let workers = t
            .placement()
            .into_iter()
            .enumerate()
            .map(|(i, w)| WorkerPlan {
                name: w.name.unwrap_or_else(|| format!("w{i}")),
                core: w.core.map(|c| c as usize),
                tasks: w
                    .tasks
                    .iter()
                    .filter_map(|text| TaskName::parse(text))
                    .map(|n| (n.replica as usize, TaskKind::from_name(&n)))
                    .collect(),
            })
            .collect();
        let count = |n: u32| {
            if t.run_to_completion {
                1
            } else {
                n.max(1) as usize
            }
        };
        Self {
            replicas: t.replicas.max(1) as usize,
            flow_groups: t.flow_groups.max(1),
            pre: count(t.pre_workers),
            proto: count(t.proto_workers),
            post: count(t.post_workers),
            dma: count(t.dma_workers),
            ring_size: t.ring_size.max(64) as usize,
            burst: t.burst.clamp(1, 256) as usize,
            workers,
        }
    }

    /// One line per worker: its name, core and tasks (printed at start so
    /// operators see where each stage runs).
    pub fn describe(&self) -> String {
        self.workers
            .iter()
            .map(|w| {
                let tasks: Vec<String> = w
                    .tasks
                    .iter()
                    .map(|(r, k)| format!("r{r}.{}", k.label()))
                    .collect();
                let core = w.core.map_or("any".to_owned(), |c| c.to_string());
                format!("{} (core {core}): {}", w.name, tasks.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Replica that owns flow group `g`.
    pub fn replica_of_group(&self, g: u32) -> usize {
        g as usize % self.replicas
    }

    /// Global index of the `proto` worker (sequencer) owning group `g`.
    pub fn owner_of_group(&self, g: u32) -> usize {
        let r = self.replica_of_group(g);
        r * self.proto + (g as usize / self.replicas) % self.proto
    }

    /// Flow groups owned by global `proto` worker `owner`.
    pub fn groups_of_owner(&self, owner: usize) -> Vec<bool> {
        (0..self.flow_groups)
            .map(|g| self.owner_of_group(g) == owner)
            .collect()
    }

    pub fn owners(&self) -> usize {
        self.replicas * self.proto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_has_exactly_one_owner_in_its_replica() {
        let t = Topology {
            replicas: 2,
            flow_groups: 64,
            proto_workers: 2,
            run_to_completion: false,
            ..Topology::default()
        };
        let p = Plan::new(&t);
        for g in 0..64 {
            let owner = p.owner_of_group(g);
            assert_eq!(owner / p.proto, p.replica_of_group(g));
            assert!(p.groups_of_owner(owner)[g as usize]);
        }
        let per_owner: Vec<usize> = (0..p.owners())
            .map(|o| p.groups_of_owner(o).iter().filter(|b| **b).count())
            .collect();
        assert_eq!(per_owner, vec![16; 4]);
    }

    #[test]
    fn run_to_completion_is_one_worker_per_replica() {
        let t = Topology {
            replicas: 2,
            flow_groups: 4,
            ..Topology::default()
        };
        let p = Plan::new(&t);
        assert_eq!(p.workers.len(), 2);
        assert_eq!(p.workers[0].tasks.len(), 7);
        assert!(p.workers[1].tasks.iter().all(|(r, _)| *r == 1));
    }

    #[test]
    fn split_placement_puts_the_owner_on_its_own_worker() {
        let mut t = Topology {
            run_to_completion: false,
            ..Topology::default()
        };
        t.workers = t.split_placement(&[0, 1]);
        let p = Plan::new(&t);
        assert_eq!(p.workers.len(), 2);
        assert_eq!(
            p.workers[1].tasks,
            vec![(0, TaskKind::IngressReorder), (0, TaskKind::Proto(0))]
        );
        assert_eq!(p.workers[0].core, Some(0));
        assert_eq!(p.workers[0].tasks.len(), 5);
    }
}
