//! `tcp`: protocol parameters of the offloaded TCP stack.

use serde::{Deserialize, Serialize};

/// `tcp`: segment sizes, buffers, timers, limits and options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tcp {
    /// `tcp.mss`: maximum segment size in bytes, `88..=9000`, and
    /// `mss + 40 <= port.mtu` (IPv4 and TCP headers). Default `1448`.
    pub mss: u16,
    /// `tcp.rx_buffer`: receive buffer per connection in bytes, a power of
    /// two in `4096..=1073741824`. Default `262144`.
    pub rx_buffer: u32,
    /// `tcp.tx_buffer`: send buffer per connection in bytes, a power of two
    /// in `4096..=1073741824`. Default `262144`.
    pub tx_buffer: u32,
    /// `tcp.initial_rto_ms`: retransmission timeout before any RTT sample,
    /// in milliseconds, `min_rto_ms..=max_rto_ms`. Default `1000`.
    pub initial_rto_ms: u32,
    /// `tcp.min_rto_ms`: lower bound of the retransmission timeout in
    /// milliseconds, `1..=600000`. Default `200`.
    pub min_rto_ms: u32,
    /// `tcp.max_rto_ms`: upper bound of the retransmission timeout in
    /// milliseconds, `1..=600000`. Default `60000`.
    pub max_rto_ms: u32,
    /// `tcp.delayed_ack_us`: delayed-ACK timeout in microseconds,
    /// `0..=500000`; `0` acknowledges every segment at once. Default `500`.
    pub delayed_ack_us: u32,
    /// `tcp.coalesce_acks`: of the delayed ACKs (every second in-order
    /// segment) one connection produces in one burst, send only the last,
    /// as Linux's GRO does; duplicate ACKs are never left out. No effect
    /// when `delayed_ack_us` is `0`. Default `true`.
    pub coalesce_acks: bool,
    /// `tcp.max_connections`: connection table size, `1..=16777216`.
    /// Default `65536`.
    pub max_connections: u32,
    /// `tcp.time_wait_ms`: TIME-WAIT duration in milliseconds, `0..=240000`.
    /// Default `60000`.
    pub time_wait_ms: u32,
    /// `tcp.listen_backlog`: pending connections per listener, `1..=65535`.
    /// Default `128`.
    pub listen_backlog: u32,
    /// `tcp.synack_retries`: SYN-ACK retransmissions before a half-open
    /// (SYN-RECEIVED) connection is dropped, `0..=255`; with the RTO
    /// doubling from `initial_rto_ms`, the entry lives `initial_rto_ms *
    /// (2^(n+1) - 1)` at most (capped per step by `max_rto_ms`). Default
    /// `5`, as Linux's `net.ipv4.tcp_synack_retries` (63 s), so a backlog
    /// filled by spoofed SYNs drains by itself.
    pub synack_retries: u32,
    /// `tcp.syn_cookies`: answer SYNs with SYN cookies (RFC 4987) when a
    /// listener's backlog is full of half-open connections (`"auto"`, as
    /// Linux's `tcp_syncookies = 1`), for every SYN (`"always"`), or never
    /// (`"never"`: a full backlog drops SYNs). Default `"auto"`.
    pub syn_cookies: SynCookies,
    /// `tcp.syn_cookie_rate`: SYN cookies each flow-group owner answers per
    /// second at most, `0..=100000000`; SYNs beyond it are dropped silently
    /// (the peer retries) and counted (`cookie_rate_limited`). Under a
    /// spoofed flood this keeps the cores for established connections, at
    /// the price of real clients' SYNs being dropped with the flood's.
    /// `0`: unlimited (Linux's behaviour). Default `0`.
    pub syn_cookie_rate: u32,
    /// `tcp.window_scale`: negotiate window scaling (RFC 7323). Default `true`.
    pub window_scale: bool,
    /// `tcp.timestamps`: negotiate timestamps (RFC 7323). Default `true`.
    pub timestamps: bool,
    /// `tcp.sack`: negotiate selective acknowledgements (RFC 2018).
    /// Default `true`.
    pub sack: bool,
    /// `tcp.ooo_intervals`: out-of-order byte ranges kept per connection,
    /// `1..=8` (the per-connection interval array is fixed-size so the
    /// state stays small). Default `8`.
    pub ooo_intervals: u32,
    /// `tcp.congestion_control`: `"reno"`, `"dctcp"` or `"dctcp-rate"`
    /// (both need `ecn: true`), or `"timely"`. Default `"reno"`.
    pub congestion_control: CongestionControl,
    /// `tcp.congestion_control_by_port`: the controller of connections
    /// accepted on given listening ports, e.g. `{"11211": "dctcp"}`, in
    /// place of `congestion_control` (applications may still choose per
    /// socket). A DCTCP listener negotiates ECN whatever `tcp.ecn` says.
    /// Ports `1..=65535`. Default empty.
    pub congestion_control_by_port: std::collections::BTreeMap<u16, CongestionControl>,
    /// `tcp.timely`: parameters of the `"timely"` controller.
    pub timely: Timely,
    /// `tcp.rate_control`: what the rate-based controllers share.
    pub rate_control: RateControl,
    /// `tcp.ecn`: negotiate explicit congestion notification (RFC 3168).
    /// Default `false`.
    pub ecn: bool,
    /// `tcp.initial_cwnd_segments`: initial congestion window in segments,
    /// `1..=100`. Default `10`.
    pub initial_cwnd_segments: u32,
}

