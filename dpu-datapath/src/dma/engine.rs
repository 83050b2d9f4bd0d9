//! The DMA engine the `dma` stage submits payload copies to. On a BlueField
//! the Arm cores cannot store to host memory: every byte crosses PCIe as a
//! DMA transfer that completes later, possibly out of order. The data path
//! is written against that shape (submit, keep going, poll completions),
//! and [`EmulatedDma`] gives it a DPU's behaviour here: a completion
//! latency, a bound on copies in flight, and reordering on demand. The
//! copy itself happens when the completion is reported, as a device's
//! write lands before its completion and not at submit: a stage that
//! published data before its completion would show stale bytes. With no
//! latency (benchmarks, single-threaded tests of the host interface) the
//! copy happens at submit and the completion comes at the next poll.
//!
//! This is one of the edge modules where `unsafe` is allowed: an op holds
//! a raw view of the packet buffer it copies to or from, which the
//! submitter keeps alive and untouched until the completion.

use super::HostBuffer;
use doca_bindings::Region;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Which way a copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaDir {
    /// Packet buffer -> the application's buffer (received payload).
    ToHost,
    /// The application's buffer -> packet buffer (payload to send).
    FromHost,
}

/// Where in host memory a copy goes to or comes from.
#[derive(Debug)]
enum HostMem {
    /// A position in a circular payload buffer (wrapping).
    Buffer { buf: Arc<HostBuffer>, pos: u32 },
    /// A byte range of an application's region (ring entries).
    Region { region: Arc<Region>, offset: usize },
    /// A ring index: a 32-bit store the host reads with acquire ordering.
    Index {
        region: Arc<Region>,
        offset: usize,
        value: u32,
    },
}

