//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// FlexTOE-rs: a flexible TCP offload engine for DPUs.
#[derive(Debug, Parser)]
#[command(name = "flextoe-dpu", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the embedded default configuration (JSON).
    DefaultConfig,
    /// Validate a configuration file: exit 0, or exit 2 listing every problem.
    CheckConfig {
        /// The JSON configuration file.
        file: PathBuf,
    },
    /// Run the service in the foreground until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Live view of a running service: rates per second from its counters
    /// (frames, payload, retransmits, drops, connections, host interface,
    /// worker utilisation), over the control socket.
    Stat {
        #[command(flatten)]
        control: ControlArg,
        /// Seconds between screens.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many screens (default: until interrupted).
        #[arg(long, short = 'c')]
        count: Option<u64>,
        /// Print the raw JSON documents instead.
        #[arg(long)]
        json: bool,
    },
    /// The connection table of a running service (4-tuple, state, sequence
    /// numbers, windows, RTT, buffered bytes, owning application).
    Conns {
        #[command(flatten)]
        control: ControlArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Capture offloaded traffic of a running service (every frame in from
    /// the wire and out, looped-back ones included) as pcap with nanosecond
    /// timestamps, readable by tcpdump and tshark; or one line per packet.
    Capture {
        #[command(flatten)]
        control: ControlArg,
        /// Stop after this many packets (default: until Ctrl-C).
        #[arg(short = 'c', long)]
        count: Option<u64>,
        /// Write pcap to this file (`-` for stdout) instead of printing.
        #[arg(short = 'w', long)]
        write: Option<PathBuf>,
        /// tcpdump-style filter: tcp, arp, icmp, ip, [src|dst] host ADDR,
        /// [src|dst] port N, and, or, not, parentheses.
        filter: Vec<String>,
    },
    /// Which owner (proto worker) holds each flow group of a running
    /// service.
    Groups {
        #[command(flatten)]
        control: ControlArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a flow group, with its open connections, to another owner
    /// while traffic flows (nothing is lost or reordered; applications keep
    /// their sockets). Across replicas only between staged replicas, on a
    /// port that steers in software (loopback, or several replicas on
    /// fewer hardware queues).
    MoveGroup {
        #[command(flatten)]
        control: ControlArg,
        /// The flow group (see `groups`).
        group: u32,
        /// The owner to move it to (global index: replica x proto workers
        /// + worker).
        to: usize,
    },
    /// Move every flow group of a replica, with its open connections, to
    /// the other replicas' owners (its workers then idle); `rebalance`
    /// gives them back.
    DrainReplica {
        #[command(flatten)]
        control: ControlArg,
        /// The replica to take out of service.
        replica: usize,
    },
    /// Move every flow group back to the owner the plan gave it.
    Rebalance {
        #[command(flatten)]
        control: ControlArg,
    },
    /// eBPF programs at the port's XDP-style hooks of a running service:
    /// load, list, unload, and their maps (docs/xdp.md).
    Bpf {
        #[command(flatten)]
        control: ControlArg,
        #[command(subcommand)]
        command: BpfCommand,
    },
}

/// `flextoe-dpu bpf ...`.
#[derive(Debug, Subcommand)]
pub enum BpfCommand {
    /// Load a BPF object (`clang -target bpf -O2 -c`) at a hook, replacing
    /// the program there between two bursts.
    Load {
        /// The object file.
        file: PathBuf,
        /// `ingress` (frames from the port) or `egress` (frames to it).
        #[arg(long, default_value = "ingress", value_parser = ["ingress", "egress"])]
        hook: String,
        /// The program's code section.
        #[arg(long, default_value = "xdp")]
        section: String,
    },
    /// The loaded programs with their counters.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Detach a program (frames then pass untouched).
    Unload {
        /// Its id, from `bpf list`.
        id: u64,
    },
    /// The frames programs pass to `flextoe_capture` (e.g. the capture
    /// module, which filters and samples), as pcap or one line each.
    Capture {
        /// Stop after this many frames (default: until Ctrl-C).
        #[arg(short = 'c', long)]
        count: Option<u64>,
        /// Write pcap to this file (`-` for stdout) instead of printing.
        #[arg(short = 'w', long)]
        write: Option<PathBuf>,
    },
    /// Maps of the loaded programs.
    Map {
        #[command(subcommand)]
        command: MapCommand,
    },
}

/// `flextoe-dpu bpf map ...`: keys and values are hexadecimal bytes in
/// memory order (an array's u32 index is little-endian: index 1 is
/// `01000000`).
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Every map: kind, sizes, entries in use.
    Show,
    /// A map's entries (JSON).
    Dump { name: String },
    /// Set an entry.
    Update {
        name: String,
        key: String,
        value: String,
        /// Only this replica's copy (per-replica maps; default: every copy).
        #[arg(long)]
        replica: Option<u32>,
    },
    /// Remove an entry (arrays: set it to zero).
    Delete {
        name: String,
        key: String,
        #[arg(long)]
        replica: Option<u32>,
    },
}

/// Where the running service listens.
#[derive(Debug, Args)]
pub struct ControlArg {
    /// The service's control socket (default: FLEXTOE_CONTROL, else
    /// `host.control_socket` of the default configuration).
    #[arg(long)]
    pub control: Option<PathBuf>,
}

impl ControlArg {
    pub fn path(&self) -> PathBuf {
        self.control
            .clone()
            .or_else(|| std::env::var_os("FLEXTOE_CONTROL").map(PathBuf::from))
            .unwrap_or_else(|| {
                PathBuf::from(pipeline_config::Config::default().host.control_socket)
            })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (default: the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stop after this many seconds of wall-clock time (default: until signalled).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Sim backend: connections in the demo workload.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub connections: u32,
    /// Sim backend: bytes each connection moves each way per round.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub bytes: u64,
    /// Sim backend: write what crosses the simulated wire to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Override `port.backend` of the configuration (`sim`, `dpdk` or `loopback`).
    #[arg(long, value_parser = ["sim", "dpdk", "loopback"])]
    pub backend: Option<String>,
    /// Override `host.control_socket` (where host applications connect).
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// DPDK backend: write the final counters as JSON to this file on exit.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// DPDK backend: seconds between stats lines (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub stats_interval: f64,
    /// DPDK backend: bytes the source service (port 19) sends per connection.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub source_bytes: u64,
    /// DPDK backend: actively open one connection to IP:PORT (an echo server
    /// on the peer), send a message and check it comes back (exercises our
    /// ARP requests and active open).
    #[arg(long, value_name = "IP:PORT")]
    pub probe: Option<std::net::SocketAddrV4>,
    /// DPDK backend: seconds after start before the probe connects.
    #[arg(long, default_value_t = 2.0)]
    pub probe_after: f64,
}
