//! `port`: the network port the engine drives and how packets reach it.

use serde::{Deserialize, Serialize};

/// `port`: which packet I/O backend to use and how to configure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Port {
    /// `port.backend`: `"sim"`, `"dpdk"` or `"loopback"`. Default `"dpdk"` (a
    /// DPDK `net_tap` port, see `port.dpdk.vdevs`; needs root). `"sim"` runs
    /// the simulated wire demo without privileges (`flextoe-dpu run --backend
    /// sim`); `"loopback"` serves host applications with no network port.
    pub backend: Backend,
    /// `port.mtu`: the IP MTU in bytes, `576..=9000`. Default `1500`.
    pub mtu: u16,
    /// `port.dpdk`: DPDK settings, used when `backend` is `"dpdk"` (validated
    /// either way).
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub dpdk: Dpdk,
    /// `port.impairment`: packet loss, duplication, reordering, corruption and
    /// delay injected between the engine and the port, for testing.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub impairment: Impairments,
}

impl Default for Port {
    fn default() -> Self {
        Port {
            backend: Backend::Dpdk,
            mtu: 1500,
            dpdk: Dpdk::default(),
            impairment: Impairments::default(),
        }
    }
}

/// Packet I/O backend, written in lowercase in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `"sim"`: an in-process simulated wire; needs no privileges or devices.
    Sim,
    /// `"dpdk"`: a DPDK poll-mode driver, see `port.dpdk`.
    Dpdk,
    /// `"loopback"`: no network port: host applications reach each other
    /// (and the built-in services) at `identity.ipv4` through the full
    /// pipeline, like Linux loopback. Needs no privileges or devices.
    Loopback,
}

/// `port.dpdk`: DPDK environment (EAL) and device settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dpdk {
    /// `port.dpdk.eal_args`: extra EAL arguments appended verbatim, each
    /// non-empty. Default `[]`.
    pub eal_args: Vec<String>,
    /// `port.dpdk.vdevs`: virtual devices as `driver_name[,key=value...]`,
    /// names unique. Default `["net_tap0,iface=ftoe0"]` (a TAP interface, so
    /// no NIC is needed).
    pub vdevs: Vec<String>,
    /// `port.dpdk.allow`: PCI allow-list as `[DOMAIN:]BUS:DEVICE.FUNCTION`
    /// with optional `,devargs`, e.g. `"0000:03:00.0,txq_inline_max=0"`.
    /// Default `[]`.
    pub allow: Vec<String>,
    /// `port.dpdk.no_huge`: run without hugepages (`--no-huge`). Default `true`.
    pub no_huge: bool,
    /// `port.dpdk.memory_mb`: EAL memory in MiB, `64..=65536`. Default `256`.
    pub memory_mb: u32,
    /// `port.dpdk.mempool_mbufs`: packet buffers in the mempool,
    /// `255..=1048575` (best as 2^n - 1). Default `8191`.
    pub mempool_mbufs: u32,
    /// `port.dpdk.rx_descriptors`: RX ring size, a power of two in
    /// `64..=16384`. Default `1024`.
    pub rx_descriptors: u16,
    /// `port.dpdk.tx_descriptors`: TX ring size, a power of two in
    /// `64..=16384`. Default `1024`.
    pub tx_descriptors: u16,
    /// `port.dpdk.software_rss`: with several replicas, leave the port's
    /// queues as the driver fills them and steer frames to their replica in
    /// software, even where the port could do it (an RSS indirection table,
    /// or a `net_tap` RSS rule). For comparison and for drivers whose RSS
    /// misbehaves. Default `false`.
    pub software_rss: bool,
    /// `port.dpdk.tx_checksum_offload`: let the port compute the IPv4 and
    /// TCP checksums of the segments `post` writes in its buffers, where the
    /// driver offers both TX checksum offloads. Absent (`null`, the
    /// default): yes, except on drivers known to compute them in software
    /// more slowly than the engine (`net_tap`). `false`: never.
    pub tx_checksum_offload: Option<bool>,
    /// `port.dpdk.tso`: hand the port data segments of up to 64 KiB to cut
    /// into MSS-sized ones (TCP segmentation offload), where the driver
    /// offers it. Absent (`null`, the default): yes, except on drivers known
    /// to segment in software (`net_tap`). `false`: never.
    pub tso: Option<bool>,
}

impl Default for Dpdk {
    fn default() -> Self {
        Dpdk {
            eal_args: Vec::new(),
            vdevs: vec!["net_tap0,iface=ftoe0".to_owned()],
            allow: Vec::new(),
            no_huge: true,
            memory_mb: 256,
            mempool_mbufs: 8191,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            software_rss: false,
            tx_checksum_offload: None,
            tso: None,
        }
    }
}

/// `port.impairment`: fault injection on each direction of the port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Impairments {
    /// `port.impairment.seed`: seed of the impairment random generator, so a
    /// run can be replayed. Default `1`.
    pub seed: u64,
    /// `port.impairment.rx`: impairment of received packets.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub rx: Impairment,
    /// `port.impairment.tx`: impairment of transmitted packets.
    #[serde(deserialize_with = "crate::object::deserialize")]
    pub tx: Impairment,
}

impl Default for Impairments {
    fn default() -> Self {
        Impairments {
            seed: 1,
            rx: Impairment::default(),
            tx: Impairment::default(),
        }
    }
}

/// Impairment of one direction; all zero (the default) means none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Impairment {
    /// `drop`: probability a packet is lost, `0.0..=1.0`. Default `0.0`.
    pub drop: f64,
    /// `duplicate`: probability a packet is delivered twice, `0.0..=1.0`.
    /// Default `0.0`.
    pub duplicate: f64,
    /// `reorder`: probability a packet is held back behind its successor,
    /// `0.0..=1.0`. Default `0.0`.
    pub reorder: f64,
    /// `corrupt`: probability a packet has a bit flipped, `0.0..=1.0`.
    /// Default `0.0`.
    pub corrupt: f64,
    /// `delay_us`: fixed delay added to every packet in microseconds,
    /// `0..=10000000`. Default `0`.
    pub delay_us: u64,
}
