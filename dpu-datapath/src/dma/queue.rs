//! Work waiting for its DMA, released in the order it came: copies may
//! complete in any order, but `post`, the NIC and the application see a
//! connection's segments in the owner's order, and nothing (ACK, event,
//! index) is released before the copy it follows has completed. A copy
//! the engine reports failed releases its item with `false`: the caller
//! must not use the bytes (it resets the connection).
//!
//! The queue owns each item's packet buffer while its copy is in flight,
//! so the engine's view of those bytes stays valid and nobody else touches
//! them: that is what makes building the [`DmaOp`] here sound.

use super::engine::{DmaDir, DmaEngine, DmaOp};
use super::HostBuffer;
use crate::io::Frame;
use std::collections::VecDeque;
use std::sync::Arc;

/// One copy between an item's packet buffer and an application buffer.
#[derive(Debug)]
pub struct Copy {
    pub dir: DmaDir,
    pub host: Arc<HostBuffer>,
    /// Position in the application's buffer (wrapping).
    pub pos: u32,
    /// Bytes `at..at + len` of the packet buffer.
    pub at: usize,
    pub len: usize,
}

struct Slot<W> {
    frame: Option<Frame>,
    then: W,
    /// Its copy completed, or it had none.
    done: bool,
    /// Its copy failed: released with `false`, the bytes not moved.
    failed: bool,
}

/// A FIFO of items (a packet buffer, or none, and what to do next), each
/// with at most one copy in flight on `engine`.
pub struct DmaQueue<W> {
    // Declared first, so dropped first: an engine dropped with copies in
    // flight drops them unexecuted (a device engine waits for them) before
    // the buffers they view are freed.
    engine: Box<dyn DmaEngine>,
    items: VecDeque<Slot<W>>,
    /// Tag of `items[0]`; tags count pushes.
    head: u64,
    done: Vec<u64>,
    /// Times a push waited for the engine to take its copy.
    full_waits: u64,
}

impl<W> std::fmt::Debug for DmaQueue<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaQueue")
            .field("items", &self.items.len())
            .field("in_flight", &self.engine.in_flight())
            .field("full_waits", &self.full_waits)
            .finish()
    }
}

impl<W> DmaQueue<W> {
    pub fn new(engine: Box<dyn DmaEngine>) -> Self {
        Self {
            engine,
            items: VecDeque::new(),
            head: 0,
            done: Vec::new(),
            full_waits: 0,
        }
    }

    /// Queues an item behind the others, with its copy. A copy outside
    /// the frame is not made (the item is released without it, as
    /// `dma_rx` ignores such a placement). While the engine is full,
    /// completed items are released to `release` until it takes the copy.
    pub fn push(
        &mut self,
        frame: Option<Frame>,
        then: W,
        copy: Option<Copy>,
        release: &mut impl FnMut(Option<Frame>, W, bool),
    ) {
        let tag = self.head + self.items.len() as u64;
        self.items.push_back(Slot {
            frame,
            then,
            done: true,
            failed: false,
        });
        let Some(copy) = copy else {
            return;
        };
        let slot = self.items.back_mut().expect("just pushed");
        let Some(local) = slot
            .frame
            .as_mut()
            .and_then(|f| f.get_mut(copy.at..copy.at.checked_add(copy.len)?))
        else {
            return;
        };
        slot.done = false;
        // SAFETY: the bytes are the item's packet buffer (heap or mbuf
        // memory, which does not move when the slot does); the queue keeps
        // the item, and nobody reads or writes its frame, until the engine
        // reports `tag` (then `poll` releases it) or is dropped (first, see
        // the field order).
        let mut op = unsafe {
            match copy.dir {
                DmaDir::ToHost => DmaOp::to_host(copy.host, copy.pos, local, tag),
                DmaDir::FromHost => DmaOp::from_host(copy.host, copy.pos, local, tag),
            }
        };
        loop {
            match self.engine.submit(op) {
                Ok(()) => return,
                Err(back) => {
                    self.full_waits += 1;
                    op = back;
                    // Something is in flight (the engine is full), so
                    // this ends as soon as one copy completes.
                    if self.poll(release) == 0 {
                        std::hint::spin_loop();
                    }
                }
            }
        }
    }

