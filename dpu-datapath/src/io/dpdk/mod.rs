//! DPDK backend of [`Nic`](super::Nic): one ethdev port, N RX/TX queue pairs.
//!
//! One job per file:
//! - `error`: [`DpdkError`] (what failed, `rte_errno`, `rte_strerror` text);
//! - `eal`: EAL arguments from `pipeline_config::Dpdk` and the once-per-process init;
//! - `mempool`: the packet-buffer pool ([`Mempool`]), never freed, so frames may outlive the port;
//! - `mbuf`: RAII [`Mbuf`] and the burst array handed to `rte_eth_{rx,tx}_burst`;
//! - `port`: port configuration (queues, RSS, offloads, MTU), start, link, close;
//! - `rss`: which queue a frame lands on (indirection table, net_tap flow rule, or software);
//! - `kernel_if`: drops of the Linux interface under a software PMD (TAP, veth);
//! - `packet_sockets`: drops of the af_packet PMD's sockets (`PACKET_STATISTICS`);
//! - `queue`: `impl Nic for DpdkPort` (mbufs in and out as frames, retrying TX);
//! - `signals`: turns off the TAP driver's per-frame RX signal.
//!
//! Nothing here panics on a runtime failure: setup returns [`DpdkError`], and the
//! burst calls count what they drop in [`IoStats`](super::IoStats).

mod eal;
mod error;
mod kernel_if;
mod mbuf;
mod mempool;
mod packet_sockets;
mod port;
mod queue;
mod rss;
mod signals;

pub use eal::{eal_args, init_eal, init_eal_with_args, pmd_plugins, Eal};
pub use error::DpdkError;
pub use kernel_if::{kernel_iface, KernelDrops};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use packet_sockets::PacketSocketDrops;
pub use port::{
    driver_offloads_in_software, max_queue_pairs, DpdkPort, DpdkPortConfig, LinkStatus, Offloads,
};
pub use rss::{reta_entries, RxSteering};

/// Most mbufs moved by one `rte_eth_rx_burst` / `rte_eth_tx_burst` call.
pub const MAX_BURST: usize = 64;
