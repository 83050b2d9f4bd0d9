//! Removing connections from the data path: who goes to TIME-WAIT after
//! the FIN exchange (the data path runs the FIN state machine and calls
//! `finish_flow`), aborts with and without RST, and the RFC 5961 checks on
//! RST and SYN for installed connections (`on_installed_exception`).
//!
//! Every test opens its connection through the control plane (`on_syn`,
//! then the final ACK through `on_handshake_segment`), the peer offering
//! only MSS 1460: no window scaling, SACK or timestamps, so the window
//! field is 65535.

use super::*;
use crate::app::{AppEvent, ConnId, ConnPhase, EventKind};
use crate::control::test_util::*;
use crate::flow::FourTuple;
use crate::proto::TcpState;
use crate::wire::{SeqNumber, TcpOptions};

/// A passive open at 100 ms (SYN 1000) completed at 200 ms: the flow, the
/// accepted handle, the tuple and our ISS. RCV.NXT is 1001.
fn open(eng: &mut Engine) -> (FlowId, ConnId, FourTuple, SeqNumber) {
    eng.listen(PORT, None).unwrap();
    let t = tuple(PEER_PORT);
    at(eng, 100 * MS);
    let mut syn = seg(&t, SYN, 1000, 0);
    syn.options = opts(Some(1460), None, false, None);
    eng.on_syn(t, PEER_MAC, &syn);
    let iss = eng.ctrl.handshakes[&t].iss;
    at(eng, 200 * MS);
    let ack = seg(&t, ACK, 1001, iss.0.wrapping_add(1));
    eng.on_handshake_segment(t, PEER_MAC, &ack, &frame(&t, &ack));
    assert_eq!(sent_tcp(eng).len(), 1, "the SYN-ACK");
    let conn = eng.accept(PORT).unwrap();
    (eng.pre.lookup(&t).unwrap(), conn, t, iss)
}

fn plain(t: &FourTuple, flags: TcpFlags, seq: SeqNumber, ack: u32, window: u16) -> Out {
    out(t, flags, seq, SeqNumber(ack), window, TcpOptions::default())
}

// ---------------------------------------------------------------------
// Orderly close: TIME-WAIT for the active closer only
// ---------------------------------------------------------------------

#[test]
fn the_active_closer_hands_the_connection_to_time_wait_for_2msl() {
    let mut eng = engine(|_| {});
    let (id, c, t, iss) = open(&mut eng);
    eng.shutdown_write(c).unwrap();
    eng.poll(300 * MS);
    assert_eq!(
        sent_tcp(&mut eng),
        vec![plain(&t, FIN | ACK, iss + 1u32, 1001, 65535)]
    );
    // FIN-WAIT-1: the peer's FIN acknowledges ours.
    eng.receive(
        &frame(&t, &seg(&t, FIN | ACK, 1001, iss.0.wrapping_add(2))),
        400 * MS,
    );
    assert_eq!(
        sent_tcp(&mut eng),
        vec![plain(&t, ACK, iss + 2u32, 1002, 65535)]
    );
    assert_eq!(
        eng.ctrl.time_wait.get(&t),
        Some(&TimeWait {
            snd_nxt: iss + 2u32,
            rcv_nxt: SeqNumber(1002),
            deadline: 60_400 * MS,
            remote_mac: PEER_MAC,
            ts_recent: None,
            window: 65535,
        })
    );
    // The data path forgot the flow; the handle reports CLOSED, no error.
    assert_eq!(eng.flow_count(), 0);
    assert_eq!(eng.pre.lookup(&t), None);
    assert!(eng.proto[id.index()].is_none());
    assert_eq!(eng.conn_state(c), Some(TcpState::Closed));
    assert_eq!(eng.conn_error(c), None);
    assert_eq!(
        (eng.stats.connections_closed, eng.stats.connections_reset),
        (1, 0)
    );
    // 2MSL is `tcp.time_wait_ms` (60 s): the entry's timer removes it.
    eng.poll(60_400 * MS - 1);
    assert_eq!(eng.control_counts(), (0, 1));
    eng.poll(60_400 * MS);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(sent(&mut eng), vec![]);
}

