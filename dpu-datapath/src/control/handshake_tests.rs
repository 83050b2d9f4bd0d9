//! The handshake's decisions, one per test, on a real engine whose
//! control-plane functions the tests call themselves (`on_syn`,
//! `on_handshake_segment`, `on_cookie_ack`, `handshake_timer`,
//! `active_open`) with the clock set by hand. Default configuration unless
//! a test says otherwise: MSS 1448, 256 KiB buffers (window scale 3),
//! initial RTO 1 s (max 60 s), `tcp.synack_retries` 5, cookies `"auto"`.
//!
//! Every frame the engine sends is compared whole (addresses, ports,
//! sequence and acknowledgment numbers, flags, window, options, payload).

use super::*;
use crate::app::{AppEvent, BufferSource};
use crate::control::test_util::*;
use crate::pre::{HeaderTemplate, PreOutcome};
use crate::proto::{ProtoFlow, ProtoInit};
use crate::stats::Stats;
use crate::wire::TcpOptions;

/// The peer's SYN with every option: MSS 1460, window scale 7,
/// SACK-permitted, TSval 5000; window 29200.
fn full_syn(t: &FourTuple, isn: u32) -> TcpRepr<'static> {
    let mut s = seg(t, SYN, isn, 0);
    s.window = 29200;
    s.options = opts(Some(1460), Some(7), true, Some((5000, 0)));
    s
}

/// A segment of the peer on a tuple with a handshake, as the exception
/// path hands it over.
fn to_handshake(eng: &mut Engine, t: FourTuple, tcp: &TcpRepr<'_>) {
    let f = frame(&t, tcp);
    eng.on_handshake_segment(t, PEER_MAC, tcp, &f);
}

/// Listens on PORT, and the peer's `syn` arrives at 100 ms: returns our ISS
/// (the SYN-ACK is taken).
fn half_open(eng: &mut Engine, t: FourTuple, syn: &TcpRepr<'_>) -> SeqNumber {
    eng.listen(PORT, None).unwrap();
    at(eng, 100 * MS);
    eng.on_syn(t, PEER_MAC, syn);
    assert_eq!(sent_tcp(eng).len(), 1);
    eng.ctrl.handshakes[&t].iss
}

/// An active open to the peer's PORT at 100 ms, its MAC already known:
/// the handle, the tuple and our ISS (the SYN is taken).
fn syn_sent(eng: &mut Engine) -> (ConnId, FourTuple, SeqNumber) {
    eng.ctrl.arp.insert(PEER_IP, PEER_MAC, 0);
    at(eng, 100 * MS);
    let c = eng.active_open(PEER_IP, PORT, None, None).unwrap();
    let t = eng.apps.get(c).unwrap().tuple;
    assert_eq!(sent_tcp(eng).len(), 1);
    (c, t, eng.ctrl.handshakes[&t].iss)
}

/// What `install` must build for `init`, after `frame` (the segment that
/// completed the handshake) went through `proto` as the fast path runs it.
fn flow_after(eng: &Engine, init: &ProtoInit, frame: &[u8]) -> ProtoFlow {
    let mut want = ProtoFlow::new(init, &eng.cfg.proto);
    let PreOutcome::Fast(s) = crate::pre::classify(frame, &eng.local, &eng.pre, &eng.cfg.caps)
    else {
        panic!("the completing segment is not a fast-path segment");
    };
    let snap = want.on_segment(&s, eng.now, &eng.cfg.proto, &mut Stats::default());
    if snap.wake_tx {
        // The engine queues the flow for its TX turn.
        want.set_tx_queued(true);
    }
    want
}

/// The installed flow of `t`.
fn installed(eng: &Engine, t: &FourTuple) -> ProtoFlow {
    let id = eng.pre.lookup(t).expect("flow installed");
    eng.proto[id.index()].clone().expect("proto state")
}

fn init(iss: SeqNumber, irs: u32) -> ProtoInit {
    ProtoInit {
        state: TcpState::Established,
        iss,
        irs: SeqNumber(irs),
        peer_window: 65535,
        snd_wscale: 0,
        rcv_wscale: 0,
        mss: 1448,
        ts_recent: None,
        sack: false,
        rx_size: 262_144,
        tx_size: 262_144,
        rtt_us: None,
        syn_retransmitted: false,
        syn_window: 65535,
    }
}

// ---------------------------------------------------------------------
// Passive open: SYN to a listener
// ---------------------------------------------------------------------

#[test]
fn syn_to_a_listener_creates_a_half_open_entry_and_a_syn_ack_with_every_option() {
    let mut eng = engine(|_| {});
    eng.listen(PORT, None).unwrap();
    let t = tuple(PEER_PORT);
    at(&mut eng, 100 * MS);
    eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));

    let iss = SeqNumber(eng.ctrl.isn(&t, 100 * MS));
    assert_eq!(
        eng.ctrl.handshakes.get(&t),
        Some(&Handshake {
            state: TcpState::SynReceived,
            iss,
            irs: SeqNumber(1000),
            peer: PeerOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                ts_val: Some(5000),
                window: 29200,
                ecn: false,
            },
            conn: None,
            listener: Some(PORT),
            remote_mac: Some(PEER_MAC),
            retries: 0,
            deadline: 1100 * MS,
            sent_at: 100 * MS,
            from_cookie: false,
            cc: crate::proto::CcAlgorithm::Reno,
            max_pacing_rate: 0,
        })
    );
    let l = &eng.ctrl.listeners[&PORT];
    assert_eq!((l.half_open, l.accept_queue.len()), (1, 0));
    // SYN-ACK: the window is never scaled (65535 of 256 KiB), our MSS,
    // the shift that covers 256 KiB (3), TSval = 100 ms, TSecr = its TSval.
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN | ACK,
            iss,
            SeqNumber(1001),
            65535,
            opts(Some(1448), Some(3), true, Some((100, 5000)))
        )]
    );
    // The retry timer, at the initial RTO.
    assert_eq!(eng.next_deadline(), Some(1100 * MS));
    assert_eq!(eng.timer_entries(), 1);
    assert_eq!(eng.stats.total_drops(), 0);
    assert_eq!((eng.flow_count(), eng.app_conn_count()), (0, 0));
}

