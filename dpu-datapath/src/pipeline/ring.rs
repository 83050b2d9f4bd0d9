//! Bounded single-producer/single-consumer ring between two pipeline tasks:
//! cache-padded head and tail, each side caching the other's index so the
//! common case touches no shared cache line, and batch push/pop.
//!
//! This is one of the few modules allowed `unsafe`: slots are written by the
//! producer and read by the consumer, ownership handed over by the
//! release/acquire publication of `tail` and `head`.

use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot to read (written by the consumer).
    head: CachePadded<AtomicUsize>,
    /// Next slot to write (written by the producer).
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: a slot is accessed by the producer only while it is free (between
// tail and head + capacity) and by the consumer only while it is full
// (between head and tail); the atomics order the hand-over. T moves between
// threads, so it must be Send.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let head = *self.head.get_mut();
        let tail = *self.tail.get_mut();
        for i in head..tail {
            // SAFETY: slots in [head, tail) hold initialised values that
            // nobody else can reach any more (we have `&mut self`).
            unsafe { (*self.slots[i & self.mask].get()).assume_init_drop() };
        }
    }
}

/// Sending half.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
    /// Pushes refused because the ring was full (back-pressure events).
    pub full_events: u64,
}

/// Receiving half.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Producer(cap {})", self.shared.mask + 1)
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Consumer(cap {})", self.shared.mask + 1)
    }
}

/// A ring of at least `capacity` slots (rounded up to a power of two).
pub fn channel<T: Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let shared = Arc::new(Shared {
        slots: (0..cap)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect(),
        mask: cap - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            cached_head: 0,
            full_events: 0,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
        },
    )
}

impl<T: Send> Producer<T> {
    fn free(&mut self) -> usize {
        let cap = self.shared.mask + 1;
        if self.tail - self.cached_head >= cap {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
        }
        cap - (self.tail - self.cached_head)
    }

    /// Pushes one item, or gives it back when the ring is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.free() == 0 {
            self.full_events += 1;
            return Err(item);
        }
        // SAFETY: the slot at `tail` is free (checked above) and only the
        // producer writes free slots.
        unsafe { (*self.shared.slots[self.tail & self.shared.mask].get()).write(item) };
        self.tail += 1;
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Pushes from the front of `items` as many as fit, publishing once.
    /// Returns how many were pushed.
    pub fn push_burst(&mut self, items: &mut std::collections::VecDeque<T>) -> usize {
        let mut free = self.free();
        if free < items.len() {
            // The cached head may be stale: look at the consumer's real one.
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            free = self.free();
        }
        let n = items.len().min(free);
        if n < items.len() {
            self.full_events += 1;
        }
        for _ in 0..n {
            let Some(item) = items.pop_front() else {
                break;
            };
            // SAFETY: `n` free slots were counted above.
            unsafe { (*self.shared.slots[self.tail & self.shared.mask].get()).write(item) };
            self.tail += 1;
        }
        if n > 0 {
            self.shared.tail.store(self.tail, Ordering::Release);
        }
        n
    }

    /// Items currently queued (approximate from the producer's side).
    pub fn occupancy(&self) -> usize {
        self.tail - self.shared.head.load(Ordering::Relaxed)
    }
}

impl<T: Send> Consumer<T> {
    fn available(&mut self) -> usize {
        if self.cached_tail == self.head {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        }
        self.cached_tail - self.head
    }

    /// Pops one item.
    pub fn pop(&mut self) -> Option<T> {
        if self.available() == 0 {
            return None;
        }
        // SAFETY: the slot at `head` was published by the producer's release
        // store of `tail`, which our acquire load observed.
        let item =
            unsafe { (*self.shared.slots[self.head & self.shared.mask].get()).assume_init_read() };
        self.head += 1;
        self.shared.head.store(self.head, Ordering::Release);
        Some(item)
    }

    /// Pops up to `max` items into `out`, releasing the slots once.
    pub fn pop_burst(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let n = self.available().min(max);
        for _ in 0..n {
            // SAFETY: as in `pop`; `n` published slots were counted.
            let item = unsafe {
                (*self.shared.slots[self.head & self.shared.mask].get()).assume_init_read()
            };
            out.push(item);
            self.head += 1;
        }
        if n > 0 {
            self.shared.head.store(self.head, Ordering::Release);
        }
        n
    }

    /// Whether nothing is queued right now.
    pub fn is_empty(&mut self) -> bool {
        self.available() == 0
    }

    pub fn len(&mut self) -> usize {
        self.available()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn fifo_full_and_burst() {
        let (mut p, mut c) = channel::<u32>(4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(9));
        assert_eq!(p.full_events, 1);
        let mut out = Vec::new();
        assert_eq!(c.pop_burst(&mut out, 3), 3);
        assert_eq!(out, [0, 1, 2]);
        let mut q: VecDeque<u32> = (10..20).collect();
        assert_eq!(p.push_burst(&mut q), 3);
        assert_eq!(c.pop(), Some(3));
        assert_eq!(c.pop(), Some(10));
    }

    #[test]
    fn drops_leftovers() {
        let (mut p, c) = channel::<Arc<()>>(8);
        let x = Arc::new(());
        p.push(x.clone()).unwrap();
        p.push(x.clone()).unwrap();
        drop((p, c));
        assert_eq!(Arc::strong_count(&x), 1);
    }

    #[test]
    fn threads_see_every_item_in_order() {
        let (mut p, mut c) = channel::<u64>(64);
        const N: u64 = 200_000;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if p.push(i).is_ok() {
                    i += 1;
                }
            }
        });
        let mut expect = 0;
        let mut out = Vec::new();
        while expect < N {
            out.clear();
            c.pop_burst(&mut out, 32);
            for v in &out {
                assert_eq!(*v, expect);
                expect += 1;
            }
        }
        t.join().unwrap();
    }
}
