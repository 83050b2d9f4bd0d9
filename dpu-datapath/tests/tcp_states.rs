//! Per-state TCP conformance scripts (RFC 9293, 5961, 7323, 6298), written
//! like packetdrill: each line is commented with its packetdrill equivalent,
//! `<` for what the peer (198.18.0.1) sends, `>` for what the engine
//! (198.18.0.2) must send at that very moment.
//!
//! Unless a test says otherwise the engine runs the default configuration
//! with `tcp.delayed_ack_us = 0` (one ACK per segment): MSS 1448, 256 KiB
//! buffers (window scale 3), initial RTO 1 s, minimum RTO 200 ms.
//!
//! Tests that show an engine bug assert the RFC behaviour and are

mod script;

use dpu_datapath::app::ConnError;
use dpu_datapath::engine::ApiError;
use dpu_datapath::proto::TcpState::{self, *};
use dpu_datapath::stats::DropReason;
use pipeline_config::SynCookies;
use script::*;

/// `n` recognisable bytes.
fn bytes(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn st(s: &Script, c: dpu_datapath::app::ConnId) -> TcpState {
    s.state(c).expect("live handle")
}

// ----------------------------------------------------------------------
// Handshake prologues shared by the per-state sections
// ----------------------------------------------------------------------

/// Passive open; the peer offers only MSS 1460: no window scaling, SACK or
/// timestamps. The 100 ms handshake RTT gives RTO = 100 + 4 * 50 = 300 ms.
fn open_plain(s: &mut Script) -> dpu_datapath::app::ConnId {
    // 0.000 socket(...) / bind(8080) / listen()
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).win(65535).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1448)
            .no_ws()
            .no_sack_perm()
            .no_ts(),
    );
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    s.expect_none();
    // 0.200 accept()
    let c = s.accept().expect("accept");
    assert_eq!(st(s, c), Established);
    c
}

/// Passive open with SACK permitted (no timestamps, no window scaling).
fn open_sack(s: &mut Script) -> dpu_datapath::app::ConnId {
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460,sackOK>
    s.inject(seg().flags(SYN).seq(0).win(65535).mss(1460).sack_perm());
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448,sackOK>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .mss(1448)
            .sack_perm()
            .no_ws()
            .no_ts(),
    );
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    s.accept().expect("accept")
}

/// Passive open with every option: TS.Recent is 1100 afterwards, our
/// windows are scaled by 3, the peer's by 7, MSS 1448 - 12 = 1436.
fn open_full(s: &mut Script) -> dpu_datapath::app::ConnId {
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1000 ecr 0,nop,wscale 7>
    s.inject(
        seg()
            .flags(SYN)
            .seq(0)
            .win(65535)
            .mss(1460)
            .sack_perm()
            .ts(1000, 0)
            .ws(7),
    );
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448,sackOK,TS val 100 ecr 1000,wscale 3>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1448)
            .sack_perm()
            .ts(100, 1000)
            .ws(3),
    );
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 512 <nop,nop,TS val 1100 ecr 100>
    s.inject(seg().flags(ACK).seq(1).ack(1).win(512).ts(1100, 100));
    s.expect_none();
    s.accept().expect("accept")
}

/// Active open up to the SYN (ARP resolution first).
fn syn_sent(s: &mut Script) -> dpu_datapath::app::ConnId {
    s.at(100);
    // 0.100 connect(198.18.0.1:8080)
    let c = s.connect();
    // 0.100 > ARP who-has 198.18.0.1 tell 198.18.0.2
    s.expect_arp_request();
    assert_eq!(st(s, c), SynSent);
    // 0.100 < ARP 198.18.0.1 is-at 02:00:c6:12:00:01
    s.inject_arp_reply();
    // 0.100 > S 0:0(0) win 65535 <mss 1448,sackOK,TS val 100 ecr 0,wscale 3>
    s.expect(
        seg()
            .flags(SYN)
            .seq(0)
            .win(65535)
            .mss(1448)
            .sack_perm()
            .ts(100, 0)
            .ws(3)
            .len(0),
    );
    assert_eq!(st(s, c), SynSent);
    c
}

/// Passive open up to our SYN-ACK (peer offers MSS only).
fn syn_rcvd(s: &mut Script) {
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).win(65535).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).win(65535).mss(1448));
    assert_eq!(s.control_counts(), (1, 0));
}

/// `open_plain`, then our FIN at 0.300.
fn fin_wait_1(s: &mut Script) -> dpu_datapath::app::ConnId {
    let c = open_plain(s);
    s.at(300);
    // 0.300 shutdown(SHUT_WR)
    s.shutdown_write(c);
    // 0.300 > F. 1:1(0) ack 1 win 65535
    s.expect(seg().flags(FIN | ACK).seq(1).ack(1).win(65535).len(0));
    assert_eq!(st(s, c), FinWait1);
    c
}

/// `fin_wait_1`, then the peer ACKs our FIN at 0.400.
fn fin_wait_2(s: &mut Script) -> dpu_datapath::app::ConnId {
    let c = fin_wait_1(s);
    s.at(400);
    // 0.400 < . 1:1(0) ack 2 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(2));
    s.expect_none();
    assert_eq!(st(s, c), FinWait2);
    c
}

/// `fin_wait_2`, then the peer's FIN at 0.500: TIME-WAIT.
fn time_wait(s: &mut Script) -> dpu_datapath::app::ConnId {
    let c = fin_wait_2(s);
    s.at(500);
    // 0.500 < F. 1:1(0) ack 2 win 65535
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2));
    // 0.500 > . 2:2(0) ack 2
    s.expect(seg().flags(ACK).seq(2).ack(2).len(0));
    // TIME-WAIT lives in the control plane; the data path forgot the flow.
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.control_counts(), (0, 1));
    c
}

/// `open_plain`, 10 bytes then the peer's FIN at 0.300: CLOSE-WAIT.
fn close_wait(s: &mut Script) -> dpu_datapath::app::ConnId {
    let c = open_plain(s);
    s.at(300);
    // 0.300 < P. 1:11(10) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(b"0123456789"));
    // 0.300 > . 1:1(0) ack 11
    s.expect(seg().flags(ACK).seq(1).ack(11).len(0));
    // 0.300 < F. 11:11(0) ack 1 win 65535
    s.inject(seg().flags(FIN | ACK).seq(11).ack(1));
    // 0.300 > . 1:1(0) ack 12
    s.expect(seg().flags(ACK).seq(1).ack(12).len(0));
    assert_eq!(st(s, c), CloseWait);
    c
}

/// `close_wait`, then our FIN at 0.400: LAST-ACK.
fn last_ack(s: &mut Script) -> dpu_datapath::app::ConnId {
    let c = close_wait(s);
    s.at(400);
    // 0.400 shutdown(SHUT_WR)
    s.shutdown_write(c);
    // 0.400 > F. 1:1(0) ack 12
    s.expect(seg().flags(FIN | ACK).seq(1).ack(12).len(0));
    assert_eq!(st(s, c), LastAck);
    c
}

// ======================================================================
// LISTEN (and CLOSED ports)
// ======================================================================

#[test]
fn listen_syn_with_all_options_gets_syn_ack_with_all_options() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1000 ecr 0,nop,wscale 7>
    s.inject(
        seg()
            .flags(SYN)
            .seq(0)
            .win(65535)
            .mss(1460)
            .sack_perm()
            .ts(1000, 0)
            .ws(7),
    );
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448,sackOK,TS val 100 ecr 1000,wscale 3>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1448)
            .sack_perm()
            .ts(100, 1000)
            .ws(3)
            .len(0),
    );
    s.expect_none();
    assert_eq!(s.control_counts(), (1, 0));
    assert_eq!(s.accept(), None);
}

#[test]
fn listen_syn_without_options_gets_mss_only_and_peer_mss_defaults_to_536() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535
    s.inject(seg().flags(SYN).seq(0).win(65535));
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1448)
            .no_ws()
            .no_sack_perm()
            .no_ts(),
    );
    // 0.100 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1));
    let c = s.accept().expect("accept");
    s.at(200);
    // 0.200 write(1000)   -- RFC 9293 3.7.1: no MSS option means 536
    s.send(c, &bytes(1000, 1));
    // 0.200 > . 1:537(536) ack 1 win 65535
    s.expect(seg().flags(ACK).seq(1).ack(1).len(536).no_opts());
    // 0.200 > P. 537:1001(464) ack 1 win 65535
    s.expect(seg().flags(PSH | ACK).seq(537).ack(1).len(464));
}

#[test]
fn listen_syn_ack_options_only_those_offered() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1400,sackOK,TS val 1000 ecr 0>
    s.inject(
        seg()
            .flags(SYN)
            .seq(0)
            .win(65535)
            .mss(1400)
            .sack_perm()
            .ts(1000, 0),
    );
    // 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1448,sackOK,TS val 100 ecr 1000>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1448)
            .sack_perm()
            .ts(100, 1000)
            .no_ws(),
    );
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 1100 ecr 100>
    s.inject(seg().flags(ACK).seq(1).ack(1).ts(1100, 100));
    let c = s.accept().expect("accept");
    // 0.200 write(2000)
    s.send(c, &bytes(2000, 2));
    // No window scaling: the window field is the unscaled 65535 (RFC 7323 2.2).
    // Payload per segment: 1400 - 12 bytes of timestamp option.
    // 0.200 > . 1:1389(1388) ack 1 win 65535 <nop,nop,TS val 200 ecr 1100>
    s.expect(
        seg()
            .flags(ACK)
            .seq(1)
            .ack(1)
            .win(65535)
            .len(1388)
            .ts(200, 1100),
    );
    // 0.200 > P. 1389:2001(612) ack 1 win 65535 <nop,nop,TS val 200 ecr 1100>
    s.expect(
        seg()
            .flags(PSH | ACK)
            .seq(1389)
            .ack(1)
            .len(612)
            .ts(200, 1100),
    );
}

#[test]
fn listen_ack_gets_rst_with_seq_from_ack() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < . 0:0(0) ack 12345 win 65535
    s.inject(seg().flags(ACK).seq(0).ack(12345).abs());
    // 0.100 > R 12345:12345(0)                  -- RFC 9293 3.10.7.2: <SEQ=SEG.ACK><CTL=RST>
    s.expect(seg().flags(RST).seq(12345).abs().len(0).no_opts());
    // 0.100 < P. 7:17(10) ack 777 win 65535
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(DEFAULT_PEER_ISN + 7)
            .ack(777)
            .abs()
            .len(10),
    );
    // 0.100 > R 777:777(0)
    s.expect(seg().flags(RST).seq(777).abs().len(0));
    s.expect_none();
    assert_eq!(s.control_counts(), (0, 0));
}

#[test]
fn listen_syn_ack_gets_rst_with_seq_from_ack() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < S. 0:0(0) ack 5555 win 65535 <mss 1460>
    s.inject(seg().flags(SYN | ACK).seq(0).ack(5555).abs().mss(1460));
    // 0.100 > R 5555:5555(0)
    s.expect(seg().flags(RST).seq(5555).abs().len(0));
    assert_eq!(s.control_counts(), (0, 0));
}

