//! DMA engines: asynchronous submit, completion by polling (the shape of
//! DOCA's progress engine). [`MemcpyDma`] copies with the CPU; `DocaDma`
//! (feature `doca`) drives a BlueField's DMA engine.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use crate::region::{OutOfBounds, Region};

/// One transfer between DPU-local memory and a (host) region.
#[derive(Debug)]
pub enum DmaJob {
    /// DPU-local bytes -> region.
    ToHost {
        region: Arc<Region>,
        offset: usize,
        data: Vec<u8>,
        user: u64,
    },
    /// region -> DPU-local bytes.
    FromHost {
        region: Arc<Region>,
        offset: usize,
        len: usize,
        user: u64,
    },
}

impl DmaJob {
    /// The caller's cookie, echoed in the completion.
    pub fn user(&self) -> u64 {
        match self {
            DmaJob::ToHost { user, .. } | DmaJob::FromHost { user, .. } => *user,
        }
    }
}

/// Why a job failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The job's range is outside its region.
    OutOfBounds(OutOfBounds),
    /// `submit` with the queue at capacity (the job was dropped).
    QueueFull,
    /// The device reported an error.
    Device(String),
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaError::OutOfBounds(e) => write!(f, "DMA out of bounds: {e}"),
            DmaError::QueueFull => f.write_str("DMA queue full"),
            DmaError::Device(m) => write!(f, "DMA device error: {m}"),
        }
    }
}

impl std::error::Error for DmaError {}

impl From<OutOfBounds> for DmaError {
    fn from(e: OutOfBounds) -> DmaError {
        DmaError::OutOfBounds(e)
    }
}

/// A finished job. `FromHost` returns the bytes read; `ToHost` returns its
/// buffer, emptied (capacity kept), for reuse.
#[derive(Debug, PartialEq)]
pub struct DmaCompletion {
    pub user: u64,
    pub result: Result<Vec<u8>, DmaError>,
}

/// A DMA engine: `submit` queues, `poll` makes progress and reports
/// completions.
pub trait DmaEngine: Send {
    /// Queues a job; `Err(QueueFull)` when `in_flight()` is at capacity (the
    /// job is dropped). Errors about the job itself (bounds) are reported in
    /// its completion, not here.
    fn submit(&mut self, job: DmaJob) -> Result<(), DmaError>;
    /// Makes progress; appends finished jobs to `done` and returns how many.
    fn poll(&mut self, done: &mut Vec<DmaCompletion>) -> usize;
    /// Jobs submitted and not yet completed.
    fn in_flight(&self) -> usize;
}

/// A CPU memcpy "DMA engine" with a bounded queue. Copies happen in
/// [`DmaEngine::poll`], never in `submit`, so callers see the asynchrony
/// of real DMA; completions come in submission order.
#[derive(Debug)]
pub struct MemcpyDma {
    capacity: usize,
    queue: VecDeque<DmaJob>,
}

