//! Receiving a segment on an installed flow (RFC 9293 3.10.7.4, "Otherwise").
//! SYN and RST never get here: `pre` sends them to the control plane.

use super::{
    CcAlgorithm, Deadline, Flags, FlowEvents, Nanos, Placement, ProtoConfig, ProtoFlow, RxSnapshot,
    TcpState,
};
use crate::pre::Summary;
use crate::stats::{DropReason, Stats};
use crate::wire::{SeqNumber, TcpFlags};

impl ProtoFlow {
    /// Processes one segment summary and says what the later stages must do.
    pub fn on_segment(
        &mut self,
        s: &Summary,
        now: Nanos,
        cfg: &ProtoConfig,
        stats: &mut Stats,
    ) -> RxSnapshot {
        let mut snap = RxSnapshot::default();
        let fin = s.flags.contains(TcpFlags::FIN);
        let seg_len = s.payload_len as u32 + fin as u32;
        let wnd = self.rcv_wnd();

        // PAWS (RFC 7323 5.3): an older timestamp means an old duplicate.
        if let (true, Some((ts_val, _))) = (self.flags.has(Flags::TS), s.ts) {
            if (ts_val.wrapping_sub(self.ts_recent) as i32) < 0 {
                snap.drop = Some(DropReason::Paws);
                snap.ack = Some(self.pure_ack());
                return snap;
            }
        }

        // Acceptability test (RFC 9293 table in 3.10.7.4).
        let in_window = |seq: SeqNumber| seq >= self.rcv_nxt && seq < self.rcv_nxt + wnd;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => s.seq == self.rcv_nxt,
            // A segment without data exactly at the right edge is accepted,
            // as Linux (`tcp_sequence`: `!after(seq, rcv_nxt + wnd)`) and the
            // BSDs do. RFC 9293's strict `SEG.SEQ < RCV.NXT+RCV.WND` drops
            // the peer's pure ACKs once it has filled our window while a
            // hole sits at RCV.NXT (seen against Linux under loss: every ACK
            // of our data, with its SACK blocks, was discarded until the
            // hole was repaired).
            (0, _) => in_window(s.seq) || s.seq == self.rcv_nxt + wnd,
            (_, 0) => false,
            (len, _) => in_window(s.seq) || in_window(s.seq + (len - 1)),
        };
        if !acceptable {
            // With a zero window the ACK field still counts (RFC 9293).
            if wnd == 0 && s.seq == self.rcv_nxt {
                self.process_ack(s, now, cfg, stats, &mut snap);
            }
            snap.drop = Some(if s.seq + seg_len <= self.rcv_nxt {
                DropReason::OldDuplicate
            } else {
                DropReason::OutOfWindow
            });
            snap.ack = Some(self.pure_ack());
            return snap;
        }

        self.last_rx = super::keepalive::ticks(now);

        // TS.Recent (RFC 7323 4.3): only from a segment covering RCV.NXT.
        if let (true, Some((ts_val, _))) = (self.flags.has(Flags::TS), s.ts) {
            if s.seq <= self.rcv_nxt {
                self.ts_recent = ts_val;
            }
        }

        if !self.process_ack(s, now, cfg, stats, &mut snap) {
            return snap;
        }

        let mut ack_now = false;
        if self.flags.has(Flags::ECN) && (s.payload_len > 0 || fin) {
            stats.ecn_ce_received += u64::from(s.ecn_ce);
            ack_now |= self.echo_congestion(s, &mut snap);
        }
        if s.payload_len > 0 {
            if self.state.can_receive_data() {
                ack_now |= self.receive_payload(s, cfg, &mut snap);
            } else {
                // Data after the peer's FIN: nothing can legally be here.
                snap.drop = Some(DropReason::OutOfWindow);
                ack_now = true;
            }
        }

        // Remember the FIN when all data before it was taken.
        if fin {
            let fin_seq = s.seq + s.payload_len as u32;
            let data_taken = snap.drop.is_none();
            if data_taken && fin_seq >= self.rcv_nxt && !self.flags.has(Flags::RX_FIN) {
                self.flags.set(Flags::RX_FIN, true);
                self.rx_fin_seq = fin_seq;
            }
            ack_now = true;
        }
        if self.flags.has(Flags::RX_FIN)
            && self.rx_fin_seq == self.rcv_nxt
            && self.state.can_receive_data()
        {
            self.rcv_nxt += 1u32;
            snap.events.set(FlowEvents::PEER_FIN);
            self.state = match self.state {
                TcpState::Established => TcpState::CloseWait,
                TcpState::FinWait1 => TcpState::Closing,
                TcpState::FinWait2 => {
                    snap.events.set(FlowEvents::TIME_WAIT);
                    TcpState::TimeWait
                }
                other => other,
            };
            ack_now = true;
        }

