//! One ethdev port: configure (queues, RSS, checksum offloads, MTU), start, link, close.

use std::ffi::CStr;

use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_eth_link, rte_ether_addr};

use super::eal::Eal;
use super::error::{DpdkError, EINVAL, ENODEV, ENOTSUP};
use super::kernel_if::{kernel_iface, KernelDrops};
use super::mempool::Mempool;
use super::packet_sockets::PacketSocketDrops;
use super::rss::{self, RxSteering};
use super::MAX_BURST;
use crate::flow::RSS_KEY;
use crate::io::IoStats;
use parking_lot::Mutex;

/// Received TCP frames whose NIC hash is checked against the software hash
/// before the stages rely on it.
pub(super) const HASH_CHECKS: u32 = 64;

/// Ethernet header plus one VLAN tag: what a frame adds to the IP MTU.
const L2_OVERHEAD: u32 = 18;
/// 64 KiB buffers for segments the port cuts (TSO), per port: a window's
/// worth for a few connections at once (16 MiB of the EAL's memory).
const TSO_MBUFS: u32 = 255;
/// Their data room (headroom included), the most an mbuf's 16-bit length takes.
const TSO_DATA_ROOM: u16 = u16::MAX;

/// What [`DpdkPort::open`] needs; see [`DpdkPortConfig::from_port`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkPortConfig {
    /// RX/TX queue pairs (one per engine replica).
    pub queues: u16,
    /// IP MTU.
    pub mtu: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Mbufs in the port's pool (shared by all its queues).
    pub mempool_mbufs: u32,
    /// Flow groups of the plan: queue r must receive the groups `g % queues == r`.
    pub flow_groups: u32,
    /// Leave the queues to the driver and steer in software even where the port
    /// could follow the flow groups (`port.dpdk.software_rss`).
    pub software_rss: bool,
    /// Enable the TX checksum offloads where the driver has them
    /// (`port.dpdk.tx_checksum_offload`).
    pub tx_checksum_offload: bool,
    /// Enable TCP segmentation offload where the driver has it (with the
    /// TX checksum offloads it implies) and keep a pool of 64 KiB buffers
    /// for the segments it cuts (`port.dpdk.tso`); None: unless the driver
    /// segments in software ([`driver_offloads_in_software`]).
    pub tso: Option<bool>,
    /// The device's arguments (the first `port.dpdk.vdevs` entry), which name
    /// the Linux interface under a software PMD (see `kernel_if`).
    pub devargs: Option<String>,
}

impl DpdkPortConfig {
    /// From the `port` section of the pipeline configuration.
    pub fn from_port(port: &pipeline_config::Port, queues: u16, flow_groups: u32) -> Self {
        DpdkPortConfig {
            queues,
            mtu: port.mtu,
            rx_descriptors: port.dpdk.rx_descriptors,
            tx_descriptors: port.dpdk.tx_descriptors,
            mempool_mbufs: port.dpdk.mempool_mbufs,
            flow_groups,
            software_rss: port.dpdk.software_rss,
            tx_checksum_offload: port.dpdk.tx_checksum_offload != Some(false),
            tso: port.dpdk.tso,
            devargs: port.dpdk.vdevs.first().cloned(),
        }
    }
}

/// Checksum offloads enabled on the port (those the driver reported; the TX
/// ones unless `port.dpdk.tx_checksum_offload` is off).
/// With both TX ones, `post` asks the port for the checksums of the segments
/// it writes in mbufs (`ChecksumCaps::tx_offload`); a received frame the NIC
/// marked good for both sums skips `pre`'s check (`Frame::rx_caps`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    pub rx_ipv4_cksum: bool,
    pub rx_tcp_cksum: bool,
    pub tx_ipv4_cksum: bool,
    pub tx_tcp_cksum: bool,
    /// TCP segmentation offload (with both TX checksum offloads).
    pub tx_tcp_tso: bool,
}

/// Link state as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    /// Mbit/s; `None` when the driver does not know.
    pub speed_mbps: Option<u32>,
    pub full_duplex: bool,
}

