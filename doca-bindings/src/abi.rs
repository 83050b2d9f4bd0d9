//! The host interface ABI (version 1): what the DPU and the host shim agree
//! on byte for byte. Documented in `docs/hostif-abi.md`; any change to a
//! `#[repr(C)]` type here bumps [`ABI_VERSION`].
//!
//! One memory region per application (a memfd here, a DOCA mmap exported by
//! the host on a BlueField) holds, at offsets computed by [`Layout`]:
//!
//! ```text
//! 0                  RegionHeader (written by the DPU, informational)
//! 64                 RegionFlags (dpu_sleeping)
//! ctx_offset(i)      context i: CtxHeader (4 ring indices + app_waiting),
//!                    request ring entries [Desc; ring_entries],
//!                    event ring entries   [Desc; ring_entries]
//! slot_offset(s)     connection slot s: RX buffer, then TX buffer
//! ```
//!
//! Every index and descriptor in the region is written by an untrusted
//! party: the DPU keeps its own copy of its indices and of the layout, and
//! validates whatever it reads.

use std::sync::atomic::AtomicU32;

/// Bumped on any incompatible change to the types below.
pub const ABI_VERSION: u32 = 1;
/// `b"FTOEHIF1"`, little endian, at offset 0 of every region.
pub const REGION_MAGIC: u64 = u64::from_le_bytes(*b"FTOEHIF1");

/// A cache line holding one 32-bit index, so producer and consumer indices
/// never share a line.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct PaddedIndex {
    pub value: AtomicU32,
}

/// At offset 0 of the region. Written once by the creator; the other side
/// checks it against the [`Layout`] it was given over the control socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionHeader {
    pub magic: u64,
    pub abi_version: u32,
    pub contexts: u32,
    pub ring_entries: u32,
    pub slots: u32,
    pub rx_buf_size: u32,
    pub tx_buf_size: u32,
    pub region_size: u64,
    pub _reserved: [u64; 3],
}

/// At offset 64: flags shared by all contexts of the application.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RegionFlags {
    /// Non-zero while the DPU's host-interface worker sleeps: an application
    /// that posts a request then rings the DPU doorbell.
    pub dpu_sleeping: PaddedIndex,
}

/// At the start of every context.
#[repr(C)]
#[derive(Debug, Default)]
pub struct CtxHeader {
    /// Request ring (application -> DPU): the application produces.
    pub req_head: PaddedIndex,
    pub req_tail: PaddedIndex,
    /// Event ring (DPU -> application): the DPU produces.
    pub evt_head: PaddedIndex,
    pub evt_tail: PaddedIndex,
    /// Non-zero while an application thread sleeps on this context's
    /// doorbell: the DPU rings it after posting events.
    pub app_waiting: PaddedIndex,
}

/// One descriptor, in both rings. 48 bytes, little endian, no pointers:
/// buffers are named by connection handle and stream position only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// `OP_*` on the request ring, `EV_*` on the event ring.
    pub op: u16,
    /// Request: unused (0). `EV_REPLY`: the request's op. `EV_CONN`: `CONN_*` bits.
    pub flags: u16,
    /// Replies and errors: 0 or a negative errno.
    pub status: i32,
    /// Request id chosen by the application, echoed in the reply.
    pub tag: u64,
    /// Connection handle (opaque, non-zero), 0 when not applicable.
    pub conn: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
}

const _: () = assert!(std::mem::size_of::<Desc>() == 48);
const _: () = assert!(std::mem::align_of::<Desc>() == 8);
const _: () = assert!(std::mem::size_of::<PaddedIndex>() == 64);
const _: () = assert!(std::mem::size_of::<RegionHeader>() == 64);
const _: () = assert!(std::mem::size_of::<RegionFlags>() == 64);
const _: () = assert!(std::mem::size_of::<CtxHeader>() == 320);