#[test]
fn listen_rst_is_ignored() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < R 0:0(0) win 0
    s.inject(seg().flags(RST).seq(0).win(0));
    // 0.100 < R. 0:0(0) ack 1 win 0
    s.inject(seg().flags(RST | ACK).seq(0).ack(1).abs().win(0));
    s.expect_none();
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.eng.stats().rst_sent, 0);
}

#[test]
fn listen_segment_without_ack_or_syn_is_dropped() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < F 0:0(0) win 65535      -- RFC 9293 3.10.7.2 LISTEN, "fourth": drop, return
    s.inject(seg().flags(FIN).seq(0));
    s.expect_none();
    // 0.100 < P 0:10(10) win 65535
    s.inject(seg().flags(PSH).seq(0).len(10));
    s.expect_none();
    assert_eq!(s.eng.stats().rst_sent, 0);
}

#[test]
fn listen_backlog_full_without_cookies_drops_syn_silently() {
    let mut s = Script::with(|c| c.tcp.syn_cookies = SynCookies::Never);
    s.listen(Some(1));
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>                    (port 40000)
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    // 0.110 < S 0:0(0) win 65535 <mss 1460>                    (port 40001)
    s.at(110);
    s.peer_port = CLIENT_PORT + 1;
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect_none();
    assert_eq!(s.drops(DropReason::ListenOverflow), 1);
    assert_eq!(s.control_counts(), (1, 0));

    // 0.120 < . 1:1(0) ack 1                                   (port 40000)
    s.at(120);
    s.peer_port = CLIENT_PORT;
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    // The connection waits in the accept queue: still full.
    // 0.130 < S 0:0(0) win 65535 <mss 1460>                    (port 40001)
    s.at(130);
    s.peer_port = CLIENT_PORT + 1;
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect_none();
    assert_eq!(s.drops(DropReason::ListenOverflow), 2);

    // 0.140 accept()
    s.at(140);
    assert!(s.accept().is_some());
    // 0.140 < S 0:0(0) win 65535 <mss 1460>                    (port 40001)
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.140 > S. 0:0(0) ack 1 <mss 1448>
    s.forget_iss();
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).mss(1448));
    assert_eq!(s.drops(DropReason::ListenOverflow), 2);
}

#[test]
fn closed_port_answers_with_rfc9293_reset() {
    let mut s = Script::new();
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>          (nobody listens on 8080)
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > R. 0:0(0) ack 1 win 0                  -- <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    let rst = s.expect(seg().flags(RST | ACK).ack(1).win(0).len(0).no_opts());
    assert_eq!(rst.abs_seq, 0);
    // 0.100 < FP 5:15(10) win 65535
    s.inject(seg().flags(FIN | PSH).seq(5).len(10));
    // 0.100 > R. 0:0(0) ack 16
    s.expect(seg().flags(RST | ACK).ack(16));
    // 0.100 < . 0:0(0) ack 4242 win 65535
    s.inject(seg().flags(ACK).seq(0).ack(4242).abs());
    // 0.100 > R 4242:4242(0)
    s.expect(seg().flags(RST).seq(4242).abs());
    // 0.100 < R 0:0(0) win 0                         -- never answer a RST
    s.inject(seg().flags(RST).seq(0));
    s.expect_none();
    assert_eq!(s.drops(DropReason::NoConnection), 4);
}

// ======================================================================
// SYN-SENT
// ======================================================================

#[test]
fn syn_sent_syn_carries_mss_ws_sack_ts() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    assert_eq!(s.control_counts(), (1, 0));
    assert_eq!(s.eng.send(c, b"x"), Err(ApiError::NotConnected));
    s.expect_none();
}

#[test]
fn syn_sent_syn_ack_with_right_ack_establishes() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 5000 ecr 100,nop,wscale 7>
    s.inject(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .win(65535)
            .mss(1460)
            .sack_perm()
            .ts(5000, 100)
            .ws(7),
    );
    // 0.150 > . 1:1(0) ack 1 win 32768 <nop,nop,TS val 150 ecr 5000>
    s.expect(
        seg()
            .flags(ACK)
            .seq(1)
            .ack(1)
            .win(32768)
            .ts(150, 5000)
            .len(0),
    );
    assert_eq!(st(&s, c), Established);
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.eng.flow_count(), 1);
    // 0.160 write(5)
    s.at(160);
    s.send(c, b"hello");
    // 0.160 > P. 1:6(5) ack 1 win 32768 <nop,nop,TS val 160 ecr 5000>
    s.expect(
        seg()
            .flags(PSH | ACK)
            .seq(1)
            .ack(1)
            .win(32768)
            .payload(b"hello")
            .ts(160, 5000),
    );
}

#[test]
fn syn_sent_syn_ack_without_options_gives_plain_connection() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < S. 0:0(0) ack 1 win 5000 <mss 1000>
    s.inject(seg().flags(SYN | ACK).seq(0).ack(1).win(5000).mss(1000));
    // 0.150 > . 1:1(0) ack 1 win 65535                (no TS, window unscaled)
    s.expect(seg().flags(ACK).seq(1).ack(1).win(65535).no_opts());
    assert_eq!(st(&s, c), Established);
    // 0.150 write(3000)  -- peer MSS 1000, peer window 5000 (SYN windows are never scaled)
    s.send(c, &bytes(3000, 3));
    // 0.150 > . 1:1001(1000) ack 1
    s.expect(seg().flags(ACK).seq(1).len(1000));
    // 0.150 > . 1001:2001(1000) ack 1
    s.expect(seg().flags(ACK).seq(1001).len(1000));
    // 0.150 > P. 2001:3001(1000) ack 1
    s.expect(seg().flags(PSH | ACK).seq(2001).len(1000));
}

#[test]
fn syn_sent_syn_ack_with_wrong_ack_gets_rst() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < S. 0:0(0) ack 1000 win 65535 <mss 1460>
    s.inject(seg().flags(SYN | ACK).seq(0).ack(1000).mss(1460));
    // 0.150 > R 1000:1000(0)                  -- RFC 9293 3.10.7.3: <SEQ=SEG.ACK><CTL=RST>
    s.expect(seg().flags(RST).seq(1000).len(0));
    // 0.150 < S. 0:0(0) ack 0 win 65535 <mss 1460>     (SEG.ACK =< ISS)
    s.inject(seg().flags(SYN | ACK).seq(0).ack(0).mss(1460));
    // 0.150 > R 0:0(0)
    s.expect(seg().flags(RST).seq(0).len(0));
    assert_eq!(st(&s, c), SynSent);
    assert_eq!(s.drops(DropReason::BadHandshake), 2);
    // The real SYN-ACK still completes the handshake.
    s.at(160);
    // 0.160 < S. 0:0(0) ack 1 win 65535 <mss 1460>
    s.inject(seg().flags(SYN | ACK).seq(0).ack(1).mss(1460));
    // 0.160 > . 1:1(0) ack 1
    s.expect(seg().flags(ACK).seq(1).ack(1));
    assert_eq!(st(&s, c), Established);
}

#[test]
fn syn_sent_rst_ack_refuses_connection() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < R. 0:0(0) ack 1 win 0
    s.inject(seg().flags(RST | ACK).seq(0).ack(1).win(0));
    s.expect_none();
    assert_eq!(s.error(c), Some(ConnError::Refused));
    assert_eq!(st(&s, c), Closed);
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(
        s.eng.send(c, b"x"),
        Err(ApiError::Connection(ConnError::Refused))
    );
    // No SYN retransmission afterwards.
    s.at(10_000);
    s.expect_none();
}

#[test]
fn syn_sent_unacceptable_rst_is_ignored() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < R. 0:0(0) ack 2 win 0          -- ACK unacceptable: drop (RFC 9293 3.10.7.3)
    s.inject(seg().flags(RST | ACK).seq(0).ack(2).win(0));
    // 0.150 < R 0:0(0) win 0                 -- no ACK: drop
    s.inject(seg().flags(RST).seq(0).win(0));
    s.expect_none();
    assert_eq!(st(&s, c), SynSent);
    assert_eq!(s.error(c), None);
}

#[test]
fn syn_sent_syn_only_is_simultaneous_open() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.150 > S. 0:0(0) ack 1 win 65535 <mss 1448>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .mss(1448)
            .no_ws()
            .no_sack_perm()
            .no_ts(),
    );
    assert_eq!(st(&s, c), SynReceived);
    s.at(160);
    // 0.160 < S. 0:0(0) ack 1 win 65535 <mss 1460>   (RFC 9293 figure 7, line 6)
    s.inject(seg().flags(SYN | ACK).seq(0).ack(1).mss(1460));
    // 0.160 > . 1:1(0) ack 1 win 65535
    s.expect(seg().flags(ACK).seq(1).ack(1).no_opts());
    assert_eq!(st(&s, c), Established);
}

#[test]
fn syn_sent_simultaneous_open_completed_by_ack() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(150);
    // 0.150 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.150 > S. 0:0(0) ack 1 win 65535 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.at(160);
    // 0.160 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    assert_eq!(st(&s, c), Established);
    // 0.160 write(2)
    s.send(c, b"hi");
    // 0.160 > P. 1:3(2) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).payload(b"hi"));
}

#[test]
fn syn_sent_syn_retransmitted_with_exponential_backoff() {
    let mut s = Script::new();
    let _c = syn_sent(&mut s);
    s.at(1099);
    s.expect_none();
    s.at(1100);
    // 1.100 > S 0:0(0) win 65535 <mss 1448,sackOK,TS val 1100 ecr 0,wscale 3>   (initial RTO 1 s)
    s.expect(
        seg()
            .flags(SYN)
            .seq(0)
            .mss(1448)
            .sack_perm()
            .ts(1100, 0)
            .ws(3),
    );
    s.at(3099);
    s.expect_none();
    s.at(3100);
    // 3.100 > S 0:0(0) ...                                                     (2 s)
    s.expect(seg().flags(SYN).seq(0).ts(3100, 0));
    s.at(7100);
    // 7.100 > S 0:0(0) ...                                                     (4 s)
    s.expect(seg().flags(SYN).seq(0).ts(7100, 0));
    s.at(15_100);
    // 15.100 > S 0:0(0) ...                                                    (8 s)
    s.expect(seg().flags(SYN).seq(0).ts(15_100, 0));
    s.expect_none();
}

#[test]
fn syn_sent_keeps_retrying_for_three_minutes() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    // RFC 9293 3.8.3 (MUST-23): R2 for a SYN segment MUST be large enough
    // to provide retransmission of the segment for at least 3 minutes.
    // The SYN goes out again and again, its RTO doubling up to the 60 s
    // ceiling (`tcp.max_rto_ms`), and is still being sent after 3 minutes.
    for at in [
        1_100, 3_100, 7_100, 15_100, 31_100, 63_100, 123_100, 183_100,
    ] {
        s.at(at - 1);
        s.expect_none();
        s.at(at);
        s.expect(seg().flags(SYN).seq(0).ts(at as u32, 0));
        assert_eq!(s.error(c), None, "gave up on the SYN at {at} ms");
    }
}

