//! Taking a replica out of service and back while connections are open
//! (issue 14, resize): [`GroupMover::drain_replica`] moves every flow
//! group off a replica, one move at a time (`moves.rs`), so its workers go
//! idle and park; [`GroupMover::rebalance`] gives every group back to the
//! owner the plan gave it. The replicas' threads exist from the start: a
//! drained replica's workers idle as any idle worker does (parked, waking
//! to look every 100 µs), and the number of threads does not change.

#![forbid(unsafe_code)]

use super::moves::{GroupMover, MoveError};
use std::time::{Duration, Instant};

/// One group that moved: where from, where to, with how many connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMoved {
    pub group: u32,
    pub from: usize,
    pub to: usize,
    pub connections: usize,
}

/// What a drain or a rebalance did: the groups moved, in order, and the
/// error that stopped it early, if one did (the groups moved before it
/// stay where they went).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resized {
    pub moved: Vec<GroupMoved>,
    pub error: Option<MoveError>,
    pub took: Duration,
}

impl GroupMover {
    /// Moves every flow group of `replica` to the owners of the other
    /// replicas that take moves and are not drained, each to the owner
    /// holding the fewest groups at the time. Each move waits at most
    /// `timeout`. The replica stays drained (a later drain of another one
    /// does not refill it) until [`GroupMover::rebalance`].
    pub fn drain_replica(&self, replica: usize, timeout: Duration) -> Resized {
        let started = Instant::now();
        let plan = self.plan().clone();
        let mut out = Resized::default();
        if replica >= plan.replicas {
            out.error = Some(MoveError::NoSuchReplica {
                replica,
                replicas: plan.replicas,
            });
            return out;
        }
        let mut drained = self.drained().lock();
        let open = |r: usize| r != replica && !drained[r] && self.takes_moves(r);
        let targets: Vec<usize> = (0..plan.owners())
            .filter(|&o| open(o / plan.proto))
            .collect();
        if targets.is_empty() {
            out.error = Some(MoveError::NowhereToGo { replica });
            return out;
        }
        drained[replica] = true;
        drop(drained);
        let leaving = |owner: usize| owner / plan.proto == replica;
        let mut owners = self.group_owners();
        for group in 0..plan.flow_groups {
            let from = owners[group as usize];
            if !leaving(from) {
                continue;
            }
            let held = |o: usize| owners.iter().filter(|&&x| x == o).count();
            let Some(&to) = targets.iter().min_by_key(|&&o| held(o)) else {
                break;
            };
            if let Err(e) = self.move_one(group, from, to, timeout, &mut out) {
                out.error = Some(e);
                break;
            }
            owners[group as usize] = to;
        }
        out.took = started.elapsed();
        out
    }

    /// Moves every flow group back to the owner the plan gave it (after a
    /// drain: the replica takes its share again).
    pub fn rebalance(&self, timeout: Duration) -> Resized {
        let started = Instant::now();
        let plan = self.plan().clone();
        let mut out = Resized::default();
        self.drained().lock().fill(false);
        for (group, from) in self.group_owners().into_iter().enumerate() {
            let group = group as u32;
            let to = plan.owner_of_group(group);
            if from == to {
                continue;
            }
            if let Err(e) = self.move_one(group, from, to, timeout, &mut out) {
                out.error = Some(e);
                break;
            }
        }
        out.took = started.elapsed();
        out
    }

    fn move_one(
        &self,
        group: u32,
        from: usize,
        to: usize,
        timeout: Duration,
        out: &mut Resized,
    ) -> Result<(), MoveError> {
        let moves = self.move_group(group, to, timeout)?;
        out.moved.push(GroupMoved {
            group,
            from,
            to,
            connections: moves.len(),
        });
        Ok(())
    }
}