#[test]
fn syn_ack_offers_only_the_options_the_peer_offered() {
    let mut eng = engine(|_| {});
    eng.listen(PORT, None).unwrap();
    at(&mut eng, 100 * MS);
    let mut port = PEER_PORT;
    for ws in [false, true] {
        for sack in [false, true] {
            for ts in [false, true] {
                port += 1;
                let t = tuple(port);
                let mut syn = seg(&t, SYN, 1000, 0);
                syn.options = opts(Some(1400), ws.then_some(7), sack, ts.then_some((5000, 0)));
                eng.on_syn(t, PEER_MAC, &syn);
                let iss = eng.ctrl.handshakes[&t].iss;
                assert_eq!(
                    sent_tcp(&mut eng),
                    vec![out(
                        &t,
                        SYN | ACK,
                        iss,
                        SeqNumber(1001),
                        65535,
                        // The MSS always (ours, whatever the peer's).
                        opts(Some(1448), ws.then_some(3), sack, ts.then_some((100, 5000)))
                    )],
                    "peer offered ws {ws}, sack {sack}, ts {ts}"
                );
            }
        }
    }
    assert_eq!(eng.ctrl.handshakes.len(), 8);
}

#[test]
fn options_switched_off_in_the_configuration_are_not_offered() {
    let mut eng = engine(|c| {
        c.tcp.mss = 1200;
        c.tcp.window_scale = false;
        c.tcp.sack = false;
        c.tcp.timestamps = false;
    });
    let t = tuple(PEER_PORT);
    let iss = half_open_keep(&mut eng, t);
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN | ACK,
            iss,
            SeqNumber(1001),
            65535,
            opts(Some(1200), None, false, None)
        )]
    );
}

/// Like [`half_open`], keeping the SYN-ACK for the test.
fn half_open_keep(eng: &mut Engine, t: FourTuple) -> SeqNumber {
    eng.listen(PORT, None).unwrap();
    at(eng, 100 * MS);
    eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));
    eng.ctrl.handshakes[&t].iss
}

#[test]
fn syn_to_a_port_nobody_listens_on_gets_rst_ack_for_seg_seq_plus_seg_len() {
    let mut eng = engine(|_| {});
    at(&mut eng, 100 * MS);
    let t = tuple(PEER_PORT);
    // RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    exception(&mut eng, &frame(&t, &full_syn(&t, 1000)));
    let mut with_data = seg(&t, SYN, 0xffff_fffe, 0);
    with_data.payload = b"hello";
    exception(&mut eng, &frame(&t, &with_data));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![
            out(
                &t,
                RST | ACK,
                SeqNumber(0),
                SeqNumber(1001),
                0,
                TcpOptions::default()
            ),
            // The SYN and 5 bytes: 0xfffffffe + 6 wraps to 4.
            out(
                &t,
                RST | ACK,
                SeqNumber(0),
                SeqNumber(4),
                0,
                TcpOptions::default()
            ),
        ]
    );
    assert_eq!(eng.stats.drops(DropReason::NoConnection), 2);
    assert_eq!(eng.stats.rst_sent, 2);
    assert_eq!(eng.control_counts(), (0, 0));
}

// ---------------------------------------------------------------------
// Full backlog: SYN cookies or drop
// ---------------------------------------------------------------------

#[test]
fn full_backlog_without_cookies_drops_the_syn_and_counts_it() {
    let mut eng = engine(|c| c.tcp.syn_cookies = SynCookieMode::Never);
    eng.listen(PORT, Some(1)).unwrap();
    at(&mut eng, 100 * MS);
    let (t1, t2) = (tuple(PEER_PORT), tuple(PEER_PORT + 1));
    eng.on_syn(t1, PEER_MAC, &full_syn(&t1, 1000));
    assert_eq!(sent_tcp(&mut eng).len(), 1);
    eng.on_syn(t2, PEER_MAC, &full_syn(&t2, 2000));
    assert_eq!(sent_tcp(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::ListenOverflow), 1);
    assert_eq!(eng.stats.syn_cookies_sent, 0);
    assert_eq!(eng.ctrl.handshakes.len(), 1);
    assert!(eng.ctrl.handshakes.contains_key(&t1));
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 1);
}

#[test]
fn full_backlog_answers_with_a_cookie_syn_ack_and_keeps_nothing() {
    let mut eng = engine(|_| {});
    eng.listen(PORT, Some(1)).unwrap();
    at(&mut eng, 100 * MS);
    let (t1, t2) = (tuple(PEER_PORT), tuple(PEER_PORT + 1));
    eng.on_syn(t1, PEER_MAC, &full_syn(&t1, 1000));
    assert_eq!(sent_tcp(&mut eng).len(), 1);
    at(&mut eng, 200 * MS);
    eng.on_syn(t2, PEER_MAC, &full_syn(&t2, 7000));
    // The ISS is the cookie (peer MSS 1460 is class 1460); the peer's
    // window scale and SACK ride in the low bits of our TSval.
    let cookie = eng.ctrl.cookies.encode(&t2, 7000, 1460, 200 * MS);
    let ts_val = SynCookies::ts_val(200, Some(7), true);
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t2,
            SYN | ACK,
            SeqNumber(cookie),
            SeqNumber(7001),
            65535,
            opts(Some(1448), Some(3), true, Some((ts_val, 5000)))
        )]
    );
    assert_eq!(eng.stats.syn_cookies_sent, 1);
    assert_eq!(eng.ctrl.last_cookie_at, Some(200 * MS));
    assert_eq!(eng.stats.drops(DropReason::ListenOverflow), 0);
    assert_eq!(eng.ctrl.handshakes.len(), 1);
    assert!(!eng.ctrl.handshakes.contains_key(&t2));
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 1);
    // No retry timer for a cookie.
    assert_eq!(eng.timer_entries(), 1);
}

#[test]
fn cookie_syn_ack_without_peer_timestamps_offers_only_the_mss() {
    let mut eng = engine(|c| c.tcp.syn_cookies = SynCookieMode::Always);
    eng.listen(PORT, None).unwrap();
    at(&mut eng, 100 * MS);
    let t = tuple(PEER_PORT);
    let mut syn = seg(&t, SYN, 1000, 0);
    syn.options = opts(Some(1300), Some(7), true, None);
    eng.on_syn(t, PEER_MAC, &syn);
    let cookie = eng.ctrl.cookies.encode(&t, 1000, 1300, 100 * MS);
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN | ACK,
            SeqNumber(cookie),
            SeqNumber(1001),
            65535,
            opts(Some(1448), None, false, None)
        )]
    );
    // "always": even an empty backlog keeps nothing.
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 0);
    assert_eq!(eng.stats.syn_cookies_sent, 1);
}

