//! Engine `a` on the simulated wire against a host `b` made of several
//! engines (owners) with one address, each holding some flow groups, as
//! the pipeline's owners do: a frame for `b` goes to the owner of its flow
//! group, and a group can move to another owner between steps
//! ([`ShardedPair::move_group`]) while its connections are open.

use super::harness::{advance, run_until, Stepped};
use super::{Direction, LinkParams, SimWire};
use crate::engine::{Engine, EngineConfig, HandleMoves};
use crate::flow::{frame_rss_hash, group_of_hash};
use crate::proto::Nanos;

/// See the module documentation.
#[derive(Debug)]
pub struct ShardedPair {
    pub a: Engine,
    /// `b`'s owners: the same configuration (address, secrets), different
    /// flow groups.
    pub b: Vec<Engine>,
    /// Which owner holds each flow group.
    pub owner_of: Vec<usize>,
    pub wire: SimWire,
    pub now: Nanos,
    flow_groups: u32,
    scratch: Vec<Vec<u8>>,
}

impl ShardedPair {
    /// `owners` engines for `b` (built from `b_cfg`), groups dealt round
    /// robin.
    pub fn new(
        a: EngineConfig,
        b_cfg: EngineConfig,
        owners: usize,
        link: LinkParams,
        seed: u64,
    ) -> Self {
        let flow_groups = b_cfg.flow_groups.max(1);
        let owner_of: Vec<usize> = (0..flow_groups as usize).map(|g| g % owners).collect();
        let b = (0..owners)
            .map(|o| {
                let mut e = Engine::new(b_cfg.clone());
                e.set_owned_groups(owner_of.iter().map(|&x| x == o).collect());
                e
            })
            .collect();
        Self {
            a: Engine::new(a),
            b,
            owner_of,
            wire: SimWire::new(link, link, seed),
            now: 0,
            flow_groups,
            scratch: Vec::new(),
        }
    }

    /// Moves flow group `g` to owner `to`, with its connections: the new
    /// handles of the moved application connections (in `to`).
    pub fn move_group(&mut self, g: u32, to: usize) -> HandleMoves {
        let from = self.owner_of[g as usize];
        if from == to {
            return Vec::new();
        }
        let parcel = self.b[from].export_group(g);
        self.owner_of[g as usize] = to;
        self.b[to].import_group(parcel)
    }

    /// The owner a frame for `b` goes to: its flow group's for TCP, the
    /// first for everything else (ARP, ICMP), whose ARP the others learn.
    fn owner_for(&mut self, frame: &[u8]) -> usize {
        match frame_rss_hash(frame) {
            Some(hash) => self.owner_of[group_of_hash(hash, self.flow_groups) as usize],
            None => {
                for e in &mut self.b[1..] {
                    e.learn_arp(frame, self.now);
                }
                0
            }
        }
    }

    /// Polls every engine and puts their output on the wire.
    pub fn flush(&mut self) {
        self.a.poll(self.now);
        self.a.drain_tx(&mut self.scratch);
        for f in self.scratch.drain(..) {
            self.wire.send(Direction::AtoB, f, self.now);
        }
        for e in &mut self.b {
            e.poll(self.now);
            e.drain_tx(&mut self.scratch);
            for f in self.scratch.drain(..) {
                self.wire.send(Direction::BtoA, f, self.now);
            }
        }
    }

    /// Delivers everything due now, then advances the clock to the next
    /// event. Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        while let Some((dir, frame)) = self.wire.pop_due(self.now) {
            match dir {
                Direction::AtoB => {
                    let o = self.owner_for(&frame);
                    self.b[o].receive(&frame, self.now);
                }
                Direction::BtoA => self.a.receive(&frame, self.now),
            }
            self.flush();
        }
        let next = std::iter::once(self.wire.next_delivery())
            .chain(std::iter::once(self.a.next_deadline()))
            .chain(self.b.iter().map(Engine::next_deadline))
            .flatten()
            .min();
        advance(&mut self.now, next)
    }

    /// Steps until `done` holds (checked after every step) or `deadline`
    /// (simulated) passes. Returns whether `done` held.
    pub fn run_until(&mut self, deadline: Nanos, done: impl FnMut(&mut Self) -> bool) -> bool {
        run_until(self, deadline, done)
    }
}

impl Stepped for ShardedPair {
    fn now(&mut self) -> &mut Nanos {
        &mut self.now
    }

    fn step(&mut self) -> bool {
        ShardedPair::step(self)
    }
}
