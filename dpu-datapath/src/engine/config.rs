//! The engine's view of the service configuration, resolved once.

use crate::cc::TimelyParams;
use crate::proto::{CcAlgorithm, ProtoConfig, RtoBounds};
use crate::wire::{ChecksumCaps, EthernetAddress};
use pipeline_config::Config;
pub use pipeline_config::SynCookies as SynCookieMode;
use std::net::Ipv4Addr;

/// Everything the engine needs, parsed and in engine units.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// MSS we advertise (bytes of payload in a segment without options).
    pub mss: u16,
    pub rx_buffer: u32,
    pub tx_buffer: u32,
    pub proto: ProtoConfig,
    pub time_wait_ns: u64,
    pub listen_backlog: u32,
    pub max_connections: u32,
    pub window_scale: bool,
    pub timestamps: bool,
    pub sack: bool,
    pub flow_groups: u32,
    pub caps: ChecksumCaps,
    /// SYN retransmissions of an active open before giving up.
    pub syn_retries: u8,
    /// SYN-ACK retransmissions of a passive open before it is dropped.
    pub synack_retries: u8,
    /// Leave out delayed ACKs a later one of the burst covers.
    pub coalesce_acks: bool,
    /// When SYN cookies answer SYNs.
    pub syn_cookies: SynCookieMode,
    /// SYN cookies answered per second at most (0: unlimited).
    pub syn_cookie_rate: u32,
    /// Congestion control of connections accepted on these ports
    /// (`tcp.congestion_control_by_port`), in place of `proto.cc`.
    pub cc_by_port: std::collections::BTreeMap<u16, CcAlgorithm>,
    /// TIMELY's parameters (`tcp.timely`, with the rates and step of
    /// `tcp.rate_control`, which DCTCP-rate takes from here too).
    pub timely: TimelyParams,
    /// Seeds the ISN secret and ephemeral ports (deterministic simulations).
    pub seed: u64,
}

/// The engine's controller for a configured one.
fn cc_algorithm(cc: pipeline_config::CongestionControl) -> CcAlgorithm {
    match cc {
        pipeline_config::CongestionControl::Dctcp => CcAlgorithm::Dctcp,
        pipeline_config::CongestionControl::Timely => CcAlgorithm::Timely,
        pipeline_config::CongestionControl::DctcpRate => CcAlgorithm::DctcpRate,
        pipeline_config::CongestionControl::Reno => CcAlgorithm::Reno,
    }
}

impl EngineConfig {
    /// Resolves a validated [`Config`]. Fails only on addresses that do not
    /// parse, which validation already rejects.
    pub fn from_config(cfg: &Config, seed: u64) -> Result<Self, String> {
        let mac = cfg.identity.mac_octets().map_err(|e| e.to_string())?;
        let ip = cfg.identity.ipv4_addr().map_err(|e| e.to_string())?;
        let gateway = cfg.identity.gateway_addr().map_err(|e| e.to_string())?;
        let t = &cfg.tcp;
        Ok(Self {
            mac: EthernetAddress(mac),
            ip,
            prefix_len: cfg.identity.prefix_len,
            gateway,
            mss: t.mss,
            rx_buffer: t.rx_buffer,
            tx_buffer: t.tx_buffer,
            proto: ProtoConfig {
                rto: RtoBounds {
                    initial_us: t.initial_rto_ms.saturating_mul(1000),
                    min_us: t.min_rto_ms.saturating_mul(1000),
                    max_us: t.max_rto_ms.saturating_mul(1000),
                },
                delayed_ack_ns: t.delayed_ack_us as u64 * 1000,
                ooo_limit: t.ooo_intervals as usize,
                initial_cwnd_segments: t.initial_cwnd_segments,
                max_retransmits: 15,
                ecn: t.ecn,
                cc: cc_algorithm(t.congestion_control),
                // Set by the service when its port segments (TSO).
                tso_max: 0,
                tso_frame: 0,
            },
            time_wait_ns: t.time_wait_ms as u64 * 1_000_000,
            listen_backlog: t.listen_backlog,
            max_connections: t.max_connections,
            window_scale: t.window_scale,
            timestamps: t.timestamps,
            sack: t.sack,
            flow_groups: cfg.topology.flow_groups,
            caps: ChecksumCaps::default(),
            // With a 1 s initial and 60 s maximum RTO, 8 retries keep an
            // active open trying for 3 minutes (RFC 9293 MUST-23).
            syn_retries: 8,
            synack_retries: t.synack_retries.min(255) as u8,
            coalesce_acks: t.coalesce_acks,
            syn_cookies: t.syn_cookies,
            syn_cookie_rate: t.syn_cookie_rate,
            cc_by_port: t
                .congestion_control_by_port
                .iter()
                .map(|(&port, &cc)| (port, cc_algorithm(cc)))
                .collect(),
            timely: TimelyParams::from_config(&t.timely, &t.rate_control),
            seed,
        })
    }

    /// Whether `ip` is on our subnet.
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len.min(32) as u32)
        };
        u32::from(ip) & mask == u32::from(self.ip) & mask
    }

    /// Window-scale shift we offer: the smallest that covers the RX buffer.
    pub fn rcv_wscale(&self) -> u8 {
        let mut shift = 0u8;
        while shift < 14 && (self.rx_buffer >> shift) > u16::MAX as u32 {
            shift += 1;
        }
        shift
    }
}