// Requests (application -> DPU). Field use per op:
/// a = port, b = backlog (0: service default), c = congestion control
/// of accepted connections (`CC_*`, 0: the service's for the port), with
/// [`LISTEN_REUSEPORT`]. Reply: status (-ENOENT for an unknown controller,
/// -EADDRINUSE for a port already listened on, unless shared).
pub const OP_LISTEN: u16 = 1;
/// a = port. Reply: conn, a = slot, b = remote addr, c = local addr
/// (see [`pack_addr`]), status -EAGAIN when the queue is empty.
pub const OP_ACCEPT: u16 = 2;
/// a = remote addr ([`pack_addr`]), b = congestion control (`CC_*`, 0:
/// the service's default). Reply: conn, a = slot, b = remote, c = local
/// (status -ENOENT for an unknown controller); completion follows as
/// `EV_CONN` with `CONN_CONNECTED` or `CONN_ERROR`.
pub const OP_CONNECT: u16 = 3;
/// conn, a = total bytes written to the TX buffer so far (stream offset).
/// No reply; ACKs come back as `EV_CONN` with b = total acknowledged.
pub const OP_TX_PUSH: u16 = 4;
/// conn, a = total bytes consumed from the RX buffer so far. No reply.
pub const OP_RX_POP: u16 = 5;
/// conn: half-close (FIN after the written data). Reply: status.
pub const OP_SHUTDOWN: u16 = 6;
/// conn: close the handle (FIN, or RST if unread data). Reply: status.
pub const OP_CLOSE: u16 = 7;
/// conn: reset. Reply: status.
pub const OP_ABORT: u16 = 8;
/// a = port: stop listening. Reply: status.
pub const OP_UNLISTEN: u16 = 9;
/// conn, a = `OPT_*`, b = value. Reply: status (-ENOPROTOOPT if unknown).
pub const OP_SETOPT: u16 = 10;
/// conn: this context takes over a connection the process shares with
/// others (inherited across fork): its events come here from now on, and
/// the context that had them gets `EV_CONN` with `CONN_MOVED`. Reply: a =
/// total bytes consumed (the last `OP_RX_POP`), b = total bytes written
/// (the last `OP_TX_PUSH`), c = slot | sticky `CONN_*` bits << 32; an
/// `EV_CONN` with the current positions follows.
pub const OP_ADOPT: u16 = 11;
/// conn: the connection's TCP state, for `TCP_INFO`. Reply: a = state
/// (Linux's `TCP_ESTABLISHED`.. numbering) | RTO backoff << 8 | MSS << 16
/// | smoothed RTT (µs) << 32, b = RTT variance (µs) | congestion window
/// (bytes) << 32, c = slow-start threshold (bytes) | send window (bytes)
/// << 32 (each 32-bit field saturates).
pub const OP_INFO: u16 = 12;

// Events (DPU -> application).
/// Reply to the request with `tag`; flags = the request's op.
pub const EV_REPLY: u16 = 0x8001;
/// Connection state: flags = `CONN_*` bits raised since the last event,
/// a = total bytes readable so far (RX stream offset), b = total bytes
/// acknowledged (TX stream offset), status = -errno when `CONN_ERROR`.
pub const EV_CONN: u16 = 0x8002;
/// a = port: a connection waits in that listener's accept queue.
pub const EV_ACCEPTABLE: u16 = 0x8003;
/// The context was closed for a protocol violation: status = -EPROTO,
/// a = `VIOLATION_*`. The application's connections were reset.
pub const EV_FATAL: u16 = 0x8004;

// EV_CONN flag bits (same values as the engine's event kinds).
pub const CONN_READABLE: u16 = 1;
pub const CONN_WRITABLE: u16 = 2;
pub const CONN_CONNECTED: u16 = 4;
pub const CONN_PEER_CLOSED: u16 = 8;
pub const CONN_ERROR: u16 = 16;
pub const CONN_FINISHED: u16 = 32;
/// Another process sharing the connection took its events (`OP_ADOPT`):
/// this context's view is stale until it adopts the connection back.
pub const CONN_MOVED: u16 = 64;

