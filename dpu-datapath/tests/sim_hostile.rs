//! Hostile input while a transfer runs: every malformed or forged frame is
//! dropped or answered per the RFCs and counted under its reason, and the
//! transfer still completes with the right hash.

mod common;

use common::*;
use dpu_datapath::engine::ConnInfo;
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::LinkParams;
use dpu_datapath::stats::DropReason;
use dpu_datapath::wire::{
    emit_tcp_frame, tcp_checksum, ChecksumCaps, EtherType, EthernetAddress, EthernetRepr,
    IpProtocol, Ipv4Repr, SeqNumber, TcpFlags, TcpOptions, TcpRepr,
};

const ETH: usize = 14;
const IP: usize = 20;

/// A segment "from A" (spoofed by an off-path attacker) to B's connection.
fn forged(
    info: &ConnInfo,
    seq: SeqNumber,
    ack: SeqNumber,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let t = info.tuple;
    let eth = EthernetRepr {
        src: EthernetAddress([2, 0, 0xc6, 0x12, 0, 1]),
        dst: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
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
    let tcp = TcpRepr {
        src_port: t.remote_port,
        dst_port: t.local_port,
        seq,
        ack,
        flags,
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
        payload,
    };
    let mut buf = vec![0u8; 1600];
    let n = emit_tcp_frame(&mut buf, &eth, &ip, &tcp, &ChecksumCaps::default()).unwrap();
    buf.truncate(n);
    buf
}

/// Recomputes the TCP checksum after a deliberate header mutation.
fn refill_tcp_checksum(frame: &mut [u8], info: &ConnInfo) {
    frame[ETH + IP + 16] = 0;
    frame[ETH + IP + 17] = 0;
    let c = tcp_checksum(
        info.tuple.remote_ip,
        info.tuple.local_ip,
        &frame[ETH + IP..],
    );
    frame[ETH + IP + 16..ETH + IP + 18].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn hostile_frames_are_dropped_and_counted_while_a_transfer_completes() {
    const SIZE: u64 = 4 * 1024 * 1024;
    let mut sim = pair(LinkParams::default(), 21);
    let (ca, cb) = connect(&mut sim);
    let mut tx = StreamSender::new(5, SIZE);
    let mut rx = StreamReceiver::default();
    let mut round = 0u32;
    let mut expected: Vec<(DropReason, u64)> = Vec::new();
    let count = |r: DropReason, expected: &mut Vec<(DropReason, u64)>| match expected
        .iter_mut()
        .find(|e| e.0 == r)
    {
        Some(e) => e.1 += 1,
        None => expected.push((r, 1)),
    };
    let ok = sim.run_until(30 * SEC, |s| {
        tx.pump(&mut s.a, ca);
        rx.pump(&mut s.b, cb);
        round += 1;
        if round.is_multiple_of(50) && round < 50 * 200 {
            let info = s.b.conn_info(cb).unwrap();
            let (una, nxt, rcv) = (info.snd_una, info.snd_nxt, info.rcv_nxt);
            let good = forged(&info, rcv, una, TcpFlags::ACK, b"hostile!");
            let mut frames: Vec<(Vec<u8>, DropReason)> = Vec::new();
            frames.push((good[..10].to_vec(), DropReason::EthTruncated));
            frames.push((good[..ETH + 12].to_vec(), DropReason::IpTruncated));
            let mut f = good.clone();
            f[ETH + 10] ^= 0xff;
            frames.push((f, DropReason::IpBadChecksum));
            let mut f = good.clone();
            let last = f.len() - 1;
            f[last] ^= 0x01;
            frames.push((f, DropReason::TcpBadChecksum));
            let mut f = good.clone();
            f[ETH + IP + 12] = 4 << 4; // data offset 4 words
            refill_tcp_checksum(&mut f, &info);
            frames.push((f, DropReason::TcpBadDataOffset));
            let mut f = good.clone();
            f[ETH + IP + 12] = 15 << 4; // 60-byte header past the end
            refill_tcp_checksum(&mut f, &info);
            frames.push((f, DropReason::TcpBadDataOffset));
            let mut f = good.clone();
            f[ETH + IP + 12] = 6 << 4; // one option word: MSS claiming 40 bytes
            f[ETH + IP + 20..ETH + IP + 24].copy_from_slice(&[2, 40, 5, 0xb4]);
            refill_tcp_checksum(&mut f, &info);
            frames.push((f, DropReason::TcpBadOptions));
            let mut f = good.clone();
            f[ETH + 6] = 0x20; // more fragments
            let c = dpu_datapath::wire::checksum::data(&{
                let mut h = f[ETH..ETH + IP].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            });
            f[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
            frames.push((f, DropReason::IpFragment));
            frames.push((
                forged(&info, rcv, una, TcpFlags::SYN | TcpFlags::FIN, &[]),
                DropReason::BadFlags,
            ));
            frames.push((
                forged(&info, rcv, una, TcpFlags::SYN | TcpFlags::RST, &[]),
                DropReason::BadFlags,
            ));
            frames.push((
                forged(&info, rcv + (1u32 << 30), una, TcpFlags::ACK, b"blind data"),
                DropReason::OutOfWindow,
            ));
            frames.push((
                forged(&info, rcv, nxt + (1u32 << 20), TcpFlags::ACK, &[]),
                DropReason::AckUnsent,
            ));
            frames.push((
                forged(&info, rcv + (1u32 << 30), SeqNumber(0), TcpFlags::RST, &[]),
                DropReason::RstOutOfWindow,
            ));
            frames.push((
                forged(&info, rcv + 100u32, SeqNumber(0), TcpFlags::RST, &[]),
                DropReason::RstChallenged,
            ));
            frames.push((
                forged(&info, rcv + 7u32, SeqNumber(0), TcpFlags::SYN, &[]),
                DropReason::SynChallenged,
            ));
            for (f, reason) in frames {
                s.b.receive(&f, s.now);
                count(reason, &mut expected);
            }
        }
        rx.eof() && tx.done()
    });
    assert!(ok, "transfer did not complete under attack");
    assert_eq!(rx.received(), SIZE);
    assert_eq!(rx.digest(), tx.digest());
    assert_eq!(
        expected.len(),
        13,
        "every kind of hostile frame was injected"
    );
    assert!(
        expected.iter().all(|e| e.1 >= 20),
        "injected during the transfer: {expected:?}"
    );
    for (reason, n) in &expected {
        assert_eq!(
            sim.b.stats().drops(*reason),
            *n,
            "drop counter {} (all: {:?})",
            reason.as_str(),
            sim.b.stats().drop_breakdown()
        );
    }
    assert!(sim.b.stats().challenge_acks > 0);
    assert_eq!(sim.b.stats().connections_reset, 0);
}
