//! Unit tests of `proto` on summaries (no packet bytes).

use super::*;
use crate::flow::FlowId;
use crate::pre::{SackBlocks, Summary};
use crate::stats::Stats;
use crate::wire::TcpFlags;

fn cfg() -> ProtoConfig {
    ProtoConfig {
        ecn: false,
        cc: Default::default(),
        rto: RtoBounds {
            initial_us: 1_000_000,
            min_us: 200_000,
            max_us: 60_000_000,
        },
        delayed_ack_ns: 0,
        ooo_limit: OOO_INTERVALS,
        initial_cwnd_segments: 10,
        max_retransmits: 15,
        tso_max: 0,
        tso_frame: 0,
    }
}

fn flow(rx_size: u32) -> ProtoFlow {
    let init = ProtoInit {
        state: TcpState::Established,
        iss: SeqNumber(1000),
        irs: SeqNumber(5000),
        peer_window: 65535,
        snd_wscale: 0,
        rcv_wscale: 0,
        mss: 1448,
        ts_recent: None,
        sack: true,
        rx_size,
        tx_size: 4096,
        rtt_us: None,
        syn_retransmitted: false,
        syn_window: rx_size.min(65535) as u16,
    };
    ProtoFlow::new(&init, &cfg())
}

fn seg(seq: u32, len: u16, flags: TcpFlags) -> Summary {
    Summary {
        flow: FlowId(0),
        seq: SeqNumber(seq),
        ack: SeqNumber(1001),
        window: 65535,
        flags,
        ts: None,
        sack: SackBlocks::default(),
        payload_offset: 0,
        payload_len: len,
        ecn_ce: false,
    }
}

#[test]
fn fin_at_the_edge_of_a_full_buffer_does_not_underflow_the_window() {
    let mut f = flow(4096);
    let mut stats = Stats::default();
    let snap = f.on_segment(
        &seg(5001, 4096, TcpFlags::ACK | TcpFlags::FIN),
        0,
        &cfg(),
        &mut stats,
    );
    assert_eq!(snap.delivered, 4096);
    assert!(snap.events.has(FlowEvents::PEER_FIN));
    assert_eq!(f.state(), TcpState::CloseWait);
    assert_eq!(f.rcv_free(), 0);
    assert_eq!(f.rcv_wnd(), 0);
    assert_eq!(snap.ack.map(|h| h.window), Some(0));
}

#[test]
fn out_of_order_data_is_placed_at_its_final_position() {
    let mut f = flow(65536);
    let mut stats = Stats::default();
    // In order so far: no loss state is held (issue 13's state budget).
    assert!(!f.holds_loss_state());
    let snap = f.on_segment(
        &seg(5001 + 2000, 1000, TcpFlags::ACK),
        0,
        &cfg(),
        &mut stats,
    );
    assert_eq!(snap.delivered, 0);
    assert_eq!(snap.place.map(|p| p.buf_pos), Some(2000));
    assert_eq!(f.ooo_intervals(), 1);
    assert!(f.holds_loss_state());
    let snap = f.on_segment(&seg(5001, 2000, TcpFlags::ACK), 0, &cfg(), &mut stats);
    assert_eq!(snap.delivered, 3000);
    assert_eq!(f.ooo_intervals(), 0);
    // The hole filled: the loss state is given back to the owner's pool
    // (this test thread's), and the next episode takes it from there.
    assert!(!f.holds_loss_state());
    let spares = super::loss_pool::spares();
    assert!(spares >= 1);
    f.on_segment(&seg(5001 + 4000, 100, TcpFlags::ACK), 0, &cfg(), &mut stats);
    assert!(f.holds_loss_state());
    assert_eq!(super::loss_pool::spares(), spares - 1);
}

#[test]
fn overlapping_segments_never_rewrite_bytes_already_placed() {
    let mut f = flow(65536);
    let mut stats = Stats::default();
    // [7001, 8001) arrives first, out of order.
    let snap = f.on_segment(&seg(7001, 1000, TcpFlags::ACK), 0, &cfg(), &mut stats);
    assert_eq!(snap.place.map(|p| (p.skip, p.len)), Some((0, 1000)));
    // [6501, 8501) overlaps it: only the first run we lack, [6501, 7001), is placed.
    let snap = f.on_segment(&seg(6501, 2000, TcpFlags::ACK), 0, &cfg(), &mut stats);
    assert_eq!(
        snap.place.map(|p| (p.skip, p.len, p.buf_pos)),
        Some((0, 500, 1500))
    );
    // An exact duplicate places nothing.
    let snap = f.on_segment(&seg(7001, 1000, TcpFlags::ACK), 0, &cfg(), &mut stats);
    assert_eq!(snap.place, None);
    // The in-order segment fills the hole and stops where held data starts.
    let snap = f.on_segment(&seg(5001, 2000, TcpFlags::ACK), 0, &cfg(), &mut stats);
    assert_eq!(snap.place.map(|p| (p.skip, p.len)), Some((0, 1500)));
    assert_eq!(snap.delivered, 3000);
    assert_eq!(f.rcv_nxt(), SeqNumber(8001));
}

