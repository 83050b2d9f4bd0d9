//! [`DocaDma`]: [`DmaEngine`] over DOCA DMA memcpy tasks and a progress
//! engine. UNTESTED (no SDK or BlueField here); see docs/doca.md.
//!
//! Shape: one `doca_dev` (opened by PCI address), one progress engine, one
//! DMA context with `capacity` memcpy tasks, a buffer inventory, and a
//! DPU-local staging area of `capacity` slots of `slot_size` bytes
//! registered as a local `doca_mmap`. Each host region is a remote `doca_mmap`
//! created from the export descriptor the host sent
//! ([`DocaDma::register_host_region`]). A job copies between its staging
//! slot and the host range: `ToHost` copies `data` into the slot and DMAs
//! slot -> host; `FromHost` DMAs host -> slot and copies the slot into the
//! returned `Vec`. Completions are collected by the task callbacks during
//! `doca_pe_progress` and turned into [`DmaCompletion`]s by `poll`.
//!
//! On the DPU a [`Region`] is a stand-in for the host region: its length
//! bounds every job and its identity (`Arc` pointer) selects the remote mmap;
//! its own bytes are not used.

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use super::sys::*;
use crate::dma::{DmaCompletion, DmaEngine, DmaError, DmaJob};
use crate::region::{OutOfBounds, Region};

fn describe(e: doca_error_t) -> String {
    // SAFETY: doca_error_get_descr takes any code and returns a static
    // NUL-terminated string or null.
    let p = unsafe { doca_error_get_descr(e) };
    if p.is_null() {
        return format!("DOCA error {e}");
    }
    // SAFETY: non-null, static, NUL-terminated (DOCA's contract).
    let s = unsafe { CStr::from_ptr(p) };
    format!("{} ({e})", s.to_string_lossy())
}

fn check(e: doca_error_t, what: &str) -> Result<(), DmaError> {
    if e == DOCA_SUCCESS {
        Ok(())
    } else {
        Err(DmaError::Device(format!("{what}: {}", describe(e))))
    }
}

/// What a task callback reports: the task's slot and its status.
#[derive(Clone, Copy)]
struct Finished {
    slot: u64,
    status: doca_error_t,
}

/// Written only by [`memcpy_done`] during `doca_pe_progress`, read only by
/// `poll`/`drop` between progress calls. `finished` has capacity for every
/// slot, so the callback never allocates.
struct CbState {
    finished: Vec<Finished>,
}

/// Completion and error callback of every memcpy task.
unsafe extern "C" fn memcpy_done(
    task: *mut doca_dma_task_memcpy,
    task_user_data: doca_data,
    ctx_user_data: doca_data,
) {
    // SAFETY: DOCA passes the task it completed (owned by us again from
    // here); we read its status and free it, never touching it afterwards.
    let status = unsafe {
        let t = doca_dma_task_memcpy_as_task(task);
        let status = doca_task_get_status(t);
        doca_task_free(t);
        status
    };
    // SAFETY: the ctx user data is the `CbState` set in `open`, alive until
    // the context is destroyed; no Rust reference to it exists while
    // doca_pe_progress runs (see `poll` and `drop`). The task user data is
    // the u64 slot set in `submit` (bindgen names the union's `u64` field
    // `u64_`).
    unsafe {
        let st = ctx_user_data.ptr.cast::<CbState>();
        let slot = task_user_data.u64_;
        let finished = &mut (*st).finished;
        if finished.len() < finished.capacity() {
            finished.push(Finished { slot, status });
        }
    }
}

enum Kind {
    ToHost(Vec<u8>),
    FromHost(usize),
}

struct InFlight {
    user: u64,
    kind: Kind,
    region: *const Region,
    src: *mut doca_buf,
    dst: *mut doca_buf,
}

struct Remote {
    /// Keeps the region alive so its address (the map key) is never reused
    /// by another region while registered.
    _region: Arc<Region>,
    mmap: *mut doca_mmap,
    host_addr: u64,
    in_flight: usize,
}

