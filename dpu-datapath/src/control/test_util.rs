//! What the control plane's unit tests share: a real [`Engine`] on the
//! simulation configuration (it is 198.18.0.2, the peer 198.18.0.1, as in
//! `tests/script`), the peer's segments as real frames, and the frames the
//! engine sent, decoded field by field so a test can compare them whole.
//!
//! The tests call the control-plane functions themselves (`on_syn`,
//! `on_handshake_segment`, `handshake_timer`, `on_time_wait_segment`,
//! `on_arp`, `arp_timer`, ...) with the engine's clock set by hand; nothing
//! of the code under test is replaced.

use crate::engine::{Engine, EngineConfig};
use crate::flow::FourTuple;
use crate::wire::{
    emit_arp_frame, emit_tcp_frame, parse_ingress, ArpOperation, ArpRepr, ChecksumCaps, EtherType,
    EthernetAddress, EthernetRepr, Icmpv4Repr, IpProtocol, Ipv4Repr, SeqNumber, TcpFlags,
    TcpOptions, TcpRepr, L3, L4,
};
use pipeline_config::Config;
use std::net::Ipv4Addr;

pub(super) const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub(super) const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x02]);
pub(super) const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub(super) const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
/// Our listening port (passive opens), the peer's port in active opens.
pub(super) const PORT: u16 = 8080;
/// The peer's port in passive opens.
pub(super) const PEER_PORT: u16 = 40000;

pub(super) const MS: u64 = 1_000_000;
pub(super) const S: u64 = 1_000_000_000;

pub(super) const SYN: TcpFlags = TcpFlags::SYN;
pub(super) const ACK: TcpFlags = TcpFlags::ACK;
pub(super) const RST: TcpFlags = TcpFlags::RST;
pub(super) const FIN: TcpFlags = TcpFlags::FIN;

const CAPS: ChecksumCaps = ChecksumCaps {
    verify_rx: true,
    fill_tx: true,
    tx_offload: false,
};

/// The engine configuration the tests use: the default one, one ACK per
/// segment (`tcp.delayed_ack_us = 0`), then `tweak`.
pub(super) fn config(tweak: impl FnOnce(&mut Config)) -> EngineConfig {
    let cfg = crate::sim::sim_engine_config(2, 7, |c| {
        c.tcp.delayed_ack_us = 0;
        tweak(c);
    });
    assert_eq!((cfg.ip, cfg.mac), (OUR_IP, OUR_MAC));
    cfg
}

/// A real engine on [`config`].
pub(super) fn engine(tweak: impl FnOnce(&mut Config)) -> Engine {
    Engine::new(config(tweak))
}

/// Sets the engine's clock (what `receive` and `poll` would do).
pub(super) fn at(eng: &mut Engine, ns: u64) {
    eng.now = ns;
}

/// The tuple of a passive open from the peer's `remote_port`.
pub(super) fn tuple(remote_port: u16) -> FourTuple {
    FourTuple {
        local_ip: OUR_IP,
        local_port: PORT,
        remote_ip: PEER_IP,
        remote_port,
    }
}

