//! A registered host application as the front sees it: its region, one
//! request/event ring pair and doorbell per context, what is waiting to be
//! posted to each context, and its members: the process that registered
//! and those forked from it, each with its own contexts.

use super::link::AppKey;
use super::slots::SlotPool;
use crate::dma::{DmaConfig, EventRing, RequestRing};
use doca_bindings::abi::{self, Desc, Layout};
use doca_bindings::{Doorbell, Region, RingError};
use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One process of an application: the one that registered (its key is
/// the application's) or one forked from it (the key of its own control
/// connection).
pub type MemberKey = u64;

/// One context (an application thread's ring pair), read and written
/// through DMA as on a DPU (`crate::dma::{RequestRing, EventRing}`).
#[derive(Debug)]
pub struct HostCtx {
    pub requests: RequestRing,
    pub events: EventRing,
    /// None for a context kept for a forked process that has not joined.
    pub bell: Option<Doorbell>,
    /// The process using it (None: free, kept for a fork).
    pub member: Option<MemberKey>,
    /// Its member joined: its rings are polled.
    pub live: bool,
    /// Replies and notices not yet posted (posted before connection
    /// events, in order).
    pub messages: VecDeque<Desc>,
    /// Connections with news for this context, each listed once.
    pub dirty: VecDeque<u64>,
    /// Events were posted since the last doorbell check.
    pub posted: bool,
    waiting_offset: usize,
}

impl HostCtx {
    /// Context `i` of `layout` for `member`, its rings at index 0 (not
    /// live until its process joined).
    fn new(
        region: &Arc<Region>,
        layout: Layout,
        i: u32,
        member: MemberKey,
        dma: &DmaConfig,
    ) -> Result<Self, RingError> {
        // Each ring has its own DMA queue (as a DOCA context per ring).
        let engine = |salt: u64| {
            DmaConfig {
                seed: dma.seed ^ member.wrapping_mul(0x9e37_79b9) ^ salt,
                ..*dma
            }
            .engine()
        };
        Ok(HostCtx {
            requests: RequestRing::new(
                region.clone(),
                layout.request_ring(i),
                engine(2 * u64::from(i)),
            )?,
            events: EventRing::new(
                region.clone(),
                layout.event_ring(i),
                engine(2 * u64::from(i) + 1),
            )?,
            bell: None,
            member: Some(member),
            live: false,
            messages: VecDeque::new(),
            dirty: VecDeque::new(),
            posted: false,
            waiting_offset: layout.app_waiting_offset(i),
        })
    }

    /// Rings the application's doorbell if a thread sleeps on it.
    pub fn notify(&mut self, region: &Region) {
        if !std::mem::take(&mut self.posted) {
            return;
        }
        fence(Ordering::SeqCst);
        if let Some(flag) = region.atomic_u32(self.waiting_offset) {
            if flag.load(Ordering::SeqCst) != 0 {
                flag.store(0, Ordering::SeqCst);
                if let Some(bell) = &self.bell {
                    let _ = bell.ring();
                }
            }
        }
    }
}

/// Who registered: the front's key, the name and pid it gave.
#[derive(Debug, Clone)]
pub struct AppInfo {
    pub key: AppKey,
    pub name: String,
    pub pid: u32,
}

/// A process forked from a member, between its parent's `fork` request
/// and its `join` (its holdings are already counted).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    pub token: u64,
    pub ctx: u16,
    pub since: Instant,
}

/// A registered application.
#[derive(Debug)]
pub struct HostApp {
    pub key: AppKey,
    pub name: String,
    pub pid: u32,
    pub region: Arc<Region>,
    pub layout: Layout,
    pub slots: SlotPool,
    pub ctxs: Vec<HostCtx>,
    pub dpu_bell: Doorbell,
    /// Closed for a protocol violation: no longer polled.
    pub dead: bool,
    /// Forked processes announced by `fork`, not joined yet.
    pub tickets: Vec<Ticket>,
}