#[test]
fn cookies_beyond_the_rate_are_dropped_and_counted() {
    // 100 per second: a burst of one, then one every 10 ms.
    let mut eng = engine(|c| {
        c.tcp.syn_cookies = SynCookieMode::Always;
        c.tcp.syn_cookie_rate = 100;
    });
    eng.listen(PORT, None).unwrap();
    let mut answered = 0;
    // 1,000 SYNs over 100 ms from as many ports.
    for i in 0..1000u64 {
        at(&mut eng, 100 * MS + i * 100_000);
        let t = tuple(PEER_PORT + i as u16);
        eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));
        answered += sent_tcp(&mut eng).len() as u64;
    }
    // The burst at 100 ms, then one at 110, 120, ... 190 ms.
    assert_eq!(answered, 10);
    assert_eq!(eng.stats.syn_cookies_sent, 10);
    assert_eq!(eng.stats.drops(DropReason::CookieRateLimited), 990);
    // A SYN that keeps state (not a cookie) is not limited.
    let mut eng = engine(|c| c.tcp.syn_cookie_rate = 1);
    eng.listen(PORT, None).unwrap();
    for i in 0..10u16 {
        let t = tuple(PEER_PORT + i);
        eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));
    }
    assert_eq!(sent_tcp(&mut eng).len(), 10);
    assert_eq!(eng.stats.drops(DropReason::CookieRateLimited), 0);
}

#[test]
fn full_accept_queue_drops_syns_even_with_cookies() {
    let mut eng = engine(|_| {});
    let t1 = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t1, &full_syn(&t1, 1000));
    eng.ctrl.listeners.get_mut(&PORT).unwrap().backlog = 1;
    at(&mut eng, 200 * MS);
    to_handshake(&mut eng, t1, &seg(&t1, ACK, 1001, iss.0.wrapping_add(1)));
    assert_eq!(eng.ctrl.listeners[&PORT].accept_queue.len(), 1);
    // The application does not accept: the backlog is all accept queue.
    let t2 = tuple(PEER_PORT + 1);
    eng.on_syn(t2, PEER_MAC, &full_syn(&t2, 2000));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::ListenOverflow), 1);
    assert_eq!(eng.stats.syn_cookies_sent, 0);
    // Once it accepts, the next SYN is taken.
    assert!(eng.accept(PORT).is_some());
    eng.on_syn(t2, PEER_MAC, &full_syn(&t2, 2000));
    assert_eq!(sent_tcp(&mut eng).len(), 1);
    assert!(eng.ctrl.handshakes.contains_key(&t2));
}

#[test]
fn max_connections_drops_syns_and_refuses_active_opens() {
    let mut eng = engine(|c| c.tcp.max_connections = 1);
    let t1 = tuple(PEER_PORT);
    half_open(&mut eng, t1, &full_syn(&t1, 1000));
    let t2 = tuple(PEER_PORT + 1);
    eng.on_syn(t2, PEER_MAC, &full_syn(&t2, 2000));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::ListenOverflow), 1);
    assert_eq!(
        eng.active_open(PEER_IP, PORT, None, None),
        Err(ApiError::TooManyConnections)
    );
    assert_eq!(eng.control_counts(), (1, 0));
    assert_eq!(eng.app_conn_count(), 0);
}

#[test]
fn cookie_ack_installs_the_connection_with_the_options_the_cookie_carried() {
    let mut eng = engine(|c| c.tcp.syn_cookies = SynCookieMode::Always);
    eng.listen(PORT, None).unwrap();
    let t = tuple(PEER_PORT);
    at(&mut eng, 100 * MS);
    eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));
    let syn_ack = sent_tcp(&mut eng).remove(0);
    let (cookie, our_ts) = (syn_ack.seq, syn_ack.options.timestamps.unwrap().0);

    at(&mut eng, 300 * MS);
    let mut ack = seg(&t, ACK, 1001, cookie.0.wrapping_add(1));
    ack.window = 512;
    ack.options.timestamps = Some((5100, our_ts));
    let f = frame(&t, &ack);
    // The whole exception path: an ACK to a listening port.
    exception(&mut eng, &f);

    assert_eq!(eng.stats.syn_cookies_validated, 1);
    assert_eq!(eng.stats.connections_accepted, 1);
    assert_eq!(eng.control_counts(), (0, 0));
    let l = &eng.ctrl.listeners[&PORT];
    assert_eq!((l.half_open, l.accept_queue.len()), (0, 1));
    assert_eq!(sent(&mut eng), vec![]);
    // MSS class 1460 (clamped to ours) less the timestamp option; the
    // peer's shift 7 and SACK from our TSval; no RTT sample.
    let want = flow_after(
        &eng,
        &ProtoInit {
            peer_window: 512,
            snd_wscale: 7,
            rcv_wscale: 3,
            mss: 1436,
            ts_recent: Some(5100),
            sack: true,
            ..init(cookie, 1000)
        },
        &f,
    );
    let got = installed(&eng, &t);
    assert_eq!(got.snd_wnd(), 512 << 7);
    assert_eq!(got.mss(), 1436);
    assert_eq!(got.srtt_us(), 0);
    assert_eq!(got, want);
}

#[test]
fn an_ack_without_our_cookie_is_dropped_while_cookies_are_recent_then_reset() {
    let mut eng = engine(|c| c.tcp.syn_cookies = SynCookieMode::Always);
    eng.listen(PORT, None).unwrap();
    let t = tuple(PEER_PORT);
    at(&mut eng, 100 * MS);
    eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));
    assert_eq!(sent_tcp(&mut eng).len(), 1);

    let forged = frame(&t, &seg(&t, ACK, 5001, 777));
    at(&mut eng, S);
    exception(&mut eng, &forged);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.syn_cookies_failed, 1);
    assert_eq!(eng.stats.drops(DropReason::NoConnection), 0);
    // 128 s after the last cookie (its longest life), such an ACK is
    // reset again: <SEQ=SEG.ACK><CTL=RST>.
    at(&mut eng, 100 * MS + SynCookies::MAX_LIFETIME_NS);
    exception(&mut eng, &forged);
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            RST,
            SeqNumber(777),
            SeqNumber(0),
            0,
            TcpOptions::default()
        )]
    );
    assert_eq!(eng.stats.syn_cookies_failed, 1);
    assert_eq!(eng.stats.drops(DropReason::NoConnection), 1);
    assert_eq!(eng.flow_count(), 0);
}