#[test]
fn syn_sent_retransmitted_syn_resets_rto_to_three_seconds() {
    let mut s = Script::new();
    let c = syn_sent(&mut s);
    s.at(1100);
    // 1.100 > S 0:0(0) ...                           (the SYN timed out once)
    s.expect(seg().flags(SYN).seq(0));
    s.at(1500);
    // 1.500 < S. 0:0(0) ack 1 win 65535 <mss 1460>
    s.inject(seg().flags(SYN | ACK).seq(0).ack(1).mss(1460));
    // 1.500 > . 1:1(0) ack 1
    s.expect(seg().flags(ACK).seq(1).ack(1));
    // 1.500 write(100)
    s.send(c, &bytes(100, 4));
    // 1.500 > P. 1:101(100) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).len(100));
    // RFC 6298 (5.7): the SYN timed out and RTO < 3 s, so RTO := 3 s.
    s.at(4499);
    s.expect_none();
    s.at(4500);
    // 4.500 > P. 1:101(100) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).len(100));
}

#[test]
fn syn_sent_unanswered_arp_fails_host_unreachable() {
    let mut s = Script::new();
    s.at(100);
    // 0.100 connect(198.18.0.1:8080)
    let c = s.connect();
    // 0.100 > ARP who-has 198.18.0.1
    s.expect_arp_request();
    s.at(1100);
    // 1.100 > ARP who-has 198.18.0.1
    s.expect_arp_request();
    s.at(2100);
    // 2.100 > ARP who-has 198.18.0.1
    s.expect_arp_request();
    s.at(3100);
    s.expect_none();
    assert_eq!(s.error(c), Some(ConnError::HostUnreachable));
    assert_eq!(s.control_counts(), (0, 0));
}

// ======================================================================
// SYN-RECEIVED
// ======================================================================

#[test]
fn syn_rcvd_final_ack_establishes_and_accept_returns_it() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    assert_eq!(s.accept(), None);
    assert_eq!(s.eng.flow_count(), 0);
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    // 0.200 accept()
    let c = s.accept().expect("accept");
    assert_eq!(st(&s, c), Established);
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.eng.flow_count(), 1);
    assert_eq!(s.eng.stats().connections_accepted, 1);
    assert_eq!(s.accept(), None);
}

#[test]
fn syn_rcvd_retransmitted_syn_gets_syn_ack_again() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(500);
    // 0.500 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.500 > S. 0:0(0) ack 1 win 65535 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).mss(1448));
    assert_eq!(s.control_counts(), (1, 0));
    // 0.600 < . 1:1(0) ack 1 win 65535
    s.at(600);
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    assert!(s.accept().is_some());
}

#[test]
fn syn_rcvd_syn_ack_retransmitted_with_backoff() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(1099);
    s.expect_none();
    s.at(1100);
    // 1.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).mss(1448));
    s.at(3100);
    // 3.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.at(7100);
    // 7.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.expect_none();
}

/// Linux's `tcp_synack_retries` (5): SYN-ACKs at 0.1, 1.1, 3.1, 7.1, 15.1,
/// 31.1 s, and the half-open entry is gone at 63.1 s.
#[test]
fn syn_rcvd_expires_after_synack_retries() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    for at in [1100, 3100, 7100, 15100, 31100] {
        s.at(at);
        // > S. 0:0(0) ack 1 <mss 1448>
        s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    }
    s.at(63099);
    assert_eq!(s.control_counts(), (1, 0));
    s.at(63100);
    s.expect_none();
    assert_eq!(s.control_counts(), (0, 0), "half-open entry dropped");
    assert_eq!(s.eng.stats().handshakes_expired, 1);
    assert_eq!(s.eng.stats().connect_failures, 0, "not an active open");
}

/// A backlog filled by SYNs whose sources never answer (a spoofed flood)
/// drains by itself after `tcp.synack_retries`, and a real client then
/// connects (issue 20: the listener was locked out for minutes).
#[test]
fn backlog_filled_by_spoofed_syns_drains_then_accepts() {
    let mut s = Script::with(|c| {
        c.tcp.synack_retries = 2;
        c.tcp.syn_cookies = SynCookies::Never;
    });
    s.listen(Some(4));
    s.at(100);
    for i in 0..4 {
        s.peer_port = CLIENT_PORT + 100 + i;
        s.forget_iss();
        // < S 0:0(0) win 65535 <mss 1460>           (a source that never answers)
        s.inject(seg().flags(SYN).seq(0).mss(1460));
        s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    }
    // The real client is refused while the backlog is full.
    s.peer_port = CLIENT_PORT;
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect_none();
    assert_eq!(s.drops(DropReason::ListenOverflow), 1);
    // Two retries each (1.1 s, 3.1 s), then dropped at 7.1 s.
    s.at(7099);
    assert_eq!(s.control_counts(), (4, 0));
    s.at(7100);
    assert_eq!(s.control_counts(), (0, 0), "backlog drained");
    assert_eq!(s.eng.stats().handshakes_expired, 4);
    // Their SYN-ACK retransmissions (4 sources x 2).
    assert_eq!(s.discard_all(), 8);
    // < S 0:0(0) win 65535 <mss 1460>           (the real client retries)
    s.forget_iss();
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.at(7200);
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    assert!(s.accept().is_some(), "the real client gets in");
}

/// Issue 20: with the half-open backlog full, a SYN is answered with a
/// cookie SYN-ACK and nothing is kept; the client's ACK (with data)
/// installs the connection with the options the cookie carried.
#[test]
fn full_backlog_answers_with_a_cookie_and_its_ack_installs_the_connection() {
    let mut s = Script::new();
    s.listen(Some(1));
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>             (port 40100, never answers)
    s.peer_port = CLIENT_PORT + 100;
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    assert_eq!(s.control_counts(), (1, 0), "the backlog is full");
    // 0.110 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 5000 ecr 0,wscale 7>
    s.at(110);
    s.peer_port = CLIENT_PORT;
    s.forget_iss();
    s.inject(
        seg()
            .flags(SYN)
            .seq(0)
            .mss(1460)
            .sack_perm()
            .ts(5000, 0)
            .ws(7),
    );
    // 0.110 > S. 0:0(0) ack 1 <mss 1448,sackOK,TS val ? ecr 5000,wscale 3>
    let synack = s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .mss(1448)
            .sack_perm()
            .tsecr(5000)
            .ws(3),
    );
    assert_eq!(s.control_counts(), (1, 0), "a cookie keeps no state");
    assert_eq!(s.eng.stats().syn_cookies_sent, 1);
    let (cookie_ts, _) = synack.options.timestamps.unwrap();
    // 0.120 < P. 1:6(5) ack 1 <TS val 5010 ecr cookie_ts>
    s.at(120);
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(1)
            .ack(1)
            .ts(5010, cookie_ts)
            .payload(b"hello"),
    );
    // 0.120 > . 1:1(0) ack 6 <TS val ? ecr 5010>
    s.expect(seg().flags(ACK).seq(1).ack(6).tsecr(5010));
    assert_eq!(s.eng.stats().syn_cookies_validated, 1);
    let c = s.accept().expect("the cookie connection is accepted");
    assert_eq!(st(&s, c), Established);
    assert_eq!(s.recv(c, 100).unwrap(), b"hello");
    // The peer's window scale came back from the cookie (65535 << 7).
    let info = s.eng.conn_info(c).unwrap();
    assert_eq!(info.snd_wnd, 65535 << 7, "{info:?}");
    // Our data goes out in segments of the cookie's MSS class (1460),
    // capped by our own MSS (1448), minus the 12 timestamp bytes.
    s.send(c, &[7u8; 3000]);
    let first = s.expect(seg().flags(ACK).seq(1).ack(6));
    assert_eq!(first.payload.len(), 1436);
}

/// While cookies are in use, an ACK that does not carry our cookie is
/// dropped and counted (under a flood it may be a real client's later
/// segment, its first lost: the retransmission gets in); once no cookie
/// was sent for two counter periods, such an ACK is reset as before.
#[test]
fn forged_cookie_acks_are_dropped_then_reset_once_cookies_are_old() {
    let mut s = Script::with(|c| c.tcp.syn_cookies = SynCookies::Always);
    s.listen(None);
    s.at(100);
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    let synack = s.expect(seg().flags(SYN | ACK).seq(0).ack(1).mss(1448));
    assert_eq!(s.control_counts(), (0, 0), "always: no half-open state");
    // 0.200 < . 1:1(0) ack 2                     (not our ISS + 1)
    s.at(200);
    s.inject(seg().flags(ACK).seq(1).ack(2));
    s.expect_none();
    assert_eq!(s.eng.stats().syn_cookies_failed, 1);
    // 0.300 < P. 1449:2897(1448) ack 1          (the first segment was lost)
    s.at(300);
    s.inject(seg().flags(PSH | ACK).seq(1449).ack(1).len(1448));
    s.expect_none();
    assert_eq!(s.eng.stats().syn_cookies_failed, 2);
    // 0.500 < P. 1:1449(1448) ack 1             (its retransmission)
    s.at(500);
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).len(1448));
    s.expect(seg().flags(ACK).seq(1).ack(1449));
    assert_eq!(s.eng.stats().syn_cookies_validated, 1);
    assert!(s.accept().is_some());
    // The right cookie of another SYN, 200 s after the last cookie: too
    // old, and no cookie lately, so a RST.
    s.peer_port = CLIENT_PORT + 1;
    s.forget_iss();
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.at(200_500);
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect(seg().flags(RST).seq(1));
    assert_eq!(s.eng.stats().syn_cookies_validated, 1);
    assert!(s.accept().is_none());
    let _ = synack;
}

/// Without timestamps a cookie cannot remember window scale or SACK: the
/// SYN-ACK offers neither, and the MSS is the cookie's class.
#[test]
fn cookie_without_timestamps_offers_only_the_mss() {
    let mut s = Script::with(|c| c.tcp.syn_cookies = SynCookies::Always);
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1300,sackOK,wscale 7>
    s.inject(seg().flags(SYN).seq(0).mss(1300).sack_perm().ws(7));
    // 0.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(
        seg()
            .flags(SYN | ACK)
            .seq(0)
            .ack(1)
            .mss(1448)
            .no_ws()
            .no_sack_perm()
            .no_ts(),
    );
    s.at(110);
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    let c = s.accept().expect("accepted");
    s.send(c, &[1u8; 2000]);
    let first = s.expect(seg().flags(ACK).seq(1).ack(1));
    assert_eq!(first.payload.len(), 1300, "the cookie's MSS class");
}

/// Cookies do not help an application that is not accepting: with the
/// accept queue alone filling the backlog, SYNs are dropped as without.
#[test]
fn a_full_accept_queue_drops_syns_even_with_cookies() {
    let mut s = Script::new();
    s.listen(Some(1));
    s.at(100);
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    s.at(110);
    s.peer_port = CLIENT_PORT + 1;
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    s.expect_none();
    assert_eq!(s.drops(DropReason::ListenOverflow), 1);
    assert_eq!(s.eng.stats().syn_cookies_sent, 0);
}

