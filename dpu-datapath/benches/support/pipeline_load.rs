//! Load for the pipeline benchmarks (`pipeline`, `metrics_overhead`): a
//! sink application on the owners and a frame builder for a client at
//! 198.19.0.1 talking to the engine at 198.18.0.2.

#![allow(dead_code)]

use dpu_datapath::engine::Engine;
use dpu_datapath::pipeline::ShardApp;
use dpu_datapath::wire::{
    emit_tcp_frame, ChecksumCaps, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr,
    SeqNumber, TcpFlags, TcpOptions, TcpRepr,
};
use std::net::Ipv4Addr;

pub const PORT: u16 = 80;

/// The number after `name` on the command line, or `default`.
pub fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Accepts and releases all received data without copying it.
pub struct Sink(pub Vec<dpu_datapath::app::ConnId>);

impl ShardApp for Sink {
    fn start(&mut self, e: &mut Engine) {
        e.listen(PORT, Some(65535)).unwrap();
    }
    fn poll(&mut self, e: &mut Engine) {
        while let Some(c) = e.accept(PORT) {
            self.0.push(c);
        }
        for c in &self.0 {
            let n = e.readable(*c);
            if n > 0 {
                let _ = e.rx_consume(*c, n);
            }
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
    fn movable(&self) -> bool {
        true
    }
    fn export_conns(
        &mut self,
        conns: &[dpu_datapath::app::ConnId],
    ) -> dpu_datapath::pipeline::AppParcel {
        let (leaving, staying) = self.0.iter().partition(|c| conns.contains(c));
        self.0 = staying;
        Box::new(leaving as Vec<dpu_datapath::app::ConnId>)
    }
    fn import_conns(
        &mut self,
        _engine: &mut dpu_datapath::Engine,
        parcel: dpu_datapath::pipeline::AppParcel,
        moves: &dpu_datapath::engine::HandleMoves,
    ) {
        if let Ok(arrived) = parcel.downcast::<Vec<dpu_datapath::app::ConnId>>() {
            for old in *arrived {
                if let Some((_, new)) = moves.iter().find(|(o, _)| *o == old) {
                    self.0.push(*new);
                }
            }
        }
    }
}

pub fn frame(port: u16, seq: u32, ack: u32, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    frame_with_window(port, seq, ack, flags, payload, 65535)
}

/// [`frame`] with the given window field (scaled by 7 after the SYN).
#[allow(dead_code)]
pub fn frame_with_window(
    port: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &[u8],
    window: u16,
) -> Vec<u8> {
    let eth = EthernetRepr {
        src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
        vlan: None,
        ethertype: EtherType::Ipv4,
    };
    let ip = Ipv4Repr {
        src: Ipv4Addr::new(198, 19, 0, 1),
        dst: Ipv4Addr::new(198, 18, 0, 2),
        protocol: IpProtocol::Tcp,
        payload_len: 0,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let opts = if flags.contains(TcpFlags::SYN) {
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            ..TcpOptions::default()
        }
    } else {
        TcpOptions::default()
    };
    let tcp = TcpRepr {
        src_port: port,
        dst_port: PORT,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window,
        urgent: 0,
        options: opts,
        payload,
    };
    let mut buf = vec![0u8; 1600];
    let n = emit_tcp_frame(&mut buf, &eth, &ip, &tcp, &ChecksumCaps::default()).unwrap();
    buf.truncate(n);
    buf
}

/// Opens a connection from each of `ports` through the pipeline (SYN, the
/// engine's SYN-ACK, ACK) and returns each connection's ISS by port. The
/// final ACKs are injected, not waited for: what the engine sends after
/// them (an application's first data) stays in the NIC for the caller.
pub fn handshake(
    nic: &dpu_datapath::pipeline::MemNic,
    pipeline: &dpu_datapath::pipeline::Pipeline,
    ports: &[u16],
) -> std::collections::HashMap<u16, u32> {
    use dpu_datapath::wire::{parse_ingress, L3, L4};
    use std::time::Duration;
    for p in ports {
        nic.inject(0, frame(*p, 1000, 0, TcpFlags::SYN, &[]));
    }
    assert!(pipeline.wait_idle(Duration::from_secs(30)));
    let mut iss = std::collections::HashMap::new();
    for f in nic.take_tx() {
        if let Ok(p) = parse_ingress(&f, &ChecksumCaps::default()) {
            if let L3::Ipv4 { l4: L4::Tcp(t), .. } = p.l3 {
                iss.insert(t.dst_port, t.seq.0);
            }
        }
    }
    for p in ports {
        nic.inject(
            0,
            frame(*p, 1001, iss[p].wrapping_add(1), TcpFlags::ACK, &[]),
        );
    }
    iss
}

/// The next `n` data segments, round-robin over the connections of
/// `ports` (in order within each: `seqs` holds each one's next sequence
/// number and advances), each with the RX queue RSS picks for it.
#[allow(dead_code)]
pub fn data_batch(
    nic: &dpu_datapath::pipeline::MemNic,
    ports: &[u16],
    iss: &std::collections::HashMap<u16, u32>,
    seqs: &mut [u32],
    data: &[u8],
    n: usize,
) -> Vec<(usize, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let c = i % ports.len();
            let f = frame(
                ports[c],
                seqs[c],
                iss[&ports[c]].wrapping_add(1),
                TcpFlags::ACK | TcpFlags::PSH,
                data,
            );
            seqs[c] = seqs[c].wrapping_add(data.len() as u32);
            (nic.rss_queue(&f), f)
        })
        .collect()
}
