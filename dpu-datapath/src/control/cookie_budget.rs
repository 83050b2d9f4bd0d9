//! How many SYN cookies an owner answers per second (`tcp.syn_cookie_rate`):
//! a token bucket. Under a spoofed SYN flood every cookie is a SYN-ACK
//! that costs the port, the wire and the peer's kernel, and that nobody
//! will answer; capping them leaves the cores for established connections.
//! SYNs beyond the budget are dropped silently and counted
//! (`cookie_rate_limited`) unless they are a client retrying
//! ([`Retries`]): real clients still get in, on their first SYN
//! retransmission.

#![forbid(unsafe_code)]

use crate::proto::Nanos;

const SEC: u128 = 1_000_000_000;

/// A token bucket of `rate` tokens per second, holding at most 10 ms of
/// them (at least one), full at start; and the SYNs it refused.
#[derive(Debug, Clone)]
pub struct CookieBudget {
    /// Tokens per second; 0: unlimited.
    rate: u64,
    burst: u64,
    tokens: u64,
    /// Time up to which tokens have been added.
    filled_to: Nanos,
    /// Made at the first refusal.
    retries: Option<Retries>,
}

impl CookieBudget {
    pub fn new(rate: u64) -> Self {
        let burst = (rate / 100).max(1);
        Self {
            rate,
            burst,
            tokens: burst,
            filled_to: 0,
            retries: None,
        }
    }

    /// Whether the SYN with keyed digest `syn` (same for its
    /// retransmissions) is answered at time `now`: with a token if there is
    /// one, or as a client's retransmission of a SYN refused before.
    pub fn take(&mut self, now: Nanos, syn: u64) -> bool {
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
        if self.tokens > 0 {
            self.tokens -= 1;
            return true;
        }
        self.retries
            .get_or_insert_with(Retries::new)
            .is_retry(syn, now)
    }
}

/// Slots of the retry memory (2 MiB, so that it stays in the caches): a
/// flood of 400,000 fresh SYNs a second rewrites half of them in two
/// seconds, and a slot another SYN wrote passes for a retry only if its
/// 7-bit tag matches too (under 0.5% of the flood; a real client's entry
/// survives a second of such a flood with odds of about two in three, and
/// its next retransmission gets another chance).
const SLOTS: usize = 1 << 20;

/// The SYNs refused over the last seconds: per slot (chosen by the SYN's
/// digest) the second it was last refused and 8 more bits of its digest,
/// so each refusal costs one cache miss. A SYN last refused one or two
/// seconds ago (not in this one) is a client retrying: Linux resends an
/// unanswered SYN, same tuple and ISN, after 1 s, then 3 s, 7 s. A spoofed
/// SYN is fresh (never seen before), and a flood that replays the same
/// SYNs is seen again within the same second, so it gets through once per
/// second per SYN at most.
#[derive(Debug, Clone)]
struct Retries {
    /// Second (mod 256) << 8 | tag, the tag's low bit always set so that
    /// 0 means never written.
    slots: Vec<u16>,
}

impl Retries {
    fn new() -> Self {
        Self {
            slots: vec![0; SLOTS],
        }
    }

    /// Whether refused SYN `syn` is a retry (see the type); remembers it.
    fn is_retry(&mut self, syn: u64, now: Nanos) -> bool {
        let second = (now / SEC as Nanos) as u8;
        let tag = (syn >> 56) as u8 | 1;
        let slot = &mut self.slots[syn as usize & (SLOTS - 1)];
        let (seen, seen_tag) = ((*slot >> 8) as u8, *slot as u8);
        let ago = second.wrapping_sub(seen);
        let retry = *slot != 0 && seen_tag == tag && (ago == 1 || ago == 2);
        *slot = u16::from(second) << 8 | u16::from(tag);
        retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answered out of `syns` fresh SYNs arriving every `gap` ns.
    fn answered(rate: u64, syns: u64, gap: Nanos) -> u64 {
        let mut b = CookieBudget::new(rate);
        (0..syns)
            .filter(|i| b.take(1_000 + i * gap, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .count() as u64
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

    /// A flood of fresh SYNs keeps the bucket empty from `from` to `to`
    /// (ns), 100 µs apart.
    fn flood(b: &mut CookieBudget, from: Nanos, to: Nanos, salt: u64) -> u64 {
        (from / 100_000..to / 100_000)
            .filter(|i| {
                let syn = (i ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1 << 63;
                b.take(i * 100_000, syn)
            })
            .count() as u64
    }

    #[test]
    fn a_client_retrying_gets_through_the_flood() {
        // One token every 100 ms, each taken by the flood the moment it
        // comes (the flood's SYNs land on multiples of 100 µs).
        let mut b = CookieBudget::new(10);
        flood(&mut b, 0, 500_100_000, 1);
        // The client's SYN is refused; the flood goes on.
        let client = 0x1234_5678_9abc_def0;
        assert!(!b.take(500_050_000, client));
        flood(&mut b, 500_100_000, 1_500_100_000, 2);
        // Its retransmission one second later is answered.
        assert!(b.take(1_500_050_000, client));
        // Again in the same second: no (a replay).
        flood(&mut b, 1_500_100_000, 1_600_100_000, 3);
        assert!(!b.take(1_600_050_000, client));
    }

    #[test]
    fn a_replayed_syn_gets_through_once_a_second_at_most() {
        let mut b = CookieBudget::new(1);
        let syn = 0xdead_beef_0000_0001;
        // The same SYN every millisecond for 5 s, tokens spent first.
        flood(&mut b, 0, 1_000_000, 3);
        let answered = (1..5_000u64)
            .filter(|ms| b.take(ms * 1_000_000, syn))
            .count();
        // At most one a second from the retry memory, plus the bucket's
        // few tokens (1 a second) the replay also gets.
        assert!(answered <= 10, "{answered}");
    }

    #[test]
    fn fresh_spoofed_syns_rarely_pass_as_retries() {
        let mut b = CookieBudget::new(1);
        // 200,000 fresh SYNs a second for 2 s at 5 µs intervals.
        let passed = (0..400_000u64)
            .filter(|i| b.take(i * 5_000, i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555))
            .count();
        // Under 1% (plus the bucket's 2 tokens).
        assert!(passed < 4_000, "{passed}");
    }
}
