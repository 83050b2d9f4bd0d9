//! `control/mod.rs`: which handler the exception path gives a segment that
//! matches no installed flow, and the control plane's own state (RFC 6528
//! ISNs, ephemeral ports, the challenge-ACK limit).

use super::*;
use crate::control::test_util::*;
use crate::wire::{SeqNumber, TcpOptions};

#[test]
fn a_listening_port_ignores_rst_drops_other_segments_without_ack_and_resets_acks() {
    // RFC 9293 3.10.7.2 (LISTEN), no SYN cookie sent lately.
    let mut eng = engine(|_| {});
    eng.listen(PORT, None).unwrap();
    at(&mut eng, 100 * MS);
    let t = tuple(PEER_PORT);
    let mut fin = seg(&t, FIN, 5, 0);
    fin.payload = b"data";
    for s in [
        seg(&t, RST, 5, 0),
        fin,
        seg(&t, RST | ACK, 5, 777),
        seg(&t, ACK, 5, 777),
        seg(&t, SYN | ACK, 5, 888),
    ] {
        exception(&mut eng, &frame(&t, &s));
    }
    let rst = |seq: u32| {
        out(
            &t,
            RST,
            SeqNumber(seq),
            SeqNumber(0),
            0,
            TcpOptions::default(),
        )
    };
    assert_eq!(sent_tcp(&mut eng), vec![rst(777), rst(888)]);
    // The bare RST is for a connection that is gone; FIN+data without ACK
    // is malformed.
    assert_eq!(eng.stats.drops(DropReason::BadFlags), 1);
    assert_eq!(eng.stats.drops(DropReason::NoConnection), 4);
    assert_eq!(eng.stats.syn_cookies_failed, 0);
    assert_eq!(eng.control_counts(), (0, 0));
}

#[test]
fn a_port_nobody_listens_on_resets_everything_but_rst() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    for s in [seg(&t, ACK, 5, 777), seg(&t, FIN, 5, 0), seg(&t, RST, 5, 0)] {
        exception(&mut eng, &frame(&t, &s));
    }
    assert_eq!(
        sent_tcp(&mut eng),
        vec![
            out(
                &t,
                RST,
                SeqNumber(777),
                SeqNumber(0),
                0,
                TcpOptions::default()
            ),
            out(
                &t,
                RST | ACK,
                SeqNumber(0),
                SeqNumber(6),
                0,
                TcpOptions::default()
            ),
        ]
    );
    assert_eq!(eng.stats.drops(DropReason::NoConnection), 3);
}

#[test]
fn a_syn_for_a_tuple_in_a_handshake_goes_to_the_handshake() {
    let mut eng = engine(|_| {});
    eng.listen(PORT, None).unwrap();
    at(&mut eng, 100 * MS);
    let t = tuple(PEER_PORT);
    let syn = frame(&t, &seg(&t, SYN, 1000, 0));
    exception(&mut eng, &syn);
    exception(&mut eng, &syn);
    // The second one is a retransmission: the same SYN-ACK, no second entry.
    let sent = sent_tcp(&mut eng);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1]);
    assert_eq!(eng.control_counts(), (1, 0));
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 1);
}

#[test]
fn the_isn_is_a_keyed_hash_of_the_tuple_plus_a_4_microsecond_clock() {
    let cp = ControlPlane::new(1);
    let t = tuple(PEER_PORT);
    let base = cp.isn(&t, 0);
    assert_eq!(cp.isn(&t, 3999), base);
    assert_eq!(cp.isn(&t, 4000), base.wrapping_add(1));
    assert_eq!(cp.isn(&t, 4 * S), base.wrapping_add(1_000_000));
    assert_ne!(cp.isn(&tuple(PEER_PORT + 1), 0), base);
    // The secret comes from the seed.
    assert_eq!(ControlPlane::new(1).isn(&t, 0), base);
    assert_ne!(ControlPlane::new(2).isn(&t, 0), base);
}

#[test]
fn ephemeral_ports_go_round_49152_to_65535_from_the_last_one_used() {
    let mut cp = ControlPlane::new(1);
    let mut all: Vec<u16> = cp.next_ephemeral_candidate().collect();
    assert!((49152..=65535).contains(&all[0]));
    all.sort_unstable();
    assert_eq!(all, (49152..=65535).collect::<Vec<u16>>());
    cp.commit_ephemeral(65535);
    assert_eq!(cp.next_ephemeral_candidate().next(), Some(49152));
    cp.commit_ephemeral(50000);
    let order: Vec<u16> = cp.next_ephemeral_candidate().collect();
    assert_eq!((order[0], order[16383]), (50001, 50000));
}

#[test]
fn at_most_1000_challenge_acks_go_out_per_second() {
    let mut cp = ControlPlane::new(1);
    let now = 5 * S;
    assert!((0..1000).all(|_| cp.challenge_allowed(now)));
    assert!(!cp.challenge_allowed(now));
    assert!(!cp.challenge_allowed(now + S - 1));
    assert!(cp.challenge_allowed(now + S));
}