#[test]
fn the_passive_closer_is_released_without_time_wait() {
    let mut eng = engine(|_| {});
    let (_, c, t, iss) = open(&mut eng);
    eng.receive(
        &frame(&t, &seg(&t, FIN | ACK, 1001, iss.0.wrapping_add(1))),
        300 * MS,
    );
    assert_eq!(
        sent_tcp(&mut eng),
        vec![plain(&t, ACK, iss + 1u32, 1002, 65535)]
    );
    assert_eq!(eng.conn_state(c), Some(TcpState::CloseWait));
    eng.shutdown_write(c).unwrap();
    eng.poll(400 * MS);
    assert_eq!(
        sent_tcp(&mut eng),
        vec![plain(&t, FIN | ACK, iss + 1u32, 1002, 65535)]
    );
    // LAST-ACK: the ACK of our FIN closes it.
    eng.receive(
        &frame(&t, &seg(&t, ACK, 1002, iss.0.wrapping_add(2))),
        450 * MS,
    );
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.flow_count(), 0);
    assert_eq!(eng.conn_state(c), Some(TcpState::Closed));
    assert_eq!(eng.stats.connections_closed, 1);
}

#[test]
fn finish_flow_copies_the_flow_state_into_the_time_wait_entry() {
    let mut eng = engine(|c| c.tcp.time_wait_ms = 5000);
    let (id, c, t, iss) = open(&mut eng);
    at(&mut eng, 300 * MS);
    let (snd_nxt, rcv_nxt, ts_recent, window) =
        eng.proto[id.index()].as_ref().unwrap().time_wait_info();
    assert_eq!(
        (snd_nxt, rcv_nxt, ts_recent),
        (iss + 1u32, SeqNumber(1001), None)
    );
    let timers = eng.timer_entries();
    eng.finish_flow(id, true);
    assert_eq!(
        eng.ctrl.time_wait.get(&t),
        Some(&TimeWait {
            snd_nxt,
            rcv_nxt,
            deadline: 5300 * MS,
            remote_mac: PEER_MAC,
            ts_recent,
            window,
        })
    );
    assert_eq!(eng.timer_entries(), timers + 1);
    assert_eq!(eng.flow_count(), 0);
    assert_eq!(eng.stats.connections_closed, 1);
    // The application hears of it from the data path's commit, not here.
    assert_eq!(eng.apps.get(c).unwrap().flow, None);
    assert_eq!(eng.apps.next_event(), None);
    assert_eq!(sent(&mut eng), vec![]);
}

#[test]
fn finish_flow_keeps_no_entry_when_closed_or_when_time_wait_ms_is_0() {
    let mut eng = engine(|_| {});
    let (id, _, _, _) = open(&mut eng);
    let timers = eng.timer_entries();
    eng.finish_flow(id, false);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.timer_entries(), timers);
    assert_eq!((eng.flow_count(), eng.stats.connections_closed), (0, 1));

    // `tcp.time_wait_ms: 0` skips TIME-WAIT even for the active closer.
    let mut eng = engine(|c| c.tcp.time_wait_ms = 0);
    let (id, _, _, _) = open(&mut eng);
    eng.finish_flow(id, true);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!((eng.flow_count(), eng.stats.connections_closed), (0, 1));
}

// ---------------------------------------------------------------------
// Aborts
// ---------------------------------------------------------------------

