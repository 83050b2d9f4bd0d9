//! Builds an engine with N established connections through the real
//! handshake path (SYN in, SYN-ACK out, ACK in), and data segments for them.
#![allow(dead_code)]

use dpu_datapath::app::ConnId;
use dpu_datapath::sim::sim_engine_config;
use dpu_datapath::wire::{
    checksum, emit_tcp_frame, parse_ingress, ChecksumCaps, EtherType, EthernetAddress,
    EthernetRepr, IpProtocol, Ipv4Repr, SeqNumber, TcpFlags, TcpOptions, TcpRepr, L3, L4,
};
use dpu_datapath::Engine;
use std::net::Ipv4Addr;

pub const PORT: u16 = 80;
const ETH: usize = 14;
const IP: usize = 20;

/// One connection seen from the fake peer.
pub struct PeerConn {
    pub conn: ConnId,
    pub frame: Vec<u8>,
    pub seq: u32,
    pub payload: usize,
}

pub fn peer_addr(i: usize) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(198, 19, (i / 50_000) as u8, 1),
        10_000 + (i % 50_000) as u16,
    )
}

fn frame(
    src: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    opts: TcpOptions,
    payload: &[u8],
    verify: bool,
) -> Vec<u8> {
    let eth = EthernetRepr {
        src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
        vlan: None,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src: src.0,
        dst: Ipv4Addr::new(198, 18, 0, 2),
        protocol: IpProtocol::Tcp,
        payload_len: 0,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let tcp = TcpRepr {
        src_port: src.1,
        dst_port: PORT,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window: 65535,
        urgent: 0,
        options: opts,
        payload,
    };
    let mut buf = vec![0u8; 2048];
    let caps = ChecksumCaps {
        verify_rx: verify,
        fill_tx: true,
        tx_offload: false,
    };
    let n = emit_tcp_frame(&mut buf, &eth, &ip, &tcp, &caps).unwrap();
    buf.truncate(n);
    buf
}

/// An engine with `n` established connections and a data segment of
/// `payload` bytes ready for each.
pub fn established(n: usize, payload: usize, verify_checksums: bool) -> (Engine, Vec<PeerConn>) {
    let cfg = sim_engine_config(2, 1, |c| {
        c.tcp.rx_buffer = 4096;
        c.tcp.tx_buffer = 4096;
        c.tcp.max_connections = 1 << 20;
        c.tcp.listen_backlog = 65535;
        c.tcp.timestamps = false;
    });
    let mut cfg = cfg;
    cfg.caps = ChecksumCaps {
        verify_rx: verify_checksums,
        fill_tx: true,
        tx_offload: false,
    };
    let mut e = Engine::new(cfg);
    e.listen(PORT, None).unwrap();
    let mut out = Vec::new();
    let mut conns = Vec::with_capacity(n);
    let data = vec![0x5a; payload];
    for i in 0..n {
        let peer = peer_addr(i);
        let syn_opts = TcpOptions {
            mss: Some(1460),
            sack_permitted: true,
            ..TcpOptions::default()
        };
        e.receive(&frame(peer, 1000, 0, TcpFlags::SYN, syn_opts, &[], true), 0);
        e.drain_tx(&mut out);
        let synack = out.pop().expect("SYN-ACK");
        let iss = match parse_ingress(&synack, &ChecksumCaps::default()).unwrap().l3 {
            L3::Ipv4 { l4: L4::Tcp(t), .. } => t.seq.0,
            _ => panic!("not a SYN-ACK"),
        };
        out.clear();
        e.receive(
            &frame(
                peer,
                1001,
                iss.wrapping_add(1),
                TcpFlags::ACK,
                TcpOptions::default(),
                &[],
                true,
            ),
            0,
        );
        let conn = e.accept(PORT).expect("accepted");
        conns.push(PeerConn {
            conn,
            frame: frame(
                peer,
                1001,
                iss.wrapping_add(1),
                TcpFlags::ACK | TcpFlags::PSH,
                TcpOptions::default(),
                &data,
                true,
            ),
            seq: 1001,
            payload,
        });
    }
    (e, conns)
}

/// Sets the sequence number of a prepared data frame, updating the TCP
/// checksum incrementally (RFC 1624), as a NIC-side rewrite would.
pub fn set_seq(frame: &mut [u8], old: u32, new: u32) {
    let at = ETH + IP;
    frame[at + 4..at + 8].copy_from_slice(&new.to_be_bytes());
    let c = u16::from_be_bytes([frame[at + 16], frame[at + 17]]);
    let c = checksum::update_u32(c, old, new);
    frame[at + 16..at + 18].copy_from_slice(&c.to_be_bytes());
}
