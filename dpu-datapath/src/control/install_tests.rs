//! `establish`: what a completed handshake installs. Each test puts a
//! handshake entry in the table as the handshake code leaves it and calls
//! `establish`; the installed `proto` state is compared whole with the one
//! built from the `ProtoInit` the negotiation rules give.

use super::*;
use crate::app::{AppEvent, ConnId};
use crate::control::test_util::*;
use crate::control::{Handshake, PeerOptions};
use crate::wire::SeqNumber;

const ISS: SeqNumber = SeqNumber(0x1000_0000);
const IRS: SeqNumber = SeqNumber(5000);

/// A passive open's entry: the peer's SYN offered `peer`, our SYN-ACK
/// left at 100 ms.
fn entry(peer: PeerOptions) -> Handshake {
    Handshake {
        state: TcpState::SynReceived,
        iss: ISS,
        irs: IRS,
        peer,
        conn: None,
        listener: Some(PORT),
        remote_mac: Some(PEER_MAC),
        retries: 0,
        deadline: 1100 * MS,
        sent_at: 100 * MS,
        from_cookie: false,
        cc: crate::proto::CcAlgorithm::Reno,
        max_pacing_rate: 0,
    }
}

fn peer(mss: Option<u16>, ws: Option<u8>, sack: bool, ts: Option<u32>) -> PeerOptions {
    PeerOptions {
        mss,
        window_scale: ws,
        sack_permitted: sack,
        ts_val: ts,
        window: 1000,
        ecn: false,
    }
}

/// Installs `h` for the peer's PEER_PORT at 300 ms, counted as half-open
/// when it is a passive open (as `on_syn` counts it).
fn install(eng: &mut Engine, h: Handshake) -> Option<FlowId> {
    let t = tuple(PEER_PORT);
    if let Some(port) = h.listener {
        eng.ctrl.listeners.get_mut(&port).unwrap().half_open += 1;
    }
    eng.ctrl.handshakes.insert(t, h);
    at(eng, 300 * MS);
    eng.establish(&t)
}

/// The flow the negotiation must give: established, ISS/IRS, the SYN's
/// window 1000, 256 KiB buffers, then `f`.
fn want(eng: &Engine, f: impl FnOnce(&mut ProtoInit)) -> ProtoFlow {
    let mut init = ProtoInit {
        state: TcpState::Established,
        iss: ISS,
        irs: IRS,
        peer_window: 1000,
        snd_wscale: 0,
        rcv_wscale: 0,
        mss: 1448,
        ts_recent: None,
        sack: false,
        rx_size: 262_144,
        tx_size: 262_144,
        rtt_us: Some(200_000),
        syn_retransmitted: false,
        syn_window: 65535,
    };
    f(&mut init);
    let mut flow = ProtoFlow::new(&init, &eng.cfg.proto);
    // Installed by the handshake's last segment, which arrived now.
    flow.note_rx(eng.now());
    flow
}

fn flow(eng: &Engine, id: FlowId) -> &ProtoFlow {
    eng.proto[id.index()].as_ref().unwrap()
}

#[test]
fn each_option_is_used_only_when_both_sides_offered_it() {
    for configured in [true, false] {
        for (ws, sack, ts) in (0..8).map(|b| (b & 1 != 0, b & 2 != 0, b & 4 != 0)) {
            let mut eng = engine(|c| {
                c.tcp.window_scale = configured;
                c.tcp.sack = configured;
                c.tcp.timestamps = configured;
            });
            eng.listen(PORT, None).unwrap();
            let h = entry(peer(Some(1460), ws.then_some(5), sack, ts.then_some(4242)));
            let id = install(&mut eng, h).unwrap();
            let (ws, sack, ts) = (ws && configured, sack && configured, ts && configured);
            let want = want(&eng, |i| {
                i.snd_wscale = if ws { 5 } else { 0 };
                i.rcv_wscale = if ws { 3 } else { 0 };
                i.mss = if ts { 1436 } else { 1448 };
                i.ts_recent = ts.then_some(4242);
                i.sack = sack;
            });
            assert_eq!(
                flow(&eng, id),
                &want,
                "configured {configured}, peer ws {ws} sack {sack} ts {ts}"
            );
            assert_eq!(eng.pre.get(id).unwrap().template.timestamps, ts);
        }
    }
}