#[test]
fn without_cookies_an_ack_to_a_listener_is_not_checked_for_one() {
    let mut eng = engine(|c| c.tcp.syn_cookies = SynCookieMode::Never);
    eng.listen(PORT, None).unwrap();
    let t = tuple(PEER_PORT);
    at(&mut eng, 100 * MS);
    // Even a cookie that would be valid.
    let cookie = eng.ctrl.cookies.encode(&t, 1000, 1460, 100 * MS);
    let ack = seg(&t, ACK, 1001, cookie.wrapping_add(1));
    let f = frame(&t, &ack);
    assert!(!eng.on_cookie_ack(t, PEER_MAC, &ack, &f));
    assert_eq!(eng.stats.syn_cookies_failed, 0);
    assert_eq!(eng.flow_count(), 0);
}

// ---------------------------------------------------------------------
// SYN-RECEIVED
// ---------------------------------------------------------------------

#[test]
fn final_ack_installs_the_flow_with_the_negotiated_state() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    at(&mut eng, 300 * MS);
    let mut ack = seg(&t, ACK, 1001, iss.0.wrapping_add(1));
    ack.window = 512;
    ack.options.timestamps = Some((5100, 100));
    let f = frame(&t, &ack);
    eng.on_handshake_segment(t, PEER_MAC, &ack, &f);

    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.connections_accepted, 1);
    let l = &eng.ctrl.listeners[&PORT];
    assert_eq!(l.half_open, 0);
    let conn = *l.accept_queue.front().unwrap();
    let id = eng.pre.lookup(&t).unwrap();
    let app = eng.apps.get(conn).unwrap();
    assert_eq!(
        (app.tuple, app.phase, app.flow),
        (t, ConnPhase::Open, Some(id))
    );
    assert_eq!(eng.post[id.index()].as_ref().unwrap().conn, conn);
    assert_eq!(
        eng.pre.get(id).unwrap().template,
        HeaderTemplate {
            local_mac: OUR_MAC,
            remote_mac: PEER_MAC,
            vlan: None,
            tuple: t,
            timestamps: true,
        }
    );
    // Everything both offered: MSS min(1460, 1448) - 12, shifts 7 / 3,
    // SACK, TS.Recent from the final ACK, RTT 200 ms (SYN-ACK at 100 ms).
    let want = flow_after(
        &eng,
        &ProtoInit {
            peer_window: 29200,
            snd_wscale: 7,
            rcv_wscale: 3,
            mss: 1436,
            ts_recent: Some(5100),
            sack: true,
            rtt_us: Some(200_000),
            ..init(iss, 1000)
        },
        &f,
    );
    let got = installed(&eng, &t);
    assert_eq!(got.state(), TcpState::Established);
    assert_eq!(
        (got.snd_una(), got.rcv_nxt()),
        (iss + 1u32, SeqNumber(1001))
    );
    // The final ACK's window, scaled by the peer's shift.
    assert_eq!(got.snd_wnd(), 512 << 7);
    assert_eq!(got.srtt_us(), 200_000);
    assert_eq!(got, want);
    // A passive open raises nothing: the application learns from accept.
    assert_eq!(eng.apps.next_event(), None);
}

#[test]
fn final_ack_carrying_data_is_delivered_and_acked() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    at(&mut eng, 300 * MS);
    let mut ack = seg(&t, ACK | TcpFlags::PSH, 1001, iss.0.wrapping_add(1));
    ack.options.timestamps = Some((5100, 100));
    ack.payload = b"0123456789";
    to_handshake(&mut eng, t, &ack);
    // Window: (256 KiB - 10) >> 3, rounded down to stay within the buffer.
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            ACK,
            iss + 1u32,
            SeqNumber(1011),
            32766,
            TcpOptions {
                timestamps: Some((300, 5100)),
                ..TcpOptions::default()
            }
        )]
    );
    let conn = eng.accept(PORT).unwrap();
    assert_eq!(eng.readable(conn), 10);
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn,
            kinds: EventKind::READABLE
        })
    );
}

#[test]
fn wrong_ack_number_in_syn_received_gets_a_rst_and_the_entry_survives() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    let before = eng.ctrl.handshakes[&t].clone();
    at(&mut eng, 150 * MS);
    // One past and one before ISS + 1: RFC 9293 3.10.7.4 <SEQ=SEG.ACK><CTL=RST>.
    to_handshake(&mut eng, t, &seg(&t, ACK, 1001, iss.0.wrapping_add(2)));
    to_handshake(&mut eng, t, &seg(&t, ACK, 1001, iss.0));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![
            out(&t, RST, iss + 2u32, SeqNumber(0), 0, TcpOptions::default()),
            out(&t, RST, iss, SeqNumber(0), 0, TcpOptions::default()),
        ]
    );
    assert_eq!(eng.stats.drops(DropReason::BadHandshake), 2);
    assert_eq!(eng.stats.rst_sent, 2);
    assert_eq!(eng.ctrl.handshakes[&t], before);
    // The right ACK still completes it.
    to_handshake(&mut eng, t, &seg(&t, ACK, 1001, iss.0.wrapping_add(1)));
    assert_eq!(eng.flow_count(), 1);
}

