//! `proto`: the only stage with mutable per-connection TCP state.
//!
//! Sharded by flow group (one owner per group), it does sequence, ACK and
//! window bookkeeping, out-of-order intervals, duplicate-ACK counting and
//! retransmission positions, and emits immutable snapshots (`snapshot.rs`)
//! for `post` and `dma`. Payload bytes never pass through here: `proto` only
//! computes where they go.
//!
//! Files: `rx.rs` receives segments (acceptability, data, FIN), `ack.rs`
//! processes acknowledgements and congestion control, `tx.rs` picks the
//! next segment to send, `timers.rs` handles RTO, persist and delayed ACK.

#![forbid(unsafe_code)]

mod ack;
pub mod deadline;
pub mod keepalive;
mod loss_pool;
pub mod ranges;
pub mod rtt;
mod rx;
pub mod snapshot;
mod timers;
mod tx;

pub use ack::ts_clock as ack_ts_clock;
pub use deadline::Deadline;
pub use ranges::SeqRanges;
pub use rtt::{RtoBounds, RttEstimator};
pub use snapshot::{CcFeedback, FlowEvents, HeaderFields, Placement, RxSnapshot, TxSegment};
pub use timers::TimerAction;

use crate::wire::SeqNumber;

/// Nanoseconds on the engine's clock.
pub type Nanos = u64;

/// DCTCP's alpha of 1.0, in 1/65536 units (fine enough that the per-ACK
/// update below does not stall when few bytes are marked).
pub const DCTCP_ALPHA_ONE: u16 = u16::MAX;
/// DCTCP's gain g = 1/2^4 (RFC 8257 4.2 recommends 1/16).
pub const DCTCP_SHIFT_G: u32 = 4;

/// Out-of-order intervals per connection (FlexTOE keeps one).
pub const OOO_INTERVALS: usize = 8;
/// SACK scoreboard ranges per connection.
pub const SACK_RANGES: usize = 4;
/// How long an orphaned connection waits in FIN-WAIT-2 for the peer's FIN.
pub const FIN_WAIT_2_TIMEOUT_NS: Nanos = 60_000_000_000;

/// `ProtoFlow::rx_conf`: log2 of the RX buffer size, and the shift of the
/// window's halvings above it.
const RX_LOG2: u8 = 0x1f;
const RX_CLAMP_SHIFT: u8 = 5;
/// `ProtoFlow::tx_conf`: log2 of the TX buffer size.
const TX_LOG2: u8 = 0x1f;
/// Nagle's algorithm (RFC 896; `TCP_NODELAY` off): a short segment waits
/// while data is unacknowledged. Off by default (see `set_nagle`).
const TX_NAGLE: u8 = 0x20;
/// `TCP_CORK`: short segments wait until the cork is removed, or for at
/// most `CORK_CEILING_NS` (Linux's 200 ms ceiling).
const TX_CORK: u8 = 0x40;
/// The cork's ceiling passed: the short tail held now may go.
const TX_CORK_FLUSH: u8 = 0x80;
/// How long TCP_CORK holds a short tail at most (as Linux).
const CORK_CEILING_NS: u64 = 200_000_000;

/// Verdict on a received RST (RFC 5961 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RstCheck {
    /// Exactly RCV.NXT: reset the connection.
    Reset,
    /// In the window but not exact: send a challenge ACK.
    Challenge,
    /// Outside the window: drop.
    OutOfWindow,
}

/// RFC 9293 connection states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl TcpState {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynReceived => "SYN-RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST-ACK",
            TcpState::TimeWait => "TIME-WAIT",
        }
    }

    /// The peer may still send data.
    fn can_receive_data(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        )
    }
}

/// Engine-wide protocol constants, from `tcp.*` in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoConfig {
    pub rto: RtoBounds,
    /// 0 disables delayed ACKs (one ACK per segment).
    pub delayed_ack_ns: u64,
    /// Out-of-order intervals used, at most [`OOO_INTERVALS`].
    pub ooo_limit: usize,
    pub initial_cwnd_segments: u32,
    /// RTO expiries without progress before the connection is aborted.
    pub max_retransmits: u8,
    /// Negotiate ECN (RFC 3168) in handshakes (`tcp.ecn`).
    pub ecn: bool,
    /// The congestion controller of every connection.
    pub cc: CcAlgorithm,
    /// Payload bytes one new-data segment may carry when the port cuts it
    /// into MSS-sized pieces (TSO); 0 (or at most the MSS) when it cannot.
    pub tso_max: u32,
    /// The longest frame, Ethernet header included, the port makes of one
    /// piece: pieces are the MSS or shorter to fit it (`net_tap` counts
    /// the Ethernet header in its IP MTU check).
    pub tso_frame: u16,
}

