//! What keepalive (RFC 9293 3.8.4, RFC 1122 4.2.3.6) needs from a flow:
//! how long since the peer last sent an acceptable segment, and the probe.
//! The timer itself, with its per-connection settings, lives in the engine
//! (`engine/keepalive.rs`): idle times are hours, beyond the 32-bit
//! deadlines of `deadline.rs`, and few connections ask for it.

use super::{HeaderFields, Nanos, ProtoFlow, TcpState};
use crate::wire::TcpFlags;

/// Nanoseconds in one tick of [`ProtoFlow`]'s last-receive time: a
/// millisecond (Linux's keepalive works in jiffies), so 32 bits wrap after
/// 49 days.
const TICK_NS: Nanos = 1_000_000;

/// The engine's clock in keepalive ticks, wrapped to 32 bits.
pub fn ticks(now: Nanos) -> u32 {
    (now / TICK_NS) as u32
}

impl ProtoFlow {
    /// Records that an acceptable segment arrived at `now`.
    pub fn note_rx(&mut self, now: Nanos) {
        self.last_rx = ticks(now);
    }

    /// Nanoseconds since the peer last sent an acceptable segment, in
    /// whole ticks (at most 49 days are told apart).
    pub fn rx_idle_ns(&self, now: Nanos) -> Nanos {
        u64::from(ticks(now).wrapping_sub(self.last_rx)) * TICK_NS
    }

    /// An acceptable segment arrived at or after `at` (to the tick), told
    /// apart for `now - at` up to 49 days.
    pub fn rx_since(&self, at: Nanos, now: Nanos) -> bool {
        let now = ticks(now);
        now.wrapping_sub(self.last_rx) <= now.wrapping_sub(ticks(at))
    }

    /// A keepalive probe, when the connection is one to probe: synchronized,
    /// nothing in flight or waiting to be sent (the retransmission timer
    /// watches the peer then, as in Linux's `tcp_keepalive_timer`). The
    /// probe carries SND.UNA - 1 and no data: the peer's answer is an ACK
    /// (RFC 9293 3.8.4 allows one garbage octet; Linux and the BSDs send
    /// none).
    pub fn keepalive_probe(&mut self) -> Option<HeaderFields> {
        let probing_state = matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::Closing
                | TcpState::LastAck
        );
        if !probing_state || self.snd_max != self.snd_una || self.tx_end > self.snd_max {
            return None;
        }
        Some(self.header(self.snd_una - 1u32, TcpFlags::ACK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_from_the_last_segment_and_survives_the_wrap() {
        assert_eq!(ticks(0), 0);
        let wrap = (1u64 << 32) * TICK_NS;
        assert_eq!(ticks(wrap + 5 * TICK_NS), 5);
        let at = wrap - 3 * TICK_NS;
        let later = at + 10 * TICK_NS;
        assert_eq!(u64::from(ticks(later).wrapping_sub(ticks(at))), 10);
    }
}