/// A view of where a copy goes in host memory.
#[derive(Debug, Clone, Copy)]
pub enum HostRef<'a> {
    /// A circular payload buffer, at a position (wrapping).
    Buffer(&'a HostBuffer, u32),
    /// An application's region, at an offset.
    Region(&'a Arc<Region>, usize),
    /// A ring index of a region, at an offset, and the value to store.
    Index(&'a Arc<Region>, usize, u32),
}

/// One copy between DPU-local memory (a packet buffer, staged ring
/// entries) and host memory.
#[derive(Debug)]
pub struct DmaOp {
    dir: DmaDir,
    host: HostMem,
    local: NonNull<u8>,
    len: usize,
    tag: u64,
}

// SAFETY: the op's only non-Send part is the view of local memory, which
// its constructor's contract hands to the engine until completion,
// whatever thread the engine runs on.
unsafe impl Send for DmaOp {}

impl DmaOp {
    /// A copy of `local` to `host` at `pos` (wrapping), reported as `tag`.
    ///
    /// # Safety
    /// `local` must stay valid and unwritten until the engine reports `tag`
    /// complete or is dropped.
    pub unsafe fn to_host(host: Arc<HostBuffer>, pos: u32, local: &[u8], tag: u64) -> Self {
        Self {
            dir: DmaDir::ToHost,
            host: HostMem::Buffer { buf: host, pos },
            len: local.len(),
            local: NonNull::from(local).cast(),
            tag,
        }
    }

    /// A copy of `local.len()` bytes at `pos` of `host` (wrapping) into
    /// `local`, reported as `tag`.
    ///
    /// # Safety
    /// `local` must stay valid, and nobody else may read or write it, until
    /// the engine reports `tag` complete or is dropped.
    pub unsafe fn from_host(host: Arc<HostBuffer>, pos: u32, local: &mut [u8], tag: u64) -> Self {
        Self {
            dir: DmaDir::FromHost,
            host: HostMem::Buffer { buf: host, pos },
            len: local.len(),
            local: NonNull::from(local).cast(),
            tag,
        }
    }

    /// A copy of `local` into `region` at `offset` (bounds-checked when it
    /// runs: an out-of-range copy writes nothing).
    ///
    /// # Safety
    /// As [`DmaOp::to_host`].
    pub unsafe fn to_region(region: Arc<Region>, offset: usize, local: &[u8], tag: u64) -> Self {
        Self {
            dir: DmaDir::ToHost,
            host: HostMem::Region { region, offset },
            len: local.len(),
            local: NonNull::from(local).cast(),
            tag,
        }
    }

    /// A copy of `local.len()` bytes of `region` at `offset` into `local`
    /// (bounds-checked when it runs: out of range, `local` is zeroed).
    ///
    /// # Safety
    /// As [`DmaOp::from_host`].
    pub unsafe fn from_region(
        region: Arc<Region>,
        offset: usize,
        local: &mut [u8],
        tag: u64,
    ) -> Self {
        Self {
            dir: DmaDir::FromHost,
            host: HostMem::Region { region, offset },
            len: local.len(),
            local: NonNull::from(local).cast(),
            tag,
        }
    }

    /// The ring index at `offset` of `region` set to `value` (a release
    /// store, as the host reads indices with acquire): needs no local
    /// memory, so it is safe to build.
    pub fn store_index(region: Arc<Region>, offset: usize, value: u32, tag: u64) -> Self {
        Self {
            dir: DmaDir::ToHost,
            host: HostMem::Index {
                region,
                offset,
                value,
            },
            local: NonNull::dangling(),
            len: 4,
            tag,
        }
    }

    pub fn dir(&self) -> DmaDir {
        self.dir
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The DPU-side bytes of a copy to host memory (engines that stage
    /// them, as DOCA job engines do).
    pub(super) fn local_bytes(&self) -> &[u8] {
        if matches!(self.host, HostMem::Index { .. }) || self.dir != DmaDir::ToHost {
            return &[];
        }
        // SAFETY: the constructor's contract keeps `local` valid and
        // unwritten until the completion, which has not been reported.
        unsafe { std::slice::from_raw_parts(self.local.as_ptr(), self.len) }
    }

    /// Whether the copy brings host bytes into the DPU-side buffer (which
    /// the engine must then fill whole).
    pub(super) fn fetches(&self) -> bool {
        self.dir == DmaDir::FromHost && !matches!(self.host, HostMem::Index { .. })
    }

    /// Writes fetched bytes into the DPU-side buffer of a copy from host
    /// memory, at `at` (engines that stage, as DOCA job engines do);
    /// ignored for other ops. False, nothing written, when out of range.
    pub(super) fn fill_local(&self, at: usize, bytes: &[u8]) -> bool {
        if !self.fetches() {
            return true;
        }
        let Some(end) = at.checked_add(bytes.len()).filter(|&e| e <= self.len) else {
            return false;
        };
        // SAFETY: the constructor's contract gives the engine `local`
        // (nobody else reads or writes it) until the completion; the range
        // is inside it (checked).
        let local = unsafe { std::slice::from_raw_parts_mut(self.local.as_ptr(), self.len) };
        local[at..end].copy_from_slice(bytes);
        true
    }

    /// Where in host memory the copy goes (engines that translate it, as
    /// the RDMA one does, into a remote address).
    pub fn host(&self) -> HostRef<'_> {
        match &self.host {
            HostMem::Buffer { buf, pos } => HostRef::Buffer(buf, *pos),
            HostMem::Region { region, offset } => HostRef::Region(region, *offset),
            HostMem::Index {
                region,
                offset,
                value,
            } => HostRef::Index(region, *offset, *value),
        }
    }

    /// The DPU-side bytes (address, length): dangling for an index store,
    /// which carries its value.
    pub fn local(&self) -> (*mut u8, usize) {
        (self.local.as_ptr(), self.len)
    }

    /// Performs the copy, as the device does; the engine calls it once,
    /// just before it reports the completion (or at submit, when the
    /// memory is DPU-local and needs no device).
    pub(super) fn execute(&self) {
        if let HostMem::Index {
            region,
            offset,
            value,
        } = &self.host
        {
            if let Some(index) = region.atomic_u32(*offset) {
                index.store(*value, Ordering::Release);
            }
            return;
        }
        match self.dir {
            DmaDir::ToHost => {
                // SAFETY: the constructor's contract keeps `local` valid
                // and unwritten until completion, which has not been
                // reported yet.
                let local = unsafe { std::slice::from_raw_parts(self.local.as_ptr(), self.len) };
                match &self.host {
                    // The range is the one `proto` assigned to this
                    // segment (see `dma::place_rx`).
                    HostMem::Buffer { buf, pos } => super::place_rx(buf, *pos, local),
                    HostMem::Region { region, offset } => {
                        let _ = region.write(*offset, local);
                    }
                    HostMem::Index { .. } => {}
                }
            }
            DmaDir::FromHost => {
                // SAFETY: as above, and nobody else touches `local` before
                // the completion.
                let local =
                    unsafe { std::slice::from_raw_parts_mut(self.local.as_ptr(), self.len) };
                match &self.host {
                    // Unacknowledged data (see `dma::fetch_tx`).
                    HostMem::Buffer { buf, pos } => super::fetch_tx_into(buf, *pos, local),
                    HostMem::Region { region, offset } => {
                        if region.read(*offset, local).is_err() {
                            local.fill(0);
                        }
                    }
                    HostMem::Index { .. } => {}
                }
            }
        }
    }
}

/// A DMA engine as the data path sees it: `submit` queues, `poll` makes
/// progress and reports completions by tag.
pub trait DmaEngine: Send {
    /// Queues `op`, or gives it back when the engine has as many copies in
    /// flight as it takes (back-pressure: poll, then retry).
    fn submit(&mut self, op: DmaOp) -> Result<(), DmaOp>;
    /// Appends the tags of the copies completed since the last poll, in
    /// completion order (which need not be submission order).
    fn poll(&mut self, done: &mut Vec<u64>) -> usize;
    /// Appends the tags of copies that failed (the bytes did not move),
    /// each once, at its completion or earlier; [`DmaEngine::poll`]
    /// reports them done as any other. Engines whose copies cannot fail
    /// report none.
    fn take_failed(&mut self, _failed: &mut Vec<u64>) {}
    /// Copies submitted and not reported yet.
    fn in_flight(&self) -> usize;
    /// Copies land when submitted (only their completions wait for a
    /// poll): what a ring needs to know to wake the application at once.
    fn lands_at_submit(&self) -> bool {
        false
    }
}

/// The emulated engine's behaviour (`host.dma_*` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaConfig {
    /// Time from submit to completion; 0 copies at submit and completes at
    /// the next poll.
    pub latency_ns: u64,
    /// Copies in flight at most (at least 1).
    pub max_outstanding: usize,
    /// Complete copies out of submission order: each copy's latency is
    /// drawn from `0..=2 * latency_ns`, and copies completing in the same
    /// poll are reported shuffled.
    pub reorder: bool,
    /// Seed of the reordering.
    pub seed: u64,
    /// The job-based engine path (`JobDma` over CPU copies, the shape of
    /// DOCA DMA) instead of the emulated engine; latency and reordering
    /// do not apply to it.
    pub jobs: bool,
    /// Fault injection (tests): every `fail_every`-th copy fails, its
    /// bytes not moved, and is reported as failed; 0 never.
    pub fail_every: u64,
}

impl Default for DmaConfig {
    /// About a PCIe round trip, as on a DPU.
    fn default() -> Self {
        Self {
            latency_ns: 1_000,
            max_outstanding: 256,
            reorder: false,
            seed: 1,
            jobs: false,
            fail_every: 0,
        }
    }
}

impl DmaConfig {
    /// The engine this configuration describes.
    pub fn engine(&self) -> Box<dyn DmaEngine> {
        if self.jobs {
            Box::new(super::JobDma::new(doca_bindings::MemcpyDma::new(
                self.max_outstanding.max(2),
            )))
        } else {
            Box::new(EmulatedDma::new(*self))
        }
    }

    /// No latency and no reordering (benchmarks of the data path itself).
    pub fn immediate() -> Self {
        Self {
            latency_ns: 0,
            ..Self::default()
        }
    }
}

/// What an engine has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaStats {
    pub submitted: u64,
    pub completed: u64,
    pub bytes: u64,
    /// Submits refused because the engine was full.
    pub full: u64,
    /// Copies failed by fault injection.
    pub failed: u64,
}

/// The DPU's DMA engine emulated with CPU copies (see the module docs).
#[derive(Debug)]
pub struct EmulatedDma {
    cfg: DmaConfig,
    /// (due time in ns since `epoch`, op, whether it fails), in
    /// submission order.
    pending: VecDeque<(u64, DmaOp, bool)>,
    epoch: Instant,
    rng: u64,
    stats: DmaStats,
    /// Tags of failed copies, until `take_failed`.
    failed: Vec<u64>,
}

impl EmulatedDma {
    pub fn new(cfg: DmaConfig) -> Self {
        let cfg = DmaConfig {
            max_outstanding: cfg.max_outstanding.max(1),
            ..cfg
        };
        Self {
            pending: VecDeque::with_capacity(cfg.max_outstanding.min(4096)),
            epoch: Instant::now(),
            rng: cfg.seed | 1,
            cfg,
            stats: DmaStats::default(),
            failed: Vec::new(),
        }
    }

    pub fn config(&self) -> &DmaConfig {
        &self.cfg
    }

    pub fn stats(&self) -> DmaStats {
        self.stats
    }

    fn now(&self) -> u64 {
        if self.cfg.latency_ns == 0 {
            0
        } else {
            self.epoch.elapsed().as_nanos() as u64
        }
    }

    /// xorshift64*.
    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl DmaEngine for EmulatedDma {
    fn submit(&mut self, op: DmaOp) -> Result<(), DmaOp> {
        if self.pending.len() >= self.cfg.max_outstanding {
            self.stats.full += 1;
            return Err(op);
        }
        let latency = if self.cfg.reorder && self.cfg.latency_ns > 0 {
            self.next_random() % (2 * self.cfg.latency_ns + 1)
        } else {
            self.cfg.latency_ns
        };
        let due = self.now() + latency;
        self.stats.submitted += 1;
        let fails =
            self.cfg.fail_every > 0 && self.stats.submitted.is_multiple_of(self.cfg.fail_every);
        if fails {
            // Reported failed at its completion; its bytes never move.
            self.stats.failed += 1;
            self.failed.push(op.tag());
        } else if self.cfg.latency_ns == 0 {
            // Immediate mode: the bytes land now, the completion comes at
            // the next poll.
            op.execute();
        }
        self.pending.push_back((due, op, fails));
        Ok(())
    }

    fn poll(&mut self, done: &mut Vec<u64>) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let now = self.now();
        let first = done.len();
        if self.cfg.reorder {
            let mut i = 0;
            while i < self.pending.len() {
                if self.pending[i].0 <= now {
                    let (_, op, fails) = self.pending.swap_remove_back(i).expect("index in range");
                    if self.cfg.latency_ns > 0 && !fails {
                        op.execute();
                    }
                    self.stats.bytes += op.len() as u64;
                    done.push(op.tag());
                } else {
                    i += 1;
                }
            }
            // Shuffle what completed together (Fisher-Yates).
            for k in (first + 1..done.len()).rev() {
                let j = first + (self.next_random() % (k - first + 1) as u64) as usize;
                done.swap(k, j);
            }
        } else {
            // Same latency for every copy: due times are in submission order.
            while self.pending.front().is_some_and(|(due, ..)| *due <= now) {
                let (_, op, fails) = self.pending.pop_front().expect("front exists");
                if self.cfg.latency_ns > 0 && !fails {
                    op.execute();
                }
                self.stats.bytes += op.len() as u64;
                done.push(op.tag());
            }
        }
        let n = done.len() - first;
        self.stats.completed += n as u64;
        n
    }

    fn take_failed(&mut self, failed: &mut Vec<u64>) {
        failed.append(&mut self.failed);
    }

    fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn lands_at_submit(&self) -> bool {
        self.cfg.latency_ns == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(len: usize) -> Arc<HostBuffer> {
        Arc::new(HostBuffer::new(len))
    }

    fn read(h: &HostBuffer, pos: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        super::super::app_read(h, pos, &mut out);
        out
    }

    fn poll_until(dma: &mut EmulatedDma, want: usize) -> Vec<u64> {
        let mut done = Vec::new();
        let start = Instant::now();
        while done.len() < want {
            dma.poll(&mut done);
            assert!(start.elapsed().as_secs() < 5, "completions never came");
        }
        done
    }

    #[test]
    fn the_copy_lands_at_completion_not_at_submit() {
        let h = host(64);
        let data = *b"payload!";
        let latency = std::time::Duration::from_millis(2);
        let mut dma = EmulatedDma::new(DmaConfig {
            latency_ns: latency.as_nanos() as u64,
            ..DmaConfig::default()
        });
        // SAFETY: `data` outlives the engine's use of it (polled below).
        let op = unsafe { DmaOp::to_host(h.clone(), 60, &data, 7) };
        let submitted = Instant::now();
        dma.submit(op).unwrap();
        assert_eq!(read(&h, 60, 8), [0; 8], "nothing before completion");
        let mut done = Vec::new();
        let early = dma.poll(&mut done);
        // The engine's due time is at least `latency` after `submitted`:
        // a poll that returned within it read an earlier clock. (A thread
        // preempted for longer, as under qemu on a loaded machine, polls
        // after the due time and may complete it; nothing to check then.)
        if submitted.elapsed() < latency {
            assert_eq!(early, 0, "not yet due");
        }
        let done = if early == 0 {
            poll_until(&mut dma, 1)
        } else {
            done
        };
        assert_eq!(done, [7]);
        assert_eq!(read(&h, 60, 8), data, "wrapped around the end");
        assert_eq!(dma.in_flight(), 0);

        let mut back = [0u8; 8];
        // SAFETY: `back` is not touched until the completion below.
        let op = unsafe { DmaOp::from_host(h.clone(), 60, &mut back, 8) };
        dma.submit(op).unwrap();
        assert_eq!(poll_until(&mut dma, 1), [8]);
        assert_eq!(back, data);
        let s = dma.stats();
        assert_eq!((s.submitted, s.completed, s.bytes), (2, 2, 16));
    }

    #[test]
    fn a_full_engine_gives_the_op_back() {
        let h = host(16);
        let data = [1u8; 4];
        let mut dma = EmulatedDma::new(DmaConfig {
            latency_ns: 0,
            max_outstanding: 1,
            ..DmaConfig::default()
        });
        // SAFETY: `data` outlives the engine.
        let (a, b) = unsafe {
            (
                DmaOp::to_host(h.clone(), 0, &data, 1),
                DmaOp::to_host(h.clone(), 4, &data, 2),
            )
        };
        dma.submit(a).unwrap();
        let b = dma.submit(b).expect_err("full at one copy");
        assert_eq!(b.tag(), 2);
        assert_eq!(poll_until(&mut dma, 1), [1]);
        dma.submit(b).unwrap();
        assert_eq!(poll_until(&mut dma, 1), [2]);
        assert_eq!(dma.stats().full, 1);
    }

    #[test]
    fn reordering_completes_out_of_submission_order() {
        let h = host(4096);
        let data = [9u8; 16];
        let mut dma = EmulatedDma::new(DmaConfig {
            latency_ns: 20_000,
            max_outstanding: 64,
            reorder: true,
            seed: 42,
            jobs: false,
            fail_every: 0,
        });
        for tag in 0..64u64 {
            // SAFETY: `data` outlives the engine.
            let op = unsafe { DmaOp::to_host(h.clone(), tag as u32 * 16, &data, tag) };
            dma.submit(op).unwrap();
        }
        let done = poll_until(&mut dma, 64);
        let mut sorted = done.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..64).collect::<Vec<_>>(), "each exactly once");
        assert_ne!(done, sorted, "some completed out of order");
        assert_eq!(read(&h, 0, 1024), vec![9u8; 1024]);
    }
}
