//! Which RX queue a frame lands on: the port's RSS, made to agree with the plan.
//!
//! The pipeline wants every frame of flow group `g` on queue `g % queues`
//! (`Plan::replica_of_group`: queue r is replica r's). With one queue there
//! is nothing to do. Otherwise, in order of preference:
//! - a port with an RSS indirection table (RETA) hashing with our key gets
//!   its table written so that entry `i` holds the queue of the groups whose
//!   hashes end in `i` ([`reta_entries`]): exact when the table has at least
//!   as many entries as there are queues, which validation guarantees (both
//!   are powers of two);
//! - a `net_tap` port has no RETA, but its RSS program (an rte_flow rule) puts
//!   a frame on `queues[hash % n]`: a rule listing queues `0..n` sends group
//!   `g` to `g % n` too, provided the flow hash uses the tap's key
//!   ([`HashKey::NetTap`]). The program reads the ports at a fixed offset,
//!   as if the IPv4 header had no options: a TCP frame with IP options lands
//!   on a queue chosen from option bytes and, when that is another
//!   replica's, is dropped as misrouted (such frames are rare; use
//!   `port.dpdk.software_rss` where they are not);
//! - anything else fills queues its own way, and the pipeline steers in
//!   software (`pipeline::SteeredNic`).

use dpdk_sys::{
    rte_eth_rss_reta_entry64, rte_flow_action, rte_flow_action_rss, rte_flow_attr, rte_flow_error,
    rte_flow_item,
};

use super::error::DpdkError;
use crate::flow::{group_of_hash, HashKey};
use std::ffi::CStr;

/// How received frames reach the queue of their flow group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RxSteering {
    /// One queue: every frame is in the right place.
    OneQueue,
    /// The NIC's indirection table, hashing with [`crate::flow::RSS_KEY`].
    Reta { entries: u16 },
    /// `net_tap`'s RSS flow rule, hashing with [`crate::flow::NET_TAP_RSS_KEY`].
    TapFlowRule,
    /// The port spreads frames its own way (or not at all): the pipeline
    /// must steer in software. The text says why.
    Software(String),
}

impl RxSteering {
    /// Whether queue r receives exactly replica r's flow groups.
    pub fn follows_flow_groups(&self) -> bool {
        !matches!(self, RxSteering::Software(_))
    }

    /// The key the flow hash must use for the port's queues to match it.
    pub fn hash_key(&self) -> HashKey {
        match self {
            RxSteering::TapFlowRule => HashKey::NetTap,
            _ => HashKey::Default,
        }
    }

    /// Short text for the start line and `stat`.
    pub fn describe(&self) -> String {
        match self {
            RxSteering::OneQueue => "one queue".into(),
            RxSteering::Reta { entries } => format!("RSS, indirection table of {entries}"),
            RxSteering::TapFlowRule => "RSS by net_tap flow rule".into(),
            RxSteering::Software(why) => format!("software RSS ({why})"),
        }
    }
}

/// The indirection table that sends flow group `g` to queue `g % queues`:
/// entry `i` serves the hashes whose low bits are `i`. `None` when no table
/// of `entries` can (fewer entries than queues, or sizes not powers of two).
pub fn reta_entries(entries: u16, queues: u16, flow_groups: u32) -> Option<Vec<u16>> {
    let exact = entries.is_power_of_two() && queues.is_power_of_two() && entries >= queues;
    exact.then(|| {
        (0..u32::from(entries))
            .map(|i| (group_of_hash(i, flow_groups) % u32::from(queues)) as u16)
            .collect()
    })
}

/// Writes the port's indirection table (see [`reta_entries`]).
pub(super) fn program_reta(
    port_id: u16,
    entries: u16,
    queues: u16,
    flow_groups: u32,
) -> Result<RxSteering, String> {
    let table = reta_entries(entries, queues, flow_groups).ok_or_else(|| {
        format!("an indirection table of {entries} cannot map {queues} queues exactly")
    })?;
    let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    let mut conf: Vec<rte_eth_rss_reta_entry64> = table
        .chunks(group)
        .map(|chunk| {
            let mut e = rte_eth_rss_reta_entry64 {
                mask: if chunk.len() == group {
                    u64::MAX
                } else {
                    (1u64 << chunk.len()) - 1
                },
                ..Default::default()
            };
            e.reta[..chunk.len()].copy_from_slice(chunk);
            e
        })
        .collect();
    // SAFETY: `conf` holds `entries.div_ceil(64)` valid groups, which the driver reads
    // for `entries` entries (their masks mark every entry present).
    let ret = unsafe { dpdk_sys::rte_eth_dev_rss_reta_update(port_id, conf.as_mut_ptr(), entries) };
    if ret < 0 {
        let err = DpdkError::from_ret(format!("rte_eth_dev_rss_reta_update(port {port_id})"), ret);
        return Err(err.to_string());
    }
    Ok(RxSteering::Reta { entries })
}

