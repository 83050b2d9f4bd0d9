//! Engine counters. Plain integers owned by the engine (one per worker once the
//! pipeline is parallel), read by tests, the demo and, later, the metrics
//! exporter. Every dropped packet is counted under exactly one reason.

#![forbid(unsafe_code)]

mod drop_reason;
mod rate_limit;

pub use drop_reason::DropReason;
pub use rate_limit::LogLimit;

/// Counters of one engine.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Established-path segments handled by pre+proto+post+dma.
    pub fast_path_segments: u64,
    /// Packets handed to the control plane.
    pub exceptions: u64,
    /// Payload bytes placed into application RX buffers (in and out of order).
    pub rx_payload_bytes: u64,
    /// Payload bytes sent, first transmissions only.
    pub tx_payload_bytes: u64,
    pub pure_acks_sent: u64,
    /// Delayed ACKs left out because a later ACK of the same connection in
    /// the same burst covers them (not counted in `pure_acks_sent`).
    pub acks_coalesced: u64,
    pub retransmit_segments: u64,
    pub retransmit_bytes: u64,
    /// Segments longer than the MSS handed to the port to cut (TSO).
    pub tso_segments: u64,
    pub fast_retransmits: u64,
    pub timeout_retransmits: u64,
    pub zero_window_probes: u64,
    /// Keepalive probes sent, and connections reset for want of answers.
    pub keepalive_probes: u64,
    pub keepalive_timeouts: u64,
    pub window_updates: u64,
    /// Segments whose payload arrived ahead of a hole (kept out of order):
    /// loss or reordering on the way, or in the pipeline.
    pub rx_out_of_order_segments: u64,
    pub challenge_acks: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    pub icmp_echo_replies: u64,
    pub connections_accepted: u64,
    pub connections_opened: u64,
    pub connections_reset: u64,
    /// Connections reset because a DMA copy of their payload failed.
    pub dma_copy_failures: u64,
    pub connections_closed: u64,
    pub connect_failures: u64,
    /// Half-open connections dropped after their SYN/SYN-ACK retries.
    pub handshakes_expired: u64,
    /// SYN cookies (RFC 4987): SYN-ACKs sent with a cookie, ACKs that
    /// carried a valid one (connections installed from it), and ACKs to a
    /// listening port that carried none while cookies were in use.
    pub syn_cookies_sent: u64,
    pub syn_cookies_validated: u64,
    pub syn_cookies_failed: u64,
    /// ECN (RFC 3168): data segments received CE-marked, ACKs received with
    /// ECE, window reductions for them, and segments we sent with CWR.
    pub ecn_ce_received: u64,
    pub ecn_ece_received: u64,
    pub ecn_reductions: u64,
    pub ecn_cwr_sent: u64,
    /// Pacing: times the flow scheduler held a paced connection back until
    /// its next departure time, and changes of a rate-based controller's
    /// rate (TIMELY).
    pub pacing_waits: u64,
    pub rate_changes: u64,
    drops: DropCounts,
}

/// One counter per [`DropReason`] (a newtype: arrays over 32 have no `Default`).
#[derive(Clone, Debug)]
struct DropCounts([u64; DropReason::COUNT]);

impl Default for DropCounts {
    fn default() -> Self {
        DropCounts([0; DropReason::COUNT])
    }
}

impl Stats {
    /// Adds another worker's counters to these.
    pub fn merge(&mut self, other: &Stats) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
        self.fast_path_segments += other.fast_path_segments;
        self.exceptions += other.exceptions;
        self.rx_payload_bytes += other.rx_payload_bytes;
        self.tx_payload_bytes += other.tx_payload_bytes;
        self.pure_acks_sent += other.pure_acks_sent;
        self.acks_coalesced += other.acks_coalesced;
        self.retransmit_segments += other.retransmit_segments;
        self.retransmit_bytes += other.retransmit_bytes;
        self.tso_segments += other.tso_segments;
        self.fast_retransmits += other.fast_retransmits;
        self.timeout_retransmits += other.timeout_retransmits;
        self.zero_window_probes += other.zero_window_probes;
        self.keepalive_probes += other.keepalive_probes;
        self.keepalive_timeouts += other.keepalive_timeouts;
        self.window_updates += other.window_updates;
        self.rx_out_of_order_segments += other.rx_out_of_order_segments;
        self.challenge_acks += other.challenge_acks;
        self.rst_sent += other.rst_sent;
        self.rst_received += other.rst_received;
        self.arp_replies_sent += other.arp_replies_sent;
        self.arp_requests_sent += other.arp_requests_sent;
        self.icmp_echo_replies += other.icmp_echo_replies;
        self.connections_accepted += other.connections_accepted;
        self.connections_opened += other.connections_opened;
        self.connections_reset += other.connections_reset;
        self.dma_copy_failures += other.dma_copy_failures;
        self.connections_closed += other.connections_closed;
        self.connect_failures += other.connect_failures;
        self.handshakes_expired += other.handshakes_expired;
        self.syn_cookies_sent += other.syn_cookies_sent;
        self.syn_cookies_validated += other.syn_cookies_validated;
        self.syn_cookies_failed += other.syn_cookies_failed;
        self.ecn_ce_received += other.ecn_ce_received;
        self.ecn_ece_received += other.ecn_ece_received;
        self.ecn_reductions += other.ecn_reductions;
        self.ecn_cwr_sent += other.ecn_cwr_sent;
        self.pacing_waits += other.pacing_waits;
        self.rate_changes += other.rate_changes;
        for (a, b) in self.drops.0.iter_mut().zip(other.drops.0.iter()) {
            *a += b;
        }
    }

    /// Counts one dropped packet.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops.0[reason as usize] += 1;
    }

    /// Drops counted under `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.0[reason as usize]
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.0.iter().sum()
    }

    /// Non-zero drop counters with their labels.
    pub fn drop_breakdown(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .filter(|r| self.drops(**r) > 0)
            .map(|r| (r.as_str(), self.drops(*r)))
            .collect()
    }
}