        if s.payload_len > 0 && !ack_now {
            // In-order data: delayed ACK, but at least every second segment.
            self.unacked_segments = self.unacked_segments.saturating_add(1);
            if cfg.delayed_ack_ns == 0 || self.unacked_segments >= 2 {
                ack_now = true;
                snap.ack_stretchable = cfg.delayed_ack_ns != 0;
            } else if !self.delack_at.is_set() {
                self.delack_at = Deadline::after(now, cfg.delayed_ack_ns);
            }
        }
        if ack_now {
            snap.ack = Some(self.pure_ack());
        }
        snap
    }

    /// Records a CE mark for the ECE echo. RFC 3168 6.1.3: ECE on every
    /// segment from a CE mark until the sender's CWR. DCTCP (RFC 8257 3.2,
    /// as Linux's `dctcp_ece_ack_update`): ECE exactly while the last data
    /// segment was CE-marked, and an ACK at once when that changes; if an
    /// ACK was being delayed, the segments before this one are acknowledged
    /// first with their own CE state (`prior_ack`), so the sender learns
    /// exactly how many bytes were marked despite delayed ACKs. Returns
    /// whether an immediate ACK is due.
    fn echo_congestion(&mut self, s: &Summary, snap: &mut RxSnapshot) -> bool {
        let was = self.flags.has(Flags::ECE_ECHO);
        match self.cc() {
            CcAlgorithm::Dctcp | CcAlgorithm::DctcpRate => {
                if was != s.ecn_ce && self.unacked_segments > 0 {
                    // RCV.NXT is still before this segment, ECE the old state.
                    snap.prior_ack = Some(self.pure_ack());
                }
                self.flags.set(Flags::ECE_ECHO, s.ecn_ce);
                was != s.ecn_ce
            }
            CcAlgorithm::Reno | CcAlgorithm::Timely => {
                if s.flags.contains(TcpFlags::CWR) {
                    self.flags.set(Flags::ECE_ECHO, false);
                }
                if s.ecn_ce {
                    self.flags.set(Flags::ECE_ECHO, true);
                }
                !was && s.ecn_ce
            }
        }
    }

    /// Places payload in order or out of order. Returns whether an immediate
    /// ACK is due (out of order, hole filled, duplicate or trimmed data).
    fn receive_payload(&mut self, s: &Summary, cfg: &ProtoConfig, snap: &mut RxSnapshot) -> bool {
        let seg_end = s.seq + s.payload_len as u32;
        let mut end = seg_end.min(self.rcv_nxt + self.rcv_wnd());
        // Nothing can follow a FIN we already know of.
        if self.flags.has(Flags::RX_FIN) {
            end = end.min(self.rx_fin_seq);
        }
        // The window offered fits the buffer (SO_RCVBUF may have lowered
        // what is offered since, never what was).
        debug_assert!(
            self.rcv_wnd()
                <= self
                    .rx_size()
                    .saturating_sub((self.rcv_nxt - self.rcv_consumed) as u32)
        );
        // Take only the first run of bytes we do not hold yet: bytes already
        // placed by an earlier (out-of-order) segment are never written again,
        // so two DMA workers never write the same bytes (and a peer cannot
        // rewrite data it already sent). The rest is left for retransmission.
        let (start, run) = self.ooo().next_uncovered(s.seq.max(self.rcv_nxt));
        if let Some(run) = run {
            end = end.min(start + run);
        }
        if end <= start {
            snap.drop = Some(if seg_end <= self.rcv_nxt || start >= seg_end {
                DropReason::OldDuplicate
            } else {
                DropReason::OutOfWindow
            });
            return true;
        }
        let place = Placement {
            skip: (start - s.seq) as u32,
            len: (end - start) as u32,
            buf_pos: self.rx_pos(start),
        };
        let trimmed = start != s.seq || end != seg_end;
        if start == self.rcv_nxt {
            let had_holes = !self.ooo().is_empty();
            let before = self.rcv_nxt;
            self.rcv_nxt = end;
            if let Some(l) = self.loss.as_mut() {
                while let Some(ooo_end) = l.ooo.pop_reached(self.rcv_nxt) {
                    self.rcv_nxt = self.rcv_nxt.max(ooo_end);
                }
                self.release_loss();
            }
            snap.place = Some(place);
            snap.delivered = (self.rcv_nxt - before) as u32;
            had_holes || trimmed
        } else {
            match self.loss().ooo.insert(start, end, cfg.ooo_limit) {
                Ok(()) => {
                    snap.place = Some(place);
                    snap.events.set(FlowEvents::OUT_OF_ORDER);
                }
                Err(_) => snap.drop = Some(DropReason::OooFull),
            }
            self.release_loss();
            true
        }
    }
}
