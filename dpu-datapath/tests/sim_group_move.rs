//! Flow groups move between the owners of one host while their
//! connections are open (issue 14, resize without dropping connections),
//! on the simulated wire: bulk transfers both ways keep their bytes
//! (SHA-256) and their order whatever the moves, and handshakes and
//! TIME-WAIT entries move with their group.

mod common;

use common::{B_IP, PORT, SEC};
use dpu_datapath::app::ConnId;
use dpu_datapath::engine::HandleMoves;
use dpu_datapath::flow::flow_group;
use dpu_datapath::proto::TcpState;
use dpu_datapath::sim::workload::{StreamReceiver, StreamSender};
use dpu_datapath::sim::{sim_engine_config, LinkParams, ShardedPair};

const GROUPS: u32 = 8;

fn sharded(link: LinkParams, seed: u64, owners: usize) -> ShardedPair {
    let tweak = |c: &mut pipeline_config::Config| c.topology.flow_groups = GROUPS;
    let a = sim_engine_config(1, seed, tweak);
    let b = sim_engine_config(2, seed, tweak);
    let mut s = ShardedPair::new(a, b, owners, link, seed);
    for e in &mut s.b {
        e.listen(PORT, None).expect("listen");
    }
    s
}

/// One connection's two ends and its transfers; `b` is (owner, handle).
struct Flow {
    a: ConnId,
    b: Option<(usize, ConnId)>,
    a_tx: StreamSender,
    b_tx: StreamSender,
    a_rx: StreamReceiver,
    b_rx: StreamReceiver,
}

impl Flow {
    fn done(&self) -> bool {
        self.a_tx.done() && self.b_tx.done() && self.a_rx.eof() && self.b_rx.eof()
    }
}

/// B's handles follow their connections to the owner they moved to.
fn follow(flows: &mut [Flow], from: usize, to: usize, moves: &HandleMoves) {
    for f in flows.iter_mut() {
        if let Some((o, c)) = f.b {
            if o == from {
                if let Some((_, new)) = moves.iter().find(|(old, _)| *old == c) {
                    f.b = Some((to, *new));
                }
            }
        }
    }
}

/// Runs `conns` bulk transfers of `size` bytes each way between A and a
/// two-owner B, moving a group in use to the other owner every `every_ns`
/// of simulated time; returns the number of moves made and the pair.
fn bulk_with_moves(
    link: LinkParams,
    seed: u64,
    conns: usize,
    size: u64,
    every_ns: u64,
) -> (usize, ShardedPair) {
    let mut s = sharded(link, seed, 2);
    let mut flows: Vec<Flow> = (0..conns)
        .map(|i| {
            let a = s.a.connect(B_IP, PORT, s.now).expect("connect");
            let k = seed.wrapping_mul(1000).wrapping_add(2 * i as u64);
            Flow {
                a,
                b: None,
                a_tx: StreamSender::new(k, size),
                b_tx: StreamSender::new(k + 1, size),
                a_rx: StreamReceiver::default(),
                b_rx: StreamReceiver::default(),
            }
        })
        .collect();
    let groups: Vec<u32> = flows
        .iter()
        .map(|f| flow_group(&s.a.conn_tuple(f.a).unwrap().reversed(), GROUPS))
        .collect();
    let mut next_move = s.now + every_ns;
    let mut moves = 0;
    let mut moved_conns = 0;
    let mut turn = 0usize;
    let ok = s.run_until(120 * SEC, |s| {
        // B accepts on whichever owner holds the connection's group.
        for (o, e) in s.b.iter_mut().enumerate() {
            while let Some(c) = e.accept(PORT) {
                let t = e.conn_tuple(c).unwrap();
                let f = flows
                    .iter_mut()
                    .find(|f| s.a.conn_tuple(f.a).unwrap().reversed() == t)
                    .expect("an accepted connection is one of A's");
                f.b = Some((o, c));
            }
        }
        for f in flows.iter_mut() {
            if s.a.conn_state(f.a) == Some(TcpState::Established) || f.a_tx.sent() > 0 {
                f.a_tx.pump(&mut s.a, f.a);
            }
            f.a_rx.pump(&mut s.a, f.a);
            if let Some((o, c)) = f.b {
                f.b_tx.pump(&mut s.b[o], c);
                f.b_rx.pump(&mut s.b[o], c);
            }
        }
        if s.now >= next_move {
            next_move = s.now + every_ns;
            let g = groups[turn % groups.len()];
            turn += 1;
            let from = s.owner_of[g as usize];
            let to = 1 - from;
            let m = s.move_group(g, to);
            follow(&mut flows, from, to, &m);
            moves += 1;
            moved_conns += m.len();
        }
        flows.iter().all(Flow::done)
    });
    assert!(
        ok,
        "transfers incomplete after {moves} moves: {:?}",
        flows
            .iter()
            .map(|f| (
                f.a_tx.sent(),
                f.b_rx.received(),
                f.b_tx.sent(),
                f.a_rx.received()
            ))
            .collect::<Vec<_>>()
    );
    for (i, f) in flows.iter().enumerate() {
        assert_eq!(f.b_rx.received(), size, "conn {i}: A->B bytes");
        assert_eq!(f.a_rx.received(), size, "conn {i}: B->A bytes");
        assert_eq!(f.b_rx.digest(), f.a_tx.digest(), "conn {i}: A->B SHA-256");
        assert_eq!(f.a_rx.digest(), f.b_tx.digest(), "conn {i}: B->A SHA-256");
    }
    // Moves that carried connections, not just empty groups.
    assert!(
        moved_conns >= moves,
        "{moves} moves carried only {moved_conns} connections"
    );
    eprintln!(
        "{moves} moves of {moved_conns} connections; B drops {:?}; A retransmits {}, B retransmits {}",
        s.b.iter()
            .map(|e| e.stats().drop_breakdown())
            .collect::<Vec<_>>(),
        s.a.stats().retransmit_segments,
        s.b.iter()
            .map(|e| e.stats().retransmit_segments)
            .sum::<u64>()
    );
    (moves, s)
}

