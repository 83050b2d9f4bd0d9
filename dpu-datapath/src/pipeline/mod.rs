//! The parallel data path: a replicated pipeline of fine-grained stages on
//! pinned workers (FlexTOE's design, DESIGN.md section 5).
//!
//! Per replica: NIC RX queue -> ingress sequencer -> `pre` workers ->
//! ingress reorder -> flow-group owners (`proto` + control plane) -> `dma`
//! workers -> `post` workers -> egress reorder -> NIC TX queue, with commits
//! back to the owners. `pre`, `dma` and `post` are data-parallel: one
//! connection's segments may be on several of them at once; only the owner
//! is serial per flow group, and the two reorder points restore order.
//! Run-to-completion is the smallest topology: one worker polls all tasks.

mod build;
pub mod items;
pub mod loopback;
mod moves;
pub mod nic;
pub mod reorder;
mod resize;
pub mod ring;
pub mod steer;
pub mod steering;
pub mod task;
#[allow(missing_debug_implementations)]
pub(crate) mod tasks;
pub mod timing;
pub mod topology;
pub mod worker;

pub use crate::io::Nic;
pub use build::{Pipeline, PipelineOptions};
pub use loopback::{LoopbackNic, NullNic};
pub use moves::{AppParcel, GroupMover, MoveError, MoveRequest};
pub use nic::{rss_queue, MemNic};
pub use resize::{GroupMoved, Resized};
pub use steer::SteeredNic;
pub use steering::GroupSteering;
pub use task::{OwnerSnapshot, PipelineReport, ShardApp, StatsBoard, TaskCounters};
pub use topology::Plan;

use crate::proto::Nanos;
use std::time::Instant;

/// Where the owners' clock comes from.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// Frame timestamps (replayed traffic): deterministic.
    Virtual { last: Nanos },
    /// Wall-clock nanoseconds since start.
    Real { start: Instant },
}

impl Clock {
    /// One reading of the wall clock for a whole burst (None for the
    /// virtual clock, which follows each frame): a clock read per frame
    /// cost the owner about 5% of its time.
    pub fn burst_now(&self) -> Option<Nanos> {
        match self {
            Clock::Virtual { .. } => None,
            Clock::Real { start } => Some(start.elapsed().as_nanos() as Nanos),
        }
    }

    /// The time now, given a frame's timestamp (0 when polling).
    pub fn now(&mut self, frame_time: Nanos) -> Nanos {
        match self {
            Clock::Virtual { last } => {
                *last = (*last).max(frame_time);
                *last
            }
            Clock::Real { start } => start.elapsed().as_nanos() as Nanos,
        }
    }
}
