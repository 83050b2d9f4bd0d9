//! Every metric family the collector exports. Names follow the Prometheus
//! naming guide: `flextoe_` prefix, base units, counters end in `_total`,
//! dimensions are labels, and no label is per connection.

use super::family::{Kind, Spec};

macro_rules! spec {
    ($id:ident, $name:literal, $kind:ident, [$($label:literal),*], $help:literal) => {
        pub static $id: Spec = Spec {
            name: $name,
            help: $help,
            kind: Kind::$kind,
            labels: &[$($label),*],
        };
    };
}

spec!(
    RX_FRAMES,
    "flextoe_rx_frames_total",
    Counter,
    ["replica", "stage", "worker"],
    "Frames received from the port."
);
spec!(
    RX_BYTES,
    "flextoe_rx_bytes_total",
    Counter,
    ["replica", "stage", "worker"],
    "Bytes of the frames received (Ethernet header included)."
);
spec!(
    TX_FRAMES,
    "flextoe_tx_frames_total",
    Counter,
    ["replica", "stage", "worker"],
    "Frames sent to the port."
);
spec!(
    TX_BYTES,
    "flextoe_tx_bytes_total",
    Counter,
    ["replica", "stage", "worker"],
    "Bytes of the frames sent (Ethernet header included)."
);
spec!(
    PAYLOAD_BYTES,
    "flextoe_payload_bytes_total",
    Counter,
    ["replica", "stage", "worker", "direction"],
    "TCP payload bytes: rx = placed into application receive buffers (in and out of order), \
     tx = sent for the first time (retransmissions excluded)."
);
spec!(
    FAST_PATH_SEGMENTS,
    "flextoe_fast_path_segments_total",
    Counter,
    ["replica", "stage", "worker"],
    "Established-connection segments handled by the fast path (pre, proto, dma, post)."
);
spec!(
    EXCEPTIONS,
    "flextoe_exceptions_total",
    Counter,
    ["replica", "stage", "worker"],
    "Packets handed to the control plane (handshakes, closes, ARP, ICMP, anything unusual)."
);
spec!(
    DROPS,
    "flextoe_drops_total",
    Counter,
    ["replica", "stage", "worker", "reason"],
    "Received packets dropped, each under exactly one reason (stats/drop_reason.rs)."
);
spec!(
    RETRANSMITS,
    "flextoe_retransmits_total",
    Counter,
    ["replica", "stage", "worker", "kind"],
    "Loss-recovery episodes by trigger: fast (duplicate ACKs or SACK) or timeout (RTO expired)."
);
spec!(
    TSO_SEGMENTS,
    "flextoe_tso_segments_total",
    Counter,
    ["replica", "stage", "worker"],
    "Segments longer than the MSS handed to the port to cut into MSS-sized ones (TSO), or sent whole to our own address on the loopback backend."
);
spec!(
    RETRANSMITTED_SEGMENTS,
    "flextoe_retransmitted_segments_total",
    Counter,
    ["replica", "stage", "worker"],
    "Segments sent again."
);
spec!(
    RETRANSMITTED_BYTES,
    "flextoe_retransmitted_bytes_total",
    Counter,
    ["replica", "stage", "worker"],
    "Payload bytes sent again."
);
spec!(
    PURE_ACKS,
    "flextoe_pure_acks_total",
    Counter,
    ["replica", "stage", "worker"],
    "ACKs sent without payload."
);
spec!(
    ACKS_COALESCED,
    "flextoe_acks_coalesced_total",
    Counter,
    ["replica", "stage", "worker"],
    "Delayed ACKs left out because a later ACK of the same connection in the same burst \
     covers them."
);
spec!(
    CONNECTIONS,
    "flextoe_connections_total",
    Counter,
    ["replica", "stage", "worker", "event"],
    "Connection events: accepted (passive open), opened (active open), closed, reset, \
     connect_failed, handshake_expired (half-open dropped after its retries)."
);
spec!(
    CHALLENGE_ACKS,
    "flextoe_challenge_acks_total",
    Counter,
    ["replica", "stage", "worker"],
    "Challenge ACKs sent (RFC 5961) in answer to suspicious RSTs and SYNs."
);
spec!(
    SYN_COOKIES,
    "flextoe_syn_cookies_total",
    Counter,
    ["replica", "stage", "worker", "event"],
    "SYN cookies (RFC 4987): sent (SYN-ACKs with a cookie while a backlog was full), \
     validated (connections completed from one), failed (ACKs to a listening port with \
     no valid cookie while cookies were in use)."
);
spec!(
    ECN,
    "flextoe_ecn_total",
    Counter,
    ["replica", "stage", "worker", "event"],
    "ECN (RFC 3168): ce_received (data segments that arrived CE-marked), ece_received \
     (ACKs echoing congestion), reductions (window cuts for them, at most one per \
     window), cwr_sent (segments sent with CWR)."
);
spec!(
    RATE,
    "flextoe_rate_total",
    Counter,
    ["replica", "stage", "worker", "event"],
    "Rate-based congestion control: pacing_waits (a paced connection held back until \
     its next departure time), rate_changes (a TIMELY rate update that moved the rate)."
);
spec!(
    RSTS,
    "flextoe_rsts_total",
    Counter,
    ["replica", "stage", "worker", "direction"],
    "RST segments: tx = sent, rx = received and acted on."
);
spec!(
    ZERO_WINDOW_PROBES,
    "flextoe_zero_window_probes_total",
    Counter,
    ["replica", "stage", "worker"],
    "Zero-window probes sent to peers advertising no receive space."
);
spec!(
    KEEPALIVE,
    "flextoe_keepalive_total",
    Counter,
    ["replica", "stage", "worker", "event"],
    "TCP keepalive (SO_KEEPALIVE): probes sent to idle peers, connections reset after unanswered probes."
);
spec!(
    WINDOW_UPDATES,
    "flextoe_window_updates_total",
    Counter,
    ["replica", "stage", "worker"],
    "Window updates sent after the application freed receive space."
);
spec!(
    RX_OUT_OF_ORDER,
    "flextoe_rx_out_of_order_segments_total",
    Counter,
    ["replica", "stage", "worker"],
    "Segments whose payload arrived ahead of a hole and was kept out of order (loss or reordering on the way)."
);
spec!(
    ARP_SENT,
    "flextoe_arp_sent_total",
    Counter,
    ["replica", "stage", "worker", "op"],
    "ARP packets sent: request or reply."
);
spec!(
    ICMP_ECHO_REPLIES,
    "flextoe_icmp_echo_replies_total",
    Counter,
    ["replica", "stage", "worker"],
    "ICMP echo replies sent."
);
spec!(
    FLOWS,
    "flextoe_flows",
    Gauge,
    ["replica", "stage", "worker"],
    "Connections installed in the data path."
);
spec!(
    APP_CONNECTIONS,
    "flextoe_app_connections",
    Gauge,
    ["replica", "stage", "worker"],
    "Application connections alive (not yet closed by the application)."
);
spec!(
    HANDSHAKES,
    "flextoe_handshakes",
    Gauge,
    ["replica", "stage", "worker"],
    "Handshakes in progress."
);
spec!(
    TIME_WAIT,
    "flextoe_time_wait",
    Gauge,
    ["replica", "stage", "worker"],
    "Connections in TIME-WAIT."
);
spec!(
    TASK_ITEMS,
    "flextoe_task_items_total",
    Counter,
    ["replica", "stage", "worker"],
    "Items (frames, work items, commits) a pipeline task moved."
);
spec!(
    RING_FULL,
    "flextoe_ring_full_total",
    Counter,
    ["replica", "stage", "worker"],
    "Pushes a pipeline task's output ring refused because it was full (back-pressure)."
);
spec!(
    REORDER_HOLDS,
    "flextoe_reorder_holds_total",
    Counter,
    ["replica", "stage", "worker"],
    "Items that waited behind a gap in a reorder window."
);
spec!(
    WORKER_BUSY,
    "flextoe_worker_busy_seconds_total",
    Counter,
    ["replica", "stage", "worker"],
    "Time a pipeline worker thread spent in polls that moved something; its rate is the \
     worker's busy share of its core."
);
spec!(
    WORKER_POLLS,
    "flextoe_worker_polls_total",
    Counter,
    ["replica", "stage", "worker", "state"],
    "Polls of a pipeline worker thread: busy (moved something) or idle."
);
spec!(
    STAGE_PROCESSING,
    "flextoe_stage_processing_seconds",
    Histogram,
    ["replica", "stage"],
    "Processing time of one item by a pipeline stage, sampled (one item in 64 is timed)."
);
spec!(
    HOST_APPS_REGISTERED,
    "flextoe_host_apps_registered_total",
    Counter,
    [],
    "Host applications that registered on the control socket."
);
spec!(
    HOST_APPS_CONNECTED,
    "flextoe_host_apps_connected",
    Gauge,
    [],
    "Host applications registered now (control socket open)."
);
spec!(
    HOST_APPS_ACTIVE,
    "flextoe_host_apps_active",
    Gauge,
    [],
    "Host applications served now (registered and not closed for a protocol violation)."
);
spec!(
    HOST_CONTEXTS,
    "flextoe_host_contexts",
    Gauge,
    [],
    "Contexts (request/event ring pairs) of the active host applications."
);
spec!(
    HOST_DESCRIPTORS,
    "flextoe_host_descriptors_total",
    Counter,
    ["direction"],
    "Host-interface descriptors: request = taken from applications' request rings, \
     event = posted to their event rings."
);
spec!(
    HOST_VIOLATIONS,
    "flextoe_host_violations_total",
    Counter,
    ["reason"],
    "Host applications closed for a protocol violation, by reason (VIOLATION_* of the ABI)."
);
spec!(
    HOST_FRONT_SLEEPS,
    "flextoe_host_front_sleeps_total",
    Counter,
    [],
    "Times the host-interface front went to sleep on its doorbells (no work)."
);
spec!(
    HOST_CONNS_MOVED,
    "flextoe_host_conns_moved_total",
    Counter,
    [],
    "Host connections that arrived at another owner with their flow group (flextoe-dpu move-group)."
);
spec!(
    HOST_COMMANDS_BOUNCED,
    "flextoe_host_commands_bounced_total",
    Counter,
    [],
    "Host commands that reached the owner their connection had just left, sent on to the new one."
);
spec!(
    XDP_FRAMES,
    "flextoe_xdp_frames_total",
    Counter,
    ["hook", "verdict"],
    "Frames the eBPF programs at the port's hooks decided on (docs/xdp.md): pass, drop, \
     tx, redirect, aborted (a fault: the program was unloaded), too_long (not run: \
     longer than the window), redirect_full (the target replica's inbox was full)."
);
spec!(
    PORT_FRAMES,
    "flextoe_port_frames_total",
    Counter,
    ["direction"],
    "Frames the port handed to the pipeline (rx) and took from it (tx)."
);
spec!(
    PORT_DROPS,
    "flextoe_port_drops_total",
    Counter,
    ["reason"],
    "Frames lost at the port, by reason: rx_missed (the NIC's RX ring was full), \
     rx_nombuf (no packet buffer), rx_errors, rx_kernel (dropped by the Linux interface \
     under a software port before the PMD took them: the TAP's queue, the veth an XDP \
     socket reads), tx_ring_full, tx_no_buffer, tx_oversize, tx_bad_queue, tx_errors."
);
spec!(
    PORT_BUFFERS,
    "flextoe_port_buffers",
    Gauge,
    ["state"],
    "Packet buffers of the port's pool: in_use (NIC rings, frames in flight) and free."
);
spec!(
    SNAPSHOT_TIMESTAMP,
    "flextoe_snapshot_timestamp_seconds",
    Gauge,
    [],
    "Unix time at which the counters shown were last published by the service loop."
);

