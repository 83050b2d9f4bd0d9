//! The RDMA transport of the DMA engine: the DPU and the host connected
//! by one RC queue pair, payload and ring entries moved with RDMA WRITE and
//! READ between registered DPU memory and the application's registered
//! region, ring indices as small inline WRITEs. [`RdmaDma`] implements
//! [`DmaEngine`] over any [`Verbs`]; everything above the verbs calls
//! (splitting a wrapping copy, send-queue accounting, completions to tags,
//! failures) is tested here with emulated completions (`emulated.rs`).
//! `ibverbs.rs` (feature `rdma`) is the verbs layer over rdma-core; it
//! builds in CI, and runs only where an RDMA device exists (none here:
//! docs/dma.md says what is untested).

mod verbs;

#[cfg(test)]
mod emulated;
#[cfg(feature = "rdma")]
pub mod ibverbs;

pub use verbs::{LocalData, RdmaOpcode, Verbs, WorkCompletion, WorkRequest};

use super::{DmaDir, DmaEngine, DmaOp, HostBuffer, HostRef};
use doca_bindings::Region;
use std::collections::HashMap;

/// A host memory range as the RDMA connection names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteRange {
    pub addr: u64,
    pub rkey: u32,
    pub len: usize,
}

/// How DPU-side objects map onto the RDMA address space: where an
/// application's buffer or region is on the host (registered by the host
/// side, its address and key sent at registration), and which memory
/// region covers DPU-local bytes (the packet buffer pool and the ring
/// staging areas, registered at start).
pub trait Translate: Send {
    fn remote_buffer(&self, buf: &HostBuffer) -> Option<RemoteRange>;
    fn remote_region(&self, region: &Region) -> Option<RemoteRange>;
    fn lkey(&self, addr: *const u8, len: usize) -> Option<u32>;
}

/// What the engine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RdmaStats {
    pub submitted: u64,
    pub completed: u64,
    pub work_requests: u64,
    /// Copies that failed (no translation, a refused post, an error
    /// completion): reported complete so nothing waits forever, counted
    /// here and logged; the data did not move.
    pub failed: u64,
}

/// A copy in flight: its work requests not yet completed.
struct InFlight {
    /// Keeps the host memory and the op's view alive until completion.
    _op: DmaOp,
    tag: u64,
    remaining: u32,
    failed: bool,
}

/// [`DmaEngine`] over an RDMA queue pair.
pub struct RdmaDma<V: Verbs, T: Translate> {
    verbs: V,
    translate: T,
    in_flight: HashMap<u64, InFlight>,
    next_id: u64,
    /// Work requests posted and not completed (the send queue's use).
    posted: usize,
    /// Copies that failed before posting: reported at the next poll.
    failed_now: Vec<u64>,
    completions: Vec<WorkCompletion>,
    stats: RdmaStats,
    /// Tags of failed copies, until `take_failed`.
    failed_tags: Vec<u64>,
}

impl<V: Verbs, T: Translate> std::fmt::Debug for RdmaDma<V, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdmaDma")
            .field("in_flight", &self.in_flight.len())
            .field("posted", &self.posted)
            .field("stats", &self.stats)
            .finish()
    }
}

/// One piece of a copy: remote address, local bytes.
type Piece = (u64, LocalData);

impl<V: Verbs, T: Translate> RdmaDma<V, T> {
    pub fn new(verbs: V, translate: T) -> Self {
        Self {
            verbs,
            translate,
            in_flight: HashMap::new(),
            next_id: 0,
            posted: 0,
            failed_now: Vec::new(),
            completions: Vec::new(),
            stats: RdmaStats::default(),
            failed_tags: Vec::new(),
        }
    }

    pub fn stats(&self) -> RdmaStats {
        self.stats
    }