#[test]
fn abort_with_rst_resets_the_peer_and_reports_the_error() {
    let mut eng = engine(|_| {});
    let (_, c, t, iss) = open(&mut eng);
    let id = eng.pre.lookup(&t).unwrap();
    eng.abort_flow(id, ConnError::Reset, true);
    // <SEQ=SND.MAX><ACK=RCV.NXT><CTL=RST,ACK>, window 0, no options.
    assert_eq!(
        sent_tcp(&mut eng),
        vec![plain(&t, RST | ACK, iss + 1u32, 1001, 0)]
    );
    assert_eq!(
        (
            eng.stats.rst_sent,
            eng.stats.connections_reset,
            eng.stats.connections_closed
        ),
        (1, 1, 0)
    );
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.flow_count(), 0);
    let app = eng.apps.get(c).unwrap();
    assert_eq!(
        (app.phase, app.flow, app.error),
        (ConnPhase::Finished, None, Some(ConnError::Reset))
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
fn abort_without_rst_sends_nothing() {
    let mut eng = engine(|_| {});
    let (id, c, _, _) = open(&mut eng);
    eng.abort_flow(id, ConnError::TimedOut, false);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!((eng.stats.rst_sent, eng.stats.connections_reset), (0, 1));
    assert_eq!(eng.conn_error(c), Some(ConnError::TimedOut));
    assert_eq!(eng.flow_count(), 0);
}

// ---------------------------------------------------------------------
// RST and SYN on installed connections (RFC 5961)
// ---------------------------------------------------------------------

#[test]
fn exact_rst_on_an_installed_connection_resets_it() {
    let mut eng = engine(|_| {});
    let (_, c, t, _) = open(&mut eng);
    // Through the exception path: `pre` hands every RST over.
    exception(&mut eng, &frame(&t, &seg(&t, RST, 1001, 0)));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(
        (
            eng.stats.rst_received,
            eng.stats.connections_reset,
            eng.stats.rst_sent
        ),
        (1, 1, 0)
    );
    assert_eq!(eng.flow_count(), 0);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.conn_error(c), Some(ConnError::Reset));
}

#[test]
fn inexact_rst_is_challenged_in_the_window_and_dropped_outside() {
    let mut eng = engine(|_| {});
    let (id, _, t, iss) = open(&mut eng);
    // RCV.NXT 1001, RCV.WND 65535.
    for seq in [1002, 1001 + 65534, 1001 + 65535, 1000] {
        eng.on_installed_exception(id, &seg(&t, RST, seq, 0));
    }
    let challenge = plain(&t, ACK, iss + 1u32, 1001, 65535);
    assert_eq!(sent_tcp(&mut eng), vec![challenge.clone(), challenge]);
    assert_eq!(eng.stats.drops(DropReason::RstChallenged), 2);
    assert_eq!(eng.stats.drops(DropReason::RstOutOfWindow), 2);
    assert_eq!(eng.stats.challenge_acks, 2);
    assert_eq!(eng.stats.rst_received, 4);
    assert_eq!(eng.stats.connections_reset, 0);
    assert_eq!(eng.pre.lookup(&t), Some(id));
}

#[test]
fn syn_on_an_installed_connection_is_challenged() {
    let mut eng = engine(|_| {});
    let (id, _, t, iss) = open(&mut eng);
    eng.on_installed_exception(id, &seg(&t, SYN, 1001, 0));
    eng.on_installed_exception(id, &seg(&t, SYN, 77, 0));
    let challenge = plain(&t, ACK, iss + 1u32, 1001, 65535);
    assert_eq!(sent_tcp(&mut eng), vec![challenge.clone(), challenge]);
    assert_eq!(eng.stats.drops(DropReason::SynChallenged), 2);
    assert_eq!(eng.stats.challenge_acks, 2);
    assert_eq!(eng.pre.lookup(&t), Some(id));
}

#[test]
fn segment_without_ack_on_an_installed_connection_is_dropped() {
    let mut eng = engine(|_| {});
    let (id, _, t, _) = open(&mut eng);
    eng.on_installed_exception(id, &seg(&t, FIN, 1001, 0));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::BadFlags), 1);
    assert_eq!(eng.pre.lookup(&t), Some(id));
}

#[test]
fn challenge_acks_are_limited_to_1000_a_second() {
    let mut eng = engine(|_| {});
    let (id, _, t, iss) = open(&mut eng);
    at(&mut eng, 300 * MS);
    for _ in 0..1001 {
        eng.on_installed_exception(id, &seg(&t, SYN, 1001, 0));
    }
    let challenge = plain(&t, ACK, iss + 1u32, 1001, 65535);
    assert_eq!(sent_tcp(&mut eng), vec![challenge.clone(); 1000]);
    assert_eq!(eng.stats.drops(DropReason::SynChallenged), 1001);
    assert_eq!(eng.stats.challenge_acks, 1000);
    // A new one-second window.
    at(&mut eng, 1300 * MS);
    eng.on_installed_exception(id, &seg(&t, SYN, 1001, 0));
    assert_eq!(sent_tcp(&mut eng), vec![challenge]);
    assert_eq!(eng.stats.challenge_acks, 1001);
}