// OP_SETOPT options.
/// b = 0: Nagle's algorithm (RFC 896) on the connection: a segment shorter
/// than the MSS waits while data is unacknowledged; b = 1 (the default):
/// segments leave as soon as the windows allow.
pub const OPT_NODELAY: u64 = 1;
/// b = keepalive settings (`SO_KEEPALIVE` with `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT`): bits 0-15 the idle time and 16-31 the
/// interval in seconds (1-32767 each), 32-39 the probe count (1-127);
/// b = 0 turns keepalive off. Other values: -EINVAL.
pub const OPT_KEEPALIVE: u64 = 2;

/// `OPT_KEEPALIVE`'s value for these settings (not checked here: the
/// service refuses values out of range).
pub fn pack_keepalive(idle_secs: u16, interval_secs: u16, count: u8) -> u64 {
    u64::from(idle_secs) | u64::from(interval_secs) << 16 | u64::from(count) << 32
}
/// b = 1: SO_LINGER with a zero timeout (closing the connection, or the
/// application's exit, resets it instead of sending what is queued and a
/// FIN); b = 0: the default graceful close.
pub const OPT_LINGER_ZERO: u64 = 3;
/// b = `CC_*`: the connection's congestion control from now on
/// (`TCP_CONGESTION`); -ENOENT for an unknown controller.
pub const OPT_CONGESTION: u64 = 4;
/// b = bytes per second: the connection's sending rate is capped there,
/// its segments paced (`SO_MAX_PACING_RATE`); 0: no cap.
pub const OPT_MAX_PACING_RATE: u64 = 5;
/// b = 1: `TCP_CORK` (segments shorter than the MSS wait until the cork
/// comes off, a FIN follows them, or 200 ms passed); b = 0 sends what
/// waited.
pub const OPT_CORK: u64 = 6;
/// b = bytes: `SO_RCVBUF`, the connection's advertised window is held to
/// at most b (rounded down to a power of two, at least 1/128 of the RX
/// buffer; the buffer keeps its size).
pub const OPT_RCVBUF: u64 = 7;

/// `OP_LISTEN` c, with the controller in the low bits: `SO_REUSEPORT`. A
/// listener of the same application on the port that was also opened with
/// it is shared instead of refused (EADDRINUSE): each opener holds it and
/// hears of waiting connections, and it stops with the last holder.
pub const LISTEN_REUSEPORT: u64 = 1 << 32;

// Congestion controllers (`OPT_CONGESTION`, `OP_CONNECT` b, `OP_LISTEN` c).
/// The service's choice (`tcp.congestion_control`, or per listening port).
pub const CC_DEFAULT: u64 = 0;
/// NewReno (with RFC 3168 ECN where negotiated).
pub const CC_RENO: u64 = 1;
/// DCTCP (RFC 8257); its handshakes ask for ECN.
pub const CC_DCTCP: u64 = 2;
/// TIMELY: a paced rate from the RTT gradient (`tcp.timely`).
pub const CC_TIMELY: u64 = 3;
/// DCTCP acting on a paced rate (FlexTOE's `dctcp-rate`); asks for ECN.
pub const CC_DCTCP_RATE: u64 = 4;

/// The `CC_*` value of a Linux `TCP_CONGESTION` name (None: not offered,
/// ENOENT as on Linux).
pub fn cc_from_name(name: &[u8]) -> Option<u64> {
    match name {
        b"reno" => Some(CC_RENO),
        b"dctcp" => Some(CC_DCTCP),
        b"timely" => Some(CC_TIMELY),
        b"dctcp-rate" => Some(CC_DCTCP_RATE),
        _ => None,
    }
}

