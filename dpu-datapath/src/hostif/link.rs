//! Messages between the host-interface worker (the front) and the
//! flow-group owners, and the queues that carry them. Owners stay the only
//! writers of their engines; the front is the only writer of host rings.

use super::slots::SlotPool;
use crate::app::ConnId;
use crossbeam_queue::ArrayQueue;
use doca_bindings::Doorbell;
use std::net::SocketAddrV4;
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// A registered application (never reused while the service runs).
pub type AppKey = u64;

/// Capacity of each direction of each owner link.
pub const LINK_CAPACITY: usize = 8192;

/// Front -> owner.
#[derive(Debug)]
pub enum OwnerCmd {
    Listen {
        app: AppKey,
        ctx: u16,
        tag: u64,
        port: u16,
        backlog: u32,
        source: SlotPool,
        /// Congestion control of accepted connections (None: the port's
        /// configured one or the default).
        cc: Option<crate::proto::CcAlgorithm>,
        /// Only one owner answers (they all do the same).
        reply: bool,
    },
    Unlisten {
        app: AppKey,
        port: u16,
    },
    Connect {
        app: AppKey,
        ctx: u16,
        tag: u64,
        remote: SocketAddrV4,
        source: SlotPool,
        /// None: `tcp.congestion_control`.
        cc: Option<crate::proto::CcAlgorithm>,
    },
    TxPush {
        app: AppKey,
        conn: ConnId,
        written: u64,
    },
    RxPop {
        app: AppKey,
        conn: ConnId,
        read: u64,
    },
    /// Shutdown, close, abort or setopt (`op` is the ABI op), answered
    /// unless `reply` is false.
    ConnOp {
        app: AppKey,
        ctx: u16,
        tag: u64,
        op: u16,
        conn: ConnId,
        a: u64,
        b: u64,
        reply: bool,
    },
    /// The application is gone: its listeners are removed, and each of
    /// its connections is closed as Linux closes a process's sockets at
    /// exit (`graceful`: queued data then FIN, RST only for unread data or
    /// SO_LINGER 0) or, after a protocol violation, reset.
    AppGone {
        app: AppKey,
        graceful: bool,
    },
    /// A row per connection of this owner, for `flextoe-dpu conns`.
    Dump {
        reply: std::sync::mpsc::Sender<Vec<ConnRow>>,
    },
    /// Connection `conn` (host handle `host`) left this owner with its
    /// flow group: every command for it queued before this one has been
    /// bounced, so forget it and answer [`OwnerEvt::Fenced`].
    MoveFence {
        host: u64,
        conn: ConnId,
    },
    /// Connection `conn` moved here and the front has sent every command
    /// it held for it: from now on it goes with its application as any
    /// other (an application's exit closes it). `release`: the application
    /// is gone meanwhile; let go of the connection now, gracefully or not.
    MoveSettled {
        app: AppKey,
        conn: ConnId,
        release: Option<bool>,
    },
}

impl OwnerCmd {
    /// The application and connection a connection's command is for.
    pub fn conn_of(&self) -> Option<(AppKey, ConnId)> {
        match *self {
            OwnerCmd::TxPush { app, conn, .. }
            | OwnerCmd::RxPop { app, conn, .. }
            | OwnerCmd::ConnOp { app, conn, .. }
            | OwnerCmd::MoveSettled { app, conn, .. } => Some((app, conn)),
            _ => None,
        }
    }

    /// Points a connection's command at `id` (the connection's handle in
    /// the owner it moved to); other commands are left as they are.
    pub fn retarget(&mut self, id: ConnId) {
        match self {
            OwnerCmd::TxPush { conn, .. }
            | OwnerCmd::RxPop { conn, .. }
            | OwnerCmd::ConnOp { conn, .. }
            | OwnerCmd::MoveSettled { conn, .. } => *conn = id,
            _ => {}
        }
    }
}

/// Where a connection is: an owner and its handle in that owner's engine.
pub type Place = (usize, ConnId);

/// One connection as `flextoe-dpu conns` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnRow {
    pub owner: usize,
    /// The host application, or `None` for a DPU-resident service.
    pub app: Option<AppKey>,
    pub local: String,
    pub remote: String,
    pub state: &'static str,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// The congestion controller: `reno`, `reno+ecn`, `dctcp`,
    /// `dctcp-noecn` (DCTCP whose peer did not negotiate ECN: it reacts to
    /// loss only) or `timely`.
    pub cc: &'static str,
    /// DCTCP's alpha, 0..=1 (DCTCP connections only).
    pub dctcp_alpha: Option<f64>,
    /// The paced rate, bits per second (TIMELY's, capped by
    /// `SO_MAX_PACING_RATE`), and TIMELY's normalised RTT gradient.
    pub pacing_rate_bps: Option<u64>,
    pub rtt_gradient: Option<f64>,
    pub srtt_us: u32,
    pub readable: usize,
    pub writable: usize,
}

/// Owner -> front.
#[derive(Debug)]
pub enum OwnerEvt {
    Reply {
        app: AppKey,
        ctx: u16,
        tag: u64,
        op: u16,
        status: i32,
        conn: u64,
        a: u64,
        b: u64,
        c: u64,
    },
    /// A connection completed its handshake on a host application's port.
    Accepted {
        app: AppKey,
        port: u16,
        conn: u64,
        slot: u32,
        remote: u64,
        local: u64,
    },
    /// Something changed on a connection (flags are ABI `CONN_*` bits).
    Conn {
        app: AppKey,
        conn: u64,
        flags: u16,
        rx_ready: u64,
        tx_acked: u64,
        status: i32,
    },
    /// A descriptor failed an owner-side check.
    Violation {
        app: AppKey,
        reason: u64,
        detail: &'static str,
    },
    /// A connection arrived with its flow group (`flextoe-dpu
    /// move-group`): it was at `from`, it is at `to` now; the application
    /// keeps its handle `host`.
    Moved {
        app: AppKey,
        host: u64,
        from: Place,
        to: Place,
    },
    /// A command for a connection that left this owner, given back to be
    /// sent where the connection went.
    Bounced { host: u64, cmd: OwnerCmd },
    /// The answer to [`OwnerCmd::MoveFence`]: nothing more of `host` will
    /// come back from `at`.
    Fenced { host: u64, at: Place },
    /// A connection that had moved was let go of at its owner: the front
    /// forgets where it was.
    Released { host: u64 },
}

/// Wakes the front when it sleeps (flag + eventfd, see docs/hostif-abi.md).
#[derive(Debug)]
pub struct FrontWaker {
    pub sleeping: AtomicBool,
    pub bell: Doorbell,
}

impl FrontWaker {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            sleeping: AtomicBool::new(false),
            bell: Doorbell::new()?,
        })
    }

    /// Call after publishing work for the front.
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.bell.ring();
        }
    }
}

/// The two queues between the front and one owner.
#[derive(Debug)]
pub struct OwnerLink {
    pub cmds: ArrayQueue<OwnerCmd>,
    pub evts: ArrayQueue<OwnerEvt>,
    pub front: std::sync::Arc<FrontWaker>,
    /// The owner's worker thread, so the front can unpark it after queuing
    /// commands (an idle worker parks between polls).
    pub worker: std::sync::OnceLock<std::thread::Thread>,
}

impl OwnerLink {
    pub fn new(front: std::sync::Arc<FrontWaker>) -> Self {
        Self {
            cmds: ArrayQueue::new(LINK_CAPACITY),
            evts: ArrayQueue::new(LINK_CAPACITY),
            front,
            worker: std::sync::OnceLock::new(),
        }
    }
}
