//! Per-connection sending rates and their enforcement in the flow
//! scheduler: TIMELY's rate (updated about once per round trip from the
//! RTT samples `proto` reports) and the application's cap
//! (`SO_MAX_PACING_RATE`). Only connections with a rate have this state;
//! the others are scheduled as before, unpaced.

use super::{Engine, TimerKey};
use crate::app::ConnId;
use crate::cc::{Pacer, Timely};
use crate::flow::FlowId;
use crate::proto::{CcAlgorithm, CcFeedback, Nanos, TxSegment};
use crate::wire::SeqNumber;

/// A paced connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RateFlow {
    pacer: Pacer,
    timely: Option<Timely>,
    /// TIMELY's own RTT probe: the end of the segment timed and when it
    /// left. It times the first segment of a pair, which the receiver
    /// acknowledges on arrival whatever its delayed-ACK phase: as the
    /// second of its two, or at once on the pair's second. `proto`'s timed
    /// segment may be the odd one whose ACK waits for the next pair (one
    /// pacing gap, up to the peer's delayed-ACK timer at a low rate), an
    /// inflation TIMELY would take for queueing.
    probe: Option<(SeqNumber, Nanos)>,
    /// The application's cap, bits per second; 0 for none.
    cap_bps: u64,
    /// The next TIMELY update waits for an RTT sample at or after this.
    next_update_at: Nanos,
    /// The pacing timer the wheel holds for this flow, if any.
    armed_at: Option<Nanos>,
}

/// Bytes a paced connection's rate state takes (beside the 8-byte slot
/// every connection has in the engine's table).
pub fn paced_flow_bytes() -> usize {
    std::mem::size_of::<RateFlow>()
}

impl RateFlow {
    /// The rate the pacer enforces, bits per second (None: unpaced).
    fn rate_bps(&self) -> Option<u64> {
        let timely = self.timely.map(|t| t.rate_bps());
        let cap = (self.cap_bps > 0).then_some(self.cap_bps);
        match (timely, cap) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        }
    }
}

impl Engine {
    /// Sets up or drops a flow's rate state for its controller and its
    /// application's cap in bytes per second (None: the cap stays), at
    /// install and when either changes.
    pub(crate) fn refresh_rate(&mut self, id: FlowId, cap_bytes_per_sec: Option<u64>) {
        let Some(Some(p)) = self.proto.get_mut(id.index()) else {
            return;
        };
        let timely = p.cc() == CcAlgorithm::Timely;
        let cap_bps = match (cap_bytes_per_sec, self.rates.get(&id)) {
            (Some(bytes), _) => bytes.saturating_mul(8),
            (None, Some(r)) => r.cap_bps,
            (None, None) => 0,
        };
        p.set_paced(timely || cap_bps > 0);
        if !p.paced() {
            self.rates.remove(&id);
            return;
        }
        let r = self.rates.entry(id).or_default();
        r.cap_bps = cap_bps;
        match (timely, r.timely.is_some()) {
            (true, false) => r.timely = Some(Timely::new(&self.cfg.timely)),
            (false, true) => r.timely = None,
            _ => {}
        }
    }

    /// Whether the pacer holds the flow back now; if so, the wheel wakes
    /// the flow when it may send.
    pub(crate) fn pace_hold(&mut self, id: FlowId) -> bool {
        let now = self.now;
        let Some(r) = self.rates.get_mut(&id) else {
            return false;
        };
        if r.rate_bps().is_none() {
            return false;
        }
        let Some(at) = r.pacer.wait_until(now) else {
            return false;
        };
        if r.armed_at != Some(at) {
            r.armed_at = Some(at);
            self.stats.pacing_waits += 1;
            self.timers.push(at, TimerKey::Pace(id));
        }
        true
    }

    /// Accounts a segment the flow just sent.
    pub(crate) fn pace_sent(&mut self, id: FlowId, seg: &TxSegment) {
        let now = self.now;
        if let Some(r) = self.rates.get_mut(&id) {
            if r.timely.is_some()
                && r.probe.is_none()
                && r.pacer.opens_burst()
                && !seg.retransmit
                && seg.len > 0
            {
                r.probe = Some((seg.header.seq + seg.len, now));
            }
            if let Some(rate) = r.rate_bps() {
                r.pacer.sent(now, seg.len, rate);
            }
        }
    }