/// The `TCP_CONGESTION` name of a `CC_*` value.
pub fn cc_name(cc: u64) -> Option<&'static str> {
    match cc {
        CC_RENO => Some("reno"),
        CC_DCTCP => Some("dctcp"),
        CC_TIMELY => Some("timely"),
        CC_DCTCP_RATE => Some("dctcp-rate"),
        _ => None,
    }
}

// EV_FATAL reasons: which check a descriptor failed.
pub const VIOLATION_RING_INDEX: u64 = 1;
pub const VIOLATION_UNKNOWN_OP: u64 = 2;
pub const VIOLATION_FOREIGN_CONN: u64 = 3;
pub const VIOLATION_TX_BOUNDS: u64 = 4;
pub const VIOLATION_RX_BOUNDS: u64 = 5;
pub const VIOLATION_BAD_ARGUMENT: u64 = 6;

/// Packs an IPv4 address and port into a descriptor field: `ip << 16 | port`.
pub fn pack_addr(addr: std::net::SocketAddrV4) -> u64 {
    (u64::from(u32::from(*addr.ip())) << 16) | u64::from(addr.port())
}

/// Inverse of [`pack_addr`]; `None` if bits above 48 are set.
pub fn unpack_addr(v: u64) -> Option<std::net::SocketAddrV4> {
    if v >> 48 != 0 {
        return None;
    }
    Some(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::from((v >> 16) as u32),
        v as u16,
    ))
}

/// Where a ring lives in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Offsets of the producer and consumer [`PaddedIndex`].
    pub head: usize,
    pub tail: usize,
    /// Offset of entry 0.
    pub entries: usize,
    /// Number of entries (a power of two).
    pub capacity: u32,
}

/// The shape of an application's region. Sent in the registration reply;
/// both sides compute every offset from it with the methods below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub contexts: u32,
    pub ring_entries: u32,
    pub slots: u32,
    pub rx_buf_size: u32,
    pub tx_buf_size: u32,
}

/// Limits on [`Layout`] fields (also the DPU's allocation bounds).
pub const MAX_CONTEXTS: u32 = 256;
pub const MAX_RING_ENTRIES: u32 = 1 << 16;
pub const MAX_SLOTS: u32 = 1 << 16;
pub const MAX_BUF_SIZE: u32 = 1 << 30;
const PAGE: usize = 4096;

fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