impl ProtoConfig {
    /// The longest TSO payload with no buffer limit (the loopback, which
    /// takes segments whole): what the longest IPv4 datagram holds after
    /// the longest IPv4 and TCP headers.
    pub const MAX_SEGMENT_PAYLOAD: u32 = 65_535 - 20 - 60;
}

/// Congestion control of a connection (`tcp.congestion_control`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CcAlgorithm {
    /// NewReno (RFC 5681, 6582); with ECN, RFC 3168's halving on ECE.
    #[default]
    Reno,
    /// DCTCP (RFC 8257): on ECE the window shrinks by alpha / 2, alpha the
    /// moving average of the fraction of bytes the network marked.
    Dctcp,
    /// TIMELY: the engine sets a sending rate from the RTT gradient
    /// (`cc::timely`) and paces at it; the window does not grow on ACKs but
    /// is set from the rate ([`ProtoFlow::set_rate_window`]), and loss
    /// recovery works as NewReno's.
    Timely,
    /// DCTCP on a paced rate (FlexTOE's `dctcp-rate`, `cc::dctcp_rate`):
    /// the receiver side and the handshake as DCTCP's, the window as
    /// TIMELY's (set from the rate).
    DctcpRate,
}

impl CcAlgorithm {
    /// The engine sets the rate and paces; the window follows the rate.
    pub fn rate_based(self) -> bool {
        matches!(self, CcAlgorithm::Timely | CcAlgorithm::DctcpRate)
    }

    /// DCTCP's ECN behaviour: asks for ECN in its handshake, echoes CE
    /// accurately.
    pub fn dctcp_like(self) -> bool {
        matches!(self, CcAlgorithm::Dctcp | CcAlgorithm::DctcpRate)
    }
}

/// What the control plane negotiated in the handshake; installs a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoInit {
    pub state: TcpState,
    pub iss: SeqNumber,
    pub irs: SeqNumber,
    /// The peer's window from its SYN or SYN-ACK (never scaled).
    pub peer_window: u16,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    /// Payload bytes per segment (peer MSS, our MSS, minus option space).
    pub mss: u16,
    /// TS.Recent from the handshake when timestamps were negotiated.
    pub ts_recent: Option<u32>,
    pub sack: bool,
    pub rx_size: u32,
    pub tx_size: u32,
    pub rtt_us: Option<u32>,
    /// The SYN or SYN-ACK was retransmitted and no RTT was measured: start
    /// with a 3 s RTO (RFC 6298 5.7).
    pub syn_retransmitted: bool,
    /// The (unscaled) window our SYN or SYN-ACK advertised.
    pub syn_window: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags(u16);

impl Flags {
    const TS: u16 = 1;
    const SACK: u16 = 2;
    const FIN_REQUESTED: u16 = 4;
    const RX_FIN: u16 = 8;
    const IN_RECOVERY: u16 = 16;
    const PERSIST: u16 = 32;
    const TX_QUEUED: u16 = 64;
    const TIMING: u16 = 128;
    /// `rtx_mark` is valid: SND.UNA's segment was retransmitted in recovery.
    const RTX_MARKED: u16 = 256;
    /// Recovery entered by a timeout (slow start through the holes).
    const LOSS: u16 = 512;
    /// The application closed its handle: nobody will read or write again.
    const ORPHAN: u16 = 1024;
    /// ECN was negotiated (RFC 3168): data segments are ECT(0).
    const ECN: u16 = 2048;
    /// We echo congestion: our segments carry ECE (RFC 3168 6.1.3; with
    /// DCTCP, while the last data segment received was CE-marked).
    const ECE_ECHO: u16 = 4096;
    /// The window was reduced for an ECE: the next new data segment
    /// carries CWR (RFC 3168 6.1.2).
    const CWR_DUE: u16 = 8192;
    /// A send was held back by the congestion window since the last ACK:
    /// the window is in use and may grow (RFC 7661).
    const CWND_LIMITED: u16 = 16384;
    /// The engine paces this connection (it has a rate: TIMELY's, or the
    /// application's cap), so the scheduler consults its pacer.
    const PACED: u16 = 32768;

