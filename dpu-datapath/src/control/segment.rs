//! Control segments (SYN, SYN-ACK, RST, TIME-WAIT ACKs) and resets for
//! segments that match no connection (RFC 9293 3.10.7.1).

use crate::engine::Engine;
use crate::flow::FourTuple;
use crate::post::emit_frame;
use crate::wire::{
    EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, SeqNumber, TcpFlags,
    TcpOptions, TcpRepr,
};

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_segment(
        &mut self,
        tuple: &FourTuple,
        remote_mac: EthernetAddress,
        seq: SeqNumber,
        ack: SeqNumber,
        flags: TcpFlags,
        window: u16,
        options: TcpOptions,
    ) {
        let eth = EthernetRepr {
            src: self.cfg.mac,
            dst: remote_mac,
            vlan: None,
            ethertype: EtherType::Ipv4,
        };
        let ip = Ipv4Repr {
            src: tuple.local_ip,
            dst: tuple.remote_ip,
            protocol: IpProtocol::Tcp,
            payload_len: 0,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        };
        let tcp = TcpRepr {
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq,
            ack,
            flags,
            window,
            urgent: 0,
            options,
            payload: &[],
        };
        let mut buf = self.buffer();
        emit_frame(&mut buf, &eth, &ip, &tcp, &self.cfg.caps);
        if flags.contains(TcpFlags::RST) {
            self.stats.rst_sent += 1;
        }
        self.emit(buf);
    }

    /// Answers a segment that matches nothing with RST, unless it is a RST.
    pub(crate) fn reset_unknown(
        &mut self,
        tuple: FourTuple,
        remote_mac: EthernetAddress,
        tcp: &TcpRepr<'_>,
    ) {
        if tcp.flags.contains(TcpFlags::RST) {
            return;
        }
        if tcp.flags.contains(TcpFlags::ACK) {
            self.send_segment(
                &tuple,
                remote_mac,
                tcp.ack,
                SeqNumber(0),
                TcpFlags::RST,
                0,
                TcpOptions::default(),
            );
        } else {
            let len = tcp.payload.len() as u32
                + tcp.flags.contains(TcpFlags::SYN) as u32
                + tcp.flags.contains(TcpFlags::FIN) as u32;
            self.send_segment(
                &tuple,
                remote_mac,
                SeqNumber(0),
                tcp.seq + len,
                TcpFlags::RST | TcpFlags::ACK,
                0,
                TcpOptions::default(),
            );
        }
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
