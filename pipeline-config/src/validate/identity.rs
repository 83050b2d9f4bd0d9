//! Checks of `identity`.

use std::net::Ipv4Addr;

use super::report::Report;
use crate::addr;
use crate::Identity;

pub(crate) fn check(identity: &Identity, report: &mut Report) {
    if let Some(mac) = report.take(identity.mac_octets()) {
        check_mac(&identity.mac, mac, report);
    }
    let ipv4 = report.take(identity.ipv4_addr());
    let prefix_ok = report.range("identity.prefix_len", identity.prefix_len, 1..=32);
    if let Some(ip) = ipv4 {
        check_host("identity.ipv4", ip, report);
        if prefix_ok {
            check_in_subnet("identity.ipv4", ip, ip, identity.prefix_len, report);
        }
    }
    if let Some(Some(gateway)) = report.take(identity.gateway_addr()) {
        if let (Some(ip), true) = (ipv4, prefix_ok) {
            check_gateway(gateway, ip, identity.prefix_len, report);
        }
    }
}

fn check_mac(text: &str, mac: [u8; 6], report: &mut Report) {
    if mac == [0; 6] {
        report.error(
            "identity.mac",
            format!("{text:?} is the all-zero address; expected a unicast MAC like \"02:00:c6:12:00:02\""),
        );
    } else if mac[0] & 1 == 1 {
        report.error(
            "identity.mac",
            format!(
                "{text:?} is a multicast address; expected a unicast MAC (first octet even) \
                 like \"02:00:c6:12:00:02\""
            ),
        );
    }
}

fn check_host(path: &str, ip: Ipv4Addr, report: &mut Report) {
    let kind = if ip.is_unspecified() {
        "the unspecified address"
    } else if ip.is_broadcast() {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else {
        return;
    };
    report.error(
        path,
        format!("{ip} is {kind}; expected a unicast host address like 198.18.0.2"),
    );
}

/// `ip` must be a usable host of `anchor/prefix_len`.
fn check_in_subnet(
    path: &str,
    ip: Ipv4Addr,
    anchor: Ipv4Addr,
    prefix_len: u8,
    report: &mut Report,
) {
    let network = addr::network(anchor, prefix_len);
    let subnet = format!("{network}/{prefix_len}");
    let (first, last) = addr::host_range(anchor, prefix_len);
    let problem = if addr::network(ip, prefix_len) != network {
        "is outside the subnet"
    } else if ip < first {
        "is the network address of"
    } else if ip > last {
        "is the broadcast address of"
    } else {
        return;
    };
    report.error(
        path,
        format!("{ip} {problem} {subnet}; expected an address in {first}..={last}"),
    );
}

fn check_gateway(gateway: Ipv4Addr, ip: Ipv4Addr, prefix_len: u8, report: &mut Report) {
    if addr::network(gateway, prefix_len) != addr::network(ip, prefix_len) {
        let (first, last) = addr::host_range(ip, prefix_len);
        report.error(
            "identity.gateway",
            format!(
                "{gateway} is outside the subnet {}/{prefix_len} of identity.ipv4; expected an \
                 address in {first}..={last}",
                addr::network(ip, prefix_len)
            ),
        );
    } else if gateway == ip {
        report.error(
            "identity.gateway",
            format!(
                "{gateway} is identity.ipv4 itself; the gateway must be another host on the subnet"
            ),
        );
    } else {
        check_in_subnet("identity.gateway", gateway, ip, prefix_len, report);
    }
}