#[test]
fn dctcp_alpha_follows_the_fraction_of_marked_bytes() {
    // A steady window of 20 segments, ACKs of 2 segments each: alpha, the
    // per-ACK form of RFC 8257's per-window average, settles at the
    // fraction of marked bytes, whatever it is.
    for (marked_in_8, want) in [(0u32, 0.0), (2, 0.25), (4, 0.5), (8, 1.0)] {
        let mut f = flow(4096);
        f.cwnd = 20 * 1448;
        for i in 0..4_000u32 {
            f.update_dctcp_alpha(2 * 1448, i % 8 < marked_in_8);
        }
        let alpha = f64::from(f.dctcp_alpha()) / f64::from(DCTCP_ALPHA_ONE);
        assert!(
            (alpha - want).abs() < 0.05,
            "{marked_in_8}/8 marked: alpha {alpha:.3}, want {want}"
        );
    }
    // From 1, one window without marks takes about 1/16 off (g = 1/16).
    let mut f = flow(4096);
    f.cwnd = 20 * 1448;
    for _ in 0..10 {
        f.update_dctcp_alpha(2 * 1448, false);
    }
    let alpha = f64::from(f.dctcp_alpha()) / f64::from(DCTCP_ALPHA_ONE);
    assert!((alpha - 15.0 / 16.0).abs() < 0.01, "alpha {alpha}");
}

/// With TSO, a full segment grows to what the windows allow, in whole
/// pieces (the MSS, or less to fit the port's frame limit), up to
/// `tso_max`; the tail of the data goes whole; without TSO, or with
/// nothing more allowed than a piece, segments stay MSS-sized.
#[test]
fn tso_segments_take_whole_pieces_within_the_windows() {
    let tso = ProtoConfig {
        tso_max: 65_000,
        tso_frame: 1514,
        ..cfg()
    };
    let mut stats = Stats::default();
    let mut f = flow(4096);
    f.app_wrote(100_000);
    // Initial window: 10 MSS; the pieces are the MSS (54 B of headers fit).
    let s = f.next_segment(0, &tso, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (10 * 1448, 1448));
    assert!(
        f.next_segment(0, &tso, &mut stats).is_none(),
        "cwnd used up"
    );

    // net_tap's limit: frames of 1500 bytes with the Ethernet header, so
    // pieces of 1446; the segment is whole pieces of it.
    let tap = ProtoConfig {
        tso_frame: 1500,
        ..tso
    };
    let mut f = flow(4096);
    f.app_wrote(100_000);
    let s = f.next_segment(0, &tap, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (10 * 1448 / 1446 * 1446, 1446));

    // The end of the data goes whole, shorter than a piece multiple.
    let mut f = flow(4096);
    f.app_wrote(5_000);
    let s = f.next_segment(0, &tso, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (5_000, 1448));
    assert!(s.header.flags.contains(TcpFlags::PSH));

    // No TSO: MSS-sized; and a segment that fits one piece asks nothing.
    let mut f = flow(4096);
    f.app_wrote(100_000);
    let s = f.next_segment(0, &cfg(), &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (1448, 0));
    let mut f = flow(4096);
    f.app_wrote(1448);
    let s = f.next_segment(0, &tso, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (1448, 0));

    // A paced flow keeps MSS-sized segments (its pacer times each one).
    let mut f = flow(4096);
    f.set_paced(true);
    f.app_wrote(100_000);
    let s = f.next_segment(0, &tso, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (1448, 0));

    // Corked: the short tail stays behind (whole pieces go), as it would
    // on its own; Nagle holds it while data is in flight.
    let mut f = flow(4096);
    f.set_cork(true);
    f.app_wrote(5_000);
    let s = f.next_segment(0, &tso, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (3 * 1448, 1448));
    assert!(f.next_segment(0, &tso, &mut stats).is_none(), "tail corked");
    let mut f = flow(4096);
    f.set_nagle(true);
    f.app_wrote(1448);
    f.next_segment(0, &tso, &mut stats).expect("first segment");
    f.app_wrote(5_000);
    let s = f.next_segment(0, &tso, &mut stats).expect("segment");
    assert_eq!((s.len, s.segment_size), (3 * 1448, 1448));

    // Resends after a timeout (go-back-N from SND.UNA) stay MSS-sized.
    let mut f = flow(4096);
    f.app_wrote(100_000);
    f.next_segment(0, &tso, &mut stats).expect("segment");
    let rto = 2_000_000_000;
    let _ = f.on_timers(rto, &tso, &mut stats);
    let s = f.next_segment(rto, &tso, &mut stats).expect("resend");
    assert!(s.retransmit);
    assert_eq!(s.segment_size, 0);
    // Its ACK opens the window to two segments; still below SND.MAX.
    let ack = Summary {
        ack: SeqNumber(1001 + 1448),
        ..seg(5001, 0, TcpFlags::ACK)
    };
    let _ = f.on_segment(&ack, rto + 1_000, &tso, &mut stats);
    let s = f
        .next_segment(rto + 1_000, &tso, &mut stats)
        .expect("resend");
    assert!(s.retransmit);
    assert_eq!((s.len, s.segment_size), (1448, 0));
}
