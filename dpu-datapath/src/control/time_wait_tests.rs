//! TIME-WAIT's decisions (`on_time_wait_segment`, `time_wait_timer`) on
//! an entry as `finish_flow` leaves it: at 0.5 s, SND.NXT 5001, RCV.NXT
//! 9001, window field 8192, 2MSL of 60 s (the default `tcp.time_wait_ms`),
//! its timer queued.

use super::*;
use crate::control::test_util::*;
use crate::proto::TcpState;

const SND_NXT: SeqNumber = SeqNumber(5001);
const RCV_NXT: SeqNumber = SeqNumber(9001);

fn time_wait(ts_recent: Option<u32>) -> (Engine, FourTuple, TimeWait) {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    at(&mut eng, 500 * MS);
    let tw = TimeWait {
        snd_nxt: SND_NXT,
        rcv_nxt: RCV_NXT,
        deadline: 60_500 * MS,
        remote_mac: PEER_MAC,
        ts_recent,
        window: 8192,
    };
    eng.ctrl.time_wait.insert(t, tw);
    eng.push_timer(tw.deadline, TimerKey::TimeWait(t));
    (eng, t, tw)
}

/// A segment of the peer for the entry, as the exception path hands it.
fn to_time_wait(eng: &mut Engine, t: FourTuple, tcp: &TcpRepr<'_>) {
    let f = frame(&t, tcp);
    eng.on_time_wait_segment(t, PEER_MAC, tcp, &f);
}

/// The ACK the entry answers with: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
fn tw_ack(t: &FourTuple, ts: Option<(u32, u32)>) -> Out {
    out(
        t,
        ACK,
        SND_NXT,
        RCV_NXT,
        8192,
        TcpOptions {
            timestamps: ts,
            ..TcpOptions::default()
        },
    )
}

#[test]
fn a_retransmitted_fin_is_acked_and_restarts_the_2msl_wait() {
    let (mut eng, t, tw) = time_wait(None);
    at(&mut eng, 10 * S);
    // Through the exception path: the tuple is in TIME-WAIT.
    exception(&mut eng, &frame(&t, &seg(&t, FIN | ACK, 9000, 5001)));
    assert_eq!(sent_tcp(&mut eng), vec![tw_ack(&t, None)]);
    assert_eq!(
        eng.ctrl.time_wait.get(&t),
        Some(&TimeWait {
            deadline: 70 * S,
            ..tw
        })
    );
    // The queued timer re-arms itself: no new entry per FIN.
    assert_eq!(eng.timer_entries(), 1);
    assert_eq!(eng.stats.total_drops(), 0);
}

#[test]
fn the_ack_echoes_ts_recent_which_follows_newer_fins_only() {
    let (mut eng, t, _) = time_wait(Some(700));
    let fin = |ts_val: Option<u32>| {
        let mut s = seg(&t, FIN | ACK, 9000, 5001);
        s.options.timestamps = ts_val.map(|v| (v, 1));
        s
    };
    at(&mut eng, 10 * S);
    to_time_wait(&mut eng, t, &fin(Some(800)));
    at(&mut eng, 11 * S);
    to_time_wait(&mut eng, t, &fin(Some(750)));
    at(&mut eng, 12 * S);
    to_time_wait(&mut eng, t, &fin(None));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![
            tw_ack(&t, Some((10_000, 800))),
            tw_ack(&t, Some((11_000, 800))),
            tw_ack(&t, Some((12_000, 800))),
        ]
    );
    assert_eq!(eng.ctrl.time_wait[&t].ts_recent, Some(800));

    // Newer in modular order across the wrap.
    let (mut eng, t, _) = time_wait(Some(0xffff_fff0));
    let mut wrapped = seg(&t, FIN | ACK, 9000, 5001);
    wrapped.options.timestamps = Some((5, 1));
    to_time_wait(&mut eng, t, &wrapped);
    assert_eq!(sent_tcp(&mut eng), vec![tw_ack(&t, Some((500, 5)))]);
    assert_eq!(eng.ctrl.time_wait[&t].ts_recent, Some(5));
}

#[test]
fn a_rst_is_ignored_whatever_its_sequence_number() {
    // RFC 1337: a RST must not end TIME-WAIT early.
    let (mut eng, t, tw) = time_wait(None);
    at(&mut eng, 10 * S);
    to_time_wait(&mut eng, t, &seg(&t, RST, 9001, 0));
    to_time_wait(&mut eng, t, &seg(&t, RST | ACK, 9001, 5001));
    to_time_wait(&mut eng, t, &seg(&t, RST, 123_456, 0));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::RstOutOfWindow), 3);
    assert_eq!(eng.ctrl.time_wait.get(&t), Some(&tw));
}