/// An active open whose next hop never answers ARP fails within the ARP
/// retries, and never leaves a handshake behind.
#[test]
fn active_open_to_a_silent_next_hop_fails_and_leaves_nothing() {
    let mut s = Script::new();
    let c = s.connect();
    s.expect_arp_request();
    s.at(1000);
    s.expect_arp_request();
    s.at(2000);
    s.expect_arp_request();
    s.at(3000);
    s.expect_none();
    assert_eq!(s.error(c), Some(ConnError::HostUnreachable));
    assert_eq!(s.control_counts(), (0, 0));
}

#[test]
fn syn_rcvd_data_on_final_ack_is_delivered() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(200);
    // 0.200 < P. 1:11(10) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(b"0123456789"));
    // 0.200 > . 1:1(0) ack 11 win 65535
    s.expect(seg().flags(ACK).seq(1).ack(11).win(65535).len(0));
    let c = s.accept().expect("accept");
    assert_eq!(st(&s, c), Established);
    // 0.200 read(100) = 10
    assert_eq!(s.recv(c, 100).unwrap(), b"0123456789");
}

#[test]
fn syn_rcvd_fin_on_final_ack_goes_to_close_wait() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(200);
    // 0.200 < FP. 1:4(3) ack 1 win 65535
    s.inject(seg().flags(FIN | PSH | ACK).seq(1).ack(1).payload(b"bye"));
    // 0.200 > . 1:1(0) ack 5
    s.expect(seg().flags(ACK).seq(1).ack(5));
    let c = s.accept().expect("accept");
    assert_eq!(st(&s, c), CloseWait);
    assert_eq!(s.recv(c, 100).unwrap(), b"bye");
    assert_eq!(s.recv(c, 100).unwrap(), b"");
}

#[test]
fn syn_rcvd_rst_returns_to_listen() {
    let mut s = Script::new();
    s.listen(Some(1));
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.at(150);
    // 0.150 < R 1:1(0) win 0
    s.inject(seg().flags(RST).seq(1).win(0));
    s.expect_none();
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.accept(), None);
    assert_eq!(s.eng.app_conn_count(), 0);
    // No SYN-ACK retransmission for the dead handshake.
    s.at(5000);
    s.expect_none();
    // The listener (backlog 1) takes a new SYN again.
    s.peer_isn += 1_000_000u32;
    s.forget_iss();
    // 5.000 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 5.000 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
}

#[test]
fn syn_rcvd_in_window_inexact_rst_gets_challenge_ack() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(150);
    // 0.150 < R 100:100(0) win 0
    s.inject(seg().flags(RST).seq(100).win(0));
    // 0.150 > . 1:1(0) ack 1                 -- <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    assert_eq!(s.control_counts(), (1, 0));
}

#[test]
fn syn_rcvd_out_of_window_rst_is_dropped() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(150);
    // 0.150 < R 1000000:1000000(0) win 0
    s.inject(seg().flags(RST).seq(1_000_000).win(0));
    s.expect_none();
    assert_eq!(s.control_counts(), (1, 0));
    assert_eq!(s.drops(DropReason::RstOutOfWindow), 1);
}

#[test]
fn syn_rcvd_unacceptable_ack_gets_rst_and_handshake_survives() {
    let mut s = Script::new();
    syn_rcvd(&mut s);
    s.at(150);
    // 0.150 < . 1:1(0) ack 1000 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1000));
    // 0.150 > R 1000:1000(0)                  -- RFC 9293 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    s.expect(seg().flags(RST).seq(1000).len(0));
    assert_eq!(s.control_counts(), (1, 0));
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1));
    s.expect_none();
    assert!(s.accept().is_some());
}

// ======================================================================
// ESTABLISHED
// ======================================================================

#[test]
fn established_in_order_data_acked_per_segment() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    let d = bytes(2000, 5);
    s.at(300);
    // 0.300 < P. 1:1001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(&d[..1000]));
    // 0.300 > . 1:1(0) ack 1001 win 65535
    s.expect(seg().flags(ACK).seq(1).ack(1001).win(65535).len(0));
    s.at(301);
    // 0.301 < P. 1001:2001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1001).ack(1).payload(&d[1000..]));
    // 0.301 > . 1:1(0) ack 2001 win 65535
    s.expect(seg().flags(ACK).seq(1).ack(2001).win(65535));
    // 0.301 read(4096) = 2000
    assert_eq!(s.recv(c, 4096).unwrap(), d);
    assert_eq!(s.recv(c, 4096), Err(ApiError::WouldBlock));
    s.expect_none();
}

#[test]
fn established_delayed_ack_every_second_segment_or_timer() {
    let mut s = Script::with(|c| c.tcp.delayed_ack_us = 40_000);
    let _c = open_plain(&mut s);
    s.at(300);
    // 0.300 < P. 1:1001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).len(1000));
    s.expect_none();
    s.at(310);
    // 0.310 < P. 1001:2001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1001).ack(1).len(1000));
    // 0.310 > . 1:1(0) ack 2001                      (second segment: ACK now)
    s.expect(seg().flags(ACK).seq(1).ack(2001));
    s.at(320);
    // 0.320 < P. 2001:3001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(2001).ack(1).len(1000));
    s.expect_none();
    s.at(359);
    s.expect_none();
    s.at(360);
    // 0.360 > . 1:1(0) ack 3001                      (delayed-ACK timer, 40 ms)
    s.expect(seg().flags(ACK).seq(1).ack(3001));
    s.at(1000);
    s.expect_none();
}

#[test]
fn established_out_of_order_data_gets_dup_ack_with_sack_then_cumulative_ack() {
    let mut s = Script::new();
    let c = open_sack(&mut s);
    let d = bytes(5000, 6);
    s.at(300);
    // 0.300 < P. 1:1001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(&d[..1000]));
    // 0.300 > . 1:1(0) ack 1001
    s.expect(seg().flags(ACK).seq(1).ack(1001).no_sack());
    // 0.300 < P. 2001:3001(1000) ack 1 win 65535
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(2001)
            .ack(1)
            .payload(&d[2000..3000]),
    );
    // 0.300 > . 1:1(0) ack 1001 <sack 2001:3001>
    s.expect(seg().flags(ACK).seq(1).ack(1001).sack(&[(2001, 3001)]));
    // 0.300 < P. 4001:5001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(4001).ack(1).payload(&d[4000..]));
    // 0.300 > . 1:1(0) ack 1001 <sack 4001:5001 2001:3001>    (most recent first, RFC 2018)
    s.expect(
        seg()
            .flags(ACK)
            .seq(1)
            .ack(1001)
            .sack(&[(4001, 5001), (2001, 3001)]),
    );
    assert_eq!(s.recv(c, 10_000).unwrap(), &d[..1000]);
    // 0.300 < P. 1001:2001(1000) ack 1 win 65535           (first hole filled)
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(1001)
            .ack(1)
            .payload(&d[1000..2000]),
    );
    // 0.300 > . 1:1(0) ack 3001 <sack 4001:5001>
    s.expect(seg().flags(ACK).seq(1).ack(3001).sack(&[(4001, 5001)]));
    // 0.300 < P. 3001:4001(1000) ack 1 win 65535           (last hole filled)
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(3001)
            .ack(1)
            .payload(&d[3000..4000]),
    );
    // 0.300 > . 1:1(0) ack 5001
    s.expect(seg().flags(ACK).seq(1).ack(5001).no_sack());
    assert_eq!(s.recv(c, 10_000).unwrap(), &d[1000..]);
}

#[test]
fn established_out_of_order_without_sack_gets_plain_dup_ack() {
    let mut s = Script::new();
    let _c = open_plain(&mut s);
    s.at(300);
    // 0.300 < P. 1001:2001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1001).ack(1).len(1000));
    // 0.300 > . 1:1(0) ack 1 win 65535            (no SACK: not negotiated)
    s.expect(seg().flags(ACK).seq(1).ack(1).no_opts());
    // 0.300 < P. 1:1001(1000) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).len(1000));
    // 0.300 > . 1:1(0) ack 2001
    s.expect(seg().flags(ACK).seq(1).ack(2001).no_opts());
}

#[test]
fn established_rto_retransmission_with_exponential_backoff() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(1000);
    // 1.000 write(1000)
    s.send(c, &bytes(1000, 7));
    // 1.000 > P. 1:1001(1000) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(1000));
    // RFC 6298: SRTT 100 ms, RTTVAR 50 ms -> RTO 300 ms; doubled on each expiry.
    s.at(1299);
    s.expect_none();
    s.at(1300);
    // 1.300 > P. 1:1001(1000) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).len(1000));
    s.at(1899);
    s.expect_none();
    s.at(1900);
    // 1.900 > P. 1:1001(1000) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).len(1000));
    s.at(3100);
    // 3.100 > P. 1:1001(1000) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).len(1000));
    s.at(5500);
    // 5.500 > P. 1:1001(1000) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).len(1000));
    s.at(5600);
    // 5.600 < . 1:1(0) ack 1001 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1001));
    s.at(30_000);
    s.expect_none();
    assert_eq!(s.eng.stats().timeout_retransmits, 4);
    assert!(s.eng.all_sent(c));
}

#[test]
fn established_rto_is_clamped_to_min_rto() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    s.at(101);
    // 0.101 < . 1:1(0) ack 1 win 65535           (1 ms RTT)
    s.inject(seg().flags(ACK).seq(1).ack(1));
    let c = s.accept().unwrap();
    s.at(200);
    // 0.200 write(10)
    s.send(c, b"0123456789");
    // 0.200 > P. 1:11(10) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).payload(b"0123456789"));
    // RTO = max(1 + 4 * 0.5 ms, tcp.min_rto_ms = 200 ms)
    s.at(399);
    s.expect_none();
    s.at(400);
    // 0.400 > P. 1:11(10) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).payload(b"0123456789"));
}

#[test]
fn established_three_dupacks_trigger_fast_retransmit() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(1000);
    // 1.000 write(7240)
    s.send(c, &bytes(5 * 1448, 8));
    for i in 0..5u32 {
        let flags = if i == 4 { PSH | ACK } else { ACK };
        // 1.000 > . (1 + 1448 i):(1 + 1448 (i + 1))(1448) ack 1
        s.expect(seg().flags(flags).seq(1 + 1448 * i).ack(1).len(1448));
    }
    s.at(1050);
    // 1.050 < . 1:1(0) ack 1449 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1449));
    s.expect_none();
    // 1.051 < . 1:1(0) ack 1449 win 65535      (dupack 1)
    s.at(1051);
    s.inject(seg().flags(ACK).seq(1).ack(1449));
    // 1.052 < . 1:1(0) ack 1449 win 65535      (dupack 2)
    s.at(1052);
    s.inject(seg().flags(ACK).seq(1).ack(1449));
    s.expect_none();
    // 1.053 < . 1:1(0) ack 1449 win 65535      (dupack 3)
    s.at(1053);
    s.inject(seg().flags(ACK).seq(1).ack(1449));
    // 1.053 > . 1449:2897(1448) ack 1          (RFC 5681 3.2 fast retransmit)
    s.expect(seg().flags(ACK).seq(1449).ack(1).len(1448));
    s.expect_none();
    assert_eq!(s.eng.stats().fast_retransmits, 1);
    // 1.060 < . 1:1(0) ack 7241 win 65535
    s.at(1060);
    s.inject(seg().flags(ACK).seq(1).ack(7241));
    s.at(10_000);
    s.expect_none();
}