/// A DOCA DMA engine (see the module docs).
pub struct DocaDma {
    dev: *mut doca_dev,
    inv: *mut doca_buf_inventory,
    local: *mut doca_mmap,
    pe: *mut doca_pe,
    dma: *mut doca_dma,
    ctx: *mut doca_ctx,
    cb: NonNull<CbState>,
    scratch: Vec<Finished>,
    staging: NonNull<u8>,
    staging_layout: std::alloc::Layout,
    slot_size: usize,
    slots: Vec<Option<InFlight>>,
    free: Vec<u32>,
    remotes: HashMap<*const Region, Remote>,
    ready: Vec<DmaCompletion>,
}

// SAFETY: the DOCA objects and raw pointers are owned by this value and only
// used through `&mut self` (or in drop), so moving it to another thread is
// fine; DOCA progress engines are single-threaded, not thread-affine.
unsafe impl Send for DocaDma {}

impl fmt::Debug for DocaDma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocaDma")
            .field("capacity", &self.slots.len())
            .field("slot_size", &self.slot_size)
            .field("in_flight", &self.in_flight())
            .field("host_regions", &self.remotes.len())
            .finish()
    }
}

impl DocaDma {
    /// Opens the DOCA device at `pci_addr` (e.g. `"03:00.0"`) and sets up a
    /// DMA context with `capacity` tasks of at most `slot_size` bytes each.
    pub fn open(pci_addr: &str, capacity: u32, slot_size: usize) -> Result<DocaDma, DmaError> {
        let bad = |m: String| Err(DmaError::Device(m));
        if capacity == 0 || slot_size == 0 {
            return bad("capacity and slot_size must be non-zero".into());
        }
        let total = (capacity as usize).checked_mul(slot_size);
        let Some(layout) = total.and_then(|t| std::alloc::Layout::from_size_align(t, 4096).ok())
        else {
            return bad(format!("{capacity} slots of {slot_size} bytes overflow"));
        };
        // SAFETY: non-zero size (both factors are non-zero).
        let staging = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
            .ok_or_else(|| DmaError::Device("staging allocation failed".into()))?;
        let cb = NonNull::from(Box::leak(Box::new(CbState {
            finished: Vec::with_capacity(capacity as usize),
        })));
        // From here on, `Drop` releases whatever was set up.
        let mut me = DocaDma {
            dev: ptr::null_mut(),
            inv: ptr::null_mut(),
            local: ptr::null_mut(),
            pe: ptr::null_mut(),
            dma: ptr::null_mut(),
            ctx: ptr::null_mut(),
            cb,
            scratch: Vec::with_capacity(capacity as usize),
            staging,
            staging_layout: layout,
            slot_size,
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().collect(),
            remotes: HashMap::new(),
            ready: Vec::new(),
        };
        me.dev = open_device(pci_addr, slot_size)?;

        // SAFETY: every call gets objects created just above and still
        // alive, and out-pointers to locals/fields.
        unsafe {
            check(
                doca_buf_inventory_create(2 * capacity as usize, &mut me.inv),
                "doca_buf_inventory_create",
            )?;
            check(doca_buf_inventory_start(me.inv), "doca_buf_inventory_start")?;

            check(doca_mmap_create(&mut me.local), "doca_mmap_create")?;
            check(
                doca_mmap_set_memrange(me.local, staging.as_ptr().cast(), layout.size()),
                "doca_mmap_set_memrange",
            )?;
            check(doca_mmap_add_dev(me.local, me.dev), "doca_mmap_add_dev")?;
            check(
                doca_mmap_set_permissions(me.local, DOCA_ACCESS_FLAG_LOCAL_READ_WRITE),
                "doca_mmap_set_permissions",
            )?;
            check(doca_mmap_start(me.local), "doca_mmap_start")?;

            check(doca_pe_create(&mut me.pe), "doca_pe_create")?;
            check(doca_dma_create(me.dev, &mut me.dma), "doca_dma_create")?;
            me.ctx = doca_dma_as_ctx(me.dma);
            if me.ctx.is_null() {
                return bad("doca_dma_as_ctx returned null".into());
            }
            check(doca_pe_connect_ctx(me.pe, me.ctx), "doca_pe_connect_ctx")?;
            check(
                doca_dma_task_memcpy_set_conf(
                    me.dma,
                    Some(memcpy_done),
                    Some(memcpy_done),
                    capacity,
                ),
                "doca_dma_task_memcpy_set_conf",
            )?;
            check(
                doca_ctx_set_user_data(
                    me.ctx,
                    doca_data {
                        ptr: cb.as_ptr().cast(),
                    },
                ),
                "doca_ctx_set_user_data",
            )?;
            let e = doca_ctx_start(me.ctx);
            if e == DOCA_ERROR_IN_PROGRESS {
                me.progress_until(DOCA_CTX_STATE_RUNNING)?;
            } else {
                check(e, "doca_ctx_start")?;
            }
        }
        Ok(me)
    }

