//! `topology.workers`: which stage tasks each worker thread polls, and on
//! which core. Without it, the placement follows `run_to_completion`.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::topology::Topology;

/// `topology.workers[i]`: one worker thread and the tasks it polls, in
/// order, in one loop (co-located tasks hand items over without a thread
/// hop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerPlacement {
    /// `topology.workers[i].name`: the thread's name in logs and stats.
    /// Default `w<i>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `topology.workers[i].core`: the online CPU the worker is pinned to,
    /// or `null` (default) for no pinning.
    #[serde(default)]
    pub core: Option<u32>,
    /// `topology.workers[i].tasks`: the tasks, each `r<replica>.<task>`
    /// with `<task>` one of `ingress`, `pre<N>`, `ingress_reorder`,
    /// `proto<N>`, `dma<N>`, `post<N>`, `egress`. Every task of every
    /// replica is placed exactly once over all workers.
    pub tasks: Vec<String>,
}

/// A pipeline stage, as tasks are named in `topology.workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// NIC receive and the ingress sequencer (one per replica).
    Ingress,
    /// Parsing and validation (`pre_workers` per replica).
    Pre,
    /// Releases `pre` results in arrival order (one per replica).
    IngressReorder,
    /// A flow-group owner: protocol and control plane (`proto_workers`).
    Proto,
    /// Payload placement (`dma_workers` per replica).
    Dma,
    /// Header construction (`post_workers` per replica).
    Post,
    /// Egress reorder and NIC transmit (one per replica).
    Egress,
}

impl Stage {
    const ALL: [Stage; 7] = [
        Stage::Ingress,
        Stage::Pre,
        Stage::IngressReorder,
        Stage::Proto,
        Stage::Dma,
        Stage::Post,
        Stage::Egress,
    ];

    fn word(self) -> &'static str {
        match self {
            Stage::Ingress => "ingress",
            Stage::Pre => "pre",
            Stage::IngressReorder => "ingress_reorder",
            Stage::Proto => "proto",
            Stage::Dma => "dma",
            Stage::Post => "post",
            Stage::Egress => "egress",
        }
    }

    /// Stages with several workers per replica carry an index.
    fn indexed(self) -> bool {
        matches!(self, Stage::Pre | Stage::Proto | Stage::Dma | Stage::Post)
    }

    /// The field that sets how many tasks of this stage a replica has.
    pub fn count_field(self) -> Option<&'static str> {
        match self {
            Stage::Pre => Some("pre_workers"),
            Stage::Proto => Some("proto_workers"),
            Stage::Dma => Some("dma_workers"),
            Stage::Post => Some("post_workers"),
            _ => None,
        }
    }
}

/// One stage task of one replica: `r0.pre1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskName {
    /// The replica.
    pub replica: u32,
    /// The stage.
    pub stage: Stage,
    /// The task's index within its stage (0 for one-per-replica stages).
    pub index: u32,
}

/// What a task name must look like, for error messages.
pub const TASK_SYNTAX: &str = "r<replica>.<task> with <task> one of ingress, pre<N>, \
                               ingress_reorder, proto<N>, dma<N>, post<N>, egress";

impl TaskName {
    /// Parses `r<replica>.<task>` (syntax only; ranges are checked by
    /// validation). `None` when it does not have that shape.
    pub fn parse(text: &str) -> Option<TaskName> {
        let (replica, task) = text.strip_prefix('r')?.split_once('.')?;
        let replica = parse_number(replica)?;
        for stage in Stage::ALL {
            let Some(rest) = task.strip_prefix(stage.word()) else {
                continue;
            };
            if stage.indexed() {
                if let Some(index) = parse_number(rest) {
                    return Some(TaskName {
                        replica,
                        stage,
                        index,
                    });
                }
            } else if rest.is_empty() {
                return Some(TaskName {
                    replica,
                    stage,
                    index: 0,
                });
            }
        }
        None
    }
}

/// A decimal number without sign, leading zeros or spaces.
fn parse_number(text: &str) -> Option<u32> {
    let ok = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}.{}", self.replica, self.stage.word())?;
        if self.stage.indexed() {
            write!(f, "{}", self.index)?;
        }
        Ok(())
    }
}

impl Topology {
    /// Tasks of `stage` per replica.
    pub fn stage_count(&self, stage: Stage) -> u32 {
        match stage {
            Stage::Pre => self.pre_workers,
            Stage::Proto => self.proto_workers,
            Stage::Dma => self.dma_workers,
            Stage::Post => self.post_workers,
            _ => 1,
        }
    }

    /// Every task of the topology, replica by replica in pipeline order.
    pub fn tasks(&self) -> Vec<TaskName> {
        let mut all = Vec::new();
        for replica in 0..self.replicas {
            for stage in Stage::ALL {
                for index in 0..self.stage_count(stage) {
                    all.push(TaskName {
                        replica,
                        stage,
                        index,
                    });
                }
            }
        }
        all
    }