#[test]
fn the_peer_mss_is_clamped_to_88_and_ours_and_timestamps_take_12_bytes() {
    for (cfg_mss, peer_mss, ts, mss) in [
        // No option: 536 (RFC 9293 3.7.1).
        (1448, None, false, 536),
        (1448, Some(4), false, 88),
        (1448, Some(4), true, 76),
        (1448, Some(1000), false, 1000),
        (1448, Some(9000), false, 1448),
        (1448, Some(9000), true, 1436),
        (1200, Some(1460), false, 1200),
    ] {
        let mut eng = engine(|c| c.tcp.mss = cfg_mss);
        eng.listen(PORT, None).unwrap();
        let id = install(
            &mut eng,
            entry(peer(peer_mss, None, false, ts.then_some(1))),
        )
        .unwrap();
        let want = want(&eng, |i| {
            i.mss = mss;
            i.ts_recent = ts.then_some(1);
        });
        assert_eq!(flow(&eng, id), &want, "ours {cfg_mss}, peer {peer_mss:?}");
        assert_eq!(flow(&eng, id).mss(), mss);
    }
}

#[test]
fn the_peer_window_scale_is_capped_at_14() {
    for (offered, used) in [(0, 0), (14, 14), (15, 14), (255, 14)] {
        let mut eng = engine(|_| {});
        eng.listen(PORT, None).unwrap();
        let id = install(
            &mut eng,
            entry(peer(Some(1460), Some(offered), false, None)),
        )
        .unwrap();
        let want = want(&eng, |i| {
            i.snd_wscale = used;
            i.rcv_wscale = 3;
        });
        assert_eq!(flow(&eng, id), &want, "offered {offered}");
    }
}

#[test]
fn the_handshake_gives_an_rtt_sample_only_when_nothing_was_retransmitted() {
    // (retries, from a cookie, RTT sample, start with a 3 s RTO)
    for (retries, from_cookie, rtt_us, syn_retransmitted) in [
        (0, false, Some(200_000), false),
        (2, false, None, true),
        (0, true, None, false),
    ] {
        let mut eng = engine(|_| {});
        eng.listen(PORT, None).unwrap();
        let h = Handshake {
            retries,
            from_cookie,
            ..entry(peer(Some(1460), None, false, None))
        };
        let id = install(&mut eng, h).unwrap();
        let want = want(&eng, |i| {
            i.rtt_us = rtt_us;
            i.syn_retransmitted = syn_retransmitted;
        });
        assert_eq!(
            flow(&eng, id),
            &want,
            "retries {retries}, cookie {from_cookie}"
        );
    }
}

#[test]
fn a_passive_install_waits_for_accept_and_an_active_one_raises_connected() {
    let mut eng = engine(|_| {});
    eng.listen(PORT, None).unwrap();
    let id = install(&mut eng, entry(peer(Some(1460), None, false, None))).unwrap();
    let t = tuple(PEER_PORT);
    let l = &eng.ctrl.listeners[&PORT];
    assert_eq!((l.half_open, l.accept_queue.len()), (0, 1));
    let conn = l.accept_queue[0];
    let app = eng.apps.get(conn).unwrap();
    assert_eq!(
        (app.tuple, app.phase, app.flow),
        (t, ConnPhase::Open, Some(id))
    );
    assert_eq!(eng.pre.lookup(&t), Some(id));
    assert_eq!(eng.post[id.index()].as_ref().unwrap().conn, conn);
    assert_eq!(
        (eng.stats.connections_accepted, eng.stats.connections_opened),
        (1, 0)
    );
    assert_eq!(eng.apps.next_event(), None);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(sent(&mut eng), vec![]);

    let mut eng = engine(|_| {});
    let (rx, tx) = (eng.cfg.rx_buffer, eng.cfg.tx_buffer);
    let conn: ConnId = eng.apps.insert(AppConn::new(
        tuple(PEER_PORT),
        rx,
        tx,
        ConnPhase::Connecting,
    ));
    let h = Handshake {
        state: TcpState::SynSent,
        conn: Some(conn),
        listener: None,
        ..entry(peer(Some(1460), None, false, None))
    };
    let id = install(&mut eng, h).unwrap();
    let app = eng.apps.get(conn).unwrap();
    assert_eq!((app.phase, app.flow), (ConnPhase::Open, Some(id)));
    assert_eq!(
        (eng.stats.connections_accepted, eng.stats.connections_opened),
        (0, 1)
    );
    assert_eq!(
        eng.apps.next_event(),
        Some(AppEvent {
            conn,
            kinds: EventKind::CONNECTED | EventKind::WRITABLE
        })
    );
    // Installed, not answered: the caller sends what the segment needs.
    assert_eq!(sent(&mut eng), vec![]);
}
