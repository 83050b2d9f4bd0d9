//! How many SYN cookies an owner answers per second (`tcp.syn_cookie_rate`):
//! a token bucket. Under a spoofed SYN flood every cookie is a SYN-ACK
//! that costs the port, the wire and the peer's kernel, and that nobody
//! will answer; capping them leaves the cores to established connections.
//! SYNs beyond the budget are dropped silently (the peer retries, as after
//! a full backlog) and counted (`cookie_rate_limited`).

#![forbid(unsafe_code)]

use crate::proto::Nanos;

const SEC: u128 = 1_000_000_000;

/// A token bucket of `rate` tokens per second, holding at most 10 ms of
/// them (at least one), full at start.
#[derive(Debug, Clone)]
pub struct CookieBudget {
    /// Tokens per second; 0: unlimited.
    rate: u64,
    burst: u64,
    tokens: u64,
    /// Time up to which tokens have been added.
    filled_to: Nanos,
}

impl CookieBudget {
    pub fn new(rate: u64) -> Self {
        let burst = (rate / 100).max(1);
        Self {
            rate,
            burst,
            tokens: burst,
            filled_to: 0,
        }
    }

    /// Takes a token at time `now`, if there is one.
    pub fn take(&mut self, now: Nanos) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_sub(self.filled_to) as u128;
        let new = elapsed * self.rate as u128 / SEC;
        if new > 0 {
            let room = self.burst - self.tokens;
            if new >= room as u128 {
                self.tokens = self.burst;
                self.filled_to = now;
            } else {
                self.tokens += new as u64;
                // Only the time those whole tokens took: no fraction lost.
                self.filled_to += (new * SEC / self.rate as u128) as Nanos;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answered out of `syns` SYNs arriving every `gap` ns.
    fn answered(rate: u64, syns: u64, gap: Nanos) -> u64 {
        let mut b = CookieBudget::new(rate);
        (0..syns).filter(|i| b.take(1_000 + i * gap)).count() as u64
    }

    #[test]
    fn a_flood_gets_the_rate_and_one_burst() {
        // 1 s of SYNs at 100k/s against 10k/s: 10,000 plus the 100 burst.
        let n = answered(10_000, 100_000, 10_000);
        assert!((10_000..=10_101).contains(&n), "{n}");
    }

    #[test]
    fn below_the_rate_every_syn_is_answered() {
        assert_eq!(answered(10_000, 5_000, 200_000), 5_000);
    }

    #[test]
    fn zero_is_unlimited() {
        assert_eq!(answered(0, 100_000, 1), 100_000);
    }

    #[test]
    fn slow_rates_keep_their_fractions() {
        // 3 per second over 10 s of SYNs every millisecond: 30 plus the
        // burst of one.
        let n = answered(3, 10_000, 1_000_000);
        assert!((30..=31).contains(&n), "{n}");
    }
}