    /// Drives the progress engine until the context reaches `want` (bounded).
    fn progress_until(&mut self, want: doca_ctx_states) -> Result<(), DmaError> {
        for _ in 0..1_000_000 {
            let mut state: doca_ctx_states = DOCA_CTX_STATE_IDLE;
            // SAFETY: ctx alive; out-pointer to a local.
            let e = unsafe { doca_ctx_get_state(self.ctx, &mut state) };
            check(e, "doca_ctx_get_state")?;
            if state == want {
                return Ok(());
            }
            // SAFETY: pe alive; the callbacks only touch `*self.cb`, which is
            // not borrowed here.
            unsafe { doca_pe_progress(self.pe) };
        }
        Err(DmaError::Device(format!(
            "DMA context did not reach state {want}"
        )))
    }

    /// Makes the host region behind `region` reachable: `export_desc` is the
    /// host's `doca_mmap_export_pci` descriptor and `host_addr` the host
    /// virtual address of its first byte (both sent over the control
    /// channel). `region.len()` bounds every job on it. Replaces an earlier
    /// registration of the same region if no job on it is in flight.
    pub fn register_host_region(
        &mut self,
        region: Arc<Region>,
        export_desc: &[u8],
        host_addr: u64,
    ) -> Result<(), DmaError> {
        if host_addr.checked_add(region.len() as u64).is_none() {
            return Err(DmaError::Device(format!(
                "host range {host_addr:#x}+{} overflows",
                region.len()
            )));
        }
        let key = Arc::as_ptr(&region);
        if self.remotes.contains_key(&key) {
            self.unregister_host_region(&region)?;
        }
        let mut mmap: *mut doca_mmap = ptr::null_mut();
        // SAFETY: the descriptor bytes are valid for the call; dev alive;
        // out-pointer to a local. DOCA copies what it needs.
        let e = unsafe {
            doca_mmap_create_from_export(
                ptr::null(),
                export_desc.as_ptr().cast(),
                export_desc.len(),
                self.dev,
                &mut mmap,
            )
        };
        check(e, "doca_mmap_create_from_export")?;
        self.remotes.insert(
            key,
            Remote {
                _region: region,
                mmap,
                host_addr,
                in_flight: 0,
            },
        );
        Ok(())
    }