    fn has(self, b: u16) -> bool {
        self.0 & b != 0
    }
    fn set(&mut self, b: u16, on: bool) {
        if on {
            self.0 |= b
        } else {
            self.0 &= !b
        }
    }
}

/// Loss-recovery state a connection holds only while it is in use: the
/// receive side's out-of-order intervals and the send side's SACK
/// scoreboard (112 B that in-order connections, most of them at any
/// moment, would otherwise carry; issue 13's state budget).
#[derive(Clone, Debug, Default, PartialEq)]
struct LossState {
    ooo: SeqRanges<OOO_INTERVALS>,
    sacked: SeqRanges<SACK_RANGES>,
}

/// Mutable TCP state of one installed connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtoFlow {
    state: TcpState,
    flags: Flags,
    /// Window-scale shifts (each at most 14): the peer's in the low four
    /// bits, ours in the high four (one byte, the state budget).
    wscales: u8,
    dupacks: u8,
    rto_retries: u8,
    unacked_segments: u8,
    mss: u16,
    /// This connection's controller, chosen per connection (listener,
    /// application or configuration default).
    cc: CcAlgorithm,
    /// DCTCP's alpha, the moving average of the fraction of acknowledged
    /// bytes that were CE-marked, in 1/65536 (RFC 8257 3.3).
    dctcp_alpha: u16,
    /// End of the window of the last ECN reduction: the next ECE counts
    /// once SND.UNA reached it (one reduction per window, RFC 3168 6.1.2).
    cwr_end: SeqNumber,

    // Send side.
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    snd_max: SeqNumber,
    /// End of the data the application has written (the FIN goes here).
    tx_end: SeqNumber,
    tx_base: SeqNumber,
    /// log2 of the TX buffer size (a power of two) in the low five bits
    /// (`TX_LOG2`), and the application's `TX_NAGLE` and `TX_CORK` with
    /// `TX_CORK_FLUSH` (one byte: the state budget of issue 13).
    tx_conf: u8,
    snd_wnd: u32,
    /// The largest window field the peer sent (MAX.SND.WND, RFC 5961 5,
    /// kept unscaled in 16 bits: the state budget of issue 13).
    max_snd_wnd_field: u16,
    /// Sequence number of the segment that last updated the send window.
    /// (RFC 9293's SND.WL2 is not kept: it is never above SND.UNA, so its
    /// test always holds for an acceptable ACK.)
    snd_wl1: SeqNumber,
    cwnd: u32,
    ssthresh: u32,
    recover: SeqNumber,
    /// Next byte to retransmit during recovery, and the end of the region
    /// to retransmit (highest SACKed byte, or one segment for NewReno).
    rtx_next: SeqNumber,
    rtx_end: SeqNumber,
    /// SND.MAX when SND.UNA's segment was last retransmitted: a SACK above
    /// it means that retransmission was lost too (a RACK-like rule).
    rtx_mark: SeqNumber,
    rtt: RttEstimator,
    timed_seq: SeqNumber,
    /// When `timed_seq` was sent, in [`deadline::micros`].
    timed_at: u32,

    // Receive side.
    rcv_nxt: SeqNumber,
    /// Everything below this the application has consumed.
    rcv_consumed: SeqNumber,
    /// Right window edge last advertised.
    rcv_adv: SeqNumber,
    rx_base: SeqNumber,
    /// log2 of the RX buffer size (a power of two) in the low five bits
    /// (`RX_LOG2`), and above them how many halvings of it the advertised
    /// window is held to (`SO_RCVBUF`, at most 7).
    rx_conf: u8,
    rx_fin_seq: SeqNumber,
    ts_recent: u32,
    /// When the last acceptable segment arrived, in [`keepalive::ticks`]
    /// (a millisecond; wraps after 49 days): keepalive's idle time.
    last_rx: u32,
    /// Out-of-order intervals and SACK scoreboard, only while in use.
    loss: Option<Box<LossState>>,

    // Timers.
    rto_at: Deadline,
    delack_at: Deadline,
    /// Earliest deadline the engine's timer queue holds for this flow.
    pub(crate) timer_queued_at: Deadline,
}

