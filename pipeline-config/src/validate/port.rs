//! Checks of `port`.

use super::report::Report;
use crate::addr;
use crate::{Dpdk, Impairment, Port};

/// Returns `port.mtu` if it is valid, for the checks that depend on it.
pub(crate) fn check(port: &Port, report: &mut Report) -> Option<u16> {
    let mtu_ok = report.range("port.mtu", port.mtu, 576..=9000);
    check_dpdk(&port.dpdk, report);
    check_impairment("port.impairment.rx", &port.impairment.rx, report);
    check_impairment("port.impairment.tx", &port.impairment.tx, report);
    mtu_ok.then_some(port.mtu)
}

fn check_dpdk(dpdk: &Dpdk, report: &mut Report) {
    for (i, arg) in dpdk.eal_args.iter().enumerate() {
        if arg.trim().is_empty() {
            report.error(
                format!("port.dpdk.eal_args[{i}]"),
                "an EAL argument must not be empty",
            );
        }
    }
    for (i, vdev) in dpdk.vdevs.iter().enumerate() {
        let path = format!("port.dpdk.vdevs[{i}]");
        if !addr::is_vdev(vdev) {
            report.error(
                path,
                format!(
                    "{vdev:?} is not a virtual device; expected \"driver_name[,key=value...]\" \
                     like \"net_tap0,iface=ftoe0\""
                ),
            );
            continue;
        }
        let name = addr::vdev_name(vdev);
        if name.starts_with("net_af_xdp") && dpdk.no_huge {
            // The PMD's zero-copy UMEM is the mbuf pool itself, and the kernel
            // silently rejects buffers that cross a 4 KiB page boundary
            // (without hugepages they do): RX and TX stop after a few MB.
            report.error(
                path.clone(),
                "net_af_xdp needs hugepages (its UMEM is the mbuf pool, and buffers crossing \
                 a 4 KiB page are rejected by the kernel); set port.dpdk.no_huge to false and \
                 reserve 2 MiB pages (scripts/hugepages.sh)",
            );
        }
        if let Some(first) = dpdk.vdevs[..i]
            .iter()
            .position(|v| addr::vdev_name(v) == name)
        {
            report.error(
                path,
                format!("device name {name:?} is already used by port.dpdk.vdevs[{first}]; names must be unique"),
            );
        }
    }
    for (i, entry) in dpdk.allow.iter().enumerate() {
        if !addr::is_pci_allow_entry(entry) {
            report.error(
                format!("port.dpdk.allow[{i}]"),
                format!(
                    "{entry:?} is not a PCI device; expected DOMAIN:BUS:DEVICE.FUNCTION or \
                     BUS:DEVICE.FUNCTION with optional \",devargs\", like \"0000:03:00.0\" or \
                     \"03:00.0,txq_inline_max=0\""
                ),
            );
        }
    }
    report.range("port.dpdk.memory_mb", dpdk.memory_mb, 64..=65536);
    report.range(
        "port.dpdk.mempool_mbufs",
        dpdk.mempool_mbufs,
        255..=1_048_575,
    );
    report.power_of_two(
        "port.dpdk.rx_descriptors",
        dpdk.rx_descriptors.into(),
        64..=16384,
    );
    report.power_of_two(
        "port.dpdk.tx_descriptors",
        dpdk.tx_descriptors.into(),
        64..=16384,
    );
}

fn check_impairment(prefix: &str, impairment: &Impairment, report: &mut Report) {
    report.probability(&format!("{prefix}.drop"), impairment.drop);
    report.probability(&format!("{prefix}.duplicate"), impairment.duplicate);
    report.probability(&format!("{prefix}.reorder"), impairment.reorder);
    report.probability(&format!("{prefix}.corrupt"), impairment.corrupt);
    report.range(
        &format!("{prefix}.delay_us"),
        impairment.delay_us,
        0..=10_000_000,
    );
}