    /// Collects completions and releases, in order, the items at the head
    /// whose copies are done. Returns how many were released.
    pub fn poll(&mut self, release: &mut impl FnMut(Option<Frame>, W, bool)) -> usize {
        if self.items.is_empty() {
            return 0;
        }
        self.done.clear();
        self.engine.poll(&mut self.done);
        for tag in self.done.drain(..) {
            // An unknown tag would be an engine bug; ignore it rather than
            // release an item whose copy did not complete.
            if let Some(slot) = tag
                .checked_sub(self.head)
                .and_then(|i| self.items.get_mut(i as usize))
            {
                slot.done = true;
            }
        }
        self.engine.take_failed(&mut self.done);
        for tag in self.done.drain(..) {
            if let Some(slot) = tag
                .checked_sub(self.head)
                .and_then(|i| self.items.get_mut(i as usize))
            {
                slot.failed = true;
            }
        }
        let mut n = 0;
        while self.items.front().is_some_and(|s| s.done) {
            let slot = self.items.pop_front().expect("front exists");
            self.head += 1;
            n += 1;
            release(slot.frame, slot.then, !slot.failed);
        }
        n
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn full_waits(&self) -> u64 {
        self.full_waits
    }

    /// Releases everything, waiting for the copies in flight.
    pub fn drain(&mut self, release: &mut impl FnMut(Option<Frame>, W, bool)) {
        while !self.items.is_empty() {
            if self.poll(release) == 0 {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::{DmaConfig, EmulatedDma};
    use super::*;

    /// Items released in push order whatever the completion order, each
    /// after its copy landed (both ways), also with one copy in flight.
    #[test]
    fn release_is_in_order_and_after_the_copy() {
        for (max_outstanding, seed) in [(64, 1), (64, 2), (1, 3), (3, 4)] {
            let host = Arc::new(HostBuffer::new(1 << 16));
            let engine = EmulatedDma::new(DmaConfig {
                latency_ns: 5_000,
                max_outstanding,
                reorder: true,
                seed,
                jobs: false,
                fail_every: 0,
            });
            let mut q: DmaQueue<u32> = DmaQueue::new(Box::new(engine));
            let mut released = Vec::new();
            let check = |frame: Option<Frame>, i: u32, released: &mut Vec<u32>| {
                match i % 3 {
                    // Received payload is in the host buffer.
                    1 => {
                        let mut got = [0u8; 32];
                        super::super::app_read(&host, i * 32, &mut got);
                        assert_eq!(got, [i as u8; 32], "item {i} released before its copy");
                    }
                    // Fetched payload is in the frame, after 8 bytes of room.
                    2 => {
                        let f = frame.expect("a frame");
                        assert_eq!(f[8..], [(i - 1) as u8; 32], "item {i} fetched");
                    }
                    // Nothing to copy (a commit).
                    _ => assert!(frame.is_none()),
                }
                released.push(i);
            };
            for i in 0..500u32 {
                let (frame, copy) = match i % 3 {
                    1 => {
                        let mut f = Frame::new();
                        f.extend_from_slice(&[i as u8; 32]);
                        let copy = Copy {
                            dir: DmaDir::ToHost,
                            host: host.clone(),
                            pos: i * 32,
                            at: 0,
                            len: 32,
                        };
                        (Some(f), Some(copy))
                    }
                    // Fetches what item i - 1 wrote, once it completed
                    // (released items come in order, and i - 1 was pushed
                    // first; the engine may still reorder, so wait).
                    2 => {
                        q.drain(&mut |f, j, _| check(f, j, &mut released));
                        let mut f = Frame::new();
                        f.resize_zeroed(40);
                        let copy = Copy {
                            dir: DmaDir::FromHost,
                            host: host.clone(),
                            pos: (i - 1) * 32,
                            at: 8,
                            len: 32,
                        };
                        (Some(f), Some(copy))
                    }
                    _ => (None, None),
                };
                q.push(frame, i, copy, &mut |f, j, _| check(f, j, &mut released));
                q.poll(&mut |f, j, _| check(f, j, &mut released));
            }
            q.drain(&mut |f, j, _| check(f, j, &mut released));
            assert_eq!(released, (0..500).collect::<Vec<_>>());
            assert!(q.is_empty());
            if max_outstanding == 1 {
                assert!(q.full_waits() > 0);
            }
        }
    }
}
