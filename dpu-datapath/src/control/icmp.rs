//! ICMP echo (ping) replies; other ICMP is counted and dropped.

use crate::engine::Engine;
use crate::stats::DropReason;
use crate::wire::{emit_icmp_frame, EthernetRepr, Icmpv4Repr, Ipv4Repr};

impl Engine {
    pub(crate) fn on_icmp(&mut self, eth: &EthernetRepr, ip: &Ipv4Repr, icmp: &Icmpv4Repr<'_>) {
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = *icmp
        else {
            self.stats.drop(DropReason::IcmpUnsupported);
            return;
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let eth_out = EthernetRepr {
            src: self.cfg.mac,
            dst: eth.src,
            vlan: eth.vlan,
            ethertype: eth.ethertype,
        };
        let ip_out = Ipv4Repr {
            src: self.cfg.ip,
            dst: ip.src,
            protocol: ip.protocol,
            payload_len: 0,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        let mut buf = self.buffer();
        buf.resize(eth_out.header_len() + 20 + 8 + data.len(), 0);
        match emit_icmp_frame(&mut buf, &eth_out, &ip_out, &reply, &self.cfg.caps) {
            Ok(n) => {
                buf.truncate(n);
                self.emit(buf);
                self.stats.icmp_echo_replies += 1;
            }
            Err(_) => self.recycle(buf),
        }
    }
}

#[cfg(test)]
#[path = "icmp_tests.rs"]
mod tests;