/// One queue pair's burst locks. DPDK requires one thread at a time per RX queue and
/// per TX queue; the pipeline gives each to one task, so these locks are taken once
/// per burst by that task alone (never contended) and make the shared `&self` burst
/// calls sound. Each holds its direction's counters.
#[derive(Debug, Default)]
pub(super) struct QueueLocks {
    pub(super) rx: Mutex<IoStats>,
    pub(super) tx: Mutex<IoStats>,
}

/// A started DPDK port with `queues` RX/TX queue pairs; closed on drop.
#[derive(Debug)]
pub struct DpdkPort {
    pub(super) port_id: u16,
    pub(super) queues: u16,
    pub(super) mac: [u8; 6],
    driver: String,
    offloads: Offloads,
    rss: bool,
    steering: RxSteering,
    /// Drops of the Linux interface under a software PMD.
    pub(super) kernel_drops: Option<KernelDrops>,
    /// Drops of the af_packet PMD's sockets.
    pub(super) packet_drops: Option<PacketSocketDrops>,
    pub(super) locks: Vec<QueueLocks>,
    /// Whether the stages may use the NIC's RSS hash as our flow hash: RSS runs
    /// with our key, and the first [`HASH_CHECKS`] TCP frames' hashes matched the
    /// software hash (a driver that hashes differently loses the trust for good).
    pub(super) trust_hash: std::sync::atomic::AtomicBool,
    pub(super) hash_checks_left: std::sync::atomic::AtomicU32,
    /// Never freed: frames (mbufs) may outlive the port in any stage's hands, and
    /// each returns to this pool when dropped. One pool per opened port.
    pub(super) pool: &'static Mempool,
    /// 64 KiB buffers for the segments the port cuts (TSO), never freed
    /// either; None without TSO.
    pub(super) tso_pool: Option<&'static Mempool>,
    /// The longest frame the port makes of one TSO piece; 0 without TSO.
    tso_frame: u16,
}

fn check(op: impl FnOnce() -> String, ret: i32) -> Result<i32, DpdkError> {
    DpdkError::check(op, ret)
}

fn dev_info(port_id: u16) -> Result<rte_eth_dev_info, DpdkError> {
    let mut info = rte_eth_dev_info::default();
    // SAFETY: `info` is a valid out-parameter the driver fills.
    let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(port_id, &mut info) };
    check(|| format!("rte_eth_dev_info_get(port {port_id})"), ret)?;
    Ok(info)
}

/// The most RX/TX queue pairs port `port_id` offers.
pub fn max_queue_pairs(_eal: &Eal, port_id: u16) -> Result<u16, DpdkError> {
    let info = dev_info(port_id)?;
    Ok(info.max_rx_queues.min(info.max_tx_queues).max(1))
}

/// Mbuf data room (headroom included) that holds a whole frame of `mtu`.
fn data_room_for(mtu: u16) -> Result<u16, DpdkError> {
    let frame = (u32::from(mtu) + L2_OVERHEAD).max(dpdk_sys::RTE_MBUF_DEFAULT_DATAROOM);
    u16::try_from(frame + dpdk_sys::RTE_PKTMBUF_HEADROOM)
        .map_err(|_| DpdkError::invalid("mempool sizing", EINVAL, format!("MTU {mtu} too large")))
}

/// RSS on IPv4/TCP with our key, when the port supports it; the reason when not.
fn rss_support(info: &rte_eth_dev_info, queues: u16) -> Result<u64, String> {
    let hf = info.flow_type_rss_offloads & dpdk_sys::DPDK_SYS_RSS_NONFRAG_IPV4_TCP;
    if hf == 0 {
        return Err(format!(
            "no IPv4/TCP RSS (flow_type_rss_offloads {:#x})",
            info.flow_type_rss_offloads
        ));
    }
    if usize::from(info.hash_key_size) != RSS_KEY.len() {
        return Err(format!(
            "hash key is {} bytes, ours is {}",
            info.hash_key_size,
            RSS_KEY.len()
        ));
    }
    if queues > 1 && info.reta_size == 0 {
        return Err("no redirection table".to_owned());
    }
    Ok(hf)
}

fn enabled(wanted: u64, capa: u64) -> u64 {
    wanted & capa
}

