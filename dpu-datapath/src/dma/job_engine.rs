//! A job-based engine of `doca-bindings` as the data path's [`DmaEngine`]:
//! `DocaDma` (feature `doca`: DOCA DMA memcpy tasks on a BlueField, with
//! its own registered staging slots) and `MemcpyDma` (CPU copies, which is
//! how the adapter is tested here). Those engines address host memory as
//! (region, offset) and move owned buffers, so each op becomes one job, or
//! two when it wraps around a circular buffer; the bytes of a copy to the
//! host are staged into the job, and the bytes a job fetched are written
//! into the op's buffer when it completes. Failures are reported complete
//! (nothing waits forever), logged, counted and reported failed
//! (`take_failed`), among them a fetch that brought fewer bytes than the
//! op's length (the rest of its buffer would go out stale). A buffer in no
//! application region is DPU memory (a DPU-resident service's): copied
//! locally at submit.

#![cfg_attr(not(test), forbid(unsafe_code))]

use super::{DmaEngine, DmaOp, HostRef};
use doca_bindings::{DmaCompletion, DmaEngine as JobEngine, DmaError, DmaJob, Region};
use std::collections::HashMap;
use std::sync::Arc;

/// An op waiting for its jobs.
struct Waiting {
    op: DmaOp,
    remaining: u8,
    failed: bool,
    /// Where each part's bytes start in the op's buffer.
    local_at: [usize; 2],
    /// Bytes the fetch jobs wrote into the op's buffer.
    filled: usize,
}

/// [`DmaEngine`] over a job-based engine `E`.
pub struct JobDma<E: JobEngine> {
    engine: E,
    waiting: HashMap<u64, Waiting>,
    next: u64,
    /// Jobs the engine had no room for yet (the second part of an op).
    deferred: Vec<DmaJob>,
    /// Ops that failed before submitting, or were local copies made at
    /// once: reported at the next poll.
    failed_now: Vec<u64>,
    /// Copies to DPU-local buffers, made at submit.
    pub local: u64,
    completions: Vec<DmaCompletion>,
    /// Copies that failed (logged).
    pub failed: u64,
    /// Tags of failed copies not yet taken (`take_failed`).
    failed_tags: Vec<u64>,
}

impl<E: JobEngine> std::fmt::Debug for JobDma<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobDma")
            .field("waiting", &self.waiting.len())
            .field("failed", &self.failed)
            .field("local", &self.local)
            .finish()
    }
}

/// One job of an op: its region, offset, where its bytes are in the op's
/// buffer, and how many.
type Part = (Arc<Region>, usize, usize, usize);

impl<E: JobEngine> JobDma<E> {
    pub fn new(engine: E) -> Self {
        Self {
            engine,
            waiting: HashMap::new(),
            next: 0,
            deferred: Vec::new(),
            failed_now: Vec::new(),
            completions: Vec::new(),
            failed: 0,
            failed_tags: Vec::new(),
            local: 0,
        }
    }

    /// The jobs' targets: one part, or two when the copy wraps around the
    /// end of a circular buffer; None when the buffer's region is unknown.
    fn parts(op: &DmaOp) -> Option<[Option<Part>; 2]> {
        let len = op.len();
        match op.host() {
            HostRef::Region(region, offset) | HostRef::Index(region, offset, _) => {
                Some([Some((region.clone(), offset, 0, len)), None])
            }
            HostRef::Buffer(buf, pos) => {
                let (region, home) = buf.home()?;
                let size = buf.len();
                if size == 0 || len > size {
                    return None;
                }
                let at = pos as usize & (size - 1);
                let first = len.min(size - at);
                let second = (len > first).then(|| (region.clone(), home, first, len - first));
                Some([Some((region.clone(), home + at, 0, first)), second])
            }
        }
    }

    fn job(op: &DmaOp, (region, offset, at, n): Part, user: u64) -> DmaJob {
        match op.host() {
            HostRef::Index(_, _, value) => DmaJob::ToHost {
                region,
                offset,
                data: value.to_ne_bytes().to_vec(),
                user,
            },
            _ if op.dir() == super::DmaDir::ToHost => DmaJob::ToHost {
                region,
                offset,
                data: op.local_bytes()[at..at + n].to_vec(),
                user,
            },
            _ => DmaJob::FromHost {
                region,
                offset,
                len: n,
                user,
            },
        }
    }
}