#[test]
fn final_ack_outside_the_offered_window_is_acked_and_dropped_and_the_entry_survives() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    let before = eng.ctrl.handshakes[&t].clone();
    at(&mut eng, 150 * MS);
    let ack = iss.0.wrapping_add(1);
    // RCV.NXT 1001, RCV.WND 65535: an empty ACK at 1000 (below) and at
    // 1001 + 65535 (past the end) is not acceptable, nor 10 bytes that end
    // before RCV.NXT (RFC 9293 3.10.7.4).
    to_handshake(&mut eng, t, &seg(&t, ACK, 1000, ack));
    to_handshake(&mut eng, t, &seg(&t, ACK, 1001 + 65535, ack));
    let mut stale = seg(&t, ACK, 990, ack);
    stale.payload = b"0123456789";
    to_handshake(&mut eng, t, &stale);
    // <SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK>, with TSopt (negotiated).
    let reply = out(
        &t,
        ACK,
        iss + 1u32,
        SeqNumber(1001),
        65535,
        TcpOptions {
            timestamps: Some((150, 5000)),
            ..TcpOptions::default()
        },
    );
    assert_eq!(
        sent_tcp(&mut eng),
        vec![reply.clone(), reply.clone(), reply]
    );
    assert_eq!(eng.stats.drops(DropReason::OutOfWindow), 3);
    assert_eq!(eng.flow_count(), 0);
    assert_eq!(eng.ctrl.handshakes[&t], before);
    // Data that starts below RCV.NXT but ends in the window is acceptable
    // (its new bytes count), and so is an ACK at RCV.NXT.
    let mut overlap = seg(&t, ACK, 995, ack);
    overlap.payload = b"0123456789";
    to_handshake(&mut eng, t, &overlap);
    assert_eq!(eng.flow_count(), 1);
}

#[test]
fn syn_ack_with_another_isn_does_not_complete_a_simultaneous_open() {
    let mut eng = engine(|_| {});
    let (_, t, iss) = crossing_syns(&mut eng);
    let irs = eng.ctrl.handshakes[&t].irs;
    to_handshake(
        &mut eng,
        t,
        &seg(&t, SYN | ACK, irs.0.wrapping_add(7), iss.0.wrapping_add(1)),
    );
    assert_eq!(eng.stats.drops(DropReason::BadHandshake), 1);
    assert_eq!(eng.flow_count(), 0);
    assert!(eng.ctrl.handshakes.contains_key(&t));
}

#[test]
fn retransmitted_syn_gets_the_syn_ack_again_without_touching_the_retry_timer() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    let before = eng.ctrl.handshakes[&t].clone();
    at(&mut eng, 600 * MS);
    to_handshake(&mut eng, t, &full_syn(&t, 1000));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN | ACK,
            iss,
            SeqNumber(1001),
            65535,
            opts(Some(1448), Some(3), true, Some((600, 5000)))
        )]
    );
    // Same deadline and retry count, no new timer entry.
    assert_eq!(eng.ctrl.handshakes[&t], before);
    assert_eq!(eng.timer_entries(), 1);
    // A SYN with another sequence number is dropped.
    to_handshake(&mut eng, t, &full_syn(&t, 2000));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::BadHandshake), 1);
    assert_eq!(eng.ctrl.handshakes[&t], before);
}

#[test]
fn syn_ack_is_retransmitted_with_backoff_then_the_entry_expires_after_synack_retries() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    let syn_ack = |now: u64| {
        out(
            &t,
            SYN | ACK,
            iss,
            SeqNumber(1001),
            65535,
            opts(Some(1448), Some(3), true, Some((ts(now), 5000))),
        )
    };
    // 5 retransmissions, the RTO doubling from 1 s: 1.1, 3.1, 7.1, 15.1, 31.1 s.
    let mut deadline = 1100 * MS;
    for (retries, next_ms) in [
        (1u8, 3100),
        (2, 7100),
        (3, 15_100),
        (4, 31_100),
        (5, 63_100),
    ] {
        // Not yet due: a superseded timer entry does nothing.
        at(&mut eng, deadline - 1);
        eng.handshake_timer(t);
        assert_eq!(sent(&mut eng), vec![]);
        at(&mut eng, deadline);
        eng.handshake_timer(t);
        assert_eq!(
            sent_tcp(&mut eng),
            vec![syn_ack(deadline)],
            "retry {retries}"
        );
        let h = &eng.ctrl.handshakes[&t];
        assert_eq!(
            (h.retries, h.deadline, h.sent_at),
            (retries, next_ms * MS, deadline)
        );
        assert_eq!(eng.timer_entries(), 1 + retries as usize);
        deadline = next_ms * MS;
    }
    // 63.1 s: the budget is spent; the entry goes, counted, silently.
    at(&mut eng, deadline);
    eng.handshake_timer(t);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 0);
    assert_eq!(eng.stats.handshakes_expired, 1);
    assert_eq!(eng.stats.connect_failures, 0);
    assert_eq!(eng.app_conn_count(), 0);
    // A late timer entry for it finds nothing.
    eng.handshake_timer(t);
    assert_eq!(eng.stats.handshakes_expired, 1);
}

#[test]
fn synack_retries_and_the_rto_bounds_come_from_the_configuration() {
    let mut eng = engine(|c| {
        c.tcp.synack_retries = 2;
        c.tcp.initial_rto_ms = 500;
        c.tcp.max_rto_ms = 1000;
    });
    let t = tuple(PEER_PORT);
    half_open(&mut eng, t, &full_syn(&t, 1000));
    // 0.5 s, then 1 s (the cap) twice: retransmissions at 0.6 and 1.6 s,
    // expiry at 2.6 s.
    assert_eq!(eng.ctrl.handshakes[&t].deadline, 600 * MS);
    for (now, next) in [(600 * MS, 1600 * MS), (1600 * MS, 2600 * MS)] {
        at(&mut eng, now);
        eng.handshake_timer(t);
        assert_eq!(sent_tcp(&mut eng).len(), 1);
        assert_eq!(eng.ctrl.handshakes[&t].deadline, next);
    }
    at(&mut eng, 2600 * MS);
    eng.handshake_timer(t);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.handshakes_expired, 1);

    // `synack_retries: 0`: the first timeout ends it.
    let mut eng = engine(|c| c.tcp.synack_retries = 0);
    half_open(&mut eng, t, &full_syn(&t, 1000));
    at(&mut eng, 1100 * MS);
    eng.handshake_timer(t);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.handshakes_expired, 1);
}

