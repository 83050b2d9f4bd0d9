//! ECN (RFC 3168), DCTCP (RFC 8257) and congestion window validation
//! (RFC 7661), written like packetdrill (see `tcp_states.rs`): `<` is what
//! the peer (198.18.0.1) sends, `>` what the engine must send at that
//! moment. `[ect0]` / `[ce]` / `[noect]` give the IP ECN codepoint.
//!
//! The engine runs with `tcp.delayed_ack_us = 0` (one ACK per segment), MSS
//! 1448, initial window 10 segments (14,480 bytes).

mod script;

use dpu_datapath::app::ConnId;
use dpu_datapath::proto::CcAlgorithm;
use dpu_datapath::wire::TcpFlags;
use pipeline_config::CongestionControl;
use script::*;

const MSS: u32 = 1448;
const IW: u32 = 10 * MSS;

fn ecn_script(cc: CongestionControl) -> Script {
    Script::with(|c| {
        c.tcp.ecn = true;
        c.tcp.congestion_control = cc;
    })
}

/// Passive open with an ECN-setup SYN; the SYN-ACK must accept ECN.
fn open_ecn(s: &mut Script) -> ConnId {
    s.listen(None);
    s.at(100);
    // 0.100 < SEW 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN | ECE | CWR).seq(0).win(65535).mss(1460));
    // 0.100 > S.E 0:0(0) ack 1 <mss 1448>   (ECE without CWR: ECN accepted)
    s.expect(seg().flags(SYN | ACK | ECE).seq(0).ack(1));
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    s.expect_none();
    let c = s.accept().expect("accept");
    assert!(s.eng.conn_info(c).unwrap().ecn, "ECN negotiated");
    c
}

fn cwnd(s: &Script, c: ConnId) -> u32 {
    s.eng.conn_info(c).unwrap().cwnd
}

#[test]
fn ecn_setup_syn_is_accepted_and_only_new_data_is_ect0() {
    let mut s = ecn_script(CongestionControl::Reno);
    let c = open_ecn(&mut s);
    // 0.200 write(1000)
    s.send(c, &[7; 1000]);
    // 0.200 > P. 1:1001(1000) ack 1 [ect0]
    s.expect(seg().flags(PSH | ACK).seq(1).len(1000).ecn(ECT0));
    // 0.300 < . 1:11(10) ack 1 [noect]: data from the peer
    s.at(300);
    s.inject(seg().flags(ACK).seq(1).ack(1).len(10));
    // 0.300 > . 1001:1001(0) ack 11 [noect]   (pure ACKs are never ECT)
    s.expect(seg().flags(ACK).seq(1001).ack(11).len(0).ecn(NOT_ECT));
    // 0.500: the RTO (300 ms after the 100 ms handshake) fires: the
    // retransmission is not ECT (RFC 3168 6.1.5).
    s.at(500);
    let rtx = s.expect(seg().flags(PSH | ACK).seq(1).len(1000));
    assert_eq!(rtx.ecn, NOT_ECT, "retransmission sent as ECT");
}