impl Default for Tcp {
    fn default() -> Self {
        Tcp {
            mss: 1448,
            rx_buffer: 262_144,
            tx_buffer: 262_144,
            initial_rto_ms: 1000,
            min_rto_ms: 200,
            max_rto_ms: 60_000,
            delayed_ack_us: 500,
            max_connections: 65_536,
            time_wait_ms: 60_000,
            listen_backlog: 128,
            synack_retries: 5,
            coalesce_acks: true,
            syn_cookies: SynCookies::Auto,
            syn_cookie_rate: 0,
            window_scale: true,
            timestamps: true,
            sack: true,
            ooo_intervals: 8,
            congestion_control: CongestionControl::Reno,
            congestion_control_by_port: Default::default(),
            timely: Timely::default(),
            rate_control: RateControl::default(),
            ecn: false,
            initial_cwnd_segments: 10,
        }
    }
}

/// `tcp.timely`: TIMELY (Mittal et al., SIGCOMM'15) as FlexTOE and TAS run
/// it: once per round trip the connection's sending rate follows the RTT
/// and its gradient, and the flow scheduler paces segments at that rate
/// (rates and step in `tcp.rate_control`). Defaults are TAS's
/// (`tas/slow/cc.c`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timely {
    /// `tcp.timely.t_low_us`: below this RTT the rate grows additively
    /// whatever the gradient, `1..=1000000`. Default `30`.
    pub t_low_us: u32,
    /// `tcp.timely.t_high_us`: above this RTT the rate is cut in proportion
    /// to how far above it is, `t_low_us + 1..=1000000`. Default `150`.
    pub t_high_us: u32,
    /// `tcp.timely.min_rtt_us`: the RTT that normalises the gradient (the
    /// fabric's propagation RTT), `1..=1000000`. Default `11`.
    pub min_rtt_us: u32,
    /// `tcp.timely.beta`: multiplicative decrease factor, `0.0..=1.0`.
    /// Default `0.8`.
    pub beta: f64,
    /// `tcp.timely.ewma_alpha`: weight of the newest RTT difference in the
    /// gradient's moving average, `0.0..=1.0`. Default `0.02`.
    pub ewma_alpha: f64,
    /// `tcp.timely.hai_threshold`: consecutive updates with a non-positive
    /// gradient after which each increase is five steps (hyperactive
    /// increase), `1..=255`. Default `5`.
    pub hai_threshold: u32,
}

impl Default for Timely {
    fn default() -> Self {
        Timely {
            t_low_us: 30,
            t_high_us: 150,
            min_rtt_us: 11,
            beta: 0.8,
            ewma_alpha: 0.02,
            hai_threshold: 5,
        }
    }
}

/// `tcp.rate_control`: what the rate-based controllers (`"timely"`,
/// `"dctcp-rate"`) share. A new connection starts at the initial rate and
/// doubles it per update (slow start) until its controller sees congestion
/// (TIMELY: the RTT past halfway between its thresholds; DCTCP-rate: a mark
/// or a loss), then grows by a step per update. Defaults are TAS's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateControl {
    /// `tcp.rate_control.step_mbps`: additive increase per update
    /// (TIMELY's delta, DCTCP-rate's step) in Mbit/s, `1..=100000`.
    /// Default `10`.
    pub step_mbps: u32,
    /// `tcp.rate_control.initial_rate_mbps`: rate of a new connection,
    /// `min_rate_mbps..=max_rate_mbps`. Default `10`.
    pub initial_rate_mbps: u32,
    /// `tcp.rate_control.min_rate_mbps`: floor of the rate,
    /// `1..=max_rate_mbps`. Default `10`.
    pub min_rate_mbps: u32,
    /// `tcp.rate_control.max_rate_mbps`: ceiling of the rate (the line
    /// rate), `1..=400000`. Default `100000`.
    pub max_rate_mbps: u32,
}

impl Default for RateControl {
    fn default() -> Self {
        RateControl {
            step_mbps: 10,
            initial_rate_mbps: 10,
            min_rate_mbps: 10,
            max_rate_mbps: 100_000,
        }
    }
}

/// When SYN cookies are used, written in lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynCookies {
    /// `"auto"`: when a listener's backlog is full of half-open connections.
    Auto,
    /// `"always"`: for every SYN (no half-open state is ever kept).
    Always,
    /// `"never"`: a full backlog drops SYNs.
    Never,
}

/// Congestion control algorithm, written in lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionControl {
    /// `"reno"`: NewReno (RFC 6582), loss-based.
    Reno,
    /// `"dctcp"`: Data Center TCP (RFC 8257), ECN-based; requires `tcp.ecn`.
    Dctcp,
    /// `"timely"`: TIMELY, rate-based on the RTT gradient, paced
    /// (`tcp.timely`).
    Timely,
    /// `"dctcp-rate"`: DCTCP acting on a paced rate (FlexTOE's and TAS's
    /// default); requires `tcp.ecn`.
    #[serde(rename = "dctcp-rate")]
    DctcpRate,
}