#[test]
fn established_zero_window_persist_probes_then_window_opens() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(250);
    // 0.250 < . 1:1(0) ack 1 win 0
    s.inject(seg().flags(ACK).seq(1).ack(1).win(0));
    s.at(300);
    // 0.300 write(100)
    s.send(c, &bytes(100, 9));
    s.expect_none();
    s.at(599);
    s.expect_none();
    s.at(600);
    // 0.600 > . 0:0(0) ack 1                   (probe after one RTO: SND.UNA - 1)
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    // 0.600 < . 1:1(0) ack 1 win 0
    s.inject(seg().flags(ACK).seq(1).ack(1).win(0));
    s.expect_none();
    s.at(1200);
    // 1.200 > . 0:0(0) ack 1                   (backed off: 600 ms)
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    s.at(2400);
    // 2.400 > . 0:0(0) ack 1                   (1200 ms)
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    s.at(2500);
    // 2.500 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    // 2.500 > P. 1:101(100) ack 1
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(100));
    assert_eq!(s.eng.stats().zero_window_probes, 3);
}

#[test]
fn established_keepalive_probes_a_silent_peer_and_resets_it_after_the_count() {
    use dpu_datapath::engine::Keepalive;
    let mut s = Script::new();
    let c = open_plain(&mut s);
    // 0.200 setsockopt(SO_KEEPALIVE, TCP_KEEPIDLE 10, TCP_KEEPINTVL 2, TCP_KEEPCNT 3)
    let k = Keepalive {
        idle_secs: 10,
        interval_secs: 2,
        count: 3,
    };
    s.eng.set_keepalive(c, Some(k)).unwrap();
    assert_eq!(s.eng.keepalive(c), Some(k));
    s.at(10_199);
    s.expect_none();
    s.at(10_200);
    // 10.200 > . 0:0(0) ack 1                  (probe: SND.UNA - 1, no data)
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    s.expect_none();
    // 10.200 < . 1:1(0) ack 1 win 65535        (the peer answers at once)
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    s.expect_none();
    // The answer restarts the idle time: nothing until 20.200.
    s.at(20_199);
    s.expect_none();
    s.at(20_200);
    // 20.200 > . 0:0(0) ack 1
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    s.at(20_250);
    // 20.250 < . 1:1(0) ack 1 win 65535        (answered 50 ms later)
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535));
    s.at(30_249);
    s.expect_none();
    s.at(30_250);
    // 30.250 > . 0:0(0) ack 1
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    // The peer is gone: two more probes, one interval apart...
    s.at(32_250);
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    s.at(34_250);
    s.expect(seg().flags(ACK).seq(0).ack(1).len(0));
    s.expect_none();
    assert_eq!(st(&s, c), Established);
    s.at(36_250);
    // 36.250 > R. 1:1(0) ack 1                 (third probe unanswered: reset)
    s.expect(seg().flags(RST | ACK).seq(1).ack(1));
    assert_eq!(s.error(c), Some(ConnError::TimedOut));
    assert_eq!(s.eng.stats().keepalive_probes, 5);
    assert_eq!(s.eng.stats().keepalive_timeouts, 1);
    s.at(60_000);
    s.expect_none();
}

#[test]
fn established_keepalive_waits_while_data_is_in_flight_and_off_stops_it() {
    use dpu_datapath::engine::Keepalive;
    let mut s = Script::new();
    let c = open_plain(&mut s);
    let k = Keepalive {
        idle_secs: 1,
        interval_secs: 1,
        count: 1,
    };
    s.eng.set_keepalive(c, Some(k)).unwrap();
    s.at(300);
    // 0.300 write(100) / > P. 1:101(100) ack 1
    s.send(c, &bytes(100, 3));
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(100));
    s.at(1_250);
    // 1.200: data in flight, no probe: the RTO (300 ms, backed off) resends it.
    assert!(s.discard_all() >= 1, "the RTO resent the data");
    assert_eq!(s.eng.stats().keepalive_probes, 0);
    s.at(1_260);
    // 1.260 < . 1:1(0) ack 101                 (acknowledged at last)
    s.inject(seg().flags(ACK).seq(1).ack(101).win(65535));
    s.at(2_200);
    s.expect_none();
    // Off: no probe however long the silence.
    s.eng.set_keepalive(c, None).unwrap();
    assert_eq!(s.eng.keepalive(c), None);
    s.at(30_000);
    s.expect_none();
    assert_eq!(s.eng.stats().keepalive_probes, 0);
    assert_eq!(st(&s, c), Established);
}

#[test]
fn established_nagle_holds_a_short_segment_while_data_is_unacknowledged() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    // 0.200 setsockopt(TCP_NODELAY, 0)
    s.eng.set_tx_options(c, Some(false), None).unwrap();
    s.at(300);
    // 0.300 write(100) / > P. 1:101(100) ack 1     (nothing in flight: goes)
    s.send(c, &bytes(100, 1));
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(100));
    s.at(310);
    // 0.310 write(100)                           (100 unacknowledged: waits)
    s.send(c, &bytes(100, 2));
    s.expect_none();
    // 0.320 write(2000): a full segment goes, its short tail waits
    s.at(320);
    s.send(c, &bytes(2000, 3));
    s.expect(seg().flags(ACK).seq(101).ack(1).len(1448));
    s.expect_none();
    s.at(350);
    // 0.350 < . 1:1(0) ack 101 win 65535 / nothing yet: 1448 bytes in flight
    s.inject(seg().flags(ACK).seq(1).ack(101).win(65535));
    s.expect_none();
    s.at(360);
    // 0.360 < . 1:1(0) ack 1549 win 65535 / > P. 1549:2201(652) ack 1
    s.inject(seg().flags(ACK).seq(1).ack(1549).win(65535));
    s.expect(seg().flags(PSH | ACK).seq(1549).ack(1).len(652));
    // 0.370 setsockopt(TCP_NODELAY, 1): short segments go at once again
    s.at(370);
    s.eng.set_tx_options(c, Some(true), None).unwrap();
    s.send(c, &bytes(10, 4));
    s.expect(seg().flags(PSH | ACK).seq(2201).ack(1).len(10));
}

#[test]
fn established_cork_holds_short_segments_until_it_comes_off() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    // 0.200 setsockopt(TCP_CORK, 1)
    s.eng.set_tx_options(c, None, Some(true)).unwrap();
    s.at(300);
    // 0.300 write(100)                           (corked: waits, nothing in flight)
    s.send(c, &bytes(100, 1));
    s.expect_none();
    s.at(310);
    // 0.310 write(1400) / > . 1:1449(1448) ack 1 (a full segment goes)
    s.send(c, &bytes(1400, 2));
    s.expect(seg().flags(ACK).seq(1).ack(1).len(1448));
    s.expect_none();
    s.at(350);
    // 0.350 < . 1:1(0) ack 1449 win 65535        (acknowledged; the tail still waits)
    s.inject(seg().flags(ACK).seq(1).ack(1449).win(65535));
    s.expect_none();
    s.at(500);
    s.expect_none();
    // 0.500 setsockopt(TCP_CORK, 0) / > P. 1449:1501(52) ack 1
    s.eng.set_tx_options(c, None, Some(false)).unwrap();
    s.expect(seg().flags(PSH | ACK).seq(1449).ack(1).len(52));
}

#[test]
fn established_ack_stays_inside_a_window_that_closed_behind_lost_data() {
    // Linux's tcp_acceptable_seq: a peer whose window closed accepts an
    // empty segment only at its RCV.NXT, so our ACKs must not carry
    // SND.MAX when the data past it never arrived.
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(250);
    // 0.250 write(1000)
    s.send(c, &bytes(1000, 3));
    // 0.250 > P. 1:1001(1000) ack 1            (lost)
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(1000));
    s.at(260);
    // 0.260 < . 1:101(100) ack 1 win 0         (the peer's window closed)
    s.inject(
        seg()
            .flags(ACK)
            .seq(1)
            .ack(1)
            .win(0)
            .payload(&bytes(100, 4)),
    );
    // 0.260 > . 1:1(0) ack 101                 (at the window's edge, not 1001)
    s.expect(seg().flags(ACK).seq(1).ack(101).len(0));
    // 0.270 < . 101:111(10) ack 1 win 65535   (the window reopened)
    s.at(270);
    s.inject(
        seg()
            .flags(ACK)
            .seq(101)
            .ack(1)
            .win(65535)
            .payload(&bytes(10, 5)),
    );
    // 0.270 > . 1001:1001(0) ack 111           (SND.MAX is inside it again)
    s.expect(seg().flags(ACK).seq(1001).ack(111).len(0));
}

#[test]
fn established_receive_window_closes_and_reopens_after_read() {
    let mut s = Script::with(|c| c.tcp.rx_buffer = 4096);
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 win 4096 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).win(4096));
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.at(200);
    s.inject(seg().flags(ACK).seq(1).ack(1));
    let c = s.accept().unwrap();
    let d = bytes(4096, 10);
    s.at(300);
    // 0.300 < . 1:1449(1448) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1).payload(&d[..1448]));
    // 0.300 > . 1:1(0) ack 1449 win 2648
    s.expect(seg().flags(ACK).seq(1).ack(1449).win(2648));
    // 0.300 < . 1449:2897(1448) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1449).ack(1).payload(&d[1448..2896]));
    // 0.300 > . 1:1(0) ack 2897 win 1200
    s.expect(seg().flags(ACK).seq(1).ack(2897).win(1200));
    // 0.300 < P. 2897:4097(1200) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(2897).ack(1).payload(&d[2896..]));
    // 0.300 > . 1:1(0) ack 4097 win 0
    s.expect(seg().flags(ACK).seq(1).ack(4097).win(0));
    s.at(500);
    // 0.500 < . 4097:4098(1) ack 1 win 65535          (zero-window probe)
    s.inject(seg().flags(ACK).seq(4097).ack(1).payload(b"X"));
    // 0.500 > . 1:1(0) ack 4097 win 0
    s.expect(seg().flags(ACK).seq(1).ack(4097).win(0));
    assert_eq!(s.drops(DropReason::OutOfWindow), 1);
    s.at(600);
    // 0.600 read(4096) = 4096
    assert_eq!(s.recv(c, 4096).unwrap(), d);
    // 0.600 > . 1:1(0) ack 4097 win 4096               (window update)
    s.expect(seg().flags(ACK).seq(1).ack(4097).win(4096));
    assert_eq!(s.eng.stats().window_updates, 1);
}

#[test]
fn established_cork_lets_a_held_tail_go_after_200_ms() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    // 0.200 setsockopt(TCP_CORK, 1)
    s.eng.set_tx_options(c, None, Some(true)).unwrap();
    s.at(300);
    // 0.300 write(100)                           (corked: waits)
    s.send(c, &bytes(100, 1));
    s.expect_none();
    s.at(499);
    s.expect_none();
    // 0.500 > P. 1:101(100) ack 1                (Linux's 200 ms ceiling)
    s.at(500);
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(100));
    s.at(510);
    // 0.510 < . 1:1(0) ack 101 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(101).win(65535));
    // 0.520 write(50): still corked, held again for up to 200 ms
    s.at(520);
    s.send(c, &bytes(50, 2));
    s.expect_none();
    s.at(720);
    s.expect(seg().flags(PSH | ACK).seq(101).ack(1).len(50));
    s.expect_none();
}

