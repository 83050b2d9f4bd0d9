//! Retransmission timeout estimation per RFC 6298 (alpha 1/8, beta 1/4, K 4),
//! with exponential backoff and configured bounds.

/// RTT estimator of one connection, in microseconds. The RTO is computed
/// from SRTT and RTTVAR when asked for, not stored (4 B of issue 13's state
/// budget); before the first sample `rttvar_us` holds the initial RTO
/// instead. The backoff is not kept here: it is the connection's count of
/// timeouts without progress, which the caller passes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    /// 0 until the first sample.
    srtt_us: u32,
    rttvar_us: u32,
}

/// RTO bounds, from `tcp.{initial,min,max}_rto_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtoBounds {
    pub initial_us: u32,
    pub min_us: u32,
    pub max_us: u32,
}

impl RttEstimator {
    pub fn new(bounds: &RtoBounds) -> Self {
        Self {
            srtt_us: 0,
            rttvar_us: bounds.initial_us,
        }
    }

    /// No sample yet, but a given initial timeout (e.g. 3 s after SYN loss).
    pub fn with_rto(rto_us: u32, bounds: &RtoBounds) -> Self {
        Self {
            srtt_us: 0,
            rttvar_us: rto_us.clamp(bounds.min_us, bounds.max_us),
        }
    }

    /// Smoothed RTT, 0 before the first sample.
    pub fn srtt_us(&self) -> u32 {
        self.srtt_us
    }

    /// RTT variation (RFC 6298's RTTVAR), 0 before the first sample.
    pub fn rttvar_us(&self) -> u32 {
        if self.srtt_us == 0 {
            0
        } else {
            self.rttvar_us
        }
    }

    /// Current timeout after `backoff` expiries (RFC 6298 5.5: each one
    /// doubles it), within the bounds.
    pub fn rto_us(&self, bounds: &RtoBounds, backoff: u8) -> u32 {
        let base = if self.srtt_us == 0 {
            self.rttvar_us as u64
        } else {
            // RFC 6298 2.3, with a 1 ms floor on the variance term.
            let rto = self.srtt_us as u64 + (4 * self.rttvar_us as u64).max(1000);
            rto.clamp(bounds.min_us as u64, bounds.max_us as u64)
        };
        let backed = base << backoff.min(16);
        backed.min(bounds.max_us as u64) as u32
    }

    /// Takes a new RTT measurement (RFC 6298 section 2).
    pub fn sample(&mut self, rtt_us: u32) {
        let rtt = rtt_us.max(1);
        if self.srtt_us == 0 {
            self.srtt_us = rtt;
            self.rttvar_us = rtt / 2;
        } else {
            let delta = self.srtt_us.abs_diff(rtt);
            self.rttvar_us = (3 * (self.rttvar_us as u64) / 4 + (delta as u64) / 4) as u32;
            // Never back to 0, which means "no sample yet".
            self.srtt_us = ((7 * (self.srtt_us as u64) / 8 + (rtt as u64) / 8) as u32).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: RtoBounds = RtoBounds {
        initial_us: 1_000_000,
        min_us: 200_000,
        max_us: 60_000_000,
    };

    #[test]
    fn first_sample_then_smoothing() {
        let mut r = RttEstimator::new(&B);
        assert_eq!(r.rto_us(&B, 0), 1_000_000);
        r.sample(100_000);
        // srtt 100ms, rttvar 50ms -> rto 300ms
        assert_eq!(r.rto_us(&B, 0), 300_000);
        r.sample(100_000);
        // rttvar 37.5ms -> 250ms
        assert_eq!(r.rto_us(&B, 0), 250_000);
    }

    #[test]
    fn min_max_and_backoff() {
        let mut r = RttEstimator::new(&B);
        r.sample(10);
        assert_eq!(r.rto_us(&B, 0), 200_000);
        assert_eq!(r.rto_us(&B, 2), 800_000);
        assert_eq!(r.rto_us(&B, 22), 60_000_000);
        assert_eq!(r.rto_us(&B, u8::MAX), 60_000_000);
    }
}
