//! What `proto` tells the later stages: immutable results, so `post` and `dma`
//! never read mutable flow state (FlexTOE's protocol snapshot).

use crate::pre::SackBlocks;
use crate::stats::DropReason;
use crate::wire::{SeqNumber, TcpFlags};

/// TCP header fields `post` writes (addresses and ports come from the flow's
/// template; TSval from the clock at emit time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFields {
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: TcpFlags,
    pub window: u16,
    /// TSecr to echo, when timestamps were negotiated.
    pub ts_ecr: Option<u32>,
    pub sack: SackBlocks,
    /// Send as ECT(0): a new data segment of an ECN connection (RFC 3168
    /// 6.1.5: never retransmissions, never pure ACKs).
    pub ect: bool,
}

/// Where received payload goes: `len` bytes starting `skip` bytes into the
/// segment's payload, to offset `buf_pos` of the connection's RX buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub skip: u32,
    pub len: u32,
    pub buf_pos: u32,
}

/// Connection-level events for the application and the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvents(pub u8);

impl FlowEvents {
    /// The peer's FIN was received in order: EOF after the delivered bytes.
    pub const PEER_FIN: u8 = 1;
    /// Our FIN was acknowledged.
    pub const FIN_ACKED: u8 = 2;
    /// The connection entered TIME-WAIT: remove it from the data path.
    pub const TIME_WAIT: u8 = 4;
    /// The connection is fully closed (LAST-ACK done): remove it.
    pub const CLOSED: u8 = 8;
    /// The payload arrived ahead of a hole and was kept out of order.
    pub const OUT_OF_ORDER: u8 = 16;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    pub fn set(&mut self, bit: u8) {
        self.0 |= bit;
    }
}

/// Congestion-control feedback `post` accumulates (DCTCP/TIMELY plug in here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CcFeedback {
    pub acked_bytes: u32,
    /// The ACK echoed congestion (ECE on an ECN connection): the receiver
    /// saw these bytes, or bytes around them, CE-marked.
    pub ecn_marked: bool,
    pub rtt_sample_us: Option<u32>,
    /// Fast recovery began: a loss (a rate-based controller cuts its rate).
    pub loss: bool,
}

/// Result of processing one received segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxSnapshot {
    /// DCTCP (RFC 8257 3.2): the CE state changed while an ACK was delayed;
    /// send this one first, for the segments before this one with their CE
    /// state.
    pub prior_ack: Option<HeaderFields>,
    /// Send an ACK carrying these fields.
    pub ack: Option<HeaderFields>,
    /// The ACK is only the delayed-ACK rule's (every second in-order
    /// segment): a later ACK of the same connection may stand in for it.
    pub ack_stretchable: bool,
    pub place: Option<Placement>,
    /// New in-order bytes the application may read.
    pub delivered: u32,
    /// TX buffer bytes freed by this acknowledgement.
    pub tx_freed: u32,
    pub events: FlowEvents,
    pub cc: CcFeedback,
    /// The segment (or its payload) was dropped for this reason.
    pub drop: Option<DropReason>,
    /// The flow may now be able to transmit (window opened, recovery).
    pub wake_tx: bool,
}

/// One segment to transmit: header fields plus `len` payload bytes read from
/// the TX buffer at `buf_pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxSegment {
    pub header: HeaderFields,
    pub buf_pos: u32,
    pub len: u32,
    pub retransmit: bool,
    /// When `len` is longer, the port cuts the payload into pieces of this
    /// many bytes (TSO); 0 otherwise.
    pub segment_size: u16,
}