/// Port-level configuration; `rss_key` must outlive the `rte_eth_dev_configure` call.
fn eth_conf(
    info: &rte_eth_dev_info,
    mtu: u16,
    offloads: Offloads,
    rss: Option<(u64, &mut [u8; 40])>,
) -> rte_eth_conf {
    let mut conf = rte_eth_conf::default();
    conf.rxmode.mtu = u32::from(mtu);
    (conf.rxmode.offloads, conf.txmode.offloads) = offloads_bits(offloads);
    if let Some((hf, key)) = rss {
        conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
        conf.rxmode.offloads |=
            enabled(dpdk_sys::DPDK_SYS_RX_OFFLOAD_RSS_HASH, info.rx_offload_capa);
        let rss_conf = &mut conf.rx_adv_conf.rss_conf;
        rss_conf.rss_key = key.as_mut_ptr();
        rss_conf.rss_key_len = key.len() as u8;
        rss_conf.rss_hf = hf;
    }
    conf
}

impl DpdkPort {
    /// Configures port `port_id` with `cfg.queues` RX/TX queue pairs, starts it and
    /// disables promiscuous mode. RSS (IPv4/TCP, key [`RSS_KEY`]) and the IPv4/TCP
    /// checksum offloads are enabled when the driver reports them; otherwise the port
    /// runs without them and says so in the log.
    pub fn open(_eal: &Eal, port_id: u16, cfg: &DpdkPortConfig) -> Result<Self, DpdkError> {
        // SAFETY: EAL is initialised (`_eal`); the call only checks the port table.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::invalid(
                format!("port {port_id}"),
                ENODEV,
                "no such DPDK port",
            ));
        }
        let info = dev_info(port_id)?;
        let driver = if info.driver_name.is_null() {
            String::from("?")
        } else {
            // SAFETY: a non-null driver_name is a static NUL-terminated string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        validate(port_id, &info, cfg)?;

        let want_tso = cfg
            .tso
            .unwrap_or_else(|| !driver_offloads_in_software(&driver));
        let mut conf_offloads = offloads_of(&info, cfg.tx_checksum_offload, want_tso);
        let rss = configure(port_id, &info, cfg, conf_offloads)?;
        let (mut rxd, mut txd) = (cfg.rx_descriptors, cfg.tx_descriptors);
        // SAFETY: both pointers are valid u16 in/out parameters.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rxd, &mut txd) };
        check(
            || format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {port_id})"),
            ret,
        )?;

        let ring_mbufs =
            u32::from(cfg.queues) * (u32::from(rxd) + u32::from(txd) + MAX_BURST as u32);
        if cfg.mempool_mbufs < ring_mbufs {
            tracing::warn!(
                port_id,
                mempool_mbufs = cfg.mempool_mbufs,
                ring_mbufs,
                "mempool is smaller than the rings it feeds; expect rx_nombuf"
            );
        }
        // SAFETY: plain query of a valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port_id) };
        // Unique per open: a pool is never freed (see the field), so reopening a
        // port needs a new name.
        static OPENED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool: &'static Mempool = Box::leak(Box::new(Mempool::create(
            &format!("ftoe_p{port_id}_{nth}"),
            cfg.mempool_mbufs,
            data_room_for(cfg.mtu)?,
            socket,
        )?));
        let tso_pool = if conf_offloads.tx_tcp_tso {
            match Mempool::create(
                &format!("ftoe_tso{port_id}_{nth}"),
                TSO_MBUFS,
                TSO_DATA_ROOM,
                socket,
            ) {
                Ok(p) => Some(&*Box::leak(Box::new(p))),
                Err(err) => {
                    tracing::warn!(port_id, %err, "no memory for TSO buffers; TSO off");
                    conf_offloads.tx_tcp_tso = false;
                    None
                }
            }
        } else {
            None
        };
        // net_tap checks a piece's frame, Ethernet header included, against
        // the IP MTU.
        let tso_frame = match (tso_pool.is_some(), driver_offloads_in_software(&driver)) {
            (false, _) => 0,
            (true, true) => cfg.mtu,
            (true, false) => cfg.mtu.saturating_add(14),
        };
        // Not opened yet: a failure below must close the port before the pool goes.
        let mut port = DpdkPort {
            port_id,
            queues: cfg.queues,
            mac: [0; 6],
            driver,
            offloads: conf_offloads,
            rss,
            steering: RxSteering::OneQueue,
            kernel_drops: None,
            packet_drops: None,
            locks: (0..cfg.queues).map(|_| QueueLocks::default()).collect(),
            trust_hash: std::sync::atomic::AtomicBool::new(rss),
            hash_checks_left: std::sync::atomic::AtomicU32::new(HASH_CHECKS),
            pool,
            tso_pool,
            tso_frame,
        };
        port.setup_queues(&info, rxd, txd, socket)?;
        port.start()?;
        port.steering = port.choose_steering(&info, cfg);
        let iface = cfg
            .devargs
            .as_deref()
            .and_then(|args| kernel_iface(&port.driver, args));
        if let Some(iface) = iface {
            port.kernel_drops = KernelDrops::open(&port.driver, &iface)
                .inspect_err(
                    |err| tracing::warn!(%iface, %err, "cannot read the interface's drop counter"),
                )
                .ok();
            if port.driver == "net_af_packet" {
                port.packet_drops = PacketSocketDrops::find(&iface)
                    .inspect(|p| {
                        tracing::info!(%iface, sockets = p.sockets(), "counting the packet sockets' drops")
                    })
                    .inspect_err(|err| {
                        tracing::warn!(%iface, %err, "cannot read the packet sockets' drops")
                    })
                    .ok();
            }
        }
        tracing::info!(port_id, steering = %port.steering.describe(), "RX queues");
        Ok(port)
    }

    /// Makes queue r receive replica r's flow groups where the port can (see `rss`).
    fn choose_steering(&self, info: &rte_eth_dev_info, cfg: &DpdkPortConfig) -> RxSteering {
        let (port_id, queues) = (self.port_id, self.queues);
        if queues <= 1 {
            RxSteering::OneQueue
        } else if cfg.software_rss {
            RxSteering::Software("port.dpdk.software_rss".into())
        } else if self.driver == "net_tap" {
            rss::tap_flow_rule(port_id, queues)
                .unwrap_or_else(|why| RxSteering::Software(format!("net_tap RSS rule: {why}")))
        } else if self.rss {
            // Some drivers report the table's size only once configured.
            let entries = dev_info(port_id).map_or(info.reta_size, |i| i.reta_size);
            rss::program_reta(port_id, entries, queues, cfg.flow_groups)
                .unwrap_or_else(|why| RxSteering::Software(format!("indirection table: {why}")))
        } else {
            RxSteering::Software("the port has no IPv4/TCP RSS".into())
        }
    }

    fn setup_queues(
        &mut self,
        info: &rte_eth_dev_info,
        rxd: u16,
        txd: u16,
        socket: i32,
    ) -> Result<(), DpdkError> {
        let port_id = self.port_id;
        let mut rxconf = info.default_rxconf;
        rxconf.offloads = offloads_bits(self.offloads).0;
        let mut txconf = info.default_txconf;
        txconf.offloads = offloads_bits(self.offloads).1;
        // SOCKET_ID_ANY (-1) is passed as the unsigned all-ones DPDK expects.
        let socket = socket as u32;
        for q in 0..self.queues {
            // SAFETY: the port is configured with `queues` RX queues; rxconf and the pool
            // are valid for the call (DPDK copies the conf and keeps the pool, which
            // outlives the port: see the field order).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rxd,
                    socket,
                    &rxconf,
                    self.pool.as_ptr(),
                )
            };
            check(
                || format!("rte_eth_rx_queue_setup(port {port_id}, queue {q}, {rxd} descriptors)"),
                ret,
            )?;
            // SAFETY: as above for TX (no pool).
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(port_id, q, txd, socket, &txconf) };
            check(
                || format!("rte_eth_tx_queue_setup(port {port_id}, queue {q}, {txd} descriptors)"),
                ret,
            )?;
        }
        Ok(())
    }

    fn start(&mut self) -> Result<(), DpdkError> {
        let port_id = self.port_id;
        // SAFETY: the port is configured and all its queues are set up.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(port_id) };
        check(|| format!("rte_eth_dev_start(port {port_id})"), ret)?;
        // SAFETY: plain control call on a started port.
        let ret = unsafe { dpdk_sys::rte_eth_promiscuous_disable(port_id) };
        if ret < 0 {
            let err =
                DpdkError::from_ret(format!("rte_eth_promiscuous_disable(port {port_id})"), ret);
            tracing::warn!(%err, "cannot turn promiscuous mode off");
        }
        let mut addr = rte_ether_addr::default();
        // SAFETY: `addr` is a valid out-parameter.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(port_id, &mut addr) };
        check(|| format!("rte_eth_macaddr_get(port {port_id})"), ret)?;
        self.mac = addr.addr_bytes;
        let link = self.link();
        tracing::info!(
            port_id,
            driver = %self.driver,
            mac = %format_mac(&self.mac),
            queues = self.queues,
            rss = self.rss,
            offloads = ?self.offloads,
            link = ?link,
            "DPDK port started"
        );
        Ok(())
    }

    /// Current link state (`rte_eth_link_get_nowait`).
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut link = rte_eth_link::default();
        // SAFETY: `link` is a valid out-parameter.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.port_id, &mut link) };
        check(
            || format!("rte_eth_link_get_nowait(port {})", self.port_id),
            ret,
        )?;
        let known = link.link_speed != dpdk_sys::RTE_ETH_SPEED_NUM_NONE
            && link.link_speed != dpdk_sys::RTE_ETH_SPEED_NUM_UNKNOWN;
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: known.then_some(link.link_speed),
            full_duplex: u32::from(link.link_duplex()) == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// The port's own MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// The PMD's name, e.g. `net_tap` or `mlx5_pci`.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// Whether RSS on IPv4/TCP with [`RSS_KEY`] is on.
    pub fn rss_enabled(&self) -> bool {
        self.rss
    }

    /// How received frames reach their flow group's queue.
    pub fn steering(&self) -> &RxSteering {
        &self.steering
    }

    /// The port's mbuf pool (lives for the process).
    pub fn mempool(&self) -> &'static Mempool {
        self.pool
    }

    /// The most payload bytes of one segment the port cuts (TSO): what a
    /// 64 KiB buffer holds after DPDK's headroom and the longest headers
    /// (Ethernet, IPv4, TCP with 40 bytes of options); 0 without TSO.
    pub fn tso_max_payload(&self) -> u32 {
        match self.tso_pool {
            Some(_) => u32::from(TSO_DATA_ROOM) - dpdk_sys::RTE_PKTMBUF_HEADROOM - 14 - 20 - 60,
            None => 0,
        }
    }

    /// The port's pool of 64 KiB buffers for segments it cuts (TSO), if any.
    pub fn tso_mempool(&self) -> Option<&'static Mempool> {
        self.tso_pool
    }

    /// The longest frame, Ethernet header included, the port makes of one
    /// piece of a segment it cuts (TSO); 0 when it does not cut.
    pub fn tso_frame(&self) -> u16 {
        self.tso_frame
    }
}