impl Layout {
    /// Checks every field; the message names the field and the allowed values.
    pub fn validate(&self) -> Result<(), String> {
        let pow2 = |name: &str, v: u32, min: u32, max: u32| {
            if v.is_power_of_two() && (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "layout.{name}: {v} is not allowed (a power of two in {min}..={max})"
                ))
            }
        };
        if !(1..=MAX_CONTEXTS).contains(&self.contexts) {
            return Err(format!(
                "layout.contexts: {} is not allowed (1..={MAX_CONTEXTS})",
                self.contexts
            ));
        }
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(format!(
                "layout.slots: {} is not allowed (1..={MAX_SLOTS})",
                self.slots
            ));
        }
        pow2("ring_entries", self.ring_entries, 8, MAX_RING_ENTRIES)?;
        pow2("rx_buf_size", self.rx_buf_size, 4096, MAX_BUF_SIZE)?;
        pow2("tx_buf_size", self.tx_buf_size, 4096, MAX_BUF_SIZE)?;
        if self.region_size_checked().is_none() {
            return Err("layout: region larger than the address space".into());
        }
        Ok(())
    }

    fn ring_bytes(&self) -> usize {
        self.ring_entries as usize * std::mem::size_of::<Desc>()
    }

    /// Bytes of one context: header plus both rings, page aligned.
    pub fn ctx_stride(&self) -> usize {
        round_up(
            std::mem::size_of::<CtxHeader>() + 2 * self.ring_bytes(),
            PAGE,
        )
    }

    pub fn ctx_offset(&self, ctx: u32) -> usize {
        PAGE + ctx as usize * self.ctx_stride()
    }

    pub fn request_ring(&self, ctx: u32) -> RingLayout {
        let base = self.ctx_offset(ctx);
        RingLayout {
            head: base,
            tail: base + 64,
            entries: base + std::mem::size_of::<CtxHeader>(),
            capacity: self.ring_entries,
        }
    }

    pub fn event_ring(&self, ctx: u32) -> RingLayout {
        let base = self.ctx_offset(ctx);
        RingLayout {
            head: base + 128,
            tail: base + 192,
            entries: base + std::mem::size_of::<CtxHeader>() + self.ring_bytes(),
            capacity: self.ring_entries,
        }
    }

    /// Offset of context `ctx`'s `app_waiting` index.
    pub fn app_waiting_offset(&self, ctx: u32) -> usize {
        self.ctx_offset(ctx) + 256
    }

    /// Offset of the region's `dpu_sleeping` index.
    pub fn dpu_sleeping_offset(&self) -> usize {
        64
    }

    /// Bytes of one connection slot (RX buffer then TX buffer).
    pub fn slot_stride(&self) -> usize {
        self.rx_buf_size as usize + self.tx_buf_size as usize
    }

    pub fn slots_offset(&self) -> usize {
        round_up(PAGE + self.contexts as usize * self.ctx_stride(), PAGE)
    }

    pub fn rx_buf_offset(&self, slot: u32) -> usize {
        self.slots_offset() + slot as usize * self.slot_stride()
    }

    pub fn tx_buf_offset(&self, slot: u32) -> usize {
        self.rx_buf_offset(slot) + self.rx_buf_size as usize
    }

    fn region_size_checked(&self) -> Option<usize> {
        (self.slots as usize)
            .checked_mul(self.slot_stride())?
            .checked_add(self.slots_offset())
    }

    /// Total bytes of the region.
    pub fn region_size(&self) -> usize {
        self.region_size_checked().unwrap_or(usize::MAX)
    }

    /// The header the creator writes at offset 0.
    pub fn header(&self) -> RegionHeader {
        RegionHeader {
            magic: REGION_MAGIC,
            abi_version: ABI_VERSION,
            contexts: self.contexts,
            ring_entries: self.ring_entries,
            slots: self.slots,
            rx_buf_size: self.rx_buf_size,
            tx_buf_size: self.tx_buf_size,
            region_size: self.region_size() as u64,
            _reserved: [0; 3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            contexts: 4,
            ring_entries: 256,
            slots: 16,
            rx_buf_size: 65536,
            tx_buf_size: 65536,
        }
    }

    #[test]
    fn areas_do_not_overlap() {
        let l = layout();
        l.validate().unwrap();
        for c in 0..l.contexts {
            let req = l.request_ring(c);
            let evt = l.event_ring(c);
            assert!(req.entries + l.ring_bytes() <= evt.entries);
            assert!(evt.entries + l.ring_bytes() <= l.ctx_offset(c) + l.ctx_stride());
            assert!(l.ctx_offset(c) + l.ctx_stride() <= l.slots_offset());
        }
        assert_eq!(l.tx_buf_offset(15) + 65536, l.region_size());
        assert_eq!(l.slots_offset() % 4096, 0);
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let mut l = layout();
        l.ring_entries = 100;
        assert!(l.validate().unwrap_err().starts_with("layout.ring_entries"));
        let mut l = layout();
        l.contexts = 0;
        assert!(l.validate().unwrap_err().starts_with("layout.contexts"));
        let mut l = layout();
        l.rx_buf_size = 1 << 31;
        assert!(l.validate().unwrap_err().starts_with("layout.rx_buf_size"));
    }

    #[test]
    fn addresses_round_trip() {
        let a: std::net::SocketAddrV4 = "198.18.0.2:8080".parse().unwrap();
        assert_eq!(unpack_addr(pack_addr(a)), Some(a));
        assert_eq!(unpack_addr(1 << 50), None);
    }
}
