//! The control plane: everything the fast path punts. ARP, ICMP echo,
//! listen/accept, the three-way handshake with option negotiation (active,
//! passive and simultaneous open), connection install into and removal from
//! the data path, RST processing with RFC 5961 checks, TIME-WAIT, and resets
//! for segments that match nothing.
//!
//! Files: `arp.rs`, `icmp.rs`, `handshake.rs` (SYN-SENT / SYN-RECEIVED),
//! `install.rs` (option negotiation, flow install), `syn_cookie.rs` (RFC 4987
//! cookies when a backlog is full), `teardown.rs` (finish,
//! abort, RST and SYN on installed flows), `time_wait.rs`, `segment.rs`
//! (building control segments and resets).

#![forbid(unsafe_code)]

mod arp;
mod cookie_budget;
mod handshake;
mod icmp;
mod install;
mod segment;
mod syn_cookie;
mod teardown;
#[cfg(test)]
mod test_util;
mod time_wait;

pub use arp::ArpCache;
pub use cookie_budget::CookieBudget;
pub use handshake::{Handshake, PeerOptions};
pub use syn_cookie::{CookieOptions, SynCookies, MSS_CLASSES};
pub use time_wait::TimeWait;

use crate::app::ConnId;
use crate::engine::Engine;
use crate::flow::FourTuple;
use crate::stats::DropReason;
use crate::wire::{IngressFrame, TcpFlags, L3, L4};
use std::collections::{HashMap, VecDeque};

/// A listening port.
#[derive(Debug)]
pub struct Listener {
    pub backlog: u32,
    /// Handshakes in SYN-RECEIVED for this port.
    pub half_open: u32,
    pub accept_queue: VecDeque<ConnId>,
    /// Where accepted connections' buffers come from (a host application's
    /// region); engine-owned buffers when `None`.
    pub buffers: Option<std::sync::Arc<dyn crate::app::BufferSource>>,
    /// Congestion control of the connections it accepts.
    pub cc: crate::proto::CcAlgorithm,
}

impl Listener {
    pub fn new(backlog: u32, cc: crate::proto::CcAlgorithm) -> Self {
        Self {
            backlog,
            half_open: 0,
            accept_queue: VecDeque::new(),
            buffers: None,
            cc,
        }
    }

    fn full(&self) -> bool {
        self.half_open as usize + self.accept_queue.len() >= self.backlog as usize
    }

    /// Accepted connections fill the whole backlog: the application is
    /// not accepting, and neither SYNs nor cookie ACKs are taken.
    fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() >= self.backlog as usize
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Control-plane state.
#[derive(Debug)]
pub struct ControlPlane {
    pub arp: ArpCache,
    pub listeners: FastMap<u16, Listener>,
    pub handshakes: FastMap<FourTuple, Handshake>,
    pub time_wait: FastMap<FourTuple, TimeWait>,
    /// Secret for RFC 6528 initial sequence numbers.
    isn_secret: [u8; 32],
    /// SYN cookies, and when the last one was sent (failed cookie ACKs are
    /// counted only while cookies are in use).
    pub cookies: SynCookies,
    pub last_cookie_at: Option<u64>,
    /// Cookies answered per second at most (`tcp.syn_cookie_rate`).
    pub cookie_budget: CookieBudget,
    next_ephemeral: u16,
    /// Challenge ACKs sent in the current one-second window (RFC 5961 7).
    challenge_window_start: u64,
    challenge_count: u32,
}

/// Challenge ACKs allowed per second, engine-wide.
const CHALLENGE_ACK_LIMIT: u32 = 1000;

impl ControlPlane {
    pub fn new(seed: u64) -> Self {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut isn_secret = [0u8; 32];
        rng.fill_bytes(&mut isn_secret);
        let mut cookie_secret = [0u8; 32];
        rng.fill_bytes(&mut cookie_secret);
        Self {
            arp: ArpCache::default(),
            listeners: Default::default(),
            handshakes: Default::default(),
            time_wait: Default::default(),
            isn_secret,
            cookies: SynCookies::new(cookie_secret),
            last_cookie_at: None,
            cookie_budget: CookieBudget::new(0),
            next_ephemeral: 49152 + (rng.next_u32() % 16384) as u16,
            challenge_window_start: 0,
            challenge_count: 0,
        }
    }

