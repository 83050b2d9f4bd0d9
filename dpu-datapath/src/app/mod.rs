//! The application-facing side of a connection: its RX and TX circular
//! buffers, the positions the application and the engine have reached, and
//! notifications. The host interface maps exactly this onto DMA rings: the
//! buffers live in the application's memory region, positions travel in
//! descriptors.

#![forbid(unsafe_code)]

mod events;
mod table;

pub use events::{AppEvent, EventKind};
pub use table::AppTable;

use crate::dma::HostBuffer;
use crate::flow::{FlowId, FourTuple};
use std::sync::Arc;

/// Handle of a connection as the application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

/// Why a connection ended abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// The peer answered our SYN with RST.
    Refused,
    /// The peer reset an established connection.
    Reset,
    /// Retransmissions (or the handshake) timed out.
    TimedOut,
    /// The next hop did not answer ARP.
    HostUnreachable,
    /// A copy between the DPU and the application's buffer failed: the
    /// bytes cannot be delivered or sent, so the connection was reset.
    DmaFailed,
}

/// Where the connection is, from the application's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnPhase {
    /// Handshake in progress (active open).
    Connecting,
    /// Installed in the data path.
    Open,
    /// Left the data path (closed, reset or timed out).
    Finished,
}

/// One connection's application-side state.
#[derive(Debug)]
pub struct AppConn {
    pub tuple: FourTuple,
    pub phase: ConnPhase,
    pub flow: Option<FlowId>,
    pub error: Option<ConnError>,
    /// RX and TX payload buffers in application memory, shared with the
    /// `dma` stage.
    pub rx: Arc<HostBuffer>,
    pub tx: Arc<HostBuffer>,
    /// Bytes the application has read / the engine has delivered in order.
    pub rx_read: u64,
    pub rx_ready: u64,
    /// Bytes the application has written / the peer has acknowledged.
    pub tx_written: u64,
    pub tx_acked: u64,
    pub peer_fin: bool,
    pub write_shut: bool,
    /// The application closed its handle: discard further payload.
    pub app_closed: bool,
    /// Events raised but not yet taken by the application.
    pub pending: u8,
    /// Which buffers these are, for the [`BufferSource`] that gave them
    /// (the slot in a host application's region); 0 for engine-owned ones.
    pub buf_tag: u32,
}

/// RX and TX buffers for a new connection.
#[derive(Debug)]
pub struct ConnBuffers {
    pub rx: Arc<HostBuffer>,
    pub tx: Arc<HostBuffer>,
    pub tag: u32,
}

/// Supplies the buffers of new connections from application memory (a host
/// application's region). `None` when the application has no room left:
/// the connection is then refused like one beyond the backlog.
pub trait BufferSource: Send + Sync + std::fmt::Debug {
    fn alloc(&self) -> Option<ConnBuffers>;
}

impl AppConn {
    pub fn new(tuple: FourTuple, rx_size: u32, tx_size: u32, phase: ConnPhase) -> Self {
        Self::with_buffers(
            tuple,
            ConnBuffers {
                rx: Arc::new(HostBuffer::new(rx_size as usize)),
                tx: Arc::new(HostBuffer::new(tx_size as usize)),
                tag: 0,
            },
            phase,
        )
    }

    /// A connection whose payload lives in the given buffers.
    pub fn with_buffers(tuple: FourTuple, bufs: ConnBuffers, phase: ConnPhase) -> Self {
        Self {
            tuple,
            phase,
            flow: None,
            error: None,
            rx: bufs.rx,
            tx: bufs.tx,
            buf_tag: bufs.tag,
            rx_read: 0,
            rx_ready: 0,
            tx_written: 0,
            tx_acked: 0,
            peer_fin: false,
            write_shut: false,
            app_closed: false,
            pending: 0,
        }
    }

    /// Bytes ready to read.
    pub fn readable(&self) -> usize {
        (self.rx_ready - self.rx_read) as usize
    }

    /// Free TX buffer space.
    pub fn writable(&self) -> usize {
        self.tx.len() - (self.tx_written - self.tx_acked) as usize
    }
}