#[test]
fn established_rcvbuf_holds_the_window_without_taking_back_an_edge() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    // 0.200 setsockopt(SO_RCVBUF, 16384)   (65535 already offered: kept)
    s.eng.set_rcvbuf(c, 16384).unwrap();
    let d = bytes(2 * 1448, 4);
    s.at(300);
    // 0.300 < . 1:1449(1448) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1).payload(&d[..1448]));
    // 0.300 > . 1:1(0) ack 1449 win 64087     (the old edge stays)
    s.expect(seg().flags(ACK).seq(1).ack(1449).win(64087));
    // 0.300 read(1448): the window the update offers is SO_RCVBUF's
    assert_eq!(s.recv(c, 1448).unwrap(), d[..1448]);
    // 0.300 < . 1449:2897(1448) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1449).ack(1).payload(&d[1448..]));
    // 0.300 > . 1:1(0) ack 2897 win 62639
    s.expect(seg().flags(ACK).seq(1).ack(2897).win(62639));
    // Once the peer used up the old edge, offers follow SO_RCVBUF.
    let mut seq = 2897u32;
    let mut left = 62639u32;
    while left > 0 {
        let n = left.min(1448);
        s.inject(
            seg()
                .flags(ACK)
                .seq(seq)
                .ack(1)
                .payload(&bytes(n as usize, 5)),
        );
        seq += n;
        left -= n;
    }
    s.discard_all();
    s.at(400);
    // 0.400 read(all) / > . 1:1(0) ack 65536 win 16384   (window update)
    assert_eq!(s.recv(c, 70_000).unwrap().len(), 62639 + 1448);
    s.expect(seg().flags(ACK).seq(1).ack(65536).win(16384));
}

#[test]
fn established_receiver_sws_avoidance_no_tiny_window_update() {
    let mut s = Script::with(|c| c.tcp.rx_buffer = 4096);
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 win 4096 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).win(4096));
    s.at(200);
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1));
    let c = s.accept().unwrap();
    s.at(300);
    // 0.300 < . 1:1449(1448) ack 1 / 1449:2897(1448) / P. 2897:4097(1200)
    s.inject(seg().flags(ACK).seq(1).ack(1).len(1448));
    s.expect(seg().flags(ACK).ack(1449));
    s.inject(seg().flags(ACK).seq(1449).ack(1).len(1448));
    s.expect(seg().flags(ACK).ack(2897));
    s.inject(seg().flags(PSH | ACK).seq(2897).ack(1).len(1200));
    // 0.300 > . 1:1(0) ack 4097 win 0
    s.expect(seg().flags(ACK).ack(4097).win(0));
    s.at(400);
    // 0.400 read(10) = 10
    assert_eq!(s.recv(c, 10).unwrap().len(), 10);
    // RFC 9293 3.8.6.2.2: no window increase until it reaches
    // min(RCV.BUFF / 2, Eff.snd.MSS) = 1448 bytes.
    s.expect_none();
    // 0.400 read(2038) = 2038                    (2048 free = half the buffer)
    assert_eq!(s.recv(c, 2038).unwrap().len(), 2038);
    // 0.400 > . 1:1(0) ack 4097 win 2048
    s.expect(seg().flags(ACK).seq(1).ack(4097).win(2048));
}

#[test]
fn established_exact_rst_resets_connection() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < R 1:1(0) win 0
    s.inject(seg().flags(RST).seq(1).win(0));
    s.expect_none();
    assert_eq!(s.error(c), Some(ConnError::Reset));
    assert_eq!(st(&s, c), Closed);
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.recv(c, 10), Err(ApiError::Connection(ConnError::Reset)));
}

#[test]
fn established_exact_rst_ack_resets_connection() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < P. 1:11(10) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).len(10));
    // 0.300 > . 1:1(0) ack 11
    s.expect(seg().flags(ACK).ack(11));
    // 0.300 < R. 11:11(0) ack 1 win 0
    s.inject(seg().flags(RST | ACK).seq(11).ack(1).win(0));
    s.expect_none();
    assert_eq!(s.error(c), Some(ConnError::Reset));
    assert_eq!(s.eng.flow_count(), 0);
}

#[test]
fn established_in_window_inexact_rst_gets_challenge_ack() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < R 1001:1001(0) win 0
    s.inject(seg().flags(RST).seq(1001).win(0));
    // 0.300 > . 1:1(0) ack 1                  -- RFC 5961 3.2 challenge ACK
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    assert_eq!(st(&s, c), Established);
    assert_eq!(s.error(c), None);
    assert_eq!(s.drops(DropReason::RstChallenged), 1);
    assert_eq!(s.eng.stats().challenge_acks, 1);
}

#[test]
fn established_out_of_window_rst_is_dropped() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < R 500001:500001(0) win 0        (beyond RCV.NXT + RCV.WND)
    s.inject(seg().flags(RST).seq(500_001).win(0));
    // 0.300 < R 0:0(0) win 0                  (below RCV.NXT)
    s.inject(seg().flags(RST).seq(0).win(0));
    s.expect_none();
    assert_eq!(st(&s, c), Established);
    assert_eq!(s.drops(DropReason::RstOutOfWindow), 2);
}

#[test]
fn established_rst_beyond_advertised_window_is_dropped() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // We advertised win 65535 (unscaled): RCV.NXT + RCV.WND = 65536.
    // 0.300 < R 100001:100001(0) win 0
    s.inject(seg().flags(RST).seq(100_001).win(0));
    s.expect_none();
    assert_eq!(s.drops(DropReason::RstOutOfWindow), 1);
    // 0.300 < P. 100001:100011(10) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(100_001).ack(1).len(10));
    // 0.300 > . 1:1(0) ack 1
    s.expect(seg().flags(ACK).seq(1).ack(1));
    assert_eq!(s.drops(DropReason::OutOfWindow), 1);
    assert_eq!(st(&s, c), Established);
}

#[test]
fn established_syn_gets_challenge_ack() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.300 > . 1:1(0) ack 1                  -- RFC 5961 4.2
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    // 0.300 < S 500:500(0) win 65535 <mss 1460>       (in window)
    s.inject(seg().flags(SYN).seq(500).mss(1460));
    // 0.300 > . 1:1(0) ack 1
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    assert_eq!(st(&s, c), Established);
    assert_eq!(s.drops(DropReason::SynChallenged), 2);
}

#[test]
fn established_ack_of_unsent_data_is_acked_and_dropped() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < . 1:1(0) ack 1001 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1001));
    // 0.300 > . 1:1(0) ack 1                  -- RFC 9293 3.10.7.4: ACK, drop
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    // 0.300 < P. 1:11(10) ack 1001 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1001).len(10));
    // 0.300 > . 1:1(0) ack 1                  (its data is dropped too)
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    assert_eq!(s.eng.readable(c), 0);
    assert_eq!(s.drops(DropReason::AckUnsent), 2);
    assert_eq!(st(&s, c), Established);
}

#[test]
fn established_data_outside_window_is_acked_and_dropped() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < P. 400001:400011(10) ack 1 win 65535     (far beyond the window)
    s.inject(seg().flags(PSH | ACK).seq(400_001).ack(1).len(10));
    // 0.300 > . 1:1(0) ack 1
    s.expect(seg().flags(ACK).seq(1).ack(1).len(0));
    assert_eq!(s.drops(DropReason::OutOfWindow), 1);
    // 0.300 < P. 1:11(10) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(b"0123456789"));
    // 0.300 > . 1:1(0) ack 11
    s.expect(seg().flags(ACK).seq(1).ack(11));
    // 0.300 < P. 1:11(10) ack 1 win 65535              (old duplicate)
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(b"ABCDEFGHIJ"));
    // 0.300 > . 1:1(0) ack 11
    s.expect(seg().flags(ACK).seq(1).ack(11));
    assert_eq!(s.drops(DropReason::OldDuplicate), 1);
    assert_eq!(s.recv(c, 100).unwrap(), b"0123456789");
}

#[test]
fn established_timestamps_and_window_scale_are_applied() {
    let mut s = Script::new();
    let c = open_full(&mut s);
    // The peer's final ACK said win 512 << 7 = 65536 bytes.
    s.at(300);
    // 0.300 < . 1:1(0) ack 1 win 100 <nop,nop,TS val 1200 ecr 100>   (100 << 7 = 12800)
    s.inject(seg().flags(ACK).seq(1).ack(1).win(100).ts(1200, 100));
    s.expect_none();
    // 0.300 write(20000)
    s.send(c, &bytes(20_000, 11));
    for i in 0..8u32 {
        // 0.300 > . (1 + 1436 i):(1 + 1436 (i + 1))(1436) ack 1 win 32768 <nop,nop,TS val 300 ecr 1200>
        s.expect(
            seg()
                .flags(ACK)
                .seq(1 + 1436 * i)
                .ack(1)
                .win(32768)
                .len(1436)
                .ts(300, 1200),
        );
    }
    // 8 * 1436 = 11488; the 1312 bytes left in the window would be a runt.
    s.expect_none();
    s.at(310);
    // 0.310 < P. 1:11(10) ack 11489 win 1000 <nop,nop,TS val 1300 ecr 300>
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(1)
            .ack(11489)
            .win(1000)
            .ts(1300, 300)
            .len(10),
    );
    // 0.310 > . 11489:11489(0) ack 11 win 32766 <nop,nop,TS val 310 ecr 1300>
    s.expect(
        seg()
            .flags(ACK)
            .seq(11489)
            .ack(11)
            .win(((262_144 - 10) >> 3) as u16)
            .len(0)
            .ts(310, 1300),
    );
    // 0.310 > . 11489:12925(1436) ack 11 win 32766 <nop,nop,TS val 310 ecr 1300>   (window now 128000)
    s.expect(seg().flags(ACK).seq(11489).ack(11).len(1436).ts(310, 1300));
}

#[test]
fn established_paws_drops_old_timestamp() {
    let mut s = Script::new();
    let c = open_full(&mut s);
    s.at(300);
    // 0.300 < P. 1:11(10) ack 1 win 512 <nop,nop,TS val 1200 ecr 100>
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(1)
            .ack(1)
            .win(512)
            .ts(1200, 100)
            .payload(b"0123456789"),
    );
    // 0.300 > . 1:1(0) ack 11 <nop,nop,TS val 300 ecr 1200>
    s.expect(seg().flags(ACK).seq(1).ack(11).ts(300, 1200));
    s.at(310);
    // 0.310 < P. 11:21(10) ack 1 win 512 <nop,nop,TS val 1150 ecr 100>   (older than TS.Recent)
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(11)
            .ack(1)
            .win(512)
            .ts(1150, 100)
            .len(10),
    );
    // 0.310 > . 1:1(0) ack 11 <nop,nop,TS val 310 ecr 1200>             -- RFC 7323 5.3: ACK, drop
    s.expect(seg().flags(ACK).seq(1).ack(11).ts(310, 1200));
    assert_eq!(s.drops(DropReason::Paws), 1);
    assert_eq!(s.eng.readable(c), 10);
    s.at(320);
    // 0.320 < P. 11:21(10) ack 1 win 512 <nop,nop,TS val 1200 ecr 100>   (equal is fine)
    s.inject(
        seg()
            .flags(PSH | ACK)
            .seq(11)
            .ack(1)
            .win(512)
            .ts(1200, 100)
            .len(10),
    );
    // 0.320 > . 1:1(0) ack 21 <nop,nop,TS val 320 ecr 1200>
    s.expect(seg().flags(ACK).seq(1).ack(21).ts(320, 1200));
    assert_eq!(s.eng.readable(c), 20);
}