/// Everything the snapshot collector may emit, in output order.
pub static ALL: &[&Spec] = &[
    &RX_FRAMES,
    &RX_BYTES,
    &TX_FRAMES,
    &TX_BYTES,
    &PAYLOAD_BYTES,
    &FAST_PATH_SEGMENTS,
    &EXCEPTIONS,
    &DROPS,
    &RETRANSMITS,
    &RETRANSMITTED_SEGMENTS,
    &RETRANSMITTED_BYTES,
    &TSO_SEGMENTS,
    &PURE_ACKS,
    &ACKS_COALESCED,
    &CONNECTIONS,
    &SYN_COOKIES,
    &ECN,
    &RATE,
    &CHALLENGE_ACKS,
    &RSTS,
    &ZERO_WINDOW_PROBES,
    &KEEPALIVE,
    &WINDOW_UPDATES,
    &RX_OUT_OF_ORDER,
    &ARP_SENT,
    &ICMP_ECHO_REPLIES,
    &FLOWS,
    &APP_CONNECTIONS,
    &HANDSHAKES,
    &TIME_WAIT,
    &TASK_ITEMS,
    &RING_FULL,
    &REORDER_HOLDS,
    &WORKER_POLLS,
    &WORKER_BUSY,
    &STAGE_PROCESSING,
    &HOST_APPS_REGISTERED,
    &HOST_APPS_CONNECTED,
    &HOST_APPS_ACTIVE,
    &HOST_CONTEXTS,
    &HOST_DESCRIPTORS,
    &HOST_VIOLATIONS,
    &HOST_FRONT_SLEEPS,
    &HOST_CONNS_MOVED,
    &HOST_COMMANDS_BOUNCED,
    &XDP_FRAMES,
    &PORT_FRAMES,
    &PORT_DROPS,
    &PORT_BUFFERS,
    &SNAPSHOT_TIMESTAMP,
];

/// `reason` label of `flextoe_host_violations_total` per `VIOLATION_*`.
pub static VIOLATION_REASONS: &[(u64, &str)] = {
    use doca_bindings::abi::*;
    &[
        (VIOLATION_RING_INDEX, "ring_index"),
        (VIOLATION_UNKNOWN_OP, "unknown_op"),
        (VIOLATION_FOREIGN_CONN, "foreign_conn"),
        (VIOLATION_TX_BOUNDS, "tx_bounds"),
        (VIOLATION_RX_BOUNDS, "rx_bounds"),
        (VIOLATION_BAD_ARGUMENT, "bad_argument"),
    ]
};

/// `flextoe_build_info`: registered as an ordinary gauge by the exporter.
pub const BUILD_INFO_NAME: &str = "flextoe_build_info";
pub const BUILD_INFO_HELP: &str = "Always 1; the version label is the flextoe-dpu version.";
