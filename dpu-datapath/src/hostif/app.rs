//! A registered host application as the front sees it: its region, one
//! request/event ring pair and doorbell per context, and what is waiting
//! to be posted to each context.

use super::link::AppKey;
use super::slots::SlotPool;
use crate::dma::{DmaConfig, EventRing, RequestRing};
use doca_bindings::abi::{self, Desc, Layout};
use doca_bindings::{Doorbell, Region, RingError};
use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

/// One context (an application thread's ring pair), read and written
/// through DMA as on a DPU (`crate::dma::{RequestRing, EventRing}`).
#[derive(Debug)]
pub struct HostCtx {
    pub requests: RequestRing,
    pub events: EventRing,
    pub bell: Doorbell,
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
    /// Rings the application's doorbell if a thread sleeps on it.
    pub fn notify(&mut self, region: &Region) {
        if !std::mem::take(&mut self.posted) {
            return;
        }
        fence(Ordering::SeqCst);
        if let Some(flag) = region.atomic_u32(self.waiting_offset) {
            if flag.load(Ordering::SeqCst) != 0 {
                flag.store(0, Ordering::SeqCst);
                let _ = self.bell.ring();
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
}

impl HostApp {
    /// Builds the front's view of a region the service created (rings at
    /// index 0, header written).
    pub fn new(
        AppInfo { key, name, pid }: AppInfo,
        region: Arc<Region>,
        layout: Layout,
        ctx_bells: Vec<Doorbell>,
        dpu_bell: Doorbell,
        dma: &DmaConfig,
    ) -> Result<Self, RingError> {
        let mut ctxs = Vec::with_capacity(ctx_bells.len());
        // Each ring has its own DMA queue (as a DOCA context per ring).
        let engine = |salt: u64| {
            DmaConfig {
                seed: dma.seed ^ key.wrapping_mul(0x9e37_79b9) ^ salt,
                ..*dma
            }
            .engine()
        };
        for (i, bell) in ctx_bells.into_iter().enumerate() {
            let i = i as u32;
            ctxs.push(HostCtx {
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
                bell,
                messages: VecDeque::new(),
                dirty: VecDeque::new(),
                posted: false,
                waiting_offset: layout.app_waiting_offset(i),
            });
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
        })
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
                .any(|c| c.requests.pending().map(|n| n > 0).unwrap_or(true))
    }

    /// Ring reads or writes in flight on any live context (they complete
    /// within microseconds: the front must not sleep on them).
    pub fn dma_in_flight(&self) -> bool {
        !self.dead
            && self
                .ctxs
                .iter()
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