impl HostApp {
    /// Builds the front's view of a region the service created (rings at
    /// index 0, header written): the registering process has the first
    /// `ctx_bells.len()` contexts, the rest of the layout's are kept for
    /// its forks.
    pub fn new(
        AppInfo { key, name, pid }: AppInfo,
        region: Arc<Region>,
        layout: Layout,
        ctx_bells: Vec<Doorbell>,
        dpu_bell: Doorbell,
        dma: &DmaConfig,
    ) -> Result<Self, RingError> {
        // Only the granted contexts are set up now: those kept for forks
        // are, when a fork reserves one (`reserve_ctx`).
        let mut ctxs = Vec::with_capacity(ctx_bells.len());
        for (i, bell) in ctx_bells.into_iter().enumerate() {
            let mut c = HostCtx::new(&region, layout, i as u32, key, dma)?;
            c.bell = Some(bell);
            c.live = true;
            ctxs.push(c);
        }
        Ok(Self {
            key,
            name,
            pid,
            slots: SlotPool::new(region.clone(), layout),
            region,
            layout,
            ctxs,
            dpu_bell,
            dead: false,
            tickets: Vec::new(),
        })
    }

    /// The member using context `ctx`, if it joined.
    pub fn member_of(&self, ctx: u16) -> Option<MemberKey> {
        self.ctxs
            .get(ctx as usize)
            .filter(|c| c.live)
            .and_then(|c| c.member)
    }

    /// The first context of `member` (where its listeners' notices go).
    pub fn first_ctx_of(&self, member: MemberKey) -> Option<u16> {
        self.ctxs
            .iter()
            .position(|c| c.member == Some(member))
            .map(|i| i as u16)
    }

    /// Live members (joined processes).
    pub fn members(&self) -> Vec<MemberKey> {
        let mut m: Vec<MemberKey> = self
            .ctxs
            .iter()
            .filter(|c| c.live)
            .filter_map(|c| c.member)
            .collect();
        m.dedup();
        m
    }

    /// Reserves a free context for a forked process: its rings start
    /// empty (the application's indices are zeroed too: a previous user of
    /// the context is gone, and the new one starts at 0).
    pub fn reserve_ctx(&mut self, member: MemberKey, dma: &DmaConfig) -> Option<u16> {
        let i = match self.ctxs.iter().position(|c| c.member.is_none()) {
            Some(i) => i,
            None if self.ctxs.len() < self.layout.contexts as usize => self.ctxs.len(),
            None => return None,
        };
        let l = self.layout;
        let (req, evt) = (l.request_ring(i as u32), l.event_ring(i as u32));
        for off in [req.head, evt.tail, l.app_waiting_offset(i as u32)] {
            self.region.atomic_u32(off)?.store(0, Ordering::SeqCst);
        }
        let c = HostCtx::new(&self.region, l, i as u32, member, dma).ok()?;
        if i == self.ctxs.len() {
            self.ctxs.push(c);
        } else {
            self.ctxs[i] = c;
        }
        Some(i as u16)
    }

    /// `member`'s contexts become free again (it left).
    pub fn release_member(&mut self, member: MemberKey) {
        for c in self.ctxs.iter_mut().filter(|c| c.member == Some(member)) {
            c.member = None;
            c.live = false;
            c.bell = None;
            c.messages.clear();
            c.dirty.clear();
        }
    }

    /// Sets or clears `dpu_sleeping` in the region.
    pub fn set_dpu_sleeping(&self, on: bool) {
        if let Some(flag) = self.region.atomic_u32(self.layout.dpu_sleeping_offset()) {
            flag.store(u32::from(on), Ordering::SeqCst);
        }
    }

    /// Requests waiting on any live context (errors count as work: the
    /// front's next pass reports them).
    pub fn has_requests(&mut self) -> bool {
        !self.dead
            && self
                .ctxs
                .iter_mut()
                .filter(|c| c.live)
                .any(|c| c.requests.pending().map(|n| n > 0).unwrap_or(true))
    }

    /// Ring reads or writes in flight on any live context (they complete
    /// within microseconds: the front must not sleep on them).
    pub fn dma_in_flight(&self) -> bool {
        !self.dead
            && self
                .ctxs
                .iter()
                .filter(|c| c.live)
                .any(|c| c.requests.in_flight() || c.events.in_flight())
    }
}

/// A fatal-event descriptor for a violation.
pub fn fatal(reason: u64) -> Desc {
    Desc {
        op: abi::EV_FATAL,
        status: -libc::EPROTO,
        a: reason,
        ..Desc::default()
    }
}
