//! Where everything runs: replicas, workers and the tasks on each, the
//! flow-group map, and the core each worker is pinned to.
//!
//! Flow group `g` (RSS hash of the 4-tuple, masked to G groups) belongs to
//! replica `g % R` and, within it, to `proto` worker `(g / R) % Q`. The
//! NIC's RSS indirection table must send group `g` to queue `g % R` so a
//! replica only ever receives its own groups.

use pipeline_config::Topology;

/// A stage task and its index within its replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One pinned worker thread and the tasks it polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlan {
    pub name: String,
    pub replica: usize,
    pub core: Option<usize>,
    pub tasks: Vec<TaskKind>,
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

impl Plan {
    /// Builds the plan from a validated topology.
    pub fn new(t: &Topology) -> Self {
        let (replicas, pre, proto, post, dma) = (
            t.replicas.max(1) as usize,
            t.pre_workers.max(1) as usize,
            t.proto_workers.max(1) as usize,
            t.post_workers.max(1) as usize,
            t.dma_workers.max(1) as usize,
        );
        let mut workers = Vec::new();
        for r in 0..replicas {
            if t.run_to_completion {
                workers.push(WorkerPlan {
                    name: format!("r{r}-rtc"),
                    replica: r,
                    core: None,
                    tasks: vec![
                        TaskKind::Ingress,
                        TaskKind::Pre(0),
                        TaskKind::IngressReorder,
                        TaskKind::Proto(0),
                        TaskKind::Dma(0),
                        TaskKind::Post(0),
                        TaskKind::Egress,
                    ],
                });
                continue;
            }
            for i in 0..pre {
                let mut tasks = vec![TaskKind::Pre(i)];
                if i == 0 {
                    tasks.insert(0, TaskKind::Ingress);
                }
                workers.push(WorkerPlan {
                    name: format!("r{r}-pre{i}"),
                    replica: r,
                    core: None,
                    tasks,
                });
            }
            for i in 0..proto {
                let mut tasks = vec![TaskKind::Proto(i)];
                if i == 0 {
                    tasks.insert(0, TaskKind::IngressReorder);
                }
                workers.push(WorkerPlan {
                    name: format!("r{r}-proto{i}"),
                    replica: r,
                    core: None,
                    tasks,
                });
            }
            for i in 0..post {
                let mut tasks = vec![TaskKind::Post(i)];
                if i == 0 {
                    tasks.push(TaskKind::Egress);
                }
                workers.push(WorkerPlan {
                    name: format!("r{r}-post{i}"),
                    replica: r,
                    core: None,
                    tasks,
                });
            }
            for i in 0..dma {
                workers.push(WorkerPlan {
                    name: format!("r{r}-dma{i}"),
                    replica: r,
                    core: None,
                    tasks: vec![TaskKind::Dma(i)],
                });
            }
        }
        for (w, core) in workers.iter_mut().zip(t.cores.iter()) {
            w.core = Some(*core as usize);
        }
        Self {
            replicas,
            flow_groups: t.flow_groups.max(1),
            pre: if t.run_to_completion { 1 } else { pre },
            proto: if t.run_to_completion { 1 } else { proto },
            post: if t.run_to_completion { 1 } else { post },
            dma: if t.run_to_completion { 1 } else { dma },
            ring_size: t.ring_size.max(64) as usize,
            burst: t.burst.clamp(1, 256) as usize,
            workers,
        }
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
    }
}