#[test]
fn established_close_with_unread_data_sends_rst() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 < P. 1:11(10) ack 1 win 65535
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).len(10));
    // 0.300 > . 1:1(0) ack 11
    s.expect(seg().flags(ACK).ack(11));
    // 0.400 close()                          -- RFC 1122 4.2.2.13: unread data -> RST
    s.at(400);
    s.close(c);
    // 0.400 > R. 1:1(0) ack 11
    s.expect(seg().flags(RST | ACK).seq(1).ack(11).len(0));
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.eng.app_conn_count(), 0);
}

#[test]
fn established_abort_sends_rst() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 abort()  (SO_LINGER 0 + close)
    s.abort(c);
    // 0.300 > R. 1:1(0) ack 1
    s.expect(seg().flags(RST | ACK).seq(1).ack(1).len(0));
    assert_eq!(s.eng.flow_count(), 0);
    // 0.300 < . 1:1(0) ack 1 win 65535       (the peer did not get it)
    s.inject(seg().flags(ACK).seq(1).ack(1));
    // 0.300 > R 1:1(0)
    s.expect(seg().flags(RST).seq(1).len(0));
}

// ======================================================================
// FIN-WAIT-1
// ======================================================================

#[test]
fn fin_wait_1_shutdown_sends_fin() {
    let mut s = Script::new();
    let c = fin_wait_1(&mut s);
    assert_eq!(s.eng.send(c, b"x"), Err(ApiError::Shutdown));
    s.expect_none();
}

#[test]
fn fin_wait_1_fin_follows_buffered_data_in_same_segment() {
    let mut s = Script::new();
    let c = open_plain(&mut s);
    s.at(300);
    // 0.300 write(5); shutdown(SHUT_WR)
    s.eng.send(c, b"hello").unwrap();
    s.shutdown_write(c);
    // 0.300 > FP. 1:6(5) ack 1
    s.expect(seg().flags(FIN | PSH | ACK).seq(1).ack(1).payload(b"hello"));
    assert_eq!(st(&s, c), FinWait1);
    // 0.400 < . 1:1(0) ack 6 win 65535        (data acked, FIN not yet)
    s.at(400);
    s.inject(seg().flags(ACK).seq(1).ack(6));
    assert_eq!(st(&s, c), FinWait1);
    // 0.400 < . 1:1(0) ack 7 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(7));
    s.expect_none();
    assert_eq!(st(&s, c), FinWait2);
}

#[test]
fn fin_wait_1_ack_of_fin_goes_to_fin_wait_2() {
    let mut s = Script::new();
    let c = fin_wait_2(&mut s);
    assert_eq!(st(&s, c), FinWait2);
    s.at(10_000);
    s.expect_none();
}

#[test]
fn fin_wait_1_fin_ack_goes_to_time_wait() {
    let mut s = Script::new();
    let c = fin_wait_1(&mut s);
    s.at(400);
    // 0.400 < F. 1:1(0) ack 2 win 65535
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2));
    // 0.400 > . 2:2(0) ack 2
    s.expect(seg().flags(ACK).seq(2).ack(2).len(0));
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.control_counts(), (0, 1));
    // TIME-WAIT is kept by the control plane; the handle reports CLOSED.
    assert_eq!(st(&s, c), Closed);
    assert_eq!(s.error(c), None);
    assert_eq!(s.recv(c, 10).unwrap(), b"");
}

#[test]
fn fin_wait_1_fin_retransmitted_on_rto() {
    let mut s = Script::new();
    let _c = fin_wait_1(&mut s);
    s.at(599);
    s.expect_none();
    s.at(600);
    // 0.600 > F. 1:1(0) ack 1
    s.expect(seg().flags(FIN | ACK).seq(1).ack(1).len(0));
    s.at(1200);
    // 1.200 > F. 1:1(0) ack 1
    s.expect(seg().flags(FIN | ACK).seq(1).ack(1).len(0));
}

#[test]
fn fin_wait_1_still_receives_data() {
    let mut s = Script::new();
    let c = fin_wait_1(&mut s);
    s.at(350);
    // 0.350 < P. 1:11(10) ack 1 win 65535     (FIN not acked yet)
    s.inject(seg().flags(PSH | ACK).seq(1).ack(1).payload(b"0123456789"));
    // 0.350 > . 2:2(0) ack 11
    s.expect(seg().flags(ACK).seq(2).ack(11).len(0));
    assert_eq!(st(&s, c), FinWait1);
    assert_eq!(s.recv(c, 100).unwrap(), b"0123456789");
}

// ======================================================================
// FIN-WAIT-2
// ======================================================================

#[test]
fn fin_wait_2_peer_fin_is_acked_and_goes_to_time_wait() {
    let mut s = Script::new();
    let c = time_wait(&mut s);
    assert_eq!(st(&s, c), Closed);
    assert_eq!(s.eng.stats().connections_closed, 1);
}

#[test]
fn fin_wait_2_still_receives_data() {
    let mut s = Script::new();
    let c = fin_wait_2(&mut s);
    s.at(450);
    // 0.450 < P. 1:101(100) ack 2 win 65535
    let d = bytes(100, 12);
    s.inject(seg().flags(PSH | ACK).seq(1).ack(2).payload(&d));
    // 0.450 > . 2:2(0) ack 101
    s.expect(seg().flags(ACK).seq(2).ack(101).len(0));
    assert_eq!(st(&s, c), FinWait2);
    assert_eq!(s.recv(c, 1000).unwrap(), d);
    s.at(500);
    // 0.500 < FP. 101:111(10) ack 2 win 65535
    s.inject(
        seg()
            .flags(FIN | PSH | ACK)
            .seq(101)
            .ack(2)
            .payload(b"0123456789"),
    );
    // 0.500 > . 2:2(0) ack 112
    s.expect(seg().flags(ACK).seq(2).ack(112).len(0));
    assert_eq!(s.control_counts(), (0, 1));
    assert_eq!(s.recv(c, 1000).unwrap(), b"0123456789");
    assert_eq!(s.recv(c, 1000).unwrap(), b"");
}

#[test]
fn fin_wait_2_out_of_order_fin_waits_for_the_hole() {
    let mut s = Script::new();
    let c = fin_wait_2(&mut s);
    s.at(450);
    // 0.450 < F. 11:11(0) ack 2 win 65535      (10 bytes missing)
    s.inject(seg().flags(FIN | ACK).seq(11).ack(2));
    // 0.450 > . 2:2(0) ack 1
    s.expect(seg().flags(ACK).seq(2).ack(1));
    assert_eq!(st(&s, c), FinWait2);
    // 0.460 < P. 1:11(10) ack 2 win 65535
    s.at(460);
    s.inject(seg().flags(PSH | ACK).seq(1).ack(2).payload(b"0123456789"));
    // 0.460 > . 2:2(0) ack 12
    s.expect(seg().flags(ACK).seq(2).ack(12));
    assert_eq!(s.control_counts(), (0, 1));
}

// ======================================================================
// CLOSING
// ======================================================================

#[test]
fn closing_simultaneous_close() {
    let mut s = Script::new();
    let c = fin_wait_1(&mut s);
    s.at(350);
    // 0.350 < F. 1:1(0) ack 1 win 65535        (FINs cross)
    s.inject(seg().flags(FIN | ACK).seq(1).ack(1));
    // 0.350 > . 2:2(0) ack 2
    s.expect(seg().flags(ACK).seq(2).ack(2).len(0));
    assert_eq!(st(&s, c), Closing);
    s.at(400);
    // 0.400 < . 2:2(0) ack 2 win 65535
    s.inject(seg().flags(ACK).seq(2).ack(2));
    s.expect_none();
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.control_counts(), (0, 1));
}

#[test]
fn closing_fin_retransmitted_on_rto() {
    let mut s = Script::new();
    let c = fin_wait_1(&mut s);
    s.at(350);
    // 0.350 < F. 1:1(0) ack 1 win 65535
    s.inject(seg().flags(FIN | ACK).seq(1).ack(1));
    // 0.350 > . 2:2(0) ack 2
    s.expect(seg().flags(ACK).seq(2).ack(2));
    s.at(600);
    // 0.600 > F. 1:1(0) ack 2                  (our FIN's RTO)
    s.expect(seg().flags(FIN | ACK).seq(1).ack(2).len(0));
    assert_eq!(st(&s, c), Closing);
    s.at(650);
    // 0.650 < . 2:2(0) ack 2 win 65535
    s.inject(seg().flags(ACK).seq(2).ack(2));
    assert_eq!(s.control_counts(), (0, 1));
    s.at(5000);
    s.expect_none();
}

// ======================================================================
// TIME-WAIT
// ======================================================================

#[test]
fn time_wait_retransmitted_fin_is_acked_again() {
    let mut s = Script::new();
    let _c = time_wait(&mut s);
    s.at(600);
    // 0.600 < F. 1:1(0) ack 2 win 65535        (our ACK was lost)
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2));
    // 0.600 > . 2:2(0) ack 2
    s.expect(seg().flags(ACK).seq(2).ack(2).len(0));
    assert_eq!(s.control_counts(), (0, 1));
}

#[test]
fn time_wait_entry_expires_after_time_wait_ms() {
    let mut s = Script::with(|c| c.tcp.time_wait_ms = 1000);
    let _c = time_wait(&mut s);
    s.at(1499);
    assert_eq!(s.control_counts(), (0, 1));
    s.at(1500);
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.eng.flow_count(), 0);
    s.expect_none();
}

#[test]
fn time_wait_retransmitted_fin_restarts_the_timer() {
    let mut s = Script::with(|c| c.tcp.time_wait_ms = 1000);
    let _c = time_wait(&mut s);
    s.at(900);
    // 0.900 < F. 1:1(0) ack 2 win 65535
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2));
    // 0.900 > . 2:2(0) ack 2                   -- RFC 9293: ACK it, restart the 2 MSL timeout
    s.expect(seg().flags(ACK).seq(2).ack(2));
    s.at(1500);
    assert_eq!(s.control_counts(), (0, 1));
    s.at(1900);
    assert_eq!(s.control_counts(), (0, 0));
}

#[test]
fn time_wait_rst_is_ignored() {
    let mut s = Script::new();
    let _c = time_wait(&mut s);
    s.at(600);
    // 0.600 < R 2:2(0) win 0                   -- RFC 1337
    s.inject(seg().flags(RST).seq(2).win(0));
    s.expect_none();
    assert_eq!(s.control_counts(), (0, 1));
    // 0.600 < F. 1:1(0) ack 2 win 65535        (the entry is still there)
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2));
    // 0.600 > . 2:2(0) ack 2
    s.expect(seg().flags(ACK).seq(2).ack(2));
}