/// Drivers whose "offloads" are software in the driver, slower than the
/// engine's own work: `net_tap` computes TX checksums and cuts TSO
/// segments (librte_gso) on the CPU (docs/benchmarks.md).
pub fn driver_offloads_in_software(driver: &str) -> bool {
    driver == "net_tap"
}

fn validate(port_id: u16, info: &rte_eth_dev_info, cfg: &DpdkPortConfig) -> Result<(), DpdkError> {
    let op = format!("configure port {port_id}");
    let max_queues = info.max_rx_queues.min(info.max_tx_queues);
    if cfg.queues == 0 || cfg.queues > max_queues {
        return Err(DpdkError::invalid(
            op,
            EINVAL,
            format!(
                "{} queue pairs requested, the port has 1..={max_queues}",
                cfg.queues
            ),
        ));
    }
    if cfg.mtu < info.min_mtu || cfg.mtu > info.max_mtu {
        return Err(DpdkError::invalid(
            op,
            EINVAL,
            format!(
                "MTU {} outside the port's {}..={}",
                cfg.mtu, info.min_mtu, info.max_mtu
            ),
        ));
    }
    Ok(())
}

/// The checksum offloads the driver reports, the TX ones only when
/// `tx_sums` asks or TSO (which needs them) is on; TSO when `tso` asks and
/// the driver has it with both TX checksum offloads.
fn offloads_of(info: &rte_eth_dev_info, tx_sums: bool, tso: bool) -> Offloads {
    let rx = info.rx_offload_capa;
    let capa = info.tx_offload_capa;
    let has = |flag: u64| capa & flag != 0;
    let tso = tso
        && has(dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_TSO)
        && has(dpdk_sys::DPDK_SYS_TX_OFFLOAD_IPV4_CKSUM)
        && has(dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_CKSUM);
    let tx = tx_sums || tso;
    Offloads {
        rx_ipv4_cksum: rx & dpdk_sys::DPDK_SYS_RX_OFFLOAD_IPV4_CKSUM != 0,
        rx_tcp_cksum: rx & dpdk_sys::DPDK_SYS_RX_OFFLOAD_TCP_CKSUM != 0,
        tx_ipv4_cksum: tx && has(dpdk_sys::DPDK_SYS_TX_OFFLOAD_IPV4_CKSUM),
        tx_tcp_cksum: tx && has(dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_CKSUM),
        tx_tcp_tso: tso,
    }
}

