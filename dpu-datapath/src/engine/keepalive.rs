//! TCP keepalive (RFC 1122 4.2.3.6, `SO_KEEPALIVE` with `TCP_KEEPIDLE`,
//! `TCP_KEEPINTVL`, `TCP_KEEPCNT`), as Linux's `tcp_keepalive_timer`: when
//! the peer has sent nothing for the idle time and nothing of ours is in
//! flight, a probe (SND.UNA - 1, no data) goes out every interval; the
//! peer's answer resets the count, and after `count` unanswered probes the
//! connection is reset (RST, `ETIMEDOUT` to the application).
//!
//! Only connections that asked have an entry here, with one timer in the
//! engine's queue: the data path pays a store of the arrival time per
//! segment (`ProtoFlow::note_rx`) and nothing else.

use super::{Engine, TimerKey};
use crate::app::{ConnError, ConnId};
use crate::proto::Nanos;

const SEC: Nanos = 1_000_000_000;

/// Keepalive settings of one connection, in seconds as the socket options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`, 1-32767).
    pub idle_secs: u16,
    /// Between probes (`TCP_KEEPINTVL`, 1-32767).
    pub interval_secs: u16,
    /// Unanswered probes before the connection is reset (`TCP_KEEPCNT`,
    /// 1-127).
    pub count: u8,
}

impl Default for Keepalive {
    /// Linux's defaults (`net.ipv4.tcp_keepalive_time`, `_intvl`,
    /// `_probes`).
    fn default() -> Self {
        Self {
            idle_secs: 7200,
            interval_secs: 75,
            count: 9,
        }
    }
}

impl Keepalive {
    /// From the host ABI's packed form (`abi::OPT_KEEPALIVE`): bits 0-15
    /// idle, 16-31 interval, 32-39 count; 0 turns keepalive off. Zero
    /// fields, or values past Linux's limits, are refused.
    pub fn from_packed(b: u64) -> Result<Option<Self>, super::ApiError> {
        if b == 0 {
            return Ok(None);
        }
        let k = Self {
            idle_secs: b as u16,
            interval_secs: (b >> 16) as u16,
            count: (b >> 32) as u8,
        };
        let valid = (1..=32767).contains(&k.idle_secs)
            && (1..=32767).contains(&k.interval_secs)
            && (1..=127).contains(&k.count)
            && b >> 40 == 0;
        if valid {
            Ok(Some(k))
        } else {
            Err(super::ApiError::InvalidArgument)
        }
    }

    /// The packed form [`Self::from_packed`] reads.
    pub fn packed(self) -> u64 {
        doca_bindings::abi::pack_keepalive(self.idle_secs, self.interval_secs, self.count)
    }
}

/// A connection with keepalive on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeepaliveConn {
    settings: Keepalive,
    /// Probes sent since the peer last answered.
    probes_out: u8,
    /// When the last probe went out.
    probed_at: Nanos,
    /// The entry the timer queue holds for it (older ones are stale).
    armed_at: Nanos,
}

impl KeepaliveConn {
    /// When its check is due (the entry the timer queue holds).
    pub(super) fn armed_at(&self) -> Nanos {
        self.armed_at
    }
}

impl Engine {
    /// Turns keepalive on with these settings, or off (`None`). Settings
    /// made during the handshake apply once it completes.
    pub fn set_keepalive(
        &mut self,
        conn: ConnId,
        settings: Option<Keepalive>,
    ) -> Result<(), super::ApiError> {
        self.apps.get(conn).ok_or(super::ApiError::InvalidHandle)?;
        let Some(settings) = settings else {
            self.keepalive.remove(&conn);
            return Ok(());
        };
        // As Linux: the first check is one idle time after the change,
        // counted from the last segment received (the check works out how
        // long the peer has been silent with the settings of the moment).
        let at = self.now + u64::from(settings.idle_secs) * SEC;
        if let Some(k) = self.keepalive.get_mut(&conn) {
            k.settings = settings;
            if k.armed_at <= at {
                // The timer armed fires first: no other entry (a program
                // setting the options in a loop must not grow the queue).
                return Ok(());
            }
            k.armed_at = at;
        } else {
            self.keepalive.insert(
                conn,
                KeepaliveConn {
                    settings,
                    probes_out: 0,
                    probed_at: 0,
                    armed_at: at,
                },
            );
        }
        self.push_timer(at, TimerKey::Keepalive(conn));
        Ok(())
    }

    /// The connection's keepalive settings, if it is on.
    pub fn keepalive(&self, conn: ConnId) -> Option<Keepalive> {
        self.keepalive.get(&conn).map(|k| k.settings)
    }

    pub(crate) fn keepalive_timer(&mut self, conn: ConnId, at: Nanos) {
        let now = self.now;
        let Some(k) = self.keepalive.get(&conn).copied() else {
            return;
        };
        if k.armed_at != at {
            return; // superseded
        }
        let Some(app) = self.apps.get(conn) else {
            self.keepalive.remove(&conn);
            return;
        };
        let idle = u64::from(k.settings.idle_secs) * SEC;
        let interval = u64::from(k.settings.interval_secs) * SEC;
        let mut next = KeepaliveConn { armed_at: 0, ..k };
        let delay = match app.flow {
            // In the handshake, or out of the data path (closed): look
            // again later; the entry goes with the connection.
            None => idle,
            Some(id) => {
                let Some(Some(p)) = self.proto.get_mut(id.index()) else {
                    return;
                };
                let quiet = p.rx_idle_ns(now);
                // The peer sent something since the last probe went out:
                // it answered (an answer comes within microseconds, so
                // "less than an interval ago" would miss it at the tick).
                if k.probes_out > 0 && p.rx_since(k.probed_at, now) {
                    next.probes_out = 0;
                }
                if quiet < idle && next.probes_out == 0 {
                    idle - quiet
                } else {
                    match p.keepalive_probe() {
                        None => {
                            // Data in flight: the retransmission timer
                            // watches the peer.
                            next.probes_out = 0;
                            idle
                        }
                        Some(_) if next.probes_out >= k.settings.count => {
                            self.stats.keepalive_timeouts += 1;
                            self.keepalive.remove(&conn);
                            self.abort_flow(id, ConnError::TimedOut, true);
                            return;
                        }
                        Some(probe) => {
                            self.stats.keepalive_probes += 1;
                            self.send_fields(id, &probe, &[]);
                            next.probes_out += 1;
                            next.probed_at = now;
                            interval
                        }
                    }
                }
            }
        };
        next.armed_at = now + delay.max(1);
        self.keepalive.insert(conn, next);
        self.push_timer(next.armed_at, TimerKey::Keepalive(conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_settings_round_trip_and_out_of_range_values_are_refused() {
        let k = Keepalive {
            idle_secs: 32767,
            interval_secs: 1,
            count: 127,
        };
        assert_eq!(Keepalive::from_packed(k.packed()), Ok(Some(k)));
        assert_eq!(Keepalive::from_packed(0), Ok(None));
        let bad = [
            doca_bindings::abi::pack_keepalive(0, 1, 1),
            doca_bindings::abi::pack_keepalive(1, 0, 1),
            doca_bindings::abi::pack_keepalive(1, 1, 0),
            doca_bindings::abi::pack_keepalive(32768, 1, 1),
            doca_bindings::abi::pack_keepalive(1, 1, 128),
            doca_bindings::abi::pack_keepalive(1, 1, 1) | 1 << 40,
        ];
        for b in bad {
            assert_eq!(
                Keepalive::from_packed(b),
                Err(super::super::ApiError::InvalidArgument),
                "{b:#x}"
            );
        }
    }
}
