//! Per-connection sending rates and their enforcement in the flow
//! scheduler: a rate-based controller's rate (TIMELY's or DCTCP-rate's,
//! updated about once per round trip from what the ACKs `proto` processed
//! report) and the application's cap (`SO_MAX_PACING_RATE`). Only connections with a rate have this state;
//! the others are scheduled as before, unpaced.

use super::{Engine, TimerKey};
use crate::app::ConnId;
use crate::cc::dctcp_rate::Interval;
use crate::cc::{DctcpRate, Pacer, Timely};
use crate::flow::FlowId;
use crate::proto::{CcAlgorithm, CcFeedback, Nanos, TxSegment};
use crate::wire::SeqNumber;

/// A rate-based controller and the feedback it gathers between updates.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Controller {
    Timely(Timely),
    DctcpRate(DctcpRate, Interval),
}

impl Controller {
    fn rate_bps(&self) -> u64 {
        match self {
            Controller::Timely(t) => t.rate_bps(),
            Controller::DctcpRate(d, _) => d.rate_bps(),
        }
    }

    fn kind(&self) -> CcAlgorithm {
        match self {
            Controller::Timely(_) => CcAlgorithm::Timely,
            Controller::DctcpRate(..) => CcAlgorithm::DctcpRate,
        }
    }
}

/// A paced connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RateFlow {
    pacer: Pacer,
    controller: Option<Controller>,
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
    /// The next update waits for feedback at or after this (TIMELY: an
    /// RTT sample; DCTCP-rate: any ACK), and the last one's time.
    next_update_at: Nanos,
    updated_at: Nanos,
    /// The pacing timer the wheel holds for this flow, if any.
    armed_at: Option<Nanos>,
}

/// What [`Engine::rate_info`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RateInfo {
    pub rate_bps: Option<u64>,
    pub timely: Option<(f64, u32)>,
    pub dctcp_rate_alpha: Option<f64>,
}

/// Bytes a paced connection's rate state takes (beside the 8-byte slot
/// every connection has in the engine's table).
pub fn paced_flow_bytes() -> usize {
    std::mem::size_of::<RateFlow>()
}

impl RateFlow {
    /// The flow moved to another engine (`migrate.rs`): no pacing timer is
    /// armed there yet (the next TX arms one).
    pub(super) fn forget_timer(&mut self) {
        self.armed_at = None;
    }

    /// The rate the pacer enforces, bits per second (None: unpaced).
    fn rate_bps(&self) -> Option<u64> {
        let controller = self.controller.map(|c| c.rate_bps());
        let cap = (self.cap_bps > 0).then_some(self.cap_bps);
        match (controller, cap) {
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
        let cc = p.cc();
        let cap_bps = match (cap_bytes_per_sec, self.rates.get(&id)) {
            (Some(bytes), _) => bytes.saturating_mul(8),
            (None, Some(r)) => r.cap_bps,
            (None, None) => 0,
        };
        p.set_paced(cc.rate_based() || cap_bps > 0);
        if !p.paced() {
            // A flow the pacer was holding back may send now.
            if self.rates.remove(&id).is_some() {
                self.wake(id);
            }
            return;
        }
        let now = self.now;
        let params = &self.cfg.timely;
        let r = self.rates.entry(id).or_default();
        r.cap_bps = cap_bps;
        if r.controller.map(|c| c.kind()) != Some(cc) {
            r.probe = None;
            r.updated_at = now;
            r.controller = match cc {
                CcAlgorithm::Timely => Some(Controller::Timely(Timely::new(params))),
                CcAlgorithm::DctcpRate => Some(Controller::DctcpRate(
                    DctcpRate::new(params.initial_bps.clamp(params.min_bps, params.max_bps)),
                    Interval::default(),
                )),
                CcAlgorithm::Reno | CcAlgorithm::Dctcp => None,
            };
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
            if matches!(r.controller, Some(Controller::Timely(_)))
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

    /// The pacing timer fired: the flow may send again (a superseded
    /// entry is ignored).
    pub(crate) fn pace_timer(&mut self, id: FlowId, at: Nanos) {
        if let Some(r) = self.rates.get_mut(&id) {
            if r.armed_at != Some(at) {
                return;
            }
            r.armed_at = None;
        }
        self.wake(id);
    }

    /// Feedback from one ACK (`proto`). TIMELY updates at most once per
    /// smoothed RTT from its probe's RTT, and halves on a loss; DCTCP-rate
    /// gathers acknowledged and marked bytes and updates every two smoothed
    /// RTTs (TAS's control interval), or at once on a loss.
    pub(crate) fn rate_feedback(&mut self, id: FlowId, cc: &CcFeedback) {
        let now = self.now;
        let params = self.cfg.timely;
        let (Some(r), Some(Some(p))) = (self.rates.get_mut(&id), self.proto.get_mut(id.index()))
        else {
            return;
        };
        let Some(controller) = r.controller.as_mut() else {
            return;
        };
        let before = controller.rate_bps();
        let interval_ns = u64::from(p.srtt_us().max(params.min_rtt_us)) * 1000;
        match controller {
            Controller::Timely(t) => {
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
                    r.next_update_at = now + interval_ns;
                } else {
                    return;
                }
            }
            Controller::DctcpRate(d, interval) => {
                interval.acked_bytes += u64::from(cc.acked_bytes);
                if cc.ecn_marked {
                    interval.marked_bytes += u64::from(cc.acked_bytes);
                }
                interval.loss |= cc.loss;
                if !cc.loss && now < r.next_update_at {
                    return;
                }
                interval.nanos = now.saturating_sub(r.updated_at);
                d.update(interval, params.step_bps, params.min_bps, params.max_bps);
                *interval = Interval::default();
                r.updated_at = now;
                r.next_update_at = now + 2 * interval_ns;
            }
        }
        let rate = controller.rate_bps();
        if rate != before {
            self.stats.rate_changes += 1;
        }
        // Two rate x RTT products of window: pacing sets the speed, the
        // window only bounds the flight if ACKs stop.
        let rtt_us = u64::from(p.srtt_us().max(params.min_rtt_us));
        let bdp = rate.min(r.rate_bps().unwrap_or(rate)) / 8 * rtt_us / 1_000_000;
        p.set_rate_window(u32::try_from(2 * bdp).unwrap_or(u32::MAX));
    }

    /// A retransmission timeout: the controller halves its rate.
    pub(crate) fn rate_timeout(&mut self, id: FlowId) {
        let params = self.cfg.timely;
        let Some(r) = self.rates.get_mut(&id) else {
            return;
        };
        match r.controller.as_mut() {
            Some(Controller::Timely(t)) => {
                r.probe = None;
                t.on_loss(&params);
            }
            Some(Controller::DctcpRate(d, _)) => {
                d.on_timeout(params.min_bps);
            }
            None => return,
        }
        self.stats.rate_changes += 1;
    }

    /// A flow's pacing rate in bits per second, where TIMELY runs its
    /// normalised RTT gradient and last RTT in microseconds, and where
    /// DCTCP-rate runs its alpha (diagnostics).
    pub(crate) fn rate_info(&self, id: FlowId) -> RateInfo {
        let Some(r) = self.rates.get(&id) else {
            return RateInfo::default();
        };
        let mut info = RateInfo {
            rate_bps: r.rate_bps(),
            ..RateInfo::default()
        };
        match r.controller {
            Some(Controller::Timely(t)) => {
                info.timely = Some((t.gradient(&self.cfg.timely), t.rtt_us()));
            }
            Some(Controller::DctcpRate(d, _)) => info.dctcp_rate_alpha = Some(d.alpha()),
            None => {}
        }
        info
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
