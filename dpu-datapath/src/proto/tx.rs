//! Choosing the next segment to send: recovery retransmissions first, then
//! new data (or go-back-N resends after a timeout) within the peer's window
//! and the congestion window, then our FIN.

use super::deadline::{micros, Deadline};
use super::{Flags, Nanos, ProtoConfig, ProtoFlow, TcpState, TxSegment};
use crate::stats::Stats;
use crate::wire::{SeqNumber, TcpFlags};

impl ProtoFlow {
    /// Bytes believed in the network during SACK recovery (RFC 6675 "pipe"):
    /// outstanding, minus SACKed, minus holes below the highest SACK that are
    /// presumed lost and not yet retransmitted.
    fn pipe(&self) -> u32 {
        let outstanding = (self.snd_max - self.snd_una).max(0) as u32;
        let lost = if self.rtx_end > self.rtx_next {
            (self.rtx_end - self.rtx_next) as u32
                - self.sacked().covered_between(self.rtx_next, self.rtx_end)
        } else {
            0
        };
        outstanding
            .saturating_sub(self.sacked().covered())
            .saturating_sub(lost)
    }

    /// The next segment this flow may send now, if any.
    pub fn next_segment(
        &mut self,
        now: Nanos,
        cfg: &ProtoConfig,
        stats: &mut Stats,
    ) -> Option<TxSegment> {
        if !matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        ) {
            return None;
        }
        let mss = self.mss as u32;

        if self.flags.has(Flags::IN_RECOVERY) && self.rtx_next < self.rtx_end {
            let (hole, run) = if self.flags.has(Flags::SACK) {
                self.sacked().next_uncovered(self.rtx_next)
            } else {
                (self.rtx_next, None)
            };
            if hole >= self.rtx_end {
                // Every hole below the highest SACK was retransmitted.
                self.rtx_next = self.rtx_end;
            } else {
                let mut span = ((self.rtx_end - hole) as u32).min(mss);
                if let Some(run) = run {
                    span = span.min(run);
                }
                // The first retransmission always goes (RFC 6675 5.1 step 4).
                let first = hole == self.snd_una;
                if self.flags.has(Flags::SACK) && !first && self.pipe() + span > self.cwnd {
                    self.flags.set(Flags::CWND_LIMITED, true);
                    return None;
                }
                self.rtx_next = hole + span;
                if first {
                    self.rtx_mark = self.snd_max;
                    self.flags.set(Flags::RTX_MARKED, true);
                }
                return Some(self.build(hole, span, true, now, cfg, stats));
            }
        }