impl<E: JobEngine> DmaEngine for JobDma<E> {
    fn submit(&mut self, op: DmaOp) -> Result<(), DmaOp> {
        if let HostRef::Buffer(buf, _) = op.host() {
            if buf.home().is_none() {
                // A buffer in no application region is DPU memory (a
                // DPU-resident service's): a local copy, no device.
                op.execute();
                self.failed_now.push(op.tag());
                self.local += 1;
                return Ok(());
            }
        }
        let Some(parts) = Self::parts(&op) else {
            tracing::error!(tag = op.tag(), "dma: no region known for the host buffer");
            self.failed += 1;
            self.failed_tags.push(op.tag());
            self.failed_now.push(op.tag());
            return Ok(());
        };
        if !self.deferred.is_empty() {
            return Err(op);
        }
        let id = self.next;
        let mut jobs = parts
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| Self::job(&op, p.clone(), id << 1 | i as u64));
        let first = jobs.next().expect("at least one part");
        match self.engine.submit(first) {
            Ok(()) => {}
            Err(DmaError::QueueFull) => return Err(op),
            Err(e) => {
                tracing::error!(tag = op.tag(), "dma: submit failed: {e}");
                self.failed += 1;
                self.failed_tags.push(op.tag());
                self.failed_now.push(op.tag());
                return Ok(());
            }
        }
        let mut remaining = 1;
        let mut failed = false;
        for job in jobs {
            match self.engine.submit_job_or_defer(job, &mut self.deferred) {
                // A deferred job is retried at the next poll.
                Ok(()) | Err(DmaError::QueueFull) => remaining += 1,
                Err(e) => {
                    tracing::error!(tag = op.tag(), "dma: submit failed: {e}");
                    failed = true;
                }
            }
        }
        self.next += 1;
        let local_at = [0, parts[1].as_ref().map_or(0, |p| p.2)];
        self.waiting.insert(
            id,
            Waiting {
                op,
                remaining,
                failed,
                local_at,
                filled: 0,
            },
        );
        Ok(())
    }

    fn poll(&mut self, done: &mut Vec<u64>) -> usize {
        let first = done.len();
        done.append(&mut self.failed_now);
        self.completions.clear();
        while let Some(job) = self.deferred.pop() {
            let user = job.user();
            match self.engine.submit_job_or_defer(job, &mut self.deferred) {
                Ok(()) => {}
                Err(DmaError::QueueFull) => break,
                // Completes the op as failed below.
                Err(e) => self.completions.push(DmaCompletion {
                    user,
                    result: Err(e),
                }),
            }
        }
        self.engine.poll(&mut self.completions);
        for c in self.completions.drain(..) {
            let (id, part) = (c.user >> 1, (c.user & 1) as usize);
            let Some(w) = self.waiting.get_mut(&id) else {
                continue;
            };
            match &c.result {
                Ok(fetched) => {
                    if w.op.fill_local(w.local_at[part], fetched) {
                        w.filled += fetched.len();
                    } else {
                        tracing::error!(tag = w.op.tag(), "dma: job fetched out of range");
                        w.failed = true;
                    }
                }
                Err(e) => {
                    tracing::error!(tag = w.op.tag(), "dma: job failed: {e}");
                    w.failed = true;
                }
            }
            w.remaining -= 1;
            if w.remaining == 0 {
                let mut w = self.waiting.remove(&id).expect("present");
                if w.op.fetches() && w.filled != w.op.len() {
                    tracing::error!(
                        tag = w.op.tag(),
                        filled = w.filled,
                        len = w.op.len(),
                        "dma: fetch came back short"
                    );
                    w.failed = true;
                }
                if w.failed {
                    self.failed += 1;
                    self.failed_tags.push(w.op.tag());
                }
                done.push(w.op.tag());
            }
        }
        done.len() - first
    }

    fn take_failed(&mut self, failed: &mut Vec<u64>) {
        failed.append(&mut self.failed_tags);
    }

    fn in_flight(&self) -> usize {
        self.waiting.len() + self.failed_now.len()
    }
}

/// Submitting with a place to put the job back when the engine is full.
trait SubmitOrDefer {
    fn submit_job_or_defer(
        &mut self,
        job: DmaJob,
        deferred: &mut Vec<DmaJob>,
    ) -> Result<(), DmaError>;
}