#[test]
fn time_wait_ack_carries_timestamps_when_negotiated() {
    let mut s = Script::new();
    let c = open_full(&mut s);
    s.at(300);
    // 0.300 shutdown(SHUT_WR)
    s.shutdown_write(c);
    // 0.300 > F. 1:1(0) ack 1 <nop,nop,TS val 300 ecr 1100>
    s.expect(seg().flags(FIN | ACK).seq(1).ack(1).ts(300, 1100));
    s.at(400);
    // 0.400 < F. 1:1(0) ack 2 win 512 <nop,nop,TS val 1200 ecr 300>
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2).win(512).ts(1200, 300));
    // 0.400 > . 2:2(0) ack 2 <nop,nop,TS val 400 ecr 1200>
    s.expect(seg().flags(ACK).seq(2).ack(2).ts(400, 1200));
    assert_eq!(s.control_counts(), (0, 1));
    s.at(500);
    // 0.500 < F. 1:1(0) ack 2 win 512 <nop,nop,TS val 1300 ecr 300>
    s.inject(seg().flags(FIN | ACK).seq(1).ack(2).win(512).ts(1300, 300));
    // 0.500 > . 2:2(0) ack 2 <nop,nop,TS val 500 ecr 1300>   -- TSopt in every non-RST segment
    s.expect(seg().flags(ACK).seq(2).ack(2).ts(500, 1300));
}

#[test]
fn time_wait_new_syn_with_higher_seq_opens_new_connection() {
    let mut s = Script::new();
    let _c = time_wait(&mut s);
    s.at(600);
    // A new incarnation: ISN well above the old RCV.NXT.
    s.peer_isn += 1_000_000u32;
    s.forget_iss();
    // 0.600 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.600 > S. 0:0(0) ack 1 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).mss(1448));
    assert_eq!(s.control_counts(), (1, 0));
    s.at(700);
    // 0.700 < . 1:1(0) ack 1 win 65535
    s.inject(seg().flags(ACK).seq(1).ack(1));
    let c2 = s.accept().expect("accept");
    assert_eq!(st(&s, c2), Established);
}

// ======================================================================
// CLOSE-WAIT
// ======================================================================

#[test]
fn close_wait_recv_returns_data_then_eof() {
    let mut s = Script::new();
    let c = close_wait(&mut s);
    assert!(!s.eng.at_eof(c));
    // 0.300 read(100) = 10
    assert_eq!(s.recv(c, 100).unwrap(), b"0123456789");
    // 0.300 read(100) = 0
    assert_eq!(s.recv(c, 100).unwrap(), b"");
    assert!(s.eng.at_eof(c));
    s.expect_none();
}

#[test]
fn close_wait_app_can_still_send() {
    let mut s = Script::new();
    let c = close_wait(&mut s);
    s.at(350);
    // 0.350 write(5)
    s.send(c, b"reply");
    // 0.350 > P. 1:6(5) ack 12
    s.expect(seg().flags(PSH | ACK).seq(1).ack(12).payload(b"reply"));
    // 0.360 < . 12:12(0) ack 6 win 65535
    s.at(360);
    s.inject(seg().flags(ACK).seq(12).ack(6));
    s.expect_none();
    assert_eq!(st(&s, c), CloseWait);
    assert!(s.eng.all_sent(c));
}

#[test]
fn close_wait_shutdown_sends_fin_and_goes_to_last_ack() {
    let mut s = Script::new();
    let c = last_ack(&mut s);
    assert_eq!(st(&s, c), LastAck);
}

#[test]
fn close_wait_data_after_fin_is_not_delivered() {
    let mut s = Script::new();
    let c = close_wait(&mut s);
    assert_eq!(s.recv(c, 100).unwrap(), b"0123456789");
    s.at(350);
    // 0.350 < P. 12:22(10) ack 1 win 65535     (text after the FIN: ignore it)
    s.inject(seg().flags(PSH | ACK).seq(12).ack(1).len(10));
    // 0.350 > . 1:1(0) ack 12
    s.expect(seg().flags(ACK).seq(1).ack(12).len(0));
    assert_eq!(s.recv(c, 100).unwrap(), b"");
}

// ======================================================================
// LAST-ACK
// ======================================================================

#[test]
fn last_ack_ack_of_fin_closes() {
    let mut s = Script::new();
    let c = last_ack(&mut s);
    s.at(450);
    // 0.450 < . 12:12(0) ack 2 win 65535
    s.inject(seg().flags(ACK).seq(12).ack(2));
    s.expect_none();
    assert_eq!(st(&s, c), Closed);
    assert_eq!(s.error(c), None);
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.control_counts(), (0, 0));
    assert_eq!(s.eng.stats().connections_closed, 1);
    s.at(10_000);
    s.expect_none();
}

#[test]
fn last_ack_fin_retransmitted_on_rto() {
    let mut s = Script::new();
    let c = last_ack(&mut s);
    s.at(699);
    s.expect_none();
    s.at(700);
    // 0.700 > F. 1:1(0) ack 12
    s.expect(seg().flags(FIN | ACK).seq(1).ack(12).len(0));
    s.at(1300);
    // 1.300 > F. 1:1(0) ack 12
    s.expect(seg().flags(FIN | ACK).seq(1).ack(12).len(0));
    s.at(1350);
    // 1.350 < . 12:12(0) ack 2 win 65535
    s.inject(seg().flags(ACK).seq(12).ack(2));
    assert_eq!(st(&s, c), Closed);
    assert_eq!(s.eng.flow_count(), 0);
}

#[test]
fn last_ack_retransmitted_peer_fin_is_acked() {
    let mut s = Script::new();
    let c = last_ack(&mut s);
    s.at(450);
    // 0.450 < F. 11:11(0) ack 1 win 65535       (its FIN again: our ACK was lost)
    s.inject(seg().flags(FIN | ACK).seq(11).ack(1));
    // 0.450 > . 2:2(0) ack 12
    s.expect(seg().flags(ACK).seq(2).ack(12).len(0));
    assert_eq!(st(&s, c), LastAck);
}

#[test]
fn last_ack_after_close_releases_the_handle() {
    let mut s = Script::new();
    let c = close_wait(&mut s);
    assert_eq!(s.recv(c, 100).unwrap(), b"0123456789");
    s.at(400);
    // 0.400 close()
    s.close(c);
    // 0.400 > F. 1:1(0) ack 12
    s.expect(seg().flags(FIN | ACK).seq(1).ack(12));
    assert_eq!(st(&s, c), LastAck);
    s.at(450);
    // 0.450 < . 12:12(0) ack 2 win 65535
    s.inject(seg().flags(ACK).seq(12).ack(2));
    s.expect_none();
    assert_eq!(s.eng.app_conn_count(), 0);
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.state(c), None);
}

/// Found against Linux under loss: the peer fills our whole window while
/// the first segment is lost, then its pure ACKs (for our data) carry
/// SEQ = RCV.NXT + RCV.WND, the right edge. Linux's `tcp_sequence` and the
/// BSDs accept a zero-length segment there; RFC 9293's strict `<` dropped
/// them as out of window, discarding the acknowledgement of our data.
#[test]
fn established_pure_ack_at_the_right_window_edge_is_accepted() {
    let mut s = Script::with(|c| c.tcp.rx_buffer = 4096);
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 1460>
    s.inject(seg().flags(SYN).seq(0).mss(1460));
    // 0.100 > S. 0:0(0) ack 1 win 4096 <mss 1448>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1).win(4096));
    // 0.200 < . 1:1(0) ack 1 win 65535
    s.at(200);
    s.inject(seg().flags(ACK).seq(1).ack(1));
    let c = s.accept().unwrap();
    // 0.300 write(100)
    s.at(300);
    s.send(c, &bytes(100, 3));
    // 0.300 > P. 1:101(100) ack 1 win 4096
    s.expect(seg().flags(PSH | ACK).seq(1).ack(1).len(100));
    let d = bytes(4096, 4);
    // 0.310 < . 1449:4097(2648) ack 1 win 65535   (1:1449 was lost)
    s.at(310);
    s.inject(seg().flags(ACK).seq(1449).ack(1).payload(&d[1448..]));
    // 0.310 > . 1:1(0) ack 1 win 4096               (duplicate ACK for the hole)
    s.expect(seg().flags(ACK).seq(101).ack(1));
    // 0.320 < . 4097:4097(0) ack 101 win 65535      (pure ACK at the right edge)
    s.at(320);
    s.inject(seg().flags(ACK).seq(4097).ack(101));
    // Accepted: our 100 bytes are acknowledged, nothing is answered.
    s.expect_none();
    assert_eq!(s.drops(DropReason::OutOfWindow), 0);
    assert!(s
        .eng
        .conn_info(c)
        .is_some_and(|i| i.snd_una.0 == i.snd_nxt.0));
    // One past the edge is still out of window (answered with an ACK).
    s.inject(seg().flags(ACK).seq(4098).ack(101));
    s.expect(seg().flags(ACK).seq(101).ack(1));
    assert_eq!(s.drops(DropReason::OutOfWindow), 1);
}

/// A hostile peer announcing a tiny MSS (4 bytes, with timestamps, which
/// take 12) must not underflow the segment size: the MSS is clamped to 88.
#[test]
fn listen_tiny_peer_mss_is_clamped_not_underflowed() {
    let mut s = Script::new();
    s.listen(None);
    s.at(100);
    // 0.100 < S 0:0(0) win 65535 <mss 4,TS val 1000 ecr 0>
    s.inject(seg().flags(SYN).seq(0).win(65535).mss(4).ts(1000, 0));
    // 0.100 > S. 0:0(0) ack 1 <mss 1448,TS val 100 ecr 1000>
    s.expect(seg().flags(SYN | ACK).seq(0).ack(1));
    // 0.200 < . 1:1(0) ack 1 win 65535 <TS val 1001 ecr 100>
    s.at(200);
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535).ts(1001, 100));
    let c = s.accept().unwrap();
    // 0.300 write(200): segments of 88 - 12 = 76 bytes.
    s.at(300);
    s.send(c, &[7u8; 200]);
    s.expect(seg().flags(ACK).seq(1).ack(1).len(76));
}

/// A half-closed connection may stay in FIN-WAIT-2 as long as the peer
/// likes (it may still send); once the application closed its handle, the
/// orphan waits 60 s for the peer's FIN and is then released (as Linux's
/// tcp_fin_timeout), so a peer that never closes cannot pin it.
#[test]
fn fin_wait_2_orphan_times_out_after_60_s() {
    let mut s = Script::new();
    let c = fin_wait_2(&mut s);
    // Half-closed but still open: nothing happens for a long time.
    s.at(70_000);
    s.expect_none();
    assert_eq!(st(&s, c), FinWait2);
    // 70.000 close(): orphaned.
    s.close(c);
    s.at(129_000);
    assert_eq!(s.eng.flow_count(), 1);
    // 130.000: 60 s later the flow is released without a RST.
    s.at(130_001);
    s.expect_none();
    assert_eq!(s.eng.flow_count(), 0);
    assert_eq!(s.eng.app_conn_count(), 0);
}