#[test]
fn no_ecn_unless_both_ends_ask() {
    // ECN off here: an ECN-setup SYN gets a plain SYN-ACK.
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    s.inject(seg().flags(SYN | ECE | CWR).seq(0).win(65535).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    let c = s.accept().expect("accept");
    assert!(!s.eng.conn_info(c).unwrap().ecn);
    s.send(c, &[1; 100]);
    s.expect(seg().flags(PSH | ACK).len(100).ecn(NOT_ECT));

    // ECN on here, but the peer's SYN does not ask.
    let mut s = ecn_script(CongestionControl::Reno);
    s.listen(None);
    s.at(100);
    s.inject(seg().flags(SYN).seq(0).win(65535).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    let c = s.accept().expect("accept");
    assert!(!s.eng.conn_info(c).unwrap().ecn);
    s.send(c, &[1; 100]);
    s.expect(seg().flags(PSH | ACK).len(100).ecn(NOT_ECT));
}

#[test]
fn active_open_asks_for_ecn_and_needs_a_proper_syn_ack() {
    for (answer, negotiated) in [(SYN | ACK | ECE, true), (SYN | ACK | ECE | CWR, false)] {
        let mut s = ecn_script(CongestionControl::Reno);
        let c = s.connect();
        s.expect_arp_request();
        s.inject_arp_reply();
        // 0.000 > SEW 0:0(0)   (an ECN-setup SYN: ECE and CWR)
        s.expect(seg().flags(SYN | ECE | CWR).seq(0));
        s.at(50);
        // 0.050 < S.E 0:0(0) ack 1: ECN accepted (with CWR too: not a valid answer)
        s.inject(seg().flags(answer).seq(0).ack(1).win(65535).mss(1460));
        s.expect(seg().flags(ACK).seq(1).ack(1));
        assert_eq!(s.eng.conn_info(c).unwrap().ecn, negotiated, "{answer:?}");
        s.send(c, &[3; 10]);
        let want = if negotiated { ECT0 } else { NOT_ECT };
        s.expect(seg().flags(PSH | ACK).len(10).ecn(want));
    }
}

#[test]
fn ce_is_echoed_with_ece_until_the_senders_cwr() {
    let mut s = ecn_script(CongestionControl::Reno);
    let _c = open_ecn(&mut s);
    s.at(300);
    // 0.300 < . 1:101(100) ack 1 [ce]
    s.inject(seg().flags(ACK).seq(1).ack(1).len(100).ecn(CE));
    // 0.300 > .E 1:1(0) ack 101
    s.expect(seg().flags(ACK | ECE).ack(101));
    // 0.310 < . 101:201(100) ack 1 [ect0]: the echo goes on ...
    s.at(310);
    s.inject(seg().flags(ACK).seq(101).ack(1).len(100).ecn(ECT0));
    s.expect(seg().flags(ACK | ECE).ack(201));
    // 0.320 < .W 201:301(100) ack 1: ... until the sender's CWR.
    s.at(320);
    s.inject(seg().flags(ACK | CWR).seq(201).ack(1).len(100).ecn(ECT0));
    s.expect(seg().flags(ACK).ack(301));
}

/// Sends `n` full segments (the window allows 10 at first).
fn send_segments(s: &mut Script, c: ConnId, n: usize) {
    assert_eq!(s.send(c, &vec![9u8; n * MSS as usize]), n * MSS as usize);
}

#[test]
fn ece_halves_the_window_once_per_window_and_the_next_data_carries_cwr() {
    let mut s = ecn_script(CongestionControl::Reno);
    let c = open_ecn(&mut s);
    send_segments(&mut s, c, 30);
    for i in 0..10 {
        s.expect(
            seg()
                .flags(ACK)
                .seq(1 + i * MSS)
                .len(MSS as usize)
                .ecn(ECT0),
        );
    }
    s.expect_none();
    assert_eq!(cwnd(&s, c), IW);
    // 0.300 < .E 1:1(0) ack 1449: the first segment was CE-marked on the way.
    s.at(300);
    s.inject(seg().flags(ACK | ECE).seq(1).ack(1 + MSS));
    assert_eq!(cwnd(&s, c), IW / 2, "halved, not grown");
    // 9 segments are still out and the window is 5: nothing new goes.
    s.expect_none();
    // 0.301 < .E ack 2897: a second ECE in the same window changes nothing.
    s.at(301);
    s.inject(seg().flags(ACK | ECE).seq(1).ack(1 + 2 * MSS));
    assert_eq!(cwnd(&s, c), IW / 2);
    s.expect_none();
    // Up to segment 6 acknowledged: 4 out, room for one new segment, with CWR.
    s.at(302);
    s.inject(seg().flags(ACK).seq(1).ack(1 + 6 * MSS));
    let first = s.expect(seg().seq(1 + 10 * MSS).len(MSS as usize).ecn(ECT0));
    assert!(
        first.flags.contains(CWR),
        "first new data after the cut: {first}"
    );
    // Everything acknowledged: the next segments carry no CWR.
    s.at(303);
    s.inject(seg().flags(ACK).seq(1).ack(1 + 11 * MSS));
    let next = s.expect(seg().seq(1 + 11 * MSS).len(MSS as usize));
    assert!(!next.flags.contains(CWR), "{next}");
}

#[test]
fn dctcp_cuts_by_half_of_alpha_and_alpha_follows_the_marked_fraction() {
    let mut s = ecn_script(CongestionControl::Dctcp);
    let c = open_ecn(&mut s);
    assert_eq!(s.eng.conn_info(c).unwrap().dctcp_alpha, u16::MAX);
    // Many windows without marks: alpha decays from 1 towards 0.
    let mut acked = 1u32;
    let mut t = 300;
    send_segments(&mut s, c, 160);
    for _ in 0..150 {
        s.at(t);
        t += 1;
        acked += MSS;
        s.inject(seg().flags(ACK).seq(1).ack(acked));
        s.discard_all();
    }
    // The window doubled about four times: alpha decayed by about
    // (15/16)^3 (one step of the moving average per window).
    let info = s.eng.conn_info(c).unwrap();
    let alpha = info.dctcp_alpha;
    assert!(
        (40_000..60_000).contains(&alpha),
        "alpha after 150 unmarked segments: {alpha}"
    );
    // One ECE now: the window loses alpha / 2, not half.
    let before = info.cwnd;
    s.at(t);
    acked += MSS;
    s.inject(seg().flags(ACK | ECE).seq(1).ack(acked));
    let info = s.eng.conn_info(c).unwrap();
    // The marked ACK moved alpha up first (one step), then the cut used it.
    assert!(info.dctcp_alpha > alpha);
    let cut = ((u64::from(before) * u64::from(info.dctcp_alpha)) >> 17) as u32;
    assert_eq!(info.cwnd, before - cut, "cwnd {before} -> {}", info.cwnd);
    assert!(
        info.cwnd > before / 2 + before / 10,
        "{before} -> {}",
        info.cwnd
    );
}

#[test]
fn dctcp_receiver_echoes_exactly_the_ce_state_of_the_last_segment() {
    let mut s = ecn_script(CongestionControl::Dctcp);
    let _c = open_ecn(&mut s);
    s.at(300);
    s.inject(seg().flags(ACK).seq(1).ack(1).len(100).ecn(CE));
    s.expect(seg().flags(ACK | ECE).ack(101));
    s.inject(seg().flags(ACK).seq(101).ack(1).len(100).ecn(CE));
    s.expect(seg().flags(ACK | ECE).ack(201));
    // No CWR needed: the first unmarked segment ends the echo.
    s.inject(seg().flags(ACK).seq(201).ack(1).len(100).ecn(ECT0));
    s.expect(seg().flags(ACK).ack(301));
}

/// RFC 8257 3.2: when the CE state changes while an ACK is being delayed,
/// the delayed segments are acknowledged first with their own state, then
/// the new segment at once with the new one: the sender can count exactly
/// which bytes were marked.
#[test]
fn dctcp_receiver_acknowledges_delayed_segments_with_their_own_ce_state() {
    let mut s = Script::with(|c| {
        c.tcp.ecn = true;
        c.tcp.congestion_control = CongestionControl::Dctcp;
        c.tcp.delayed_ack_us = 40_000;
    });
    let _c = open_ecn(&mut s);
    s.at(300);
    // One unmarked segment: its ACK is delayed.
    s.inject(seg().flags(ACK).seq(1).ack(1).len(100).ecn(ECT0));
    s.expect_none();
    // A marked one: first the delayed ACK without ECE, then ECE at once.
    s.inject(seg().flags(ACK).seq(101).ack(1).len(100).ecn(CE));
    s.expect(seg().flags(ACK).ack(101));
    s.expect(seg().flags(ACK | ECE).ack(201));
    // One more marked: delayed again (no change), then unmarked with a
    // delayed ACK pending: ECE for the marked one, then no ECE.
    s.inject(seg().flags(ACK).seq(201).ack(1).len(100).ecn(CE));
    s.expect_none();
    s.inject(seg().flags(ACK).seq(301).ack(1).len(100).ecn(ECT0));
    s.expect(seg().flags(ACK | ECE).ack(301));
    s.expect(seg().flags(ACK).ack(401));
}

#[test]
fn dctcp_rate_negotiates_ecn_echoes_as_dctcp_and_paces() {
    let mut s = Script::with(|c| {
        assert!(!c.tcp.ecn);
        c.tcp
            .congestion_control_by_port
            .insert(SERVER_PORT, CongestionControl::DctcpRate);
    });
    let c = open_ecn(&mut s);
    assert_eq!(s.eng.congestion_control(c), Some(CcAlgorithm::DctcpRate));
    s.at(300);
    // DCTCP's receiver rule: the first unmarked segment ends the echo.
    assert!(!echo_after_ce_then_ect0(&mut s, 1).contains(ECE));
    // A rate from the start (tcp.rate_control.initial_rate_mbps).
    let info = s.eng.conn_info(c).unwrap();
    assert_eq!(info.pacing_rate_bps, Some(10_000_000));
}

#[test]
fn the_window_of_a_connection_that_only_receives_does_not_grow() {
    let mut s = ecn_script(CongestionControl::Reno);
    let c = open_ecn(&mut s);
    let mut seq = 1u32;
    for i in 0..500u64 {
        s.at(300 + i);
        s.inject(seg().flags(ACK).seq(seq).ack(1).len(MSS as usize));
        seq += MSS;
        s.discard_all();
        let _ = s.recv(c, MSS as usize);
    }
    assert_eq!(
        cwnd(&s, c),
        IW,
        "nothing was sent: the window was never used"
    );
}

#[test]
fn an_application_limited_sender_keeps_its_window_and_restarts_after_idle() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    s.inject(seg().flags(SYN).seq(0).win(65535).mss(1460));
    s.expect(seg().flags(SYN | ACK));
    s.at(200);
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    let c = s.accept().unwrap();
    // One small request at a time, each acknowledged: 200 round trips.
    let mut acked = 1u32;
    for i in 0..200u64 {
        s.at(300 + i * 2);
        s.send(c, &[5; 100]);
        s.expect(seg().seq(acked).len(100));
        acked += 100;
        s.at(301 + i * 2);
        s.inject(seg().flags(ACK).seq(1).ack(acked).win(65535));
    }
    assert_eq!(
        cwnd(&s, c),
        IW,
        "one segment in flight never grew the window"
    );

    // Fill the window for real: it grows in slow start ...
    send_segments(&mut s, c, 60);
    let mut t = 800;
    for _ in 0..60 {
        if s.discard_all() == 0 {
            break;
        }
        s.at(t);
        t += 1;
        acked = s
            .eng
            .conn_info(c)
            .unwrap()
            .snd_nxt
            .0
            .wrapping_sub(s.iss.unwrap().0);
        s.inject(seg().flags(ACK).seq(1).ack(acked).win(65535));
    }
    let grown = cwnd(&s, c);
    assert!(grown > IW, "a used window grows: {grown}");
    // ... and after an idle period longer than the RTO (300 ms here) new
    // data starts from the initial window again (RFC 5681 4.1).
    s.at(t + 2_000);
    send_segments(&mut s, c, 30);
    assert_eq!(s.discard_all(), 10, "a burst of the initial window only");
    assert_eq!(cwnd(&s, c), IW);
}

// ---------------------------------------------------------------------
// The controller per connection: by listening port in the configuration,
// by the application for its listener or connection. A DCTCP connection
// negotiates ECN whatever tcp.ecn says (as Linux's DCTCP).
// ---------------------------------------------------------------------

/// The receiver's echo rule tells the controllers apart: DCTCP echoes the
/// CE state of the last segment only, RFC 3168 keeps ECE until CWR.
fn echo_after_ce_then_ect0(s: &mut Script, seq: u32) -> TcpFlags {
    s.inject(seg().flags(ACK).seq(seq).ack(1).len(100).ecn(CE));
    s.expect(seg().flags(ACK | ECE).ack(seq + 100));
    s.inject(seg().flags(ACK).seq(seq + 100).ack(1).len(100).ecn(ECT0));
    s.expect(seg().ack(seq + 200)).flags
}

#[test]
fn a_port_configured_for_dctcp_negotiates_ecn_with_tcp_ecn_off() {
    let mut s = Script::with(|c| {
        assert!(!c.tcp.ecn);
        c.tcp
            .congestion_control_by_port
            .insert(SERVER_PORT, CongestionControl::Dctcp);
    });
    let c = open_ecn(&mut s);
    assert_eq!(s.eng.congestion_control(c), Some(CcAlgorithm::Dctcp));
    s.at(300);
    assert!(!echo_after_ce_then_ect0(&mut s, 1).contains(ECE));
    // Another port keeps the default (NewReno, no ECN: a plain SYN-ACK).
    let mut s = Script::with(|c| {
        c.tcp
            .congestion_control_by_port
            .insert(SERVER_PORT + 1, CongestionControl::Dctcp);
    });
    s.listen(None);
    s.inject(seg().flags(SYN | ECE | CWR).seq(0).win(65535).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
}

#[test]
fn an_application_chooses_the_controller_of_its_listener_and_connections() {
    let mut s = Script::new();
    s.listen(None);
    s.eng
        .set_listener_cc(SERVER_PORT, CcAlgorithm::Dctcp)
        .unwrap();
    s.at(100);
    s.inject(seg().flags(SYN | ECE | CWR).seq(0).win(65535).mss(1460));
    s.expect(seg().flags(SYN | ACK | ECE).seq(0).ack(1));
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    let c = s.accept().expect("accept");
    assert_eq!(s.eng.congestion_control(c), Some(CcAlgorithm::Dctcp));
    assert!(s.eng.conn_info(c).unwrap().ecn);
    s.at(300);
    assert!(!echo_after_ce_then_ect0(&mut s, 1).contains(ECE));
    // Back to NewReno on the open connection: ECN stays negotiated, the
    // echo now lasts until the sender's CWR.
    s.eng.set_congestion_control(c, CcAlgorithm::Reno).unwrap();
    assert_eq!(s.eng.congestion_control(c), Some(CcAlgorithm::Reno));
    assert!(echo_after_ce_then_ect0(&mut s, 201).contains(ECE));
    assert!(s
        .eng
        .set_listener_cc(SERVER_PORT + 1, CcAlgorithm::Dctcp)
        .is_err());
}

#[test]
fn connect_with_dctcp_sends_an_ecn_setup_syn_with_tcp_ecn_off() {
    let mut s = Script::new();
    let c = s.connect_with_cc(Some(CcAlgorithm::Dctcp));
    assert_eq!(s.eng.congestion_control(c), Some(CcAlgorithm::Dctcp));
    s.expect_arp_request();
    s.inject_arp_reply();
    s.expect(seg().flags(SYN | ECE | CWR).seq(0));
    s.at(50);
    s.inject(
        seg()
            .flags(SYN | ACK | ECE)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1460),
    );
    s.expect(seg().flags(ACK).seq(1).ack(1));
    let info = s.eng.conn_info(c).unwrap();
    assert!(info.ecn);
    s.send(c, &[3; 10]);
    s.expect(seg().flags(PSH | ACK).len(10).ecn(ECT0));
    // The default connect stays NewReno without ECN.
    let mut s = Script::new();
    let c = s.connect();
    assert_eq!(s.eng.congestion_control(c), Some(CcAlgorithm::Reno));
    s.expect_arp_request();
    s.inject_arp_reply();
    s.expect(seg().flags(SYN).seq(0));
}