/// A segment the peer sends on `t`: window 65535, no options, no payload.
pub(super) fn seg(t: &FourTuple, flags: TcpFlags, seq: u32, ack: u32) -> TcpRepr<'static> {
    TcpRepr {
        src_port: t.remote_port,
        dst_port: t.local_port,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

/// Options as a peer offers them in a SYN.
pub(super) fn opts(
    mss: Option<u16>,
    ws: Option<u8>,
    sack: bool,
    ts: Option<(u32, u32)>,
) -> TcpOptions {
    TcpOptions {
        mss,
        window_scale: ws,
        sack_permitted: sack,
        timestamps: ts,
        ..TcpOptions::default()
    }
}

/// The peer's frame carrying `tcp` on `t`.
pub(super) fn frame(t: &FourTuple, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let eth = EthernetRepr {
        src: PEER_MAC,
        dst: OUR_MAC,
        vlan: None,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src: t.remote_ip,
        dst: t.local_ip,
        protocol: IpProtocol::Tcp,
        payload_len: 0,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len()];
    let n = emit_tcp_frame(&mut buf, &eth, &ip, tcp, &CAPS).expect("emit");
    buf.truncate(n);
    buf
}

/// An ARP frame from `sender` (`sender_mac`, `sender_ip`) about `target_ip`.
pub(super) fn arp_frame(
    op: ArpOperation,
    sender_mac: EthernetAddress,
    sender_ip: Ipv4Addr,
    target_mac: EthernetAddress,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let arp = ArpRepr {
        operation: op,
        source_hardware_addr: sender_mac,
        source_protocol_addr: sender_ip,
        target_hardware_addr: target_mac,
        target_protocol_addr: target_ip,
    };
    let eth = EthernetRepr {
        src: sender_mac,
        dst: if op == ArpOperation::Request {
            EthernetAddress::BROADCAST
        } else {
            OUR_MAC
        },
        vlan: None,
        ethertype: EtherType::Arp,
    };
    let mut buf = vec![0u8; 60];
    let n = emit_arp_frame(&mut buf, &eth, &arp).expect("emit arp");
    buf.truncate(n);
    buf
}

/// The whole exception path for `frame`: what `receive` does for a frame
/// `pre` hands to the control plane (the dispatch in `control/mod.rs`).
pub(super) fn exception(eng: &mut Engine, frame: &[u8]) {
    let parsed = parse_ingress(frame, &CAPS).expect("test frame parses");
    eng.exception(&parsed, frame);
}

/// A TCP segment the engine sent, every field the control plane chooses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Out {
    pub eth_src: EthernetAddress,
    pub eth_dst: EthernetAddress,
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    pub ttl: u8,
    pub dont_frag: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    /// As on the wire (0 without the ACK flag).
    pub ack: SeqNumber,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

/// The segment the engine should send the peer on `t`: our addresses to
/// the peer's, TTL 64, DF, no payload.
pub(super) fn out(
    t: &FourTuple,
    flags: TcpFlags,
    seq: SeqNumber,
    ack: SeqNumber,
    window: u16,
    options: TcpOptions,
) -> Out {
    Out {
        eth_src: OUR_MAC,
        eth_dst: PEER_MAC,
        ip_src: t.local_ip,
        ip_dst: t.remote_ip,
        ttl: 64,
        dont_frag: true,
        src_port: t.local_port,
        dst_port: t.remote_port,
        seq,
        ack,
        flags,
        window,
        options,
        payload: Vec::new(),
    }
}

/// A frame the engine sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Sent {
    Tcp(Out),
    Arp {
        eth_src: EthernetAddress,
        eth_dst: EthernetAddress,
        arp: ArpRepr,
    },
    IcmpEchoReply {
        eth: EthernetRepr,
        ip: Ipv4Repr,
        ident: u16,
        seq_no: u16,
        data: Vec<u8>,
    },
}

/// Every frame the engine sent since the last call, decoded (their
/// checksums verified).
pub(super) fn sent(eng: &mut Engine) -> Vec<Sent> {
    let mut frames = Vec::new();
    eng.drain_tx(&mut frames);
    frames
        .iter()
        .map(|f| {
            let p = parse_ingress(f, &CAPS).expect("engine frame parses, checksums ok");
            match p.l3 {
                L3::Arp(arp) => Sent::Arp {
                    eth_src: p.eth.src,
                    eth_dst: p.eth.dst,
                    arp,
                },
                L3::Ipv4 {
                    ip,
                    l4: L4::Tcp(tcp),
                } => Sent::Tcp(Out {
                    eth_src: p.eth.src,
                    eth_dst: p.eth.dst,
                    ip_src: ip.src,
                    ip_dst: ip.dst,
                    ttl: ip.ttl,
                    dont_frag: ip.dont_frag,
                    src_port: tcp.src_port,
                    dst_port: tcp.dst_port,
                    seq: tcp.seq,
                    ack: tcp.ack,
                    flags: tcp.flags,
                    window: tcp.window,
                    options: tcp.options,
                    payload: tcp.payload.to_vec(),
                }),
                L3::Ipv4 {
                    ip,
                    l4:
                        L4::Icmp(Icmpv4Repr::EchoReply {
                            ident,
                            seq_no,
                            data,
                        }),
                } => Sent::IcmpEchoReply {
                    eth: p.eth,
                    ip,
                    ident,
                    seq_no,
                    data: data.to_vec(),
                },
                other => panic!("unexpected frame from the engine: {other:?}"),
            }
        })
        .collect()
}

/// Every frame the engine sent since the last call, all TCP.
pub(super) fn sent_tcp(eng: &mut Engine) -> Vec<Out> {
    sent(eng)
        .into_iter()
        .map(|s| match s {
            Sent::Tcp(o) => o,
            other => panic!("expected TCP, the engine sent {other:?}"),
        })
        .collect()
}

/// The ARP request the engine broadcasts for `ip`.
pub(super) fn arp_request(ip: Ipv4Addr) -> Sent {
    Sent::Arp {
        eth_src: OUR_MAC,
        eth_dst: EthernetAddress::BROADCAST,
        arp: ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: OUR_MAC,
            source_protocol_addr: OUR_IP,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        },
    }
}

/// The engine's millisecond TSval clock at `ns`.
pub(super) fn ts(ns: u64) -> u32 {
    (ns / MS) as u32
}