    /// Forgets a host region; fails while jobs on it are in flight.
    pub fn unregister_host_region(&mut self, region: &Arc<Region>) -> Result<(), DmaError> {
        let key = Arc::as_ptr(region);
        match self.remotes.get(&key) {
            None => return Ok(()),
            Some(r) if r.in_flight > 0 => {
                return Err(DmaError::Device(format!(
                    "{} DMA jobs on this host region are in flight",
                    r.in_flight
                )))
            }
            Some(_) => {}
        }
        if let Some(r) = self.remotes.remove(&key) {
            // SAFETY: created by doca_mmap_create_from_export, no buffer of
            // it is outstanding (in_flight == 0).
            unsafe { doca_mmap_destroy(r.mmap) };
        }
        Ok(())
    }

    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: slot < capacity, so the offset is inside the staging area.
        unsafe { self.staging.as_ptr().add(slot as usize * self.slot_size) }
    }

    fn fail(&mut self, user: u64, e: DmaError) {
        self.ready.push(DmaCompletion {
            user,
            result: Err(e),
        });
    }

    fn release(&self, bufs: [*mut doca_buf; 2]) {
        for b in bufs {
            if !b.is_null() {
                let mut refs: u16 = 0;
                // SAFETY: a buffer we got from the inventory and still own.
                unsafe { doca_buf_dec_refcount(b, &mut refs) };
            }
        }
    }

    /// Retires a task reported by the callback.
    fn retire(&mut self, f: Finished) -> Option<DmaCompletion> {
        let slot = u32::try_from(f.slot).ok()?;
        let job = self.slots.get_mut(slot as usize)?.take()?;
        self.release([job.src, job.dst]);
        if let Some(r) = self.remotes.get_mut(&job.region) {
            r.in_flight -= 1;
        }
        self.free.push(slot);
        let result = if f.status != DOCA_SUCCESS {
            Err(DmaError::Device(describe(f.status)))
        } else {
            match job.kind {
                Kind::ToHost(mut data) => {
                    data.clear();
                    Ok(data)
                }
                Kind::FromHost(len) => {
                    let mut out = vec![0u8; len];
                    // SAFETY: the slot holds `len <= slot_size` bytes the
                    // device finished writing (task completed); `out` is a
                    // distinct allocation.
                    unsafe { ptr::copy_nonoverlapping(self.slot_ptr(slot), out.as_mut_ptr(), len) };
                    Ok(out)
                }
            }
        };
        Some(DmaCompletion {
            user: job.user,
            result,
        })
    }

    fn take_finished(&mut self) {
        self.scratch.clear();
        // SAFETY: no progress call is running, so nothing else accesses the
        // callback state; both vectors keep `capacity` elements of room.
        unsafe { std::mem::swap(&mut self.scratch, &mut (*self.cb.as_ptr()).finished) };
    }
}

/// Opens the device at `pci_addr` if it can do DMA memcpy of `slot_size`.
fn open_device(pci_addr: &str, slot_size: usize) -> Result<*mut doca_dev, DmaError> {
    let want = CString::new(pci_addr)
        .map_err(|_| DmaError::Device(format!("bad PCI address {pci_addr:?}")))?;
    let mut list: *mut *mut doca_devinfo = ptr::null_mut();
    let mut n: u32 = 0;
    // SAFETY: out-pointers to locals.
    let e = unsafe { doca_devinfo_create_list(&mut list, &mut n) };
    check(e, "doca_devinfo_create_list")?;
    let mut result = Err(DmaError::Device(format!(
        "no DOCA device with DMA memcpy at PCI address {pci_addr}"
    )));
    for i in 0..n as usize {
        // SAFETY: the list holds `n` devinfo pointers until destroyed below.
        let info = unsafe { *list.add(i) };
        let mut equal: u8 = 0;
        // SAFETY: info from the list, `want` NUL-terminated, out-pointer local.
        let e = unsafe { doca_devinfo_is_equal_pci_addr(info, want.as_ptr(), &mut equal) };
        if e != DOCA_SUCCESS || equal == 0 {
            continue;
        }
        // SAFETY: info from the list.
        if unsafe { doca_dma_cap_task_memcpy_is_supported(info) } != DOCA_SUCCESS {
            continue;
        }
        let mut max: u64 = 0;
        // SAFETY: info from the list, out-pointer local.
        let e = unsafe { doca_dma_cap_task_memcpy_get_max_buf_size(info, &mut max) };
        if e == DOCA_SUCCESS && (slot_size as u64) > max {
            result = Err(DmaError::Device(format!(
                "slot_size {slot_size} exceeds the device's DMA limit of {max} bytes"
            )));
            break;
        }
        let mut dev: *mut doca_dev = ptr::null_mut();
        // SAFETY: info from the list, out-pointer local.
        result = check(unsafe { doca_dev_open(info, &mut dev) }, "doca_dev_open").map(|()| dev);
        break;
    }
    // SAFETY: the list from doca_devinfo_create_list; opened devs stay valid.
    unsafe { doca_devinfo_destroy_list(list) };
    result
}

