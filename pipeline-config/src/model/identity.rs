//! `identity`: the Ethernet and IPv4 identity of the offloaded port.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::addr;
use crate::ConfigError;

/// `identity`: the addresses the offload engine answers to on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    /// `identity.mac`: the port's Ethernet address, six two-digit hex octets
    /// separated by `:`. Must be unicast (first octet even) and not all-zero.
    /// Default `"02:00:c6:12:00:02"` (locally administered).
    pub mac: String,
    /// `identity.ipv4`: the port's IPv4 address in dotted decimal; a unicast
    /// host address, not the network or broadcast address of its subnet.
    /// Default `"198.18.0.2"` (RFC 2544 benchmarking range).
    pub ipv4: String,
    /// `identity.prefix_len`: the subnet prefix length of `ipv4`, `1..=32`.
    /// Default `24`.
    pub prefix_len: u8,
    /// `identity.gateway`: the next hop for destinations outside the subnet,
    /// or `null` for none (only on-link peers are reachable). Must be a host
    /// inside `ipv4/prefix_len` other than `ipv4` itself. Default `null`.
    pub gateway: Option<String>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            mac: "02:00:c6:12:00:02".to_owned(),
            ipv4: "198.18.0.2".to_owned(),
            prefix_len: 24,
            gateway: None,
        }
    }
}

impl Identity {
    /// The parsed `mac`; the error names `identity.mac` and the expected form.
    pub fn mac_octets(&self) -> Result<[u8; 6], ConfigError> {
        addr::parse_mac(&self.mac).ok_or_else(|| {
            ConfigError::new(
                "identity.mac",
                format!(
                    "{:?} is not a MAC address; expected six two-digit hex octets separated \
                     by ':' like \"02:00:c6:12:00:02\"",
                    self.mac
                ),
            )
        })
    }

    /// The parsed `ipv4`; the error names `identity.ipv4` and the expected form.
    pub fn ipv4_addr(&self) -> Result<Ipv4Addr, ConfigError> {
        parse_ipv4("identity.ipv4", &self.ipv4)
    }

    /// The parsed `gateway` (`None` when it is `null`); the error names
    /// `identity.gateway` and the expected form.
    pub fn gateway_addr(&self) -> Result<Option<Ipv4Addr>, ConfigError> {
        self.gateway
            .as_deref()
            .map(|text| parse_ipv4("identity.gateway", text))
            .transpose()
    }
}

fn parse_ipv4(path: &str, text: &str) -> Result<Ipv4Addr, ConfigError> {
    addr::parse_ipv4(text).ok_or_else(|| {
        ConfigError::new(
            path,
            format!("{text:?} is not an IPv4 address; expected dotted decimal like \"198.18.0.2\""),
        )
    })
}
