//! Parsing of the textual addresses the document stores as strings.

use std::net::Ipv4Addr;

/// Parses `xx:xx:xx:xx:xx:xx` (two hex digits per octet, either case).
pub(crate) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut octets = [0u8; 6];
    let mut parts = text.split(':');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

/// Parses a dotted-decimal IPv4 address (std rules: four decimal octets).
pub(crate) fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

/// The network address of `ip/prefix_len` (`prefix_len` at most 32).
pub(crate) fn network(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & mask(prefix_len))
}

/// The broadcast address of `ip/prefix_len` (`prefix_len` at most 32).
pub(crate) fn broadcast(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) | !mask(prefix_len))
}

/// The first and last usable host addresses of `ip/prefix_len`; /31 and /32
/// have no network or broadcast address (RFC 3021).
pub(crate) fn host_range(ip: Ipv4Addr, prefix_len: u8) -> (Ipv4Addr, Ipv4Addr) {
    let (first, last) = (network(ip, prefix_len), broadcast(ip, prefix_len));
    if prefix_len >= 31 {
        (first, last)
    } else {
        (
            Ipv4Addr::from(u32::from(first) + 1),
            Ipv4Addr::from(u32::from(last) - 1),
        )
    }
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

/// Checks a DPDK allow-list entry: `[DOMAIN:]BUS:DEVICE.FUNCTION[,devargs]`.
pub(crate) fn is_pci_allow_entry(text: &str) -> bool {
    let (address, devargs) = match text.split_once(',') {
        Some((address, devargs)) => (address, Some(devargs)),
        None => (text, None),
    };
    if devargs.is_some_and(|d| !is_devargs(d)) {
        return false;
    }
    let parts: Vec<&str> = address.split(':').collect();
    let (domain, bus, device_function) = match parts.as_slice() {
        [domain, bus, df] => (Some(*domain), *bus, *df),
        [bus, df] => (None, *bus, *df),
        _ => return false,
    };
    let Some((device, function)) = device_function.split_once('.') else {
        return false;
    };
    domain.is_none_or(|d| hex_field(d, 4).is_some())
        && hex_field(bus, 2).is_some()
        && hex_field(device, 2).is_some_and(|d| d <= 0x1f)
        && hex_field(function, 1).is_some_and(|f| f <= 7)
}

/// Checks a DPDK virtual device: `driver_name[,devargs]`.
pub(crate) fn is_vdev(text: &str) -> bool {
    let (name, devargs) = match text.split_once(',') {
        Some((name, devargs)) => (name, Some(devargs)),
        None => (text, None),
    };
    is_vdev_name(name) && devargs.is_none_or(is_devargs)
}

/// The device name of a vdev entry (the part before the first `,`).
pub(crate) fn vdev_name(text: &str) -> &str {
    text.split(',').next().unwrap_or(text)
}

fn is_vdev_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Comma-separated, each item non-empty and free of whitespace.
fn is_devargs(devargs: &str) -> bool {
    devargs
        .split(',')
        .all(|item| !item.is_empty() && !item.contains(char::is_whitespace))
}

fn hex_field(text: &str, digits: usize) -> Option<u32> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac() {
        assert_eq!(
            parse_mac("02:00:c6:12:00:0A"),
            Some([2, 0, 0xc6, 0x12, 0, 0x0a])
        );
        for bad in [
            "",
            "02:00:c6:12:00",
            "02:00:c6:12:00:02:03",
            "2:00:c6:12:00:02",
            "02-00-c6-12-00-02",
            "0g:00:c6:12:00:02",
            "+2:00:c6:12:00:02",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn subnet() {
        let ip = Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(network(ip, 24), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(broadcast(ip, 24), Ipv4Addr::new(198, 18, 0, 255));
        assert_eq!(network(ip, 0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(network(ip, 32), ip);
        assert_eq!(
            host_range(ip, 24),
            (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 254))
        );
        assert_eq!(
            host_range(ip, 31),
            (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3))
        );
    }

    #[test]
    fn pci() {
        for good in [
            "0000:03:00.0",
            "03:00.0",
            "0000:af:1f.7,txq_inline_max=0",
            "03:00.1,a=1,b",
        ] {
            assert!(is_pci_allow_entry(good), "{good}");
        }
        for bad in [
            "",
            "03:00",
            "3:00.0",
            "0000:03:20.0",
            "0000:03:00.8",
            "00:03:00.0",
            "03:00.0,",
            "03:00.0,a b",
            "x:03:00.0:0",
        ] {
            assert!(!is_pci_allow_entry(bad), "{bad}");
        }
    }

    #[test]
    fn vdev() {
        assert!(is_vdev("net_tap0,iface=ftoe0"));
        assert!(is_vdev("net_null0"));
        assert_eq!(vdev_name("net_tap0,iface=ftoe0"), "net_tap0");
        for bad in ["", ",iface=x", "net tap0", "net_tap0,", "net_tap0,,a"] {
            assert!(!is_vdev(bad), "{bad}");
        }
    }
}