/// (RX, TX) `RTE_ETH_*_OFFLOAD_*` bits of `o`.
fn offloads_bits(o: Offloads) -> (u64, u64) {
    let bit = |on: bool, flag: u64| if on { flag } else { 0 };
    (
        bit(o.rx_ipv4_cksum, dpdk_sys::DPDK_SYS_RX_OFFLOAD_IPV4_CKSUM)
            | bit(o.rx_tcp_cksum, dpdk_sys::DPDK_SYS_RX_OFFLOAD_TCP_CKSUM),
        bit(o.tx_ipv4_cksum, dpdk_sys::DPDK_SYS_TX_OFFLOAD_IPV4_CKSUM)
            | bit(o.tx_tcp_cksum, dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_CKSUM)
            | bit(o.tx_tcp_tso, dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_TSO),
    )
}

/// `rte_eth_dev_configure` and the MTU; returns whether RSS is on. Falls back to no RSS
/// (with a log line) when the port lacks it or refuses the RSS configuration.
fn configure(
    port_id: u16,
    info: &rte_eth_dev_info,
    cfg: &DpdkPortConfig,
    offloads: Offloads,
) -> Result<bool, DpdkError> {
    let q = cfg.queues;
    let op = || format!("rte_eth_dev_configure(port {port_id}, {q} queue pairs)");
    let mut rss = match rss_support(info, q) {
        Ok(hf) => Some(hf),
        Err(why) => {
            tracing::info!(port_id, %why, "port lacks IPv4/TCP RSS with our key; running without RSS");
            None
        }
    };
    loop {
        let mut key = RSS_KEY;
        let conf = eth_conf(info, cfg.mtu, offloads, rss.map(|hf| (hf, &mut key)));
        // SAFETY: `conf` is a fully initialised rte_eth_conf; the RSS key it points to
        // (`key`) lives until after the call, which copies it.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(port_id, q, q, &conf) };
        match (ret, rss) {
            (0.., _) => break,
            (_, Some(_)) => {
                let err = DpdkError::from_ret(op(), ret);
                tracing::warn!(port_id, %err, "port refused RSS; configuring without it");
                rss = None;
            }
            (_, None) => return Err(DpdkError::from_ret(op(), ret)),
        }
    }
    if rss.is_none() && q > 1 {
        tracing::warn!(
            port_id,
            queues = q,
            "without RSS only queue 0 receives traffic"
        );
    }
    // SAFETY: plain control call on a configured, stopped port.
    let ret = unsafe { dpdk_sys::rte_eth_dev_set_mtu(port_id, cfg.mtu) };
    if ret == -ENOTSUP {
        tracing::info!(
            port_id,
            mtu = cfg.mtu,
            "driver cannot set the MTU; using its default"
        );
    } else {
        check(
            || format!("rte_eth_dev_set_mtu(port {port_id}, {})", cfg.mtu),
            ret,
        )?;
    }
    Ok(rss.is_some())
}

fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        let port_id = self.port_id;
        if self.steering == RxSteering::TapFlowRule {
            rss::flush_flow_rules(port_id);
        }
        // SAFETY: we configured this port and, with `&mut self`, no burst call is running;
        // stopping a port that never started is harmless. Closing frees its queues and
        // returns the mbufs they held to the pool (which stays: see the field).
        let stop = unsafe { dpdk_sys::rte_eth_dev_stop(port_id) };
        if stop < 0 {
            let err = DpdkError::from_ret(format!("rte_eth_dev_stop(port {port_id})"), stop);
            tracing::warn!(%err, "stopping the port failed");
        }
        // SAFETY: as above; the port id is not used again.
        let close = unsafe { dpdk_sys::rte_eth_dev_close(port_id) };
        if close < 0 {
            let err = DpdkError::from_ret(format!("rte_eth_dev_close(port {port_id})"), close);
            tracing::warn!(%err, "closing the port failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_room_holds_a_full_frame() {
        assert_eq!(data_room_for(1500), Ok(2048 + 128));
        assert_eq!(data_room_for(9000), Ok(9000 + 18 + 128));
    }

    #[test]
    fn rss_needs_ipv4_tcp_and_a_40_byte_key() {
        let mut info = rte_eth_dev_info::default();
        assert!(rss_support(&info, 1).is_err());
        info.flow_type_rss_offloads = dpdk_sys::DPDK_SYS_RSS_NONFRAG_IPV4_TCP;
        info.hash_key_size = 52;
        assert!(rss_support(&info, 1).unwrap_err().contains("52 bytes"));
        info.hash_key_size = 40;
        assert_eq!(
            rss_support(&info, 1),
            Ok(dpdk_sys::DPDK_SYS_RSS_NONFRAG_IPV4_TCP)
        );
        assert!(rss_support(&info, 2).is_err());
        info.reta_size = 128;
        assert!(rss_support(&info, 2).is_ok());

        let mut key = RSS_KEY;
        let conf = eth_conf(
            &info,
            1500,
            offloads_of(&info, true, false),
            Some((dpdk_sys::DPDK_SYS_RSS_NONFRAG_IPV4_TCP, &mut key)),
        );
        assert_eq!(conf.rxmode.mq_mode, dpdk_sys::RTE_ETH_MQ_RX_RSS);
        assert_eq!(conf.rx_adv_conf.rss_conf.rss_key_len, 40);
        assert_eq!(conf.rxmode.mtu, 1500);
        assert_eq!(conf.rxmode.offloads, 0, "no capability, no offload");
    }

    #[test]
    fn offloads_follow_capabilities() {
        let info = rte_eth_dev_info {
            rx_offload_capa: dpdk_sys::DPDK_SYS_RX_OFFLOAD_TCP_CKSUM,
            tx_offload_capa: u64::MAX,
            ..Default::default()
        };
        let o = offloads_of(&info, true, false);
        assert_eq!(
            o,
            Offloads {
                rx_ipv4_cksum: false,
                rx_tcp_cksum: true,
                tx_ipv4_cksum: true,
                tx_tcp_cksum: true,
                tx_tcp_tso: false,
            }
        );
        let conf = eth_conf(&info, 1500, o, None);
        assert_eq!(
            (conf.rxmode.offloads, conf.txmode.offloads),
            (
                dpdk_sys::DPDK_SYS_RX_OFFLOAD_TCP_CKSUM,
                dpdk_sys::DPDK_SYS_TX_OFFLOAD_IPV4_CKSUM | dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_CKSUM
            )
        );
        let no_tx = offloads_of(&info, false, false);
        assert!(!no_tx.tx_ipv4_cksum && !no_tx.tx_tcp_cksum && no_tx.rx_tcp_cksum);
        // TSO brings the TX checksum offloads it needs, and asks the port for it.
        let tso = offloads_of(&info, false, true);
        assert!(tso.tx_tcp_tso && tso.tx_ipv4_cksum && tso.tx_tcp_cksum);
        let conf = eth_conf(&info, 1500, tso, None);
        assert_ne!(
            conf.txmode.offloads & dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_TSO,
            0
        );
        // Not without both checksum offloads.
        let partial = rte_eth_dev_info {
            tx_offload_capa: dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_TSO
                | dpdk_sys::DPDK_SYS_TX_OFFLOAD_TCP_CKSUM,
            ..Default::default()
        };
        assert!(!offloads_of(&partial, true, true).tx_tcp_tso);
        assert_eq!(conf.rxmode.mq_mode, dpdk_sys::RTE_ETH_MQ_RX_NONE);
    }
}