#[test]
fn exact_rst_in_syn_received_removes_the_entry_and_the_listener_stays() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    half_open(&mut eng, t, &full_syn(&t, 1000));
    at(&mut eng, 150 * MS);
    to_handshake(&mut eng, t, &seg(&t, RST, 1001, 0));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 0);
    assert_eq!(eng.stats.rst_received, 1);
    assert_eq!(eng.stats.connect_failures, 0);
    assert_eq!(eng.app_conn_count(), 0);
    // Back in LISTEN: a new SYN opens again.
    eng.on_syn(t, PEER_MAC, &full_syn(&t, 50_000));
    assert_eq!(sent_tcp(&mut eng).len(), 1);
    assert_eq!(eng.ctrl.handshakes[&t].irs, SeqNumber(50_000));
}

#[test]
fn inexact_rst_in_syn_received_is_challenged_in_window_and_dropped_outside() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    let before = eng.ctrl.handshakes[&t].clone();
    at(&mut eng, 150 * MS);
    // RCV.NXT 1001, window 65535 (our SYN-ACK's): 1002 and 1001 + 65534 are
    // in the window, 1001 + 65535 and 1000 are not.
    for seq in [1002, 1001 + 65534, 1001 + 65535, 1000] {
        to_handshake(&mut eng, t, &seg(&t, RST, seq, 0));
    }
    // RFC 5961 3.2 <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, with TSopt: the
    // SYN-ACK negotiated timestamps (RFC 7323 3.2).
    let challenge = out(
        &t,
        ACK,
        iss + 1u32,
        SeqNumber(1001),
        65535,
        TcpOptions {
            timestamps: Some((150, 5000)),
            ..TcpOptions::default()
        },
    );
    assert_eq!(sent_tcp(&mut eng), vec![challenge.clone(), challenge]);
    assert_eq!(eng.stats.drops(DropReason::RstChallenged), 2);
    assert_eq!(eng.stats.challenge_acks, 2);
    assert_eq!(eng.stats.drops(DropReason::RstOutOfWindow), 2);
    assert_eq!(eng.stats.rst_received, 0);
    assert_eq!(eng.ctrl.handshakes[&t], before);
}

#[test]
fn challenge_ack_in_syn_received_has_no_timestamps_when_none_were_negotiated() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let mut syn = seg(&t, SYN, 1000, 0);
    syn.options = opts(Some(1460), None, false, None);
    let iss = half_open(&mut eng, t, &syn);
    to_handshake(&mut eng, t, &seg(&t, RST, 1100, 0));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            ACK,
            iss + 1u32,
            SeqNumber(1001),
            65535,
            TcpOptions::default()
        )]
    );
}

#[test]
fn segment_without_syn_ack_or_rst_in_syn_received_is_dropped() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    half_open(&mut eng, t, &full_syn(&t, 1000));
    let before = eng.ctrl.handshakes[&t].clone();
    let mut data = seg(&t, FIN, 1001, 0);
    data.payload = b"early";
    to_handshake(&mut eng, t, &data);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::BadHandshake), 1);
    assert_eq!(eng.ctrl.handshakes[&t], before);
}

// ---------------------------------------------------------------------
// Active open: SYN-SENT
// ---------------------------------------------------------------------

#[test]
fn active_open_sends_a_syn_offering_every_enabled_option() {
    let mut eng = engine(|_| {});
    eng.ctrl.arp.insert(PEER_IP, PEER_MAC, 0);
    at(&mut eng, 100 * MS);
    let c = eng.active_open(PEER_IP, PORT, None, None).unwrap();
    let t = eng.apps.get(c).unwrap().tuple;
    assert_eq!(
        (t.local_ip, t.remote_ip, t.remote_port),
        (OUR_IP, PEER_IP, PORT)
    );
    assert!(t.local_port >= 49152);
    let iss = SeqNumber(eng.ctrl.isn(&t, 100 * MS));
    assert_eq!(
        eng.ctrl.handshakes.get(&t),
        Some(&Handshake {
            state: TcpState::SynSent,
            iss,
            irs: SeqNumber(0),
            peer: PeerOptions::default(),
            conn: Some(c),
            listener: None,
            remote_mac: Some(PEER_MAC),
            retries: 0,
            deadline: 1100 * MS,
            sent_at: 100 * MS,
            from_cookie: false,
            cc: crate::proto::CcAlgorithm::Reno,
            max_pacing_rate: 0,
        })
    );
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN,
            iss,
            SeqNumber(0),
            65535,
            opts(Some(1448), Some(3), true, Some((100, 0)))
        )]
    );
    assert_eq!(eng.conn_state(c), Some(TcpState::SynSent));
    assert_eq!(eng.apps.get(c).unwrap().phase, ConnPhase::Connecting);
    // The next active open starts after this port.
    let next = if t.local_port == u16::MAX {
        49152
    } else {
        t.local_port + 1
    };
    assert_eq!(eng.ctrl.next_ephemeral_candidate().next(), Some(next));
}

#[test]
fn syn_ack_with_the_right_ack_establishes_and_is_acked() {
    let mut eng = engine(|_| {});
    let (c, t, iss) = syn_sent(&mut eng);
    at(&mut eng, 150 * MS);
    let mut syn_ack = seg(&t, SYN | ACK, 9000, iss.0.wrapping_add(1));
    syn_ack.window = 28960;
    syn_ack.options = opts(Some(1400), Some(2), true, Some((777, 100)));
    to_handshake(&mut eng, t, &syn_ack);

    // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; 256 KiB >> 3 = 32768.
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            ACK,
            iss + 1u32,
            SeqNumber(9001),
            32768,
            TcpOptions {
                timestamps: Some((150, 777)),
                ..TcpOptions::default()
            }
        )]
    );
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(
        (eng.stats.connections_opened, eng.stats.connections_accepted),
        (1, 0)
    );
    let id = eng.pre.lookup(&t).unwrap();
    let app = eng.apps.get(c).unwrap();
    assert_eq!((app.phase, app.flow), (ConnPhase::Open, Some(id)));
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn: c,
            kinds: EventKind::CONNECTED | EventKind::WRITABLE
        })
    );
    // The SYN-ACK's window is not scaled (RFC 7323 2.2); MSS 1400 - 12.
    let mut want = ProtoFlow::new(
        &ProtoInit {
            peer_window: 28960,
            snd_wscale: 2,
            rcv_wscale: 3,
            mss: 1388,
            ts_recent: Some(777),
            sack: true,
            rtt_us: Some(50_000),
            ..init(iss, 9000)
        },
        &eng.cfg.proto,
    );
    want.challenge_ack();
    want.note_rx(eng.now());
    assert_eq!(installed(&eng, &t), want);
}

