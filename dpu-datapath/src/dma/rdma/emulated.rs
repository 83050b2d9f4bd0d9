//! Verbs with emulated completions, to test the RDMA engine's logic: work
//! requests execute (as memory copies, the remote addresses being real
//! pointers here) when their completion is polled, a few polls after the
//! post, possibly out of order, some failing on demand.

use super::{
    LocalData, RdmaDma, RdmaOpcode, RemoteRange, Translate, Verbs, WorkCompletion, WorkRequest,
};
use crate::dma::ring_tests::{event_ring_case, request_ring_case};
use crate::dma::{Copy, DmaDir, DmaEngine, DmaQueue, HostBuffer};
use crate::io::Frame;
use doca_bindings::Region;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub(crate) struct EmulatedVerbs {
    queue: Vec<(u64, WorkRequest)>,
    polls: u64,
    rng: u64,
    max_send_wr: usize,
    /// Every n-th work request completes with an error (0: none).
    fail_every: u64,
    posted: u64,
}

impl EmulatedVerbs {
    pub(crate) fn new(seed: u64, max_send_wr: usize) -> Self {
        Self {
            queue: Vec::new(),
            polls: 0,
            rng: seed | 1,
            max_send_wr,
            fail_every: 0,
            posted: 0,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn execute(wr: &WorkRequest) {
        match (wr.opcode, wr.local) {
            (RdmaOpcode::Write, LocalData::Inline { bytes, len: 4 }) => {
                let value = u32::from_ne_bytes(bytes[..4].try_into().expect("4 bytes"));
                // SAFETY: the remote address is a 4-aligned ring index in a
                // live region (the test's translation); the host side reads
                // it atomically.
                unsafe { AtomicU32::from_ptr(wr.remote_addr as *mut u32) }
                    .store(value, Ordering::Release);
            }
            (RdmaOpcode::Write, LocalData::Registered { addr, len, .. }) => {
                // SAFETY: both ranges are live (the engine keeps the op and
                // its memory until this completion) and do not overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        addr as *const u8,
                        wr.remote_addr as *mut u8,
                        len as usize,
                    )
                }
            }
            (RdmaOpcode::Read, LocalData::Registered { addr, len, .. }) => {
                // SAFETY: as above.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        wr.remote_addr as *const u8,
                        addr as *mut u8,
                        len as usize,
                    )
                }
            }
            (_, other) => panic!("unexpected work request local data {other:?}"),
        }
    }
}

impl Verbs for EmulatedVerbs {
    fn post_send(&mut self, wr: &WorkRequest) -> Result<(), String> {
        if self.queue.len() >= self.max_send_wr {
            return Err("send queue full".into());
        }
        let delay = 1 + self.random() % 4;
        self.posted += 1;
        self.queue.push((self.polls + delay, *wr));
        Ok(())
    }

    fn poll_cq(&mut self, out: &mut Vec<WorkCompletion>, max: usize) -> usize {
        self.polls += 1;
        let mut n = 0;
        let mut i = 0;
        while i < self.queue.len() && n < max {
            if self.queue[i].0 <= self.polls {
                let (_, wr) = self.queue.swap_remove(i);
                let fail = self.fail_every > 0 && wr.wr_id % self.fail_every == 0;
                if !fail {
                    Self::execute(&wr);
                }
                out.push(WorkCompletion {
                    wr_id: wr.wr_id,
                    status: if fail { Err(12) } else { Ok(()) },
                });
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    fn max_send_wr(&self) -> usize {
        self.max_send_wr
    }
}

/// Remote addresses are the real pointers; every local range is
/// registered unless `unregistered`.
pub(crate) struct PointerTranslate {
    pub(crate) unregistered: bool,
}

impl Translate for PointerTranslate {
    fn remote_buffer(&self, buf: &HostBuffer) -> Option<RemoteRange> {
        Some(RemoteRange {
            addr: buf.as_ptr() as u64,
            rkey: 1,
            len: buf.len(),
        })
    }

    fn remote_region(&self, region: &Region) -> Option<RemoteRange> {
        Some(RemoteRange {
            addr: region.as_ptr() as u64,
            rkey: 2,
            len: region.len(),
        })
    }

    fn lkey(&self, _addr: *const u8, _len: usize) -> Option<u32> {
        (!self.unregistered).then_some(7)
    }
}

fn rdma(seed: u64, max_send_wr: usize) -> Box<dyn DmaEngine> {
    Box::new(RdmaDma::new(
        EmulatedVerbs::new(seed, max_send_wr.max(2)),
        PointerTranslate {
            unregistered: false,
        },
    ))
}

#[test]
fn event_ring_over_rdma() {
    event_ring_case(&|seed, outstanding, _| rdma(seed, outstanding));
}

#[test]
fn request_ring_over_rdma() {
    request_ring_case(&|seed, outstanding, _| rdma(seed, outstanding));
}

/// Payload into a circular buffer over RDMA, wrapping (two work requests
/// for one copy), released in order, through a send queue of two.
#[test]
fn payload_copies_wrap_and_complete_in_order() {
    let host = Arc::new(HostBuffer::new(256));
    let mut q: DmaQueue<u32> = DmaQueue::new(rdma(9, 2));
    let mut released = Vec::new();
    for i in 0..200u32 {
        let mut f = Frame::new();
        f.extend_from_slice(&[i as u8; 40]);
        let copy = Copy {
            dir: DmaDir::ToHost,
            host: host.clone(),
            pos: i * 40,
            at: 0,
            len: 40,
        };
        q.push(Some(f), i, Some(copy), &mut |_, j, _| released.push(j));
    }
    q.drain(&mut |_, j, _| released.push(j));
    assert_eq!(released, (0..200).collect::<Vec<_>>());
    // The last 256 bytes written: copies 193..200 (the buffer wrapped).
    let mut out = [0u8; 40];
    crate::dma::app_read(&host, 199 * 40, &mut out);
    assert_eq!(out, [199u8; 40]);
}

/// Failures are reported (nothing waits forever) and counted: an
/// unregistered local buffer, and error completions.
#[test]
fn failed_copies_complete_and_are_counted() {
    let host = Arc::new(HostBuffer::new(64));
    let data = [5u8; 8];
    let mut unregistered = RdmaDma::new(
        EmulatedVerbs::new(1, 8),
        PointerTranslate { unregistered: true },
    );
    // SAFETY: `data` outlives the engine's use of it.
    let op = unsafe { crate::dma::DmaOp::to_host(host.clone(), 0, &data, 3) };
    unregistered.submit(op).unwrap();
    let mut done = Vec::new();
    assert_eq!(unregistered.poll(&mut done), 1);
    assert_eq!(done, [3]);
    assert_eq!(unregistered.stats().failed, 1);

    let mut verbs = EmulatedVerbs::new(2, 8);
    verbs.fail_every = 2;
    let mut failing = RdmaDma::new(
        verbs,
        PointerTranslate {
            unregistered: false,
        },
    );
    for tag in 0..6 {
        // SAFETY: as above.
        let op = unsafe { crate::dma::DmaOp::to_host(host.clone(), tag as u32 * 8, &data, tag) };
        failing.submit(op).unwrap();
    }
    let mut done = Vec::new();
    while done.len() < 6 {
        failing.poll(&mut done);
    }
    done.sort_unstable();
    assert_eq!(done, (0..6).collect::<Vec<_>>());
    assert_eq!(failing.stats().failed, 3, "work requests 0, 2, 4 failed");
    assert_eq!(failing.stats().work_requests, 6);
}