/// Installs the rule "IPv4/TCP: RSS over queues 0..queues" on a `net_tap` port.
pub(super) fn tap_flow_rule(port_id: u16, queues: u16) -> Result<RxSteering, String> {
    let queue_list: Vec<u16> = (0..queues).collect();
    let rss = rte_flow_action_rss {
        func: dpdk_sys::RTE_ETH_HASH_FUNCTION_DEFAULT,
        level: 0,
        types: dpdk_sys::DPDK_SYS_RSS_NONFRAG_IPV4_TCP,
        key_len: 0,
        queue_num: u32::from(queues),
        key: std::ptr::null(),
        queue: queue_list.as_ptr(),
    };
    let item = |type_| rte_flow_item {
        type_,
        ..Default::default()
    };
    // No spec or mask: any Ethernet / IPv4 / TCP header matches.
    let pattern = [
        item(dpdk_sys::RTE_FLOW_ITEM_TYPE_ETH),
        item(dpdk_sys::RTE_FLOW_ITEM_TYPE_IPV4),
        item(dpdk_sys::RTE_FLOW_ITEM_TYPE_TCP),
        item(dpdk_sys::RTE_FLOW_ITEM_TYPE_END),
    ];
    let actions = [
        rte_flow_action {
            type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_RSS,
            conf: (&rss as *const rte_flow_action_rss).cast(),
        },
        rte_flow_action {
            type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_END,
            conf: std::ptr::null(),
        },
    ];
    let mut attr = rte_flow_attr::default();
    attr.set_ingress(1);
    let mut error = rte_flow_error::default();
    // SAFETY: the pattern and actions arrays end with END items, every `conf` points to
    // a live value of its action's type, and the driver copies what it keeps before
    // returning; `error` is a valid out-parameter.
    let flow = unsafe {
        dpdk_sys::rte_flow_create(
            port_id,
            &attr,
            pattern.as_ptr(),
            actions.as_ptr(),
            &mut error,
        )
    };
    if flow.is_null() {
        let errno = DpdkError::from_rte_errno(format!("rte_flow_create(port {port_id})"));
        let detail = match flow_error_text(&error) {
            Some(message) => format!("{errno}: {message}"),
            None => errno.to_string(),
        };
        // The tap turns flow rules off when the kernel lacks what they need.
        return Err(format!(
            "{detail} (net_tap flow rules need the kernel's multiq qdisc, flower \
             classifier and BPF action)"
        ));
    }
    Ok(RxSteering::TapFlowRule)
}

/// Removes every flow rule of the port (before it stops).
pub(super) fn flush_flow_rules(port_id: u16) {
    let mut error = rte_flow_error::default();
    // SAFETY: plain control call; `error` is a valid out-parameter.
    if unsafe { dpdk_sys::rte_flow_flush(port_id, &mut error) } != 0 {
        tracing::warn!(
            port_id,
            error = flow_error_text(&error).unwrap_or_default(),
            "removing the port's flow rules failed"
        );
    }
}

/// The driver's message, when it left one.
fn flow_error_text(error: &rte_flow_error) -> Option<String> {
    if error.message.is_null() {
        return None;
    }
    // SAFETY: a non-null message is a NUL-terminated string the driver keeps (a
    // static or the port's storage) at least until the next flow call.
    let message = unsafe { CStr::from_ptr(error.message) }.to_string_lossy();
    Some(format!("{message} (rte_flow error type {})", error.type_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Plan;
    use pipeline_config::Topology;

    /// Every hash lands, through the table, on the queue of the replica that
    /// owns its flow group in the plan.
    #[test]
    fn reta_sends_each_group_to_its_replica() {
        for (entries, replicas, groups) in [(128, 2, 64), (64, 4, 256), (512, 8, 8), (8, 2, 4096)] {
            let plan = Plan::new(&Topology {
                replicas,
                flow_groups: groups,
                ..Topology::default()
            });
            let table = reta_entries(entries, replicas as u16, groups).unwrap();
            let mut x = 0x9e37_79b9u32;
            for _ in 0..5_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let queue = table[(x & (u32::from(entries) - 1)) as usize] as usize;
                assert_eq!(queue, plan.replica_of_group(group_of_hash(x, groups)));
            }
        }
    }

    #[test]
    fn tables_that_cannot_be_exact_are_refused() {
        assert!(
            reta_entries(4, 8, 64).is_none(),
            "fewer entries than queues"
        );
        assert!(reta_entries(96, 2, 64).is_none(), "not a power of two");
        assert!(reta_entries(64, 3, 64).is_none());
    }

    #[test]
    fn only_software_steering_needs_the_pipeline() {
        assert!(RxSteering::TapFlowRule.follows_flow_groups());
        assert!(RxSteering::Reta { entries: 64 }.follows_flow_groups());
        assert!(!RxSteering::Software("x".into()).follows_flow_groups());
        assert_eq!(RxSteering::TapFlowRule.hash_key(), HashKey::NetTap);
        assert_eq!(RxSteering::OneQueue.hash_key(), HashKey::Default);
    }
}