#[test]
fn groups_move_back_and_forth_under_bulk_transfers() {
    // Every 500 µs of simulated time a group in use changes owner.
    let (moves, s) = bulk_with_moves(LinkParams::default(), 1, 6, 2 << 20, 500_000);
    assert!(moves >= 20, "only {moves} moves");
    // On a clean link a move costs nothing on the wire: no segment was
    // dropped or had to be sent again.
    for e in &s.b {
        assert_eq!(
            e.stats().total_drops(),
            0,
            "{:?}",
            e.stats().drop_breakdown()
        );
        assert_eq!(e.stats().retransmit_segments, 0);
    }
    assert_eq!(s.a.stats().total_drops(), 0);
    assert_eq!(s.a.stats().retransmit_segments, 0);
}

#[test]
fn moves_under_loss_and_reordering() {
    let link = LinkParams {
        latency_ns: 20_000,
        loss: 0.01,
        reorder: 0.02,
        reorder_delay_ns: 50_000,
        ..Default::default()
    };
    let (moves, _) = bulk_with_moves(link, 7, 4, 1 << 20, 300_000);
    assert!(moves >= 20, "only {moves} moves");
}

#[test]
fn a_handshake_moves_and_completes_at_the_new_owner() {
    let link = LinkParams {
        latency_ns: 50_000,
        ..Default::default()
    };
    let mut s = sharded(link, 3, 2);
    let a = s.a.connect(B_IP, PORT, s.now).expect("connect");
    let g = flow_group(&s.a.conn_tuple(a).unwrap().reversed(), GROUPS);
    let first = s.owner_of[g as usize];
    // The SYN arrived: B is in SYN-RECEIVED, its SYN-ACK on the wire.
    assert!(s.run_until(SEC, |s| s.b[first].control_counts().0 == 1));
    let moved = s.move_group(g, 1 - first);
    assert!(moved.is_empty(), "a passive open has no handle yet");
    assert_eq!(s.b[first].control_counts().0, 0);
    assert_eq!(s.b[1 - first].control_counts().0, 1);
    // A's ACK completes it at the new owner, where it is accepted.
    let mut b = None;
    assert!(s.run_until(s.now + SEC, |s| {
        b = b.or_else(|| s.b[1 - first].accept(PORT));
        b.is_some() && s.a.conn_state(a) == Some(TcpState::Established)
    }));
    assert_eq!(s.b[first].accept(PORT), None);
    assert_eq!(s.b[first].flow_count(), 0);
}

#[test]
fn an_accept_queue_entry_and_time_wait_move_with_their_group() {
    let link = LinkParams {
        latency_ns: 10_000,
        ..Default::default()
    };
    let mut s = sharded(link, 5, 2);
    let a = s.a.connect(B_IP, PORT, s.now).expect("connect");
    let g = flow_group(&s.a.conn_tuple(a).unwrap().reversed(), GROUPS);
    let first = s.owner_of[g as usize];
    let second = 1 - first;
    assert!(s.run_until(SEC, |s| s.b[first].flow_count() == 1
        && s.a.conn_state(a) == Some(TcpState::Established)));
    // Established, not accepted yet: the accept queue entry moves.
    let moved = s.move_group(g, second);
    assert_eq!(moved.len(), 1);
    assert_eq!(s.b[first].accept(PORT), None);
    let b = s.b[second].accept(PORT).expect("accepted at the new owner");
    assert_eq!(b, moved[0].1);
    // Data both ways, then B closes first and holds TIME-WAIT.
    assert_eq!(s.a.send(a, b"ping").unwrap(), 4);
    let mut buf = [0u8; 16];
    assert!(s.run_until(s.now + SEC, |s| s.b[second].readable(b) == 4));
    assert_eq!(s.b[second].recv(b, &mut buf).unwrap(), 4);
    s.b[second].close(b).unwrap();
    assert!(s.run_until(s.now + SEC, |s| s.a.peer_closed(a)));
    s.a.close(a).unwrap();
    assert!(s.run_until(s.now + SEC, |s| s.b[second].control_counts().1 == 1));
    let moved = s.move_group(g, first);
    assert!(moved.is_empty());
    assert_eq!(s.b[second].control_counts(), (0, 0));
    assert_eq!(s.b[first].control_counts(), (0, 1));
    // The entry expires at its new owner and everything is released.
    assert!(s.run_until(s.now + 300 * SEC, |s| {
        s.b.iter()
            .all(|e| e.control_counts() == (0, 0) && e.flow_count() == 0)
            && s.a.flow_count() == 0
    }));
    assert!(s.b.iter().all(|e| e.app_conn_count() == 0));
}