impl<E: JobEngine> SubmitOrDefer for E {
    fn submit_job_or_defer(
        &mut self,
        job: DmaJob,
        deferred: &mut Vec<DmaJob>,
    ) -> Result<(), DmaError> {
        // The engine drops a job it refuses, so keep a copy to retry.
        let retry = match &job {
            DmaJob::ToHost {
                region,
                offset,
                data,
                user,
            } => DmaJob::ToHost {
                region: region.clone(),
                offset: *offset,
                data: data.clone(),
                user: *user,
            },
            DmaJob::FromHost {
                region,
                offset,
                len,
                user,
            } => DmaJob::FromHost {
                region: region.clone(),
                offset: *offset,
                len: *len,
                user: *user,
            },
        };
        match self.submit(job) {
            Err(DmaError::QueueFull) => {
                deferred.push(retry);
                Err(DmaError::QueueFull)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::ring_tests::{event_ring_case, request_ring_case};
    use crate::dma::{Copy, DmaDir, DmaQueue, HostBuffer};
    use crate::io::Frame;
    use doca_bindings::MemcpyDma;

    fn engine(capacity: usize) -> Box<dyn DmaEngine> {
        Box::new(JobDma::new(MemcpyDma::new(capacity.max(2))))
    }

    #[test]
    fn event_ring_over_job_engine() {
        event_ring_case(&|_, outstanding, _| engine(outstanding));
    }

    #[test]
    fn request_ring_over_job_engine() {
        request_ring_case(&|_, outstanding, _| engine(outstanding));
    }

    /// Payload both ways through a buffer that lives in a region, wrapping
    /// (two jobs per copy), through a queue of two jobs.
    #[test]
    fn payload_in_a_region_wraps_both_ways() {
        let region = Arc::new(Region::create("job-dma", 4096).unwrap());
        let base = region.as_ptr();
        let keep: Arc<dyn std::any::Any + Send + Sync> = region.clone();
        // SAFETY: 256 bytes at offset 1024 lie inside the region, which
        // `keep` holds.
        let host = unsafe { HostBuffer::external(base.add(1024), 256, keep) }
            .with_home(region.clone(), 1024);
        let host = Arc::new(host);
        let mut q: DmaQueue<u32> = DmaQueue::new(engine(2));
        let mut back = Vec::new();
        for i in 0..50u32 {
            let mut f = Frame::new();
            f.extend_from_slice(&[i as u8; 40]);
            let to = Copy {
                dir: DmaDir::ToHost,
                host: host.clone(),
                pos: i * 40,
                at: 0,
                len: 40,
            };
            q.push(Some(f), i, Some(to), &mut |_, _, _| {});
            q.drain(&mut |_, _, _| {});
            let mut g = Frame::new();
            g.resize_zeroed(48);
            let from = Copy {
                dir: DmaDir::FromHost,
                host: host.clone(),
                pos: i * 40,
                at: 8,
                len: 40,
            };
            q.push(Some(g), i, Some(from), &mut |f, j, _| back.push((j, f)));
            q.drain(&mut |f, j, _| back.push((j, f)));
        }
        assert_eq!(back.len(), 50);
        for (j, f) in back {
            assert_eq!(f.expect("frame")[8..], [j as u8; 40], "copy {j}");
        }
    }

    /// A job engine whose fetches come back one byte short.
    struct ShortFetch(MemcpyDma);

    impl JobEngine for ShortFetch {
        fn submit(&mut self, job: DmaJob) -> Result<(), DmaError> {
            self.0.submit(job)
        }
        fn poll(&mut self, done: &mut Vec<DmaCompletion>) -> usize {
            let first = done.len();
            let n = self.0.poll(done);
            for c in &mut done[first..] {
                if let Ok(bytes) = &mut c.result {
                    bytes.pop();
                }
            }
            n
        }
        fn in_flight(&self) -> usize {
            self.0.in_flight()
        }
    }

    /// A fetch that brought fewer bytes than asked is a failed copy (the
    /// rest of the frame would go out with a recycled buffer's old bytes),
    /// reported as such, not as done.
    #[test]
    fn a_short_fetch_fails_the_copy() {
        let region = Arc::new(Region::create("job-dma-short", 4096).unwrap());
        let keep: Arc<dyn std::any::Any + Send + Sync> = region.clone();
        // SAFETY: 256 bytes at offset 0 lie inside the region `keep` holds.
        let host = unsafe { HostBuffer::external(region.as_ptr(), 256, keep) }
            .with_home(region.clone(), 0);
        let mut q: DmaQueue<u32> =
            DmaQueue::new(Box::new(JobDma::new(ShortFetch(MemcpyDma::new(4)))));
        let mut results = Vec::new();
        let mut g = Frame::new();
        g.resize_zeroed(40);
        let from = Copy {
            dir: DmaDir::FromHost,
            host: Arc::new(host),
            pos: 0,
            at: 0,
            len: 40,
        };
        q.push(Some(g), 7, Some(from), &mut |_, j, ok| {
            results.push((j, ok))
        });
        q.drain(&mut |_, j, ok| results.push((j, ok)));
        assert_eq!(results, [(7, false)]);
    }
}
