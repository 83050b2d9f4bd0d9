//! ARP (RFC 826): answer requests for our address, learn senders, resolve
//! next hops for active opens with retries, expire entries.

use crate::engine::{Engine, TimerKey};
use crate::flow::FourTuple;
use crate::proto::Nanos;
use crate::stats::DropReason;
use crate::wire::{
    emit_arp_frame, ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr,
};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// How long a learned entry is used before it must be resolved again.
pub const ARP_ENTRY_TTL_NS: Nanos = 60_000_000_000;
const ARP_RETRY_NS: Nanos = 1_000_000_000;
const ARP_TRIES: u8 = 3;

#[derive(Debug, Default)]
struct Pending {
    tries: u8,
    waiting: Vec<FourTuple>,
}

/// Neighbour cache with expiry and pending resolutions.
#[derive(Debug, Default)]
pub struct ArpCache {
    entries: HashMap<Ipv4Addr, (EthernetAddress, Nanos)>,
    pending: HashMap<Ipv4Addr, Pending>,
}

impl ArpCache {
    /// A live entry for `ip`.
    pub fn lookup(&self, ip: Ipv4Addr, now: Nanos) -> Option<EthernetAddress> {
        self.entries
            .get(&ip)
            .filter(|(_, expires)| *expires > now)
            .map(|(mac, _)| *mac)
    }

    pub fn insert(&mut self, ip: Ipv4Addr, mac: EthernetAddress, now: Nanos) {
        if self.entries.len() >= 1024 && !self.entries.contains_key(&ip) {
            // Sweep expired entries before growing further.
            self.entries.retain(|_, (_, expires)| *expires > now);
        }
        self.entries.insert(ip, (mac, now + ARP_ENTRY_TTL_NS));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Engine {
    /// Learns from an ARP packet without answering it.
    pub(crate) fn learn_neighbour(&mut self, arp: &ArpRepr) {
        // Like `on_arp`: only neighbours that talk to us or that we already
        // know, so random ARP traffic cannot grow the cache.
        let relevant = arp.target_protocol_addr == self.cfg.ip
            || self
                .ctrl
                .arp
                .entries
                .contains_key(&arp.source_protocol_addr)
            || self
                .ctrl
                .arp
                .pending
                .contains_key(&arp.source_protocol_addr);
        if relevant
            && arp.source_hardware_addr.is_unicast()
            && arp.source_protocol_addr != self.cfg.ip
        {
            self.ctrl
                .arp
                .insert(arp.source_protocol_addr, arp.source_hardware_addr, self.now);
            self.arp_resolved(arp.source_protocol_addr, arp.source_hardware_addr);
        }
    }

    pub(crate) fn on_arp(&mut self, arp: &ArpRepr) {
        let now = self.now;
        let for_us = arp.target_protocol_addr == self.cfg.ip;
        let known = self
            .ctrl
            .arp
            .entries
            .contains_key(&arp.source_protocol_addr);
        if !for_us && !known {
            self.stats.drop(DropReason::ArpIgnored);
            return;
        }
        // RFC 826 merge: update a known sender, learn one that asks for us.
        if arp.source_hardware_addr.is_unicast() {
            self.ctrl
                .arp
                .insert(arp.source_protocol_addr, arp.source_hardware_addr, now);
            self.arp_resolved(arp.source_protocol_addr, arp.source_hardware_addr);
        }
        if for_us && arp.operation == ArpOperation::Request {
            let reply = ArpRepr {
                operation: ArpOperation::Reply,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: self.cfg.ip,
                target_hardware_addr: arp.source_hardware_addr,
                target_protocol_addr: arp.source_protocol_addr,
            };
            self.send_arp(&reply, arp.source_hardware_addr);
            self.stats.arp_replies_sent += 1;
        }
    }

    fn send_arp(&mut self, arp: &ArpRepr, dst: EthernetAddress) {
        let eth = EthernetRepr {
            src: self.cfg.mac,
            dst,
            vlan: None,
            ethertype: EtherType::Arp,
        };
        let mut buf = self.buffer();
        buf.resize(64, 0);
        match emit_arp_frame(&mut buf, &eth, arp) {
            Ok(n) => {
                buf.truncate(n);
                self.emit(buf);
            }
            Err(_) => self.recycle(buf),
        }
    }

    fn send_arp_request(&mut self, ip: Ipv4Addr) {
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: self.cfg.ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        self.send_arp(&req, EthernetAddress::BROADCAST);
        self.stats.arp_requests_sent += 1;
    }

    /// Resolves `next_hop` for `tuple`'s handshake: returns the MAC now, or
    /// starts (or joins) a resolution and returns `None`.
    pub(crate) fn resolve(
        &mut self,
        next_hop: Ipv4Addr,
        tuple: FourTuple,
    ) -> Option<EthernetAddress> {
        // Our own address: the NIC layer loops frames to our MAC back.
        if next_hop == self.cfg.ip {
            return Some(self.cfg.mac);
        }
        if let Some(mac) = self.ctrl.arp.lookup(next_hop, self.now) {
            return Some(mac);
        }
        let start = !self.ctrl.arp.pending.contains_key(&next_hop);
        self.ctrl
            .arp
            .pending
            .entry(next_hop)
            .or_default()
            .waiting
            .push(tuple);
        if start {
            self.send_arp_request(next_hop);
            let at = self.now + ARP_RETRY_NS;
            self.push_timer(at, TimerKey::Arp(next_hop));
        }
        None
    }

    fn arp_resolved(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        let Some(pending) = self.ctrl.arp.pending.remove(&ip) else {
            return;
        };
        for tuple in pending.waiting {
            self.next_hop_resolved(tuple, mac);
        }
    }

    pub(crate) fn arp_timer(&mut self, ip: Ipv4Addr) {
        let Some(pending) = self.ctrl.arp.pending.get_mut(&ip) else {
            return;
        };
        pending.tries += 1;
        if pending.tries < ARP_TRIES {
            self.send_arp_request(ip);
            let at = self.now + ARP_RETRY_NS;
            self.push_timer(at, TimerKey::Arp(ip));
            return;
        }
        let pending = self.ctrl.arp.pending.remove(&ip).unwrap_or_default();
        for tuple in pending.waiting {
            self.fail_handshake(&tuple, crate::app::ConnError::HostUnreachable);
        }
    }
}

#[cfg(test)]
#[path = "arp_tests.rs"]
mod tests;