impl ProtoFlow {
    /// A flow as the control plane installs it after the handshake.
    pub fn new(init: &ProtoInit, cfg: &ProtoConfig) -> Self {
        debug_assert!(init.rx_size.is_power_of_two() && init.tx_size.is_power_of_two());
        let mut flags = Flags::default();
        flags.set(Flags::TS, init.ts_recent.is_some());
        flags.set(Flags::SACK, init.sack);
        let snd_una = init.iss + 1u32;
        let rcv_nxt = init.irs + 1u32;
        let mss = init.mss.max(64);
        let mut rtt = RttEstimator::new(&cfg.rto);
        if let Some(sample) = init.rtt_us {
            rtt.sample(sample);
        } else if init.syn_retransmitted {
            rtt = RttEstimator::with_rto(3_000_000, &cfg.rto);
        }
        let mut flow = Self {
            state: init.state,
            flags,
            wscales: init.snd_wscale.min(14) | init.rcv_wscale.min(14) << 4,
            dupacks: 0,
            rto_retries: 0,
            unacked_segments: 0,
            mss,
            cc: cfg.cc,
            // RFC 8257 3.3: start at 1 (the first reduction halves, as Reno).
            dctcp_alpha: DCTCP_ALPHA_ONE,
            cwr_end: snd_una,
            snd_una,
            snd_nxt: snd_una,
            snd_max: snd_una,
            tx_end: snd_una,
            tx_base: snd_una,
            tx_conf: init.tx_size.trailing_zeros() as u8,
            snd_wnd: init.peer_window as u32,
            // The SYN's window is not scaled: its field equivalent, rounded up.
            max_snd_wnd_field: (u32::from(init.peer_window).div_ceil(1 << init.snd_wscale.min(14)))
                as u16,
            snd_wl1: init.irs,
            cwnd: cfg.initial_cwnd_segments.max(1) * mss as u32,
            ssthresh: u32::MAX,
            recover: snd_una - 1u32,
            rtx_next: snd_una,
            rtx_end: snd_una,
            rtx_mark: snd_una,
            rtt,
            timed_seq: snd_una,
            timed_at: 0,
            rcv_nxt,
            rcv_consumed: rcv_nxt,
            rcv_adv: rcv_nxt,
            rx_base: rcv_nxt,
            rx_conf: init.rx_size.trailing_zeros() as u8,
            rx_fin_seq: rcv_nxt,
            ts_recent: init.ts_recent.unwrap_or(0),
            last_rx: 0,
            loss: None,
            rto_at: Deadline::OFF,
            delack_at: Deadline::OFF,
            timer_queued_at: Deadline::OFF,
        };
        flow.rcv_adv = flow.rcv_nxt + flow.advertised_window_bytes().max(init.syn_window as u32);
        flow
    }

    pub fn state(&self) -> TcpState {
        self.state
    }

    pub fn snd_una(&self) -> SeqNumber {
        self.snd_una
    }

