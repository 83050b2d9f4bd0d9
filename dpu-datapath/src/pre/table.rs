//! The flow table `pre` owns: 4-tuple to flow id, plus the read-mostly part
//! of each flow (its header template and flow group).

use super::HeaderTemplate;
use crate::flow::{FlowId, FourTuple};
use std::collections::HashMap;

/// `pre`'s per-flow state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreFlow {
    /// Headers of the flow's segments. (Its flow group is not kept: it
    /// follows from the RSS hash `pre` computes for every segment.)
    pub template: HeaderTemplate,
}

/// Lookup table from 4-tuple to flow id. Keyed with a randomly seeded hasher
/// (foldhash) so remote peers cannot aim collisions at it.
#[derive(Debug, Default)]
pub struct PreTable {
    by_tuple: HashMap<FourTuple, FlowId, foldhash::fast::RandomState>,
    flows: Vec<Option<PreFlow>>,
}

impl PreTable {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            by_tuple: HashMap::with_capacity_and_hasher(n, Default::default()),
            flows: Vec::new(),
        }
    }

    pub fn lookup(&self, tuple: &FourTuple) -> Option<FlowId> {
        self.by_tuple.get(tuple).copied()
    }

    /// The 4-tuple is kept once, in the template.
    pub fn get(&self, id: FlowId) -> Option<&PreFlow> {
        self.flows.get(id.index()).and_then(Option::as_ref)
    }

    /// Installs a flow under an id the control plane allocated.
    pub fn install(&mut self, id: FlowId, flow: PreFlow) {
        if self.flows.len() <= id.index() {
            self.flows.resize(id.index() + 1, None);
        }
        self.by_tuple.insert(flow.template.tuple, id);
        self.flows[id.index()] = Some(flow);
    }

    pub fn remove(&mut self, id: FlowId) -> Option<PreFlow> {
        let flow = self.flows.get_mut(id.index())?.take()?;
        self.by_tuple.remove(&flow.template.tuple);
        Some(flow)
    }

    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tuple.is_empty()
    }
}