    /// The work requests an op needs (a copy that wraps around the end of
    /// a circular buffer is two), with the remote key; None when the
    /// memory is not registered.
    fn pieces(&self, op: &DmaOp) -> Option<(u32, [Option<Piece>; 2])> {
        let (local, len) = op.local();
        match op.host() {
            HostRef::Index(region, offset, value) => {
                let r = self.translate.remote_region(region)?;
                (offset + 4 <= r.len).then_some(())?;
                let mut bytes = [0u8; 8];
                bytes[..4].copy_from_slice(&value.to_ne_bytes());
                let piece = (r.addr + offset as u64, LocalData::Inline { bytes, len: 4 });
                Some((r.rkey, [Some(piece), None]))
            }
            HostRef::Region(region, offset) => {
                let r = self.translate.remote_region(region)?;
                (offset.checked_add(len)? <= r.len).then_some(())?;
                let lkey = self.translate.lkey(local, len)?;
                let data = LocalData::Registered {
                    addr: local as u64,
                    len: u32::try_from(len).ok()?,
                    lkey,
                };
                Some((r.rkey, [Some((r.addr + offset as u64, data)), None]))
            }
            HostRef::Buffer(buf, pos) => {
                let r = self.translate.remote_buffer(buf)?;
                let size = buf.len();
                (size > 0 && len <= size && r.len >= size).then_some(())?;
                let lkey = self.translate.lkey(local, len)?;
                let at = pos as usize & (size - 1);
                let first = len.min(size - at);
                let piece = |remote: usize, local_off: usize, n: usize| {
                    (
                        r.addr + remote as u64,
                        LocalData::Registered {
                            addr: local as u64 + local_off as u64,
                            len: n as u32,
                            lkey,
                        },
                    )
                };
                let second = (len > first).then(|| piece(0, first, len - first));
                Some((r.rkey, [Some(piece(at, 0, first)), second]))
            }
        }
    }

    fn fail(&mut self, op: &DmaOp, why: &str) {
        tracing::error!(tag = op.tag(), len = op.len(), "rdma: copy failed: {why}");
        self.stats.failed += 1;
        self.failed_now.push(op.tag());
        self.failed_tags.push(op.tag());
    }
}

impl<V: Verbs, T: Translate> DmaEngine for RdmaDma<V, T> {
    fn submit(&mut self, op: DmaOp) -> Result<(), DmaOp> {
        let Some((rkey, pieces)) = self.pieces(&op) else {
            self.fail(
                &op,
                "host or local memory not registered, or out of its range",
            );
            self.stats.submitted += 1;
            return Ok(());
        };
        let n = pieces.iter().flatten().count();
        if self.posted + n > self.verbs.max_send_wr() {
            return Err(op);
        }
        let opcode = match op.dir() {
            DmaDir::ToHost => RdmaOpcode::Write,
            DmaDir::FromHost => RdmaOpcode::Read,
        };
        let id = self.next_id;
        self.next_id += 1;
        let mut posted = 0;
        for (remote_addr, local) in pieces.into_iter().flatten() {
            let wr = WorkRequest {
                wr_id: id,
                opcode,
                local,
                remote_addr,
                rkey,
            };
            if let Err(why) = self.verbs.post_send(&wr) {
                tracing::error!(tag = op.tag(), "rdma: post_send refused: {why}");
                break;
            }
            posted += 1;
        }
        self.stats.submitted += 1;
        self.stats.work_requests += posted as u64;
        self.posted += posted;
        if posted == 0 {
            self.fail(&op, "nothing posted");
            return Ok(());
        }
        let tag = op.tag();
        self.in_flight.insert(
            id,
            InFlight {
                _op: op,
                tag,
                remaining: posted as u32,
                failed: posted < n,
            },
        );
        Ok(())
    }

    fn poll(&mut self, done: &mut Vec<u64>) -> usize {
        let first = done.len();
        done.append(&mut self.failed_now);
        if !self.in_flight.is_empty() {
            self.completions.clear();
            let max = self.posted.max(1);
            self.verbs.poll_cq(&mut self.completions, max);
            for wc in &self.completions {
                let Some(f) = self.in_flight.get_mut(&wc.wr_id) else {
                    continue;
                };
                self.posted -= 1;
                f.remaining -= 1;
                if let Err(status) = wc.status {
                    tracing::error!(tag = f.tag, status, "rdma: work request failed");
                    f.failed = true;
                }
                if f.remaining == 0 {
                    let f = self.in_flight.remove(&wc.wr_id).expect("present");
                    if f.failed {
                        self.stats.failed += 1;
                        self.failed_tags.push(f.tag);
                    }
                    done.push(f.tag);
                }
            }
        }
        let n = done.len() - first;
        self.stats.completed += n as u64;
        n
    }

    fn take_failed(&mut self, failed: &mut Vec<u64>) {
        failed.append(&mut self.failed_tags);
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len() + self.failed_now.len()
    }
}