        let fin_wanted = self.flags.has(Flags::FIN_REQUESTED) && self.snd_nxt <= self.tx_end;
        let data_left = (self.tx_end - self.snd_nxt).max(0) as u32;
        if data_left == 0 && !fin_wanted {
            return None;
        }
        // With SACK, SACKed bytes have left the network: sending follows the
        // pipe (RFC 6675), which doubles as SACK-driven limited transmit.
        let flight = if self.flags.has(Flags::SACK) {
            self.pipe()
        } else {
            (self.snd_nxt - self.snd_una).max(0) as u32
        };
        let by_window = ((self.snd_una + self.snd_wnd) - self.snd_nxt).max(0) as u32;
        self.restart_after_idle(flight, now, cfg);
        // Limited transmit (RFC 3042): each of the first two duplicate ACKs
        // lets one new segment out, to elicit more duplicate ACKs.
        let limited = if self.flags.has(Flags::IN_RECOVERY) {
            0
        } else {
            self.dupacks.min(2) as u32 * mss
        };
        let by_cwnd = (self.cwnd + limited).saturating_sub(flight);
        let mut len = data_left.min(mss).min(by_window).min(by_cwnd);
        if by_cwnd < data_left.min(mss).min(by_window) {
            self.flags.set(Flags::CWND_LIMITED, true);
        }
        let mut segment_size = 0;
        if len == mss {
            (len, segment_size) = self.tso_len(len, data_left.min(by_window).min(by_cwnd), cfg);
        }
        if data_left > 0 && len == 0 {
            if by_window == 0 && self.snd_max == self.snd_una && !self.rto_at.is_set() {
                // Zero window and nothing in flight: probe later (persist).
                self.flags.set(Flags::PERSIST, true);
                self.arm_rto(now, cfg);
            }
            return None;
        }
        // Sender SWS avoidance: no runt segment while data is in flight.
        if len < data_left.min(mss) && flight > 0 {
            return None;
        }
        // Nagle (TCP_NODELAY off) and TCP_CORK: the short tail of the data
        // waits, while data is unacknowledged (Nagle: the ACK wakes the
        // flow) or until the cork comes off, at most 200 ms once nothing
        // is in flight (the idle retransmission timer counts it, see
        // `on_timers`). A FIN to send, a resend and a full segment go at
        // once.
        let short_tail =
            len < mss && len == data_left && !fin_wanted && self.snd_nxt >= self.snd_max;
        if short_tail {
            let cork_bits = super::TX_CORK | super::TX_CORK_FLUSH;
            let corked = self.tx_conf & cork_bits == super::TX_CORK;
            if corked && self.snd_max == self.snd_una && !self.rto_at.is_set() {
                self.rto_at = Deadline::after(now, super::CORK_CEILING_NS);
            }
            if corked || (self.tx_conf & super::TX_NAGLE != 0 && self.snd_max != self.snd_una) {
                return None;
            }
        }
        self.tx_conf &= !super::TX_CORK_FLUSH;
        if self.snd_max == self.snd_una && !self.flags.has(Flags::PERSIST) {
            // Nothing in flight: the timer may hold the cork's ceiling;
            // this segment gets a retransmission timeout of its own.
            self.rto_at = Deadline::OFF;
        }
        let fin_here = fin_wanted && self.snd_nxt + len == self.tx_end;
        let span = len + fin_here as u32;
        let seq = self.snd_nxt;
        let retransmit = seq < self.snd_max;
        let mut seg = self.build(seq, span, retransmit, now, cfg, stats);
        if seg.len > u32::from(segment_size) {
            seg.segment_size = segment_size;
        }
        self.snd_nxt = seq + span;
        if self.snd_nxt > self.snd_max {
            self.snd_max = self.snd_nxt;
        }
        if !retransmit && len > 0 && !self.flags.has(Flags::TIMING) {
            self.flags.set(Flags::TIMING, true);
            self.timed_seq = self.snd_nxt;
            self.timed_at = micros(now);
        }
        Some(seg)
    }

    /// The payload of a new-data segment the port will cut into pieces
    /// (TSO), and the pieces' size, when a full segment goes and more may:
    /// up to `cfg.tso_max` of what the windows allow, in whole pieces,
    /// with the short tail of the data only when it would go now on its
    /// own (not corked, not held by Nagle: `next_segment`'s `short_tail`).
    /// `(len, 0)` (no TSO) for a resend (go-back-N after a timeout: the
    /// bytes below SND.MAX), a segment that carries CWR (the port would
    /// repeat it on every piece) or SACK blocks (their header shape is
    /// written by the generic emitter), a paced flow (its pacer times each
    /// MSS), and when no more than the MSS would go.
    fn tso_len(&self, len: u32, allowed: u32, cfg: &ProtoConfig) -> (u32, u16) {
        let headers = 54 + if self.flags.has(Flags::TS) { 12 } else { 0 };
        let piece = u32::from(self.mss).min(u32::from(cfg.tso_frame).saturating_sub(headers));
        if cfg.tso_max <= piece
            || allowed <= piece
            || piece < 536
            || self.snd_nxt < self.snd_max
            || self.paced()
            || self.flags.has(Flags::CWR_DUE)
            || (self.flags.has(Flags::SACK) && !self.ooo().is_empty())
        {
            return (len, 0);
        }
        let data_left = (self.tx_end - self.snd_nxt).max(0) as u32;
        let corked = self.tx_conf & (super::TX_CORK | super::TX_CORK_FLUSH) == super::TX_CORK;
        let nagle = self.tx_conf & super::TX_NAGLE != 0 && self.snd_max != self.snd_una;
        let fin_wanted = self.flags.has(Flags::FIN_REQUESTED);
        let big = allowed.min(cfg.tso_max);
        let big = if big == data_left && (fin_wanted || !(corked || nagle)) {
            big
        } else {
            big / piece * piece
        };
        if big <= len {
            return (len, 0);
        }
        (big, piece as u16)
    }

    /// Restart after idle (RFC 5681 4.1, RFC 7661): new data after more than
    /// an RTO with nothing in flight starts from at most the initial window
    /// again, since the window's picture of the path has gone stale. The
    /// idle time runs from the last timed segment, which is the last send
    /// within one RTT.
    fn restart_after_idle(&mut self, flight: u32, now: Nanos, cfg: &ProtoConfig) {
        if flight > 0 || self.snd_max != self.snd_una {
            return;
        }
        let idle_us = micros(now).wrapping_sub(self.timed_at);
        let initial = cfg.initial_cwnd_segments.max(1) * self.mss as u32;
        if idle_us > self.rtt.rto_us(&cfg.rto, 0) && self.cwnd > initial {
            self.cwnd = initial;
        }
    }

    /// Builds a segment covering `[seq, seq + span)`, where a span reaching
    /// past the data end includes our FIN.
    fn build(
        &mut self,
        seq: SeqNumber,
        span: u32,
        retransmit: bool,
        now: Nanos,
        cfg: &ProtoConfig,
        stats: &mut Stats,
    ) -> TxSegment {
        let data_len = span.min((self.tx_end - seq).max(0) as u32);
        let fin = self.flags.has(Flags::FIN_REQUESTED) && seq + span == self.tx_end + 1u32;
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
            self.state = match self.state {
                TcpState::Established => TcpState::FinWait1,
                TcpState::CloseWait => TcpState::LastAck,
                other => other,
            };
        }
        if data_len > 0 && seq + data_len == self.tx_end {
            flags |= TcpFlags::PSH;
        }
        // ECN (RFC 3168 6.1.5): new data is ECT(0), retransmissions are
        // not; the first new data after a reduction carries CWR.
        let ect = self.flags.has(Flags::ECN) && data_len > 0 && !retransmit;
        if ect && self.flags.has(Flags::CWR_DUE) {
            flags |= TcpFlags::CWR;
            self.flags.set(Flags::CWR_DUE, false);
            stats.ecn_cwr_sent += 1;
        }
        if retransmit {
            stats.retransmit_segments += 1;
            stats.retransmit_bytes += data_len as u64;
            self.flags.set(Flags::TIMING, false);
        } else {
            stats.tx_payload_bytes += data_len as u64;
        }
        if !self.rto_at.is_set() || self.flags.has(Flags::PERSIST) {
            self.flags.set(Flags::PERSIST, false);
            self.arm_rto(now, cfg);
        }
        let mut header = self.header(seq, flags);
        header.ect = ect;
        TxSegment {
            header,
            buf_pos: self.tx_pos(seq),
            len: data_len,
            retransmit,
            segment_size: 0,
        }
    }
}