impl DmaEngine for DocaDma {
    fn submit(&mut self, job: DmaJob) -> Result<(), DmaError> {
        if self.in_flight() >= self.slots.len() || self.free.is_empty() {
            return Err(DmaError::QueueFull);
        }
        let (region, offset, len, user) = match &job {
            DmaJob::ToHost {
                region,
                offset,
                data,
                user,
            } => (region, *offset, data.len(), *user),
            DmaJob::FromHost {
                region,
                offset,
                len,
                user,
            } => (region, *offset, *len, *user),
        };
        match offset.checked_add(len) {
            Some(end) if end <= region.len() => {}
            _ => {
                let e = OutOfBounds {
                    offset,
                    len,
                    region: region.len(),
                };
                self.fail(user, DmaError::OutOfBounds(e));
                return Ok(());
            }
        }
        if len > self.slot_size {
            let m = format!("job of {len} bytes exceeds slot_size {}", self.slot_size);
            self.fail(user, DmaError::Device(m));
            return Ok(());
        }
        let key = Arc::as_ptr(region);
        let Some(remote) = self.remotes.get(&key) else {
            let m = "region not registered with DocaDma::register_host_region".to_string();
            self.fail(user, DmaError::Device(m));
            return Ok(());
        };
        if len == 0 {
            let result = match job {
                DmaJob::ToHost { data, .. } => Ok(data),
                DmaJob::FromHost { .. } => Ok(Vec::new()),
            };
            self.ready.push(DmaCompletion { user, result });
            return Ok(());
        }
        let (remote_mmap, host) = (remote.mmap, remote.host_addr + offset as u64);
        // A host virtual address, meaningful to DOCA only: no provenance.
        let host_ptr = ptr::without_provenance_mut::<c_void>(host as usize);
        let slot = *self.free.last().expect("checked non-empty above");
        let local_ptr = self.slot_ptr(slot).cast::<c_void>();

        let mut src: *mut doca_buf = ptr::null_mut();
        let mut dst: *mut doca_buf = ptr::null_mut();
        let kind = match job {
            DmaJob::ToHost { data, .. } => {
                // SAFETY: the slot is free (no task uses it) and holds
                // slot_size >= len bytes; `data` is a distinct allocation.
                unsafe { ptr::copy_nonoverlapping(data.as_ptr(), local_ptr.cast::<u8>(), len) };
                // SAFETY: inventory and mmaps started; ranges inside their
                // mmaps (slot inside staging; host range bounded by the
                // region length the host exported).
                let e = unsafe {
                    let e = buf_get_by_data(self.inv, self.local, local_ptr, len, &mut src);
                    if e != DOCA_SUCCESS {
                        e
                    } else {
                        buf_get_by_addr(self.inv, remote_mmap, host_ptr, len, &mut dst)
                    }
                };
                if let Err(err) = check(e, "doca_buf_inventory_buf_get_by_args") {
                    self.release([src, dst]);
                    return Err(err);
                }
                Kind::ToHost(data)
            }
            DmaJob::FromHost { .. } => {
                // SAFETY: as above, with source and destination swapped.
                let e = unsafe {
                    let e = buf_get_by_data(self.inv, remote_mmap, host_ptr, len, &mut src);
                    if e != DOCA_SUCCESS {
                        e
                    } else {
                        buf_get_by_addr(self.inv, self.local, local_ptr, len, &mut dst)
                    }
                };
                if let Err(err) = check(e, "doca_buf_inventory_buf_get_by_args") {
                    self.release([src, dst]);
                    return Err(err);
                }
                Kind::FromHost(len)
            }
        };

        let mut task: *mut doca_dma_task_memcpy = ptr::null_mut();
        // SAFETY: dma started; src/dst are live buffers we own; the task
        // user data is the slot number.
        let e = unsafe {
            doca_dma_task_memcpy_alloc_init(
                self.dma,
                src,
                dst,
                doca_data { u64_: slot as u64 },
                &mut task,
            )
        };
        if let Err(err) = check(e, "doca_dma_task_memcpy_alloc_init") {
            self.release([src, dst]);
            return Err(err);
        }
        // SAFETY: a task just allocated and initialised.
        let e = unsafe { doca_task_submit(doca_dma_task_memcpy_as_task(task)) };
        if let Err(err) = check(e, "doca_task_submit") {
            // SAFETY: not submitted, so still ours to free.
            unsafe { doca_task_free(doca_dma_task_memcpy_as_task(task)) };
            self.release([src, dst]);
            return Err(err);
        }
        self.free.pop();
        self.slots[slot as usize] = Some(InFlight {
            user,
            kind,
            region: key,
            src,
            dst,
        });
        if let Some(r) = self.remotes.get_mut(&key) {
            r.in_flight += 1;
        }
        Ok(())
    }