#[test]
fn syn_ack_with_a_wrong_ack_gets_a_rst_and_the_open_goes_on() {
    let mut eng = engine(|_| {});
    let (c, t, iss) = syn_sent(&mut eng);
    let before = eng.ctrl.handshakes[&t].clone();
    at(&mut eng, 150 * MS);
    to_handshake(
        &mut eng,
        t,
        &seg(&t, SYN | ACK, 9000, iss.0.wrapping_add(7)),
    );
    // RFC 9293 3.10.7.3: <SEQ=SEG.ACK><CTL=RST>.
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            RST,
            iss + 7u32,
            SeqNumber(0),
            0,
            TcpOptions::default()
        )]
    );
    assert_eq!(eng.stats.drops(DropReason::BadHandshake), 1);
    assert_eq!(eng.ctrl.handshakes[&t], before);
    assert_eq!(eng.conn_state(c), Some(TcpState::SynSent));
}

#[test]
fn rst_in_syn_sent_refuses_the_open_only_with_an_acceptable_ack() {
    let mut eng = engine(|_| {});
    let (c, t, iss) = syn_sent(&mut eng);
    let before = eng.ctrl.handshakes[&t].clone();
    at(&mut eng, 150 * MS);
    // Without ACK, or with a wrong one: dropped (RFC 9293 3.10.7.3).
    to_handshake(&mut eng, t, &seg(&t, RST, 9000, 0));
    to_handshake(
        &mut eng,
        t,
        &seg(&t, RST | ACK, 9000, iss.0.wrapping_add(2)),
    );
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::RstOutOfWindow), 2);
    assert_eq!(eng.ctrl.handshakes[&t], before);
    // ACK = ISS + 1: connection refused.
    to_handshake(&mut eng, t, &seg(&t, RST | ACK, 0, iss.0.wrapping_add(1)));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.rst_received, 1);
    assert_eq!(eng.stats.connect_failures, 1);
    let app = eng.apps.get(c).unwrap();
    assert_eq!(
        (app.phase, app.error),
        (ConnPhase::Finished, Some(ConnError::Refused))
    );
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn: c,
            kinds: EventKind::ERROR | EventKind::FINISHED
        })
    );
}

#[test]
fn ack_without_syn_in_syn_sent_is_dropped() {
    let mut eng = engine(|_| {});
    let (_, t, iss) = syn_sent(&mut eng);
    let before = eng.ctrl.handshakes[&t].clone();
    to_handshake(&mut eng, t, &seg(&t, ACK, 9000, iss.0.wrapping_add(1)));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::BadHandshake), 1);
    assert_eq!(eng.ctrl.handshakes[&t], before);
}

/// Simultaneous open (RFC 9293 figure 7): the peer's SYN crosses ours.
fn crossing_syns(eng: &mut Engine) -> (ConnId, FourTuple, SeqNumber) {
    let (c, t, iss) = syn_sent(eng);
    at(eng, 150 * MS);
    let mut syn = seg(&t, SYN, 7000, 0);
    syn.options = opts(Some(1300), None, false, Some((900, 0)));
    to_handshake(eng, t, &syn);
    // SYN-ACK with our ISS again, offering what the peer's SYN offered.
    assert_eq!(
        sent_tcp(eng),
        vec![out(
            &t,
            SYN | ACK,
            iss,
            SeqNumber(7001),
            65535,
            opts(Some(1448), None, false, Some((150, 900)))
        )]
    );
    assert_eq!(
        eng.ctrl.handshakes[&t],
        Handshake {
            state: TcpState::SynReceived,
            iss,
            irs: SeqNumber(7000),
            peer: PeerOptions {
                mss: Some(1300),
                window_scale: None,
                sack_permitted: false,
                ts_val: Some(900),
                window: 65535,
                ecn: false,
            },
            conn: Some(c),
            listener: None,
            remote_mac: Some(PEER_MAC),
            retries: 0,
            deadline: 1150 * MS,
            sent_at: 150 * MS,
            from_cookie: false,
            cc: crate::proto::CcAlgorithm::Reno,
            max_pacing_rate: 0,
        }
    );
    (c, t, iss)
}

#[test]
fn simultaneous_open_is_completed_by_the_peers_syn_ack() {
    let mut eng = engine(|_| {});
    let (c, t, iss) = crossing_syns(&mut eng);
    at(&mut eng, 200 * MS);
    let mut syn_ack = seg(&t, SYN | ACK, 7000, iss.0.wrapping_add(1));
    syn_ack.options = opts(Some(1300), None, false, Some((950, 150)));
    to_handshake(&mut eng, t, &syn_ack);
    // No window scale: the window field is the buffer, capped at 65535.
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            ACK,
            iss + 1u32,
            SeqNumber(7001),
            65535,
            TcpOptions {
                timestamps: Some((200, 950)),
                ..TcpOptions::default()
            }
        )]
    );
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.connections_opened, 1);
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn: c,
            kinds: EventKind::CONNECTED | EventKind::WRITABLE
        })
    );
    let mut want = ProtoFlow::new(
        &ProtoInit {
            mss: 1288,
            ts_recent: Some(950),
            rtt_us: Some(50_000),
            ..init(iss, 7000)
        },
        &eng.cfg.proto,
    );
    want.challenge_ack();
    want.note_rx(eng.now());
    assert_eq!(installed(&eng, &t), want);
}

#[test]
fn simultaneous_open_is_completed_by_a_bare_ack() {
    let mut eng = engine(|_| {});
    let (c, t, iss) = crossing_syns(&mut eng);
    at(&mut eng, 200 * MS);
    let mut ack = seg(&t, ACK, 7001, iss.0.wrapping_add(1));
    ack.options.timestamps = Some((950, 150));
    to_handshake(&mut eng, t, &ack);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.conn_state(c), Some(TcpState::Established));
    assert_eq!(eng.stats.connections_opened, 1);
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn: c,
            kinds: EventKind::CONNECTED | EventKind::WRITABLE
        })
    );
}