    pub fn snd_nxt(&self) -> SeqNumber {
        self.snd_nxt
    }

    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }

    pub fn snd_wnd(&self) -> u32 {
        self.snd_wnd
    }

    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// The shift the peer's window fields take (its window scale).
    fn snd_wscale(&self) -> u8 {
        self.wscales & 0xf
    }

    /// The shift our window fields take.
    fn rcv_wscale(&self) -> u8 {
        self.wscales >> 4
    }

    /// The largest send window the peer offered (RFC 5961's MAX.SND.WND).
    fn max_snd_wnd(&self) -> u32 {
        u32::from(self.max_snd_wnd_field) << self.snd_wscale()
    }

    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// This connection's congestion controller.
    pub fn cc(&self) -> CcAlgorithm {
        self.cc
    }

    /// Switches the congestion controller. The window carries over; DCTCP
    /// starts from alpha = 1 (RFC 8257 3.3's initial value) and reacts to
    /// ECE only where ECN was negotiated (without it, it behaves as
    /// NewReno on loss).
    pub fn set_cc(&mut self, cc: CcAlgorithm) {
        if cc != self.cc && cc == CcAlgorithm::Dctcp {
            self.dctcp_alpha = DCTCP_ALPHA_ONE;
        }
        self.cc = cc;
    }

    /// Nagle's algorithm on (`TCP_NODELAY` off) or off. Off by default, as
    /// if every application had set TCP_NODELAY (FlexTOE and TAS have no
    /// Nagle; the engine's clients are latency-bound RPC servers).
    pub fn set_nagle(&mut self, on: bool) {
        self.set_tx_bit(TX_NAGLE, on);
    }

    /// `TCP_CORK` on or off.
    pub fn set_cork(&mut self, on: bool) {
        self.set_tx_bit(TX_CORK, on);
    }

    pub fn nagle(&self) -> bool {
        self.tx_conf & TX_NAGLE != 0
    }

    pub fn corked(&self) -> bool {
        self.tx_conf & TX_CORK != 0
    }

    fn set_tx_bit(&mut self, bit: u8, on: bool) {
        if on {
            self.tx_conf |= bit;
        } else {
            self.tx_conf &= !bit;
        }
    }

    /// Whether the engine paces this connection.
    pub fn paced(&self) -> bool {
        self.flags.has(Flags::PACED)
    }

    pub fn set_paced(&mut self, on: bool) {
        self.flags.set(Flags::PACED, on);
    }

    /// A rate-based controller's window (TIMELY): set from its rate, not
    /// grown by ACKs. It bounds the flight if ACKs stop while pacing sets
    /// the speed. Ignored during loss recovery, which keeps NewReno's
    /// window until it ends.
    pub fn set_rate_window(&mut self, bytes: u32) {
        if !self.flags.has(Flags::IN_RECOVERY) {
            self.cwnd = bytes.max(2 * self.mss as u32);
        }
    }

    /// Turns ECN on (both ends asked for it in the handshake).
    pub fn enable_ecn(&mut self) {
        self.flags.set(Flags::ECN, true);
    }

    /// Whether ECN was negotiated.
    pub fn ecn(&self) -> bool {
        self.flags.has(Flags::ECN)
    }

    /// DCTCP's alpha, 0..=65535 for 0..=1.
    pub fn dctcp_alpha(&self) -> u16 {
        self.dctcp_alpha
    }

    pub fn srtt_us(&self) -> u32 {
        self.rtt.srtt_us()
    }

    pub fn mss(&self) -> u16 {
        self.mss
    }

    pub fn rttvar_us(&self) -> u32 {
        self.rtt.rttvar_us()
    }

    /// Retransmission timeouts since the last ACK of new data (the RTO's
    /// backoff).
    pub fn rto_backoff(&self) -> u8 {
        self.rto_retries
    }

    /// Out-of-order intervals currently held.
    pub fn ooo_intervals(&self) -> usize {
        self.ooo().len()
    }

    /// Whether the loss state (out-of-order intervals, SACK scoreboard) is
    /// allocated.
    pub fn holds_loss_state(&self) -> bool {
        self.loss.is_some()
    }

    fn ooo(&self) -> &SeqRanges<OOO_INTERVALS> {
        match &self.loss {
            Some(l) => &l.ooo,
            None => &SeqRanges::EMPTY,
        }
    }

    fn sacked(&self) -> &SeqRanges<SACK_RANGES> {
        match &self.loss {
            Some(l) => &l.sacked,
            None => &SeqRanges::EMPTY,
        }
    }

    /// The loss state, taken from the owner's pool on first use (a loss
    /// episode, not a segment: in-order traffic never gets here).
    fn loss(&mut self) -> &mut LossState {
        self.loss.get_or_insert_with(loss_pool::take)
    }

    /// Gives the loss state back to the pool once neither part holds
    /// anything.
    fn release_loss(&mut self) {
        if self
            .loss
            .as_ref()
            .is_some_and(|l| l.ooo.is_empty() && l.sacked.is_empty())
        {
            if let Some(state) = self.loss.take() {
                loss_pool::give(state);
            }
        }
    }

    /// RX buffer size in bytes.
    fn rx_size(&self) -> u32 {
        1 << (self.rx_conf & RX_LOG2)
    }

    /// The most the window may offer: the buffer, or less with `SO_RCVBUF`.
    fn rx_window_max(&self) -> u32 {
        self.rx_size() >> (self.rx_conf >> RX_CLAMP_SHIFT)
    }

    /// Holds the advertised window to at most `bytes` (`SO_RCVBUF`),
    /// rounded down to a power of two between the buffer and 1/128 of it.
    /// An edge already advertised is never taken back: a smaller window
    /// takes effect as data fills the old one.
    pub fn set_rx_window(&mut self, bytes: u32) {
        let size = self.rx_size();
        let mut halvings = 0u8;
        while halvings < 7 && size >> halvings > bytes {
            halvings += 1;
        }
        self.rx_conf = (self.rx_conf & RX_LOG2) | halvings << RX_CLAMP_SHIFT;
    }

    /// Free receive buffer space in bytes (within `SO_RCVBUF`).
    pub fn rcv_free(&self) -> u32 {
        // A FIN at the right edge of a full buffer takes a sequence number
        // but no byte: saturate instead of wrapping.
        self.rx_window_max()
            .saturating_sub((self.rcv_nxt - self.rcv_consumed) as u32)
    }

    /// RCV.WND: up to the right edge we advertised (never moves left, never
    /// past the free space, so accepted data always fits the buffer).
    pub fn rcv_wnd(&self) -> u32 {
        (self.rcv_adv - self.rcv_nxt).max(0) as u32
    }

    /// Window field to send now, with receiver silly-window avoidance
    /// (RFC 9293 3.8.6.2.2): the right edge moves only when it can move by
    /// at least min(buffer / 2, MSS).
    fn window_field(&self) -> u16 {
        let ws = self.rcv_wscale();
        let free = self.rcv_free();
        let current = self.rcv_wnd();
        let threshold = (self.rx_window_max() / 2).min(self.mss as u32);
        let bytes = if free >= current + threshold {
            free
        } else {
            current
        };
        // Round up to the scale unit so the edge never moves left, but
        // never beyond the buffer's free space (SO_RCVBUF limits how far
        // the edge grows, not an edge already offered).
        let buf_free = self
            .rx_size()
            .saturating_sub((self.rcv_nxt - self.rcv_consumed) as u32);
        let mut field = (bytes + (1u32 << ws) - 1) >> ws;
        if field << ws > buf_free {
            field = buf_free >> ws;
        }
        field.min(u16::MAX as u32) as u16
    }

    /// Bytes the window field we would send now stands for.
    fn advertised_window_bytes(&self) -> u32 {
        (self.window_field() as u32) << self.rcv_wscale()
    }

    /// Header fields for a segment we send now (pure ACK by default).
    fn header(&mut self, seq: SeqNumber, flags: crate::wire::TcpFlags) -> HeaderFields {
        let window = self.window_field();
        let edge = self.rcv_nxt + ((window as u32) << self.rcv_wscale());
        if edge > self.rcv_adv {
            self.rcv_adv = edge;
        }
        let mut sack = crate::pre::SackBlocks::default();
        if self.flags.has(Flags::SACK) && !self.ooo().is_empty() {
            let max = if self.flags.has(Flags::TS) { 3 } else { 4 };
            sack.count = self.ooo().sack_blocks(max, &mut sack.blocks);
        }
        // Any segment we send carries the ACK: the delayed ACK is satisfied.
        self.unacked_segments = 0;
        self.delack_at = Deadline::OFF;
        let flags = if self.flags.has(Flags::ECE_ECHO) {
            flags | crate::wire::TcpFlags::ECE
        } else {
            flags
        };
        HeaderFields {
            seq,
            ack: self.rcv_nxt,
            flags,
            window,
            ts_ecr: self.flags.has(Flags::TS).then_some(self.ts_recent),
            sack,
            ect: false,
        }
    }

    /// The sequence number of a pure ACK, as Linux's `tcp_acceptable_seq`:
    /// SND.MAX (after a timeout rewinds SND.NXT, the peer may already hold
    /// data above it and would find an older one unacceptable), but never
    /// past the right edge of the peer's window: a peer whose window
    /// closed, or shrank below what we sent, accepts an empty segment only
    /// up to that edge (at its RCV.NXT for a zero window) and drops the
    /// ACK otherwise, however much it acknowledges. (With SND.MAX past the
    /// edge, the peer never learnt that its data arrived, retransmitted
    /// forever, and both ends waited: found by the pool-exhaustion test,
    /// where the segment past the window was lost.) Within one unit of our
    /// own window scale past the edge SND.MAX still goes, as in Linux: a
    /// receiver that rounds its window down to its scale may already hold
    /// those bytes, and would find the edge itself below its RCV.NXT.
    fn pure_ack(&mut self) -> HeaderFields {
        let wnd_end = self.snd_una + self.snd_wnd;
        let past = self.snd_max.0.wrapping_sub(wnd_end.0);
        let seq = if self.snd_max <= wnd_end || past < 1u32 << self.rcv_wscale() {
            self.snd_max
        } else {
            wnd_end
        };
        self.header(seq, crate::wire::TcpFlags::ACK)
    }

    /// RX buffer offset of a sequence number.
    fn rx_pos(&self, seq: SeqNumber) -> u32 {
        (seq - self.rx_base) as u32 & (self.rx_size() - 1)
    }

    /// TX buffer offset of a sequence number.
    fn tx_pos(&self, seq: SeqNumber) -> u32 {
        (seq - self.tx_base) as u32 & ((1u32 << (self.tx_conf & TX_LOG2)) - 1)
    }

    /// The application consumed `n` bytes of received data. Returns a window
    /// update to send when the window opened enough to matter (receiver SWS
    /// avoidance, RFC 1122 4.2.3.3).
    pub fn app_consumed(&mut self, n: u32) -> Option<HeaderFields> {
        self.rcv_consumed += n;
        if !self.state.can_receive_data() {
            return None;
        }
        // Like Linux: update when the window we could advertise (after SWS
        // avoidance) is at least double what the peer sees, or opens a
        // window smaller than one MSS.
        let now_adv = self.rcv_wnd();
        let could = self.advertised_window_bytes();
        let mss = self.mss as u32;
        if could > now_adv && (could >= 2 * now_adv || now_adv < mss) {
            Some(self.pure_ack())
        } else {
            None
        }
    }

    /// The application wrote `n` more bytes into the TX buffer.
    pub fn app_wrote(&mut self, n: u32) {
        self.tx_end += n;
    }

    /// The application will send no more: queue our FIN after its data.
    pub fn app_shutdown_write(&mut self) {
        self.flags.set(Flags::FIN_REQUESTED, true);
    }

    /// The application closed its handle. In FIN-WAIT-2 an orphan waits at
    /// most [`FIN_WAIT_2_TIMEOUT_NS`] for the peer's FIN (as Linux's
    /// `tcp_fin_timeout`), so a peer that never closes cannot pin it.
    pub fn app_closed(&mut self, now: Nanos) {
        self.flags.set(Flags::ORPHAN, true);
        self.arm_orphan_timer(now);
    }

    fn arm_orphan_timer(&mut self, now: Nanos) {
        if self.state == TcpState::FinWait2 && self.flags.has(Flags::ORPHAN) {
            self.rto_at = Deadline::after(now, FIN_WAIT_2_TIMEOUT_NS);
        }
    }

    /// Bytes in the TX buffer not yet acknowledged.
    pub fn tx_outstanding(&self) -> u32 {
        (self.tx_end - self.snd_una).max(0) as u32
    }

    /// Whether the flow is in the TX scheduler's queue.
    pub fn tx_queued(&self) -> bool {
        self.flags.has(Flags::TX_QUEUED)
    }

    pub fn set_tx_queued(&mut self, queued: bool) {
        self.flags.set(Flags::TX_QUEUED, queued);
    }

    /// Timestamps were negotiated.
    pub fn ts_enabled(&self) -> bool {
        self.flags.has(Flags::TS)
    }

    /// A challenge ACK (RFC 5961): our current ACK state.
    pub fn challenge_ack(&mut self) -> HeaderFields {
        self.pure_ack()
    }

    /// RFC 5961 3.2 check of a RST's sequence number against RCV.NXT and
    /// the window we advertised.
    pub fn check_rst(&self, seq: SeqNumber) -> RstCheck {
        if seq == self.rcv_nxt {
            return RstCheck::Reset;
        }
        let wnd = self.rcv_wnd().max(1);
        if seq > self.rcv_nxt && seq < self.rcv_nxt + wnd {
            RstCheck::Challenge
        } else {
            RstCheck::OutOfWindow
        }
    }

    /// Segment to send with RST when the application aborts.
    pub fn rst_fields(&self) -> HeaderFields {
        HeaderFields {
            seq: self.snd_max,
            ack: self.rcv_nxt,
            flags: crate::wire::TcpFlags::RST | crate::wire::TcpFlags::ACK,
            window: 0,
            ts_ecr: None,
            sack: Default::default(),
            ect: false,
        }
    }

    /// What the control plane needs to answer in TIME-WAIT: SND.MAX,
    /// RCV.NXT, TS.Recent (when timestamps were negotiated), window field.
    pub fn time_wait_info(&self) -> (SeqNumber, SeqNumber, Option<u32>, u16) {
        (
            self.snd_max,
            self.rcv_nxt,
            self.flags.has(Flags::TS).then_some(self.ts_recent),
            self.window_field(),
        )
    }
}

#[cfg(test)]
mod tests;