    fn poll(&mut self, done: &mut Vec<DmaCompletion>) -> usize {
        let mut n = self.ready.len();
        done.append(&mut self.ready);
        let busy = self.slots.len() - self.free.len();
        if busy > 0 {
            for _ in 0..=busy {
                // SAFETY: pe alive; the callbacks only touch `*self.cb`, which
                // nothing borrows during the call.
                if unsafe { doca_pe_progress(self.pe) } == 0 {
                    break;
                }
            }
        }
        self.take_finished();
        let finished = std::mem::take(&mut self.scratch);
        for &f in &finished {
            if let Some(c) = self.retire(f) {
                done.push(c);
                n += 1;
            }
        }
        self.scratch = finished;
        n
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len() + self.ready.len()
    }
}

impl Drop for DocaDma {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            // SAFETY: ctx alive. Stopping flushes in-flight tasks through the
            // error callback while we progress.
            let e = unsafe { doca_ctx_stop(self.ctx) };
            let stopped = if e == DOCA_ERROR_IN_PROGRESS {
                self.progress_until(DOCA_CTX_STATE_IDLE).is_ok()
            } else {
                true
            };
            if !stopped || self.slots.len() != self.free.len() {
                // Retire what the flush reported; anything still in flight
                // may be written by the device, so then leak everything
                // rather than free memory under a DMA.
                let mut sink = Vec::new();
                self.poll(&mut sink);
            }
            if !stopped || self.slots.len() != self.free.len() {
                return;
            }
        }
        // SAFETY: each object was created in `open` (non-null
        // checked), is destroyed once, in the order the DOCA samples use
        // (context stopped, then dma, pe, mmaps, inventory, device); no task
        // or buffer is outstanding.
        unsafe {
            if !self.dma.is_null() {
                doca_dma_destroy(self.dma);
            }
            if !self.pe.is_null() {
                doca_pe_destroy(self.pe);
            }
            for (_, r) in self.remotes.drain() {
                doca_mmap_destroy(r.mmap);
            }
            if !self.local.is_null() {
                doca_mmap_stop(self.local);
                doca_mmap_destroy(self.local);
            }
            if !self.inv.is_null() {
                doca_buf_inventory_destroy(self.inv);
            }
            if !self.dev.is_null() {
                doca_dev_close(self.dev);
            }
            drop(Box::from_raw(self.cb.as_ptr()));
            std::alloc::dealloc(self.staging.as_ptr(), self.staging_layout);
        }
    }
}
