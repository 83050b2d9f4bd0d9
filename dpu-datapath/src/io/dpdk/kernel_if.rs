//! Frames the Linux interface under a port drops before the PMD sees them.
//!
//! The software PMDs sit on a kernel interface: `net_tap` on a TAP (Linux
//! transmits, the PMD reads the TAP's queues), `net_af_packet` and
//! `net_af_xdp` on the receive side of an interface (here a veth end). When
//! the PMD falls behind, the kernel drops there and DPDK's counters stay at 0
//! (`imissed` of the TAP PMD is always 0; the af_xdp PMD reports the socket's
//! drops but not its ring-full drops). The interface's own counter has them:
//! the TAP's `tx_dropped` (its queue toward the PMD was full), the receiving
//! interface's `rx_dropped` otherwise.
//!
//! The sysfs file is opened when the port starts and read through that
//! descriptor, so the count follows the interface when it moves to another
//! network namespace (the tests and the demo move the TAP to the peer's).

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;

/// An open kernel drop counter and its value when the port started.
#[derive(Debug)]
pub struct KernelDrops {
    file: File,
    /// `<iface>/statistics/<counter>`, for messages.
    what: String,
    at_start: u64,
}

impl KernelDrops {
    /// The counter for a port of `driver` on interface `iface`: the TAP's
    /// `tx_dropped`, another interface's `rx_dropped`.
    pub fn open(driver: &str, iface: &str) -> std::io::Result<Self> {
        let counter = if driver == "net_tap" {
            "tx_dropped"
        } else {
            "rx_dropped"
        };
        let what = format!("{iface}/statistics/{counter}");
        let file = File::open(format!("/sys/class/net/{what}"))?;
        let mut drops = Self {
            file,
            what,
            at_start: 0,
        };
        drops.at_start = drops.read_total()?;
        Ok(drops)
    }

    fn read_total(&self) -> std::io::Result<u64> {
        let mut buf = [0u8; 32];
        let n = self.file.read_at(&mut buf, 0)?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
        text.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a number: {text:?}", self.what),
            )
        })
    }

    /// Drops since the port started (0 if the counter cannot be read now,
    /// e.g. the interface was deleted).
    pub fn since_start(&self) -> u64 {
        self.read_total()
            .map(|now| now.saturating_sub(self.at_start))
            .unwrap_or(0)
    }

    pub fn describe(&self) -> &str {
        &self.what
    }
}

/// The Linux interface a software PMD's device arguments name (`iface=`),
/// for the PMDs that sit on one; the TAP PMD's default name when it has none.
pub fn kernel_iface(driver: &str, devargs: &str) -> Option<String> {
    let named = devargs
        .split(',')
        .find_map(|kv| kv.strip_prefix("iface="))
        .map(str::to_owned);
    match driver {
        "net_tap" => Some(named.unwrap_or_else(|| "dtap0".to_owned())),
        "net_af_packet" | "net_af_xdp" => named,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_comes_from_the_device_arguments() {
        assert_eq!(
            kernel_iface("net_tap", "net_tap0,iface=ftoe0").as_deref(),
            Some("ftoe0")
        );
        assert_eq!(
            kernel_iface("net_tap", "net_tap0").as_deref(),
            Some("dtap0")
        );
        assert_eq!(
            kernel_iface("net_af_xdp", "net_af_xdp0,iface=ve0,start_queue=0").as_deref(),
            Some("ve0")
        );
        assert_eq!(kernel_iface("mlx5_pci", "0000:03:00.0"), None);
    }

    /// The loopback interface exists everywhere; its counter reads and
    /// starts at 0.
    #[test]
    fn counts_from_the_start() {
        let drops = KernelDrops::open("net_af_packet", "lo").unwrap();
        assert_eq!(drops.describe(), "lo/statistics/rx_dropped");
        assert!(drops.since_start() < 1_000_000);
        assert!(KernelDrops::open("net_tap", "no-such-iface-ftoe").is_err());
    }
}
