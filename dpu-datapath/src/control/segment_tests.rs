//! Resets for segments that match nothing (RFC 9293 3.10.7.1), and the
//! headers of every control segment (`send_segment`).

use super::*;
use crate::control::test_util::*;

fn rst(t: &FourTuple, flags: TcpFlags, seq: u32, ack: u32) -> Out {
    out(
        t,
        flags,
        SeqNumber(seq),
        SeqNumber(ack),
        0,
        TcpOptions::default(),
    )
}

#[test]
fn a_segment_with_ack_is_reset_from_its_acknowledgment_number() {
    // <SEQ=SEG.ACK><CTL=RST>, whatever it carries.
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let mut data = seg(&t, ACK | TcpFlags::PSH | FIN, 1000, 4242);
    data.payload = b"data";
    eng.reset_unknown(t, PEER_MAC, &data);
    eng.reset_unknown(t, PEER_MAC, &seg(&t, SYN | ACK, 1000, 0));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![rst(&t, RST, 4242, 0), rst(&t, RST, 0, 0)]
    );
    assert_eq!(eng.stats.rst_sent, 2);
}

#[test]
fn a_segment_without_ack_is_reset_and_acknowledged_to_its_end() {
    // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>: SYN and FIN count one each.
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let cases: [(TcpFlags, u32, &[u8], u32); 5] = [
        (SYN, 1000, b"", 1001),
        (FIN | TcpFlags::PSH, 5, b"0123456789", 16),
        (TcpFlags::empty(), 7, b"abc", 10),
        (SYN | FIN, 100, b"", 102),
        (SYN, u32::MAX, b"", 0),
    ];
    for (flags, seq, payload, _) in cases {
        let mut s = seg(&t, flags, seq, 0);
        s.payload = payload;
        eng.reset_unknown(t, PEER_MAC, &s);
    }
    let want: Vec<Out> = cases
        .iter()
        .map(|&(_, _, _, ack)| rst(&t, RST | ACK, 0, ack))
        .collect();
    assert_eq!(sent_tcp(&mut eng), want);
    assert_eq!(eng.stats.rst_sent, 5);
}

#[test]
fn a_rst_is_never_answered() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    eng.reset_unknown(t, PEER_MAC, &seg(&t, RST, 1000, 0));
    eng.reset_unknown(t, PEER_MAC, &seg(&t, RST | ACK, 1000, 77));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.rst_sent, 0);
}

#[test]
fn control_segments_go_to_the_given_mac_with_ttl_64_and_df() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let other = EthernetAddress([0x02, 0, 0, 0, 0, 0x33]);
    let options = opts(Some(1448), Some(3), true, Some((1, 2)));
    eng.send_segment(
        &t,
        other,
        SeqNumber(10),
        SeqNumber(20),
        SYN | ACK,
        1234,
        options,
    );
    let want = Out {
        eth_dst: other,
        ..out(&t, SYN | ACK, SeqNumber(10), SeqNumber(20), 1234, options)
    };
    assert_eq!(sent_tcp(&mut eng), vec![want]);
    // Only RSTs count as resets sent.
    assert_eq!((eng.stats.rst_sent, eng.stats.tx_frames), (0, 1));
}