    /// The workers and their tasks: `topology.workers` when given,
    /// otherwise one worker per replica (`run_to_completion`) or one per
    /// stage worker (`ingress` with `pre0`, `ingress_reorder` with
    /// `proto0`, `egress` with `post0`), pinned to `topology.cores` in
    /// order.
    pub fn placement(&self) -> Vec<WorkerPlacement> {
        if !self.workers.is_empty() {
            return self
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| WorkerPlacement {
                    name: Some(w.name.clone().unwrap_or_else(|| format!("w{i}"))),
                    ..w.clone()
                })
                .collect();
        }
        let mut workers = Vec::new();
        let mut add = |name: String, tasks: Vec<TaskName>| {
            workers.push(WorkerPlacement {
                name: Some(name),
                core: None,
                tasks: tasks.iter().map(ToString::to_string).collect(),
            });
        };
        for replica in 0..self.replicas {
            let task = |stage, index| TaskName {
                replica,
                stage,
                index,
            };
            if self.run_to_completion {
                add(
                    format!("r{replica}-rtc"),
                    Stage::ALL.iter().map(|&s| task(s, 0)).collect(),
                );
                continue;
            }
            for i in 0..self.pre_workers {
                let mut tasks = vec![task(Stage::Pre, i)];
                if i == 0 {
                    tasks.insert(0, task(Stage::Ingress, 0));
                }
                add(format!("r{replica}-pre{i}"), tasks);
            }
            for i in 0..self.proto_workers {
                let mut tasks = vec![task(Stage::Proto, i)];
                if i == 0 {
                    tasks.insert(0, task(Stage::IngressReorder, 0));
                }
                add(format!("r{replica}-proto{i}"), tasks);
            }
            for i in 0..self.post_workers {
                let mut tasks = vec![task(Stage::Post, i)];
                if i == 0 {
                    tasks.push(task(Stage::Egress, 0));
                }
                add(format!("r{replica}-post{i}"), tasks);
            }
            for i in 0..self.dma_workers {
                add(format!("r{replica}-dma{i}"), vec![task(Stage::Dma, i)]);
            }
        }
        for (w, core) in workers.iter_mut().zip(self.cores.iter()) {
            w.core = Some(*core);
        }
        workers
    }

    /// The "split" placement: per replica, one worker runs the
    /// data-parallel stages (ingress, every `pre`, `dma` and `post`,
    /// egress) and another the protocol (ingress reorder and every owner),
    /// so one connection's segments are parsed, placed and built on one
    /// core while its owner runs on another. `cores` pins worker `k` to
    /// `cores[k % len]` (none when empty).
    pub fn split_placement(&self, cores: &[u32]) -> Vec<WorkerPlacement> {
        self.two_worker_placement(
            cores,
            [
                (
                    "data",
                    &[
                        Stage::Ingress,
                        Stage::Pre,
                        Stage::Dma,
                        Stage::Post,
                        Stage::Egress,
                    ],
                ),
                ("proto", &[Stage::IngressReorder, Stage::Proto]),
            ],
        )
    }

    /// The "pipelined" placement: per replica, the stages cut in packet
    /// order across two workers: ingress, `pre`, ingress reorder and the
    /// owners on one, `dma`, `post` and egress on the other, so each item
    /// crosses between the cores once. `cores` as for
    /// [`Topology::split_placement`].
    pub fn pipelined_placement(&self, cores: &[u32]) -> Vec<WorkerPlacement> {
        self.two_worker_placement(
            cores,
            [
                (
                    "in",
                    &[
                        Stage::Ingress,
                        Stage::Pre,
                        Stage::IngressReorder,
                        Stage::Proto,
                    ],
                ),
                ("out", &[Stage::Dma, Stage::Post, Stage::Egress]),
            ],
        )
    }

    /// Two workers per replica, named `r<replica>-<name>`, each running
    /// every task of its stages.
    fn two_worker_placement(
        &self,
        cores: &[u32],
        halves: [(&str, &[Stage]); 2],
    ) -> Vec<WorkerPlacement> {
        let mut workers = Vec::new();
        for replica in 0..self.replicas {
            for (name, stages) in halves {
                let tasks = stages
                    .iter()
                    .flat_map(|&stage| {
                        (0..self.stage_count(stage)).map(move |index| {
                            TaskName {
                                replica,
                                stage,
                                index,
                            }
                            .to_string()
                        })
                    })
                    .collect();
                let k = workers.len();
                workers.push(WorkerPlacement {
                    name: Some(format!("r{replica}-{name}")),
                    core: (!cores.is_empty()).then(|| cores[k % cores.len()]),
                    tasks,
                });
            }
        }
        workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for text in [
            "r0.ingress",
            "r0.pre0",
            "r3.ingress_reorder",
            "r1.proto12",
            "r0.dma1",
            "r0.post0",
            "r63.egress",
        ] {
            assert_eq!(TaskName::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "r",
            "r0",
            "r0.",
            "0.pre0",
            "r0.pre",
            "r0.pre01",
            "r00.pre0",
            "r-1.pre0",
            "r0.ingress0",
            "r0.egress1",
            "r0.dmax",
            "r0.foo",
            "r0.pre0 ",
            "R0.pre0",
            "r99999999999.pre0",
        ] {
            assert_eq!(TaskName::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn derived_placements_place_every_task_once() {
        for t in [
            Topology::default(),
            Topology {
                replicas: 2,
                pre_workers: 2,
                dma_workers: 3,
                run_to_completion: false,
                ..Topology::default()
            },
        ] {
            for placement in [t.placement(), t.split_placement(&[0, 1])] {
                let mut placed: Vec<TaskName> = placement
                    .iter()
                    .flat_map(|w| w.tasks.iter().map(|n| TaskName::parse(n).unwrap()))
                    .collect();
                placed.sort();
                let mut all = t.tasks();
                all.sort();
                assert_eq!(placed, all);
            }
        }
    }
}