#[test]
fn a_moved_flow_keeps_its_timers() {
    let link = LinkParams {
        latency_ns: 10_000,
        ..Default::default()
    };
    let mut s = sharded(link, 9, 2);
    let a = s.a.connect(B_IP, PORT, s.now).expect("connect");
    let g = flow_group(&s.a.conn_tuple(a).unwrap().reversed(), GROUPS);
    let first = s.owner_of[g as usize];
    let mut b = None;
    assert!(s.run_until(SEC, |s| {
        b = b.or_else(|| s.b[first].accept(PORT));
        b.is_some() && s.a.conn_state(a) == Some(TcpState::Established)
    }));
    let b = b.unwrap();
    // One small segment each way, so both ends hold a delayed ACK; then
    // B's flow moves while its ACK waits for its timer.
    s.a.send(a, b"one").unwrap();
    assert!(s.run_until(s.now + SEC, |s| s.b[first].readable(b) == 3));
    let moved = s.move_group(g, 1 - first);
    let b = moved[0].1;
    // The delayed ACK leaves from the new owner when its timer fires: A
    // never has to retransmit.
    assert!(s.run_until(s.now + SEC, |s| s.a.all_sent(a)));
    assert_eq!(s.a.stats().retransmit_segments, 0);
    let mut buf = [0u8; 8];
    assert_eq!(s.b[1 - first].recv(b, &mut buf).unwrap(), 3);
}

#[test]
fn an_active_open_moves_with_its_keepalive_settings() {
    use dpu_datapath::engine::Keepalive;
    let link = LinkParams {
        latency_ns: 50_000,
        ..Default::default()
    };
    let mut s = sharded(link, 11, 2);
    const A_PORT: u16 = 6000;
    s.a.listen(A_PORT, None).unwrap();
    // Owner 0 opens a connection to A (its port is picked in its groups)
    // and sets keepalive before the handshake completes.
    let c = s.b[0]
        .connect(std::net::Ipv4Addr::new(198, 18, 0, 1), A_PORT, s.now)
        .expect("connect");
    let g = flow_group(&s.b[0].conn_tuple(c).unwrap(), GROUPS);
    assert_eq!(s.owner_of[g as usize], 0);
    let ka = Keepalive {
        idle_secs: 5,
        interval_secs: 1,
        count: 3,
    };
    s.b[0].set_keepalive(c, Some(ka)).unwrap();
    // The SYN is on the wire: the handshake, its handle and its settings
    // move to owner 1, where the SYN-ACK arrives.
    assert_eq!(s.b[0].control_counts().0, 1);
    let moved = s.move_group(g, 1);
    assert_eq!(moved.len(), 1);
    let c = moved[0].1;
    assert_eq!(s.b[0].control_counts().0, 0);
    assert_eq!(s.b[0].app_conn_count(), 0);
    let mut a_end = None;
    assert!(s.run_until(s.now + SEC, |s| {
        a_end = a_end.or_else(|| s.a.accept(A_PORT));
        a_end.is_some() && s.b[1].conn_state(c) == Some(TcpState::Established)
    }));
    assert_eq!(s.b[1].keepalive(c), Some(ka));
    // A's answers are lost from now on: owner 1's keepalive probes go
    // unanswered, and it resets the connection after the idle time and
    // its probes (about 8 s).
    s.wire.set_params(
        dpu_datapath::sim::Direction::AtoB,
        LinkParams { loss: 1.0, ..link },
    );
    let silent_from = s.now;
    assert!(s.run_until(s.now + 30 * SEC, |s| s.b[1].conn_state(c)
        != Some(TcpState::Established)));
    assert!(s.now - silent_from >= 5 * SEC, "reset before the idle time");
    assert_eq!(
        s.b[1].conn_error(c),
        Some(dpu_datapath::app::ConnError::TimedOut)
    );
}