#[test]
fn syn_is_retransmitted_with_backoff_then_the_open_times_out_after_syn_retries() {
    let mut cfg = config(|_| {});
    cfg.syn_retries = 2;
    let mut eng = Engine::new(cfg);
    let (c, t, iss) = syn_sent(&mut eng);
    for (now, next) in [(1100 * MS, 3100 * MS), (3100 * MS, 7100 * MS)] {
        at(&mut eng, now);
        eng.handshake_timer(t);
        assert_eq!(
            sent_tcp(&mut eng),
            vec![out(
                &t,
                SYN,
                iss,
                SeqNumber(0),
                65535,
                opts(Some(1448), Some(3), true, Some((ts(now), 0)))
            )]
        );
        assert_eq!(eng.ctrl.handshakes[&t].deadline, next);
    }
    at(&mut eng, 7100 * MS);
    eng.handshake_timer(t);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.handshakes_expired, 1);
    assert_eq!(eng.stats.connect_failures, 1);
    assert_eq!(eng.conn_error(c), Some(ConnError::TimedOut));
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn: c,
            kinds: EventKind::ERROR | EventKind::FINISHED
        })
    );
}

#[test]
fn handshake_waiting_for_arp_counts_its_timeouts_and_still_expires() {
    // Default budget (8): the timeout re-arms without sending anything, and
    // the SYN, once the next hop answers, goes out with that retry counted.
    let mut eng = engine(|_| {});
    at(&mut eng, 100 * MS);
    let c = eng.active_open(PEER_IP, PORT, None, None).unwrap();
    let t = eng.apps.get(c).unwrap().tuple;
    let iss = eng.ctrl.handshakes[&t].iss;
    assert_eq!(sent(&mut eng), vec![arp_request(PEER_IP)]);
    assert_eq!(
        eng.ctrl.handshakes[&t],
        Handshake {
            state: TcpState::SynSent,
            iss,
            irs: SeqNumber(0),
            peer: PeerOptions::default(),
            conn: Some(c),
            listener: None,
            remote_mac: None,
            retries: 0,
            deadline: 1100 * MS,
            sent_at: 0,
            from_cookie: false,
            cc: crate::proto::CcAlgorithm::Reno,
            max_pacing_rate: 0,
        }
    );
    at(&mut eng, 1100 * MS);
    eng.handshake_timer(t);
    assert_eq!(sent(&mut eng), vec![]);
    let h = &eng.ctrl.handshakes[&t];
    assert_eq!((h.retries, h.deadline), (1, 3100 * MS));
    at(&mut eng, 1500 * MS);
    exception(
        &mut eng,
        &arp_frame(
            crate::wire::ArpOperation::Reply,
            PEER_MAC,
            PEER_IP,
            OUR_MAC,
            OUR_IP,
        ),
    );
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN,
            iss,
            SeqNumber(0),
            65535,
            opts(Some(1448), Some(3), true, Some((1500, 0)))
        )]
    );
    let h = &eng.ctrl.handshakes[&t];
    assert_eq!(
        (h.remote_mac, h.retries, h.deadline, h.sent_at),
        (Some(PEER_MAC), 1, 3500 * MS, 1500 * MS)
    );

    // No retries at all: the first timeout ends it while ARP is pending,
    // with "host unreachable"; the ARP answer that comes later sends nothing.
    let mut cfg = config(|_| {});
    cfg.syn_retries = 0;
    let mut eng = Engine::new(cfg);
    at(&mut eng, 100 * MS);
    let c = eng.active_open(PEER_IP, PORT, None, None).unwrap();
    assert_eq!(sent(&mut eng), vec![arp_request(PEER_IP)]);
    at(&mut eng, 1100 * MS);
    eng.handshake_timer(eng.apps.get(c).unwrap().tuple);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.handshakes_expired, 1);
    assert_eq!(eng.stats.connect_failures, 1);
    assert_eq!(eng.conn_error(c), Some(ConnError::HostUnreachable));
    at(&mut eng, 1500 * MS);
    exception(
        &mut eng,
        &arp_frame(
            crate::wire::ArpOperation::Reply,
            PEER_MAC,
            PEER_IP,
            OUR_MAC,
            OUR_IP,
        ),
    );
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.ctrl.arp.lookup(PEER_IP, 1500 * MS), Some(PEER_MAC));
}

// ---------------------------------------------------------------------
// Install failures
// ---------------------------------------------------------------------

/// An application region with no room left for a connection's buffers.
#[derive(Debug)]
struct NoRoom;

impl BufferSource for NoRoom {
    fn alloc(&self) -> Option<crate::app::ConnBuffers> {
        None
    }
}

#[test]
fn final_ack_installs_nothing_when_the_listener_is_gone_or_has_no_buffers() {
    // Stopped listening while the handshake was open: its half-open entry
    // goes with the listener (no SYN-ACK retransmitted for a port nobody
    // listens on, as Linux drops a closed listener's requests), and the
    // final ACK completes nothing (no flow, no RST here: the peer's next
    // segment gets one from the exception path).
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    let iss = half_open(&mut eng, t, &full_syn(&t, 1000));
    assert!(eng.unlisten(PORT));
    assert_eq!(eng.control_counts(), (0, 0));
    at(&mut eng, 1100 * MS);
    eng.handshake_timer(t);
    assert_eq!(sent(&mut eng), vec![]);
    to_handshake(&mut eng, t, &seg(&t, ACK, 1001, iss.0.wrapping_add(1)));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!((eng.flow_count(), eng.app_conn_count()), (0, 0));
    assert_eq!(eng.stats.connections_accepted, 0);

    // The application's region has no room: refused the same way, and
    // the half-open count is given back.
    let mut eng = engine(|_| {});
    eng.listen_with(PORT, None, std::sync::Arc::new(NoRoom))
        .unwrap();
    at(&mut eng, 100 * MS);
    eng.on_syn(t, PEER_MAC, &full_syn(&t, 1000));
    let iss = eng.ctrl.handshakes[&t].iss;
    assert_eq!(sent_tcp(&mut eng).len(), 1);
    to_handshake(&mut eng, t, &seg(&t, ACK, 1001, iss.0.wrapping_add(1)));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!((eng.flow_count(), eng.app_conn_count()), (0, 0));
    let l = &eng.ctrl.listeners[&PORT];
    assert_eq!((l.half_open, l.accept_queue.len()), (0, 0));
}