    /// RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock.
    pub fn isn(&self, tuple: &FourTuple, now: u64) -> u32 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.isn_secret);
        h.update(tuple.local_ip.octets());
        h.update(tuple.local_port.to_be_bytes());
        h.update(tuple.remote_ip.octets());
        h.update(tuple.remote_port.to_be_bytes());
        let d = h.finalize();
        let f = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        f.wrapping_add((now / 4000) as u32)
    }

    /// Whether another challenge ACK may go out now.
    pub fn challenge_allowed(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.challenge_window_start) >= 1_000_000_000 {
            self.challenge_window_start = now;
            self.challenge_count = 0;
        }
        self.challenge_count += 1;
        self.challenge_count <= CHALLENGE_ACK_LIMIT
    }

    /// Candidate ephemeral ports (49152..=65535), starting after the last
    /// one used; the caller picks the first free one and commits it.
    pub fn next_ephemeral_candidate(&self) -> impl Iterator<Item = u16> {
        let start = self.next_ephemeral;
        (0..16384u32).map(move |i| 49152 + ((start as u32 - 49152 + i) % 16384) as u16)
    }

    pub fn commit_ephemeral(&mut self, port: u16) {
        self.next_ephemeral = if port == u16::MAX { 49152 } else { port + 1 };
    }
}

impl Engine {
    /// The exception path: a packet `pre` could not handle.
    pub(crate) fn exception(&mut self, parsed: &IngressFrame<'_>, frame: &[u8]) {
        match &parsed.l3 {
            L3::Arp(arp) => self.on_arp(arp),
            L3::Ipv4 {
                ip,
                l4: L4::Icmp(icmp),
            } => self.on_icmp(&parsed.eth, ip, icmp),
            L3::Ipv4 {
                ip,
                l4: L4::Tcp(tcp),
            } => {
                let tuple = FourTuple {
                    local_ip: ip.dst,
                    local_port: tcp.dst_port,
                    remote_ip: ip.src,
                    remote_port: tcp.src_port,
                };
                let remote_mac = parsed.eth.src;
                if let Some(flow) = self.pre.lookup(&tuple) {
                    self.on_installed_exception(flow, tcp);
                } else if self.ctrl.handshakes.contains_key(&tuple) {
                    self.on_handshake_segment(tuple, remote_mac, tcp, frame);
                } else if self.ctrl.time_wait.contains_key(&tuple) {
                    self.on_time_wait_segment(tuple, remote_mac, tcp, frame);
                } else if tcp.flags.contains(TcpFlags::SYN) && !tcp.flags.contains(TcpFlags::ACK) {
                    self.on_syn(tuple, remote_mac, tcp);
                } else if self.ctrl.listeners.contains_key(&tuple.local_port)
                    && tcp.flags.contains(TcpFlags::ACK)
                    && !tcp.flags.contains(TcpFlags::SYN)
                    && !tcp.flags.contains(TcpFlags::RST)
                    && self.on_cookie_ack(tuple, remote_mac, tcp, frame)
                {
                    // A connection completed from a SYN cookie.
                } else if self.ctrl.listeners.contains_key(&tuple.local_port)
                    && !tcp.flags.contains(TcpFlags::ACK)
                {
                    // LISTEN (RFC 9293 3.10.7.2): a RST is ignored (it is
                    // for a connection that is gone: counted as such, e.g.
                    // the RSTs a peer sends for our data still in flight
                    // after it aborted), an ACK is reset (below), anything
                    // else without ACK is malformed.
                    self.stats.drop(if tcp.flags.contains(TcpFlags::RST) {
                        DropReason::NoConnection
                    } else {
                        DropReason::BadFlags
                    });
                } else {
                    self.stats.drop(DropReason::NoConnection);
                    self.reset_unknown(tuple, remote_mac, tcp);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