#[test]
fn a_syn_above_rcv_nxt_reopens_the_connection_through_the_listener() {
    let (mut eng, t, _) = time_wait(None);
    eng.listen(PORT, None).unwrap();
    at(&mut eng, 10 * S);
    let mut syn = seg(&t, SYN, 9002, 0);
    syn.options = opts(Some(1460), None, false, None);
    exception(&mut eng, &frame(&t, &syn));
    let iss = SeqNumber(eng.ctrl.isn(&t, 10 * S));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            SYN | ACK,
            iss,
            SeqNumber(9003),
            65535,
            opts(Some(1448), None, false, None)
        )]
    );
    assert_eq!(eng.control_counts(), (1, 0));
    let h = &eng.ctrl.handshakes[&t];
    assert_eq!(
        (h.state, h.iss, h.irs),
        (TcpState::SynReceived, iss, SeqNumber(9002))
    );
    assert_eq!(eng.ctrl.listeners[&PORT].half_open, 1);
}

#[test]
fn a_syn_above_rcv_nxt_without_a_listener_ends_time_wait_with_a_reset() {
    let (mut eng, t, _) = time_wait(None);
    at(&mut eng, 10 * S);
    to_time_wait(&mut eng, t, &seg(&t, SYN, 9002, 0));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![out(
            &t,
            RST | ACK,
            SeqNumber(0),
            SeqNumber(9003),
            0,
            TcpOptions::default()
        )]
    );
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.drops(DropReason::NoConnection), 1);
}

#[test]
fn a_syn_at_or_below_rcv_nxt_is_answered_with_an_ack() {
    // RFC 9293 3.10.7.4 / RFC 5961 4: an old SYN gets an ACK; the entry
    // and its deadline stay.
    let (mut eng, t, tw) = time_wait(Some(700));
    eng.listen(PORT, None).unwrap();
    at(&mut eng, 10 * S);
    to_time_wait(&mut eng, t, &seg(&t, SYN, 9001, 0));
    to_time_wait(&mut eng, t, &seg(&t, SYN, 8000, 0));
    assert_eq!(
        sent_tcp(&mut eng),
        vec![
            tw_ack(&t, Some((10_000, 700))),
            tw_ack(&t, Some((10_000, 700)))
        ]
    );
    assert_eq!(eng.stats.drops(DropReason::OldDuplicate), 2);
    assert_eq!(eng.ctrl.time_wait.get(&t), Some(&tw));
    assert_eq!(eng.control_counts(), (0, 1));
}

#[test]
fn retransmitted_data_is_answered_with_an_ack_without_restarting_2msl() {
    // Our last ACK was lost and the peer retransmits its data without the
    // FIN: it must hear the ACK again (RFC 9293 3.10.7.4).
    let (mut eng, t, tw) = time_wait(None);
    at(&mut eng, 10 * S);
    let mut data = seg(&t, ACK | TcpFlags::PSH, 8989, 5001);
    data.payload = b"hello world";
    to_time_wait(&mut eng, t, &data);
    assert_eq!(sent_tcp(&mut eng), vec![tw_ack(&t, None)]);
    assert_eq!(eng.stats.drops(DropReason::OldDuplicate), 1);
    assert_eq!(eng.ctrl.time_wait.get(&t), Some(&tw));
}

#[test]
fn a_bare_ack_is_dropped_without_an_answer() {
    // Answering ACKs with ACKs would loop between two TIME-WAIT ends.
    let (mut eng, t, tw) = time_wait(None);
    at(&mut eng, 10 * S);
    to_time_wait(&mut eng, t, &seg(&t, ACK, 9001, 5001));
    to_time_wait(&mut eng, t, &seg(&t, ACK, 100, 5001));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::OldDuplicate), 2);
    assert_eq!(eng.ctrl.time_wait.get(&t), Some(&tw));
}

#[test]
fn the_entry_goes_at_its_deadline_and_a_moved_deadline_re_arms_the_timer() {
    let (mut eng, t, _) = time_wait(None);
    // Called early (a stale queue entry): the entry stays, the timer is
    // queued again at the deadline.
    at(&mut eng, 60_500 * MS - 1);
    eng.time_wait_timer(t);
    assert_eq!(eng.control_counts(), (0, 1));
    assert_eq!(eng.timer_entries(), 2);
    at(&mut eng, 60_500 * MS);
    eng.time_wait_timer(t);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(sent(&mut eng), vec![]);

    // A FIN at 10 s moves the deadline to 70 s: the timer queued for 60.5 s
    // finds the entry alive and queues itself at 70 s.
    let (mut eng, t, _) = time_wait(None);
    at(&mut eng, 10 * S);
    to_time_wait(&mut eng, t, &seg(&t, FIN | ACK, 9000, 5001));
    assert_eq!(sent_tcp(&mut eng).len(), 1);
    eng.poll(60_500 * MS);
    assert_eq!(eng.control_counts(), (0, 1));
    assert_eq!(eng.next_deadline(), Some(70 * S));
    eng.poll(70 * S);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.timer_entries(), 0);
}