impl MemcpyDma {
    pub fn new(capacity: usize) -> MemcpyDma {
        MemcpyDma {
            capacity,
            queue: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn run(job: DmaJob) -> DmaCompletion {
        match job {
            DmaJob::ToHost {
                region,
                offset,
                mut data,
                user,
            } => {
                let result = region.write(offset, &data).map(|()| {
                    data.clear();
                    data
                });
                DmaCompletion {
                    user,
                    result: result.map_err(DmaError::from),
                }
            }
            DmaJob::FromHost {
                region,
                offset,
                len,
                user,
            } => {
                // Check before allocating: `len` may be anything.
                let result = match offset.checked_add(len) {
                    Some(end) if end <= region.len() => {
                        let mut buf = vec![0u8; len];
                        region.read(offset, &mut buf).map(|()| buf)
                    }
                    _ => Err(OutOfBounds {
                        offset,
                        len,
                        region: region.len(),
                    }),
                };
                DmaCompletion {
                    user,
                    result: result.map_err(DmaError::from),
                }
            }
        }
    }
}

impl DmaEngine for MemcpyDma {
    fn submit(&mut self, job: DmaJob) -> Result<(), DmaError> {
        if self.queue.len() >= self.capacity {
            return Err(DmaError::QueueFull);
        }
        self.queue.push_back(job);
        Ok(())
    }

    fn poll(&mut self, done: &mut Vec<DmaCompletion>) -> usize {
        let n = self.queue.len();
        done.reserve(n);
        done.extend(self.queue.drain(..).map(MemcpyDma::run));
        n
    }

    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Arc<Region> {
        Arc::new(Region::create("dma", 8192).unwrap())
    }

    #[test]
    fn copies_happen_in_poll_in_order() {
        let r = region();
        let mut dma = MemcpyDma::new(8);
        dma.submit(DmaJob::ToHost {
            region: r.clone(),
            offset: 100,
            data: b"abcdef".to_vec(),
            user: 1,
        })
        .unwrap();
        let mut probe = [0u8; 6];
        r.read(100, &mut probe).unwrap();
        assert_eq!(probe, [0; 6], "no copy before poll");
        dma.submit(DmaJob::FromHost {
            region: r.clone(),
            offset: 102,
            len: 3,
            user: 2,
        })
        .unwrap();
        assert_eq!(dma.in_flight(), 2);
        let mut done = Vec::new();
        assert_eq!(dma.poll(&mut done), 2);
        assert_eq!(dma.in_flight(), 0);
        assert_eq!(done[0].user, 1);
        let buf = done[0].result.as_ref().unwrap();
        assert!(buf.is_empty() && buf.capacity() >= 6);
        assert_eq!(
            done[1],
            DmaCompletion {
                user: 2,
                result: Ok(b"cde".to_vec())
            }
        );
        assert_eq!(dma.poll(&mut done), 0);
    }

    #[test]
    fn queue_full_at_capacity() {
        let r = region();
        let mut dma = MemcpyDma::new(2);
        for user in 0..2 {
            dma.submit(DmaJob::FromHost {
                region: r.clone(),
                offset: 0,
                len: 1,
                user,
            })
            .unwrap();
        }
        let job = DmaJob::FromHost {
            region: r.clone(),
            offset: 0,
            len: 1,
            user: 9,
        };
        assert_eq!(dma.submit(job), Err(DmaError::QueueFull));
        let mut done = Vec::new();
        dma.poll(&mut done);
        let users: Vec<u64> = done.iter().map(|c| c.user).collect();
        assert_eq!(users, [0, 1]);
        assert!(MemcpyDma::new(0)
            .submit(DmaJob::FromHost {
                region: r,
                offset: 0,
                len: 0,
                user: 0
            })
            .is_err());
    }

    #[test]
    fn out_of_bounds_completes_with_an_error() {
        let r = region();
        let mut dma = MemcpyDma::new(16);
        let jobs = [
            DmaJob::ToHost {
                region: r.clone(),
                offset: 8190,
                data: vec![1; 3],
                user: 1,
            },
            DmaJob::FromHost {
                region: r.clone(),
                offset: 1,
                len: usize::MAX,
                user: 2,
            },
            DmaJob::FromHost {
                region: r.clone(),
                offset: usize::MAX,
                len: 2,
                user: 3,
            },
            DmaJob::FromHost {
                region: r.clone(),
                offset: 8192,
                len: 0,
                user: 4,
            },
        ];
        for j in jobs {
            dma.submit(j).unwrap();
        }
        let mut done = Vec::new();
        assert_eq!(dma.poll(&mut done), 4);
        assert_eq!(
            done[0].result,
            Err(DmaError::OutOfBounds(OutOfBounds {
                offset: 8190,
                len: 3,
                region: 8192
            }))
        );
        assert!(matches!(done[1].result, Err(DmaError::OutOfBounds(_))));
        assert!(matches!(done[2].result, Err(DmaError::OutOfBounds(_))));
        assert_eq!(done[3].result, Ok(Vec::new()));
        let mut probe = [0u8; 2];
        r.read(8190, &mut probe).unwrap();
        assert_eq!(probe, [0, 0], "a failed job writes nothing");
    }

    #[test]
    fn engine_is_object_safe_and_send() {
        fn assert_send<T: Send>(_: &T) {}
        let e: Box<dyn DmaEngine> = Box::new(MemcpyDma::new(1));
        assert_send(&e);
        assert_eq!(e.in_flight(), 0);
    }
}
