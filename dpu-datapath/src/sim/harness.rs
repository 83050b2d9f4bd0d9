//! Two engines on a simulated wire, driven on a virtual clock: each step
//! jumps to the next event (a frame arriving or a timer), so simulated
//! seconds cost only the work done in them.

use super::{Direction, LinkParams, SimWire};
use crate::engine::{Engine, EngineConfig};
use crate::proto::Nanos;
use pipeline_config::Config;
use std::net::Ipv4Addr;

/// Engine configuration for simulation endpoint `host` (1 or 2) on
/// 198.18.0.0/24, from the embedded default plus `tweak`.
pub fn sim_engine_config(host: u8, seed: u64, tweak: impl FnOnce(&mut Config)) -> EngineConfig {
    let mut cfg = Config::default();
    cfg.identity.ipv4 = Ipv4Addr::new(198, 18, 0, host).to_string();
    cfg.identity.mac = format!("02:00:c6:12:00:{host:02x}");
    cfg.identity.gateway = None;
    tweak(&mut cfg);
    EngineConfig::from_config(&cfg, seed ^ host as u64)
        .unwrap_or_else(|e| panic!("simulation config invalid: {e}"))
}

/// Engines `a` and `b` joined by a [`SimWire`].
#[derive(Debug)]
pub struct SimPair {
    pub a: Engine,
    pub b: Engine,
    pub wire: SimWire,
    pub now: Nanos,
    /// When set, every frame delivered to `b` is recorded with its time.
    pub b_rx_log: Option<Vec<(Nanos, Vec<u8>)>>,
    scratch: Vec<Vec<u8>>,
}

impl SimPair {
    pub fn new(
        a: EngineConfig,
        b: EngineConfig,
        a_to_b: LinkParams,
        b_to_a: LinkParams,
        seed: u64,
    ) -> Self {
        Self {
            a: Engine::new(a),
            b: Engine::new(b),
            wire: SimWire::new(a_to_b, b_to_a, seed),
            now: 0,
            b_rx_log: None,
            scratch: Vec::new(),
        }
    }

    /// Polls both engines and puts their output on the wire.
    pub fn flush(&mut self) {
        self.a.poll(self.now);
        self.b.poll(self.now);
        self.a.drain_tx(&mut self.scratch);
        for f in self.scratch.drain(..) {
            self.wire.send(Direction::AtoB, f, self.now);
        }
        self.b.drain_tx(&mut self.scratch);
        for f in self.scratch.drain(..) {
            self.wire.send(Direction::BtoA, f, self.now);
        }
    }

    /// Delivers everything due now, then advances the clock to the next
    /// event. Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        while let Some((dir, frame)) = self.wire.pop_due(self.now) {
            match dir {
                Direction::AtoB => {
                    self.b.receive(&frame, self.now);
                    if let Some(log) = self.b_rx_log.as_mut() {
                        log.push((self.now, frame));
                    }
                }
                Direction::BtoA => self.a.receive(&frame, self.now),
            }
            self.flush();
        }
        let next = [
            self.wire.next_delivery(),
            self.a.next_deadline(),
            self.b.next_deadline(),
        ]
        .into_iter()
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

impl Stepped for SimPair {
    fn now(&mut self) -> &mut Nanos {
        &mut self.now
    }

    fn step(&mut self) -> bool {
        SimPair::step(self)
    }
}

/// A simulation on a virtual clock that moves by steps (the pairs of this
/// module): what [`run_until`] drives.
pub(super) trait Stepped {
    fn now(&mut self) -> &mut Nanos;
    /// Delivers what is due, then advances the clock to the next event;
    /// false when nothing is left to happen.
    fn step(&mut self) -> bool;
}

/// Moves the clock to the next event, if any is left (`step`'s end).
pub(super) fn advance(now: &mut Nanos, next: Option<Nanos>) -> bool {
    match next {
        Some(t) => {
            *now = (*now).max(t);
            true
        }
        None => false,
    }
}

/// Steps `sim` until `done` holds (checked after every step) or `deadline`
/// (simulated) passes. Returns whether `done` held.
pub(super) fn run_until<S: Stepped>(
    sim: &mut S,
    deadline: Nanos,
    mut done: impl FnMut(&mut S) -> bool,
) -> bool {
    loop {
        if done(sim) {
            return true;
        }
        if *sim.now() > deadline {
            return false;
        }
        if !sim.step() {
            // Idle: let time pass so application-driven work can happen.
            *sim.now() += 1_000_000;
        }
    }
}