    /// The pacing timer fired: the flow may send again.
    pub(crate) fn pace_timer(&mut self, id: FlowId, at: Nanos) {
        let Some(r) = self.rates.get_mut(&id) else {
            return;
        };
        if r.armed_at == Some(at) {
            r.armed_at = None;
            self.wake(id);
        }
    }

    /// Feedback from one ACK (`proto`): TIMELY's update, at most once per
    /// smoothed RTT, from its probe's RTT; a loss halves the rate.
    pub(crate) fn rate_feedback(&mut self, id: FlowId, cc: &CcFeedback) {
        let now = self.now;
        let params = self.cfg.timely;
        let (Some(r), Some(Some(p))) = (self.rates.get_mut(&id), self.proto.get_mut(id.index()))
        else {
            return;
        };
        let Some(t) = r.timely.as_mut() else {
            return;
        };
        let before = t.rate_bps();
        let probed = match r.probe {
            Some((end, sent_at)) if p.snd_una() >= end => {
                r.probe = None;
                Some(((now - sent_at) / 1000).max(1) as u32)
            }
            _ => None,
        };
        if cc.loss {
            // Karn: the probe may be retransmitted; time a new one.
            r.probe = None;
            t.on_loss(&params);
        } else if let (Some(rtt), true) = (probed, now >= r.next_update_at) {
            t.on_rtt(rtt, &params);
            let interval_us = p.srtt_us().max(params.min_rtt_us);
            r.next_update_at = now + u64::from(interval_us) * 1000;
        } else {
            return;
        }
        let rate = t.rate_bps();
        if rate != before {
            self.stats.rate_changes += 1;
        }
        // Two rate x RTT products of window: pacing sets the speed, the
        // window only bounds the flight if ACKs stop.
        let rtt_us = u64::from(p.srtt_us().max(params.min_rtt_us));
        let bdp = rate.min(r.rate_bps().unwrap_or(rate)) / 8 * rtt_us / 1_000_000;
        p.set_rate_window(u32::try_from(2 * bdp).unwrap_or(u32::MAX));
    }

    /// A retransmission timeout: TIMELY halves its rate.
    pub(crate) fn rate_timeout(&mut self, id: FlowId) {
        let params = self.cfg.timely;
        if let Some(r) = self.rates.get_mut(&id) {
            if let Some(t) = r.timely.as_mut() {
                r.probe = None;
                t.on_loss(&params);
                self.stats.rate_changes += 1;
            }
        }
    }

    /// A flow's pacing rate in bits per second, and where TIMELY runs its
    /// normalised RTT gradient and last RTT in microseconds (diagnostics).
    pub(crate) fn rate_info(&self, id: FlowId) -> (Option<u64>, Option<(f64, u32)>) {
        match self.rates.get(&id) {
            Some(r) => (
                r.rate_bps(),
                r.timely.map(|t| (t.gradient(&self.cfg.timely), t.rtt_us())),
            ),
            _ => (None, None),
        }
    }

    /// Caps a connection's sending rate at `bytes_per_sec` (0: no cap), as
    /// Linux's `SO_MAX_PACING_RATE`. Applies at once, or from the end of
    /// the handshake.
    pub fn set_max_pacing_rate(
        &mut self,
        conn: ConnId,
        bytes_per_sec: u64,
    ) -> Result<(), super::ApiError> {
        let app = self.apps.get(conn).ok_or(super::ApiError::InvalidHandle)?;
        match app.flow {
            Some(id) => self.refresh_rate(id, Some(bytes_per_sec)),
            None => {
                // In its handshake (applied at install), or already out of
                // the data path (nothing left to pace).
                if let Some(h) = self.ctrl.handshakes.get_mut(&app.tuple) {
                    h.max_pacing_rate = bytes_per_sec;
                }
            }
        }
        Ok(())
    }
}
