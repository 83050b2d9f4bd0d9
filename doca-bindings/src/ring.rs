//! Single-producer single-consumer descriptor rings in a shared [`Region`].
//!
//! Each side owns one index (the producer `head`, the consumer `tail`),
//! keeps it locally and only ever stores it to shared memory (Release); it
//! never trusts what the region says about its own index. The peer's index
//! is loaded with Acquire and validated: `head - tail` (wrapping `u32`) must
//! be at most the capacity, otherwise the call fails with
//! [`RingError::IndexOutOfRange`] and nothing is read or written.
//!
//! Publication: the producer writes the entry, then stores `head + 1`
//! (Release); the consumer loads `head` (Acquire), copies the entry out,
//! then stores `tail + 1` (Release), which hands the slot back.

use std::fmt;
use std::mem::size_of;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::abi::{Desc, RingLayout};
use crate::region::Region;

const DESC: usize = size_of::<Desc>();

/// A ring operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The peer's index is impossible: `head - tail` (wrapping) exceeds the
    /// capacity. `head` and `tail` are the values as seen by the caller (its
    /// own local index and the peer's stored one).
    IndexOutOfRange { head: u32, tail: u32, capacity: u32 },
    /// The [`RingLayout`] does not fit the region (message says why).
    BadLayout(String),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::IndexOutOfRange {
                head,
                tail,
                capacity,
            } => write!(
                f,
                "ring index out of range: head {head} - tail {tail} exceeds capacity {capacity}"
            ),
            RingError::BadLayout(m) => write!(f, "bad ring layout: {m}"),
        }
    }
}

impl std::error::Error for RingError {}

/// Validates `layout` against `region` (see [`RingProducer::new`]).
fn check_layout(region: &Region, l: &RingLayout) -> Result<(), RingError> {
    let bad = |m: String| Err(RingError::BadLayout(m));
    if !l.capacity.is_power_of_two() || l.capacity > 1 << 31 {
        return bad(format!(
            "capacity {} is not a power of two in 1..=2^31",
            l.capacity
        ));
    }
    for (name, off) in [("head", l.head), ("tail", l.tail)] {
        if region.atomic_u32(off).is_none() {
            return bad(format!(
                "{name} index at {off} is not a 4-aligned u32 inside the region of {} bytes",
                region.len()
            ));
        }
    }
    if l.head.abs_diff(l.tail) < 4 {
        return bad(format!(
            "head ({}) and tail ({}) indices overlap",
            l.head, l.tail
        ));
    }
    if !l.entries.is_multiple_of(std::mem::align_of::<Desc>()) {
        return bad(format!("entries offset {} is not 8-aligned", l.entries));
    }
    let end = (l.capacity as usize)
        .checked_mul(DESC)
        .and_then(|b| b.checked_add(l.entries));
    let end = match end {
        Some(e) if e <= region.len() => e,
        _ => {
            return bad(format!(
                "{} entries at {} do not fit the region of {} bytes",
                l.capacity,
                l.entries,
                region.len()
            ))
        }
    };
    for (name, off) in [("head", l.head), ("tail", l.tail)] {
        if off + 4 > l.entries && off < end {
            return bad(format!("{name} index at {off} overlaps the entries"));
        }
    }
    Ok(())
}

fn index(region: &Region, off: usize) -> &AtomicU32 {
    region
        .atomic_u32(off)
        .expect("ring index offsets are validated in new()")
}

/// The producing side of a ring: owns `head`.
#[derive(Debug)]
pub struct RingProducer {
    region: Arc<Region>,
    layout: RingLayout,
    head: u32,
}

impl RingProducer {
    /// Checks that `layout` fits `region` (indices in bounds, 4-aligned and
    /// distinct, capacity a power of two, entries 8-aligned and in bounds)
    /// and starts at index 0 (stores 0 to `head`).
    pub fn new(region: Arc<Region>, layout: RingLayout) -> Result<Self, RingError> {
        check_layout(&region, &layout)?;
        index(&region, layout.head).store(0, Ordering::Release);
        Ok(RingProducer {
            region,
            layout,
            head: 0,
        })
    }

    /// Entries published and not yet consumed (validates the peer's tail).
    pub fn len(&mut self) -> Result<u32, RingError> {
        let tail = index(&self.region, self.layout.tail).load(Ordering::Acquire);
        let used = self.head.wrapping_sub(tail);
        if used > self.layout.capacity {
            return Err(RingError::IndexOutOfRange {
                head: self.head,
                tail,
                capacity: self.layout.capacity,
            });
        }
        Ok(used)
    }

    /// True if nothing is pending (validates the peer's tail).
    pub fn is_empty(&mut self) -> Result<bool, RingError> {
        Ok(self.len()? == 0)
    }

    /// Free entries (validates the peer's tail).
    pub fn free(&mut self) -> Result<u32, RingError> {
        Ok(self.layout.capacity - self.len()?)
    }

    fn entry_offset(&self, idx: u32) -> usize {
        self.layout.entries + (idx & (self.layout.capacity - 1)) as usize * DESC
    }

    /// Publishes one descriptor; `Ok(false)` if the ring is full.
    pub fn push(&mut self, d: &Desc) -> Result<bool, RingError> {
        if self.free()? == 0 {
            return Ok(false);
        }
        self.region
            .write_desc(self.entry_offset(self.head), d)
            .expect("ring entries are validated in new()");
        self.head = self.head.wrapping_add(1);
        index(&self.region, self.layout.head).store(self.head, Ordering::Release);
        Ok(true)
    }

    /// Publishes as many of `ds` as fit with one index store; returns how
    /// many were published.
    pub fn push_many(&mut self, ds: &[Desc]) -> Result<usize, RingError> {
        let n = (self.free()? as usize).min(ds.len());
        if n == 0 {
            return Ok(0);
        }
        for (i, d) in ds[..n].iter().enumerate() {
            let off = self.entry_offset(self.head.wrapping_add(i as u32));
            self.region
                .write_desc(off, d)
                .expect("ring entries are validated in new()");
        }
        self.head = self.head.wrapping_add(n as u32);
        index(&self.region, self.layout.head).store(self.head, Ordering::Release);
        Ok(n)
    }

    /// The local (authoritative) head index.
    pub fn head(&self) -> u32 {
        self.head
    }

    pub fn capacity(&self) -> u32 {
        self.layout.capacity
    }

    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }
}

/// The consuming side of a ring: owns `tail`.
#[derive(Debug)]
pub struct RingConsumer {
    region: Arc<Region>,
    layout: RingLayout,
    tail: u32,
}

impl RingConsumer {
    /// Same checks as [`RingProducer::new`]; starts at index 0 (stores 0 to
    /// `tail`).
    pub fn new(region: Arc<Region>, layout: RingLayout) -> Result<Self, RingError> {
        check_layout(&region, &layout)?;
        index(&region, layout.tail).store(0, Ordering::Release);
        Ok(RingConsumer {
            region,
            layout,
            tail: 0,
        })
    }

    /// Entries ready to pop (validates the peer's head).
    pub fn pending(&mut self) -> Result<u32, RingError> {
        let head = index(&self.region, self.layout.head).load(Ordering::Acquire);
        let avail = head.wrapping_sub(self.tail);
        if avail > self.layout.capacity {
            return Err(RingError::IndexOutOfRange {
                head,
                tail: self.tail,
                capacity: self.layout.capacity,
            });
        }
        Ok(avail)
    }

    fn entry_offset(&self, idx: u32) -> usize {
        self.layout.entries + (idx & (self.layout.capacity - 1)) as usize * DESC
    }

    /// Takes the next descriptor, if any.
    pub fn pop(&mut self) -> Result<Option<Desc>, RingError> {
        if self.pending()? == 0 {
            return Ok(None);
        }
        let d = self
            .region
            .read_desc(self.entry_offset(self.tail))
            .expect("ring entries are validated in new()");
        self.tail = self.tail.wrapping_add(1);
        index(&self.region, self.layout.tail).store(self.tail, Ordering::Release);
        Ok(Some(d))
    }

    /// Appends up to `max` descriptors to `out` with one index store; returns
    /// how many were taken.
    pub fn pop_many(&mut self, out: &mut Vec<Desc>, max: usize) -> Result<usize, RingError> {
        let n = (self.pending()? as usize).min(max);
        if n == 0 {
            return Ok(0);
        }
        out.reserve(n);
        for i in 0..n {
            let off = self.entry_offset(self.tail.wrapping_add(i as u32));
            out.push(
                self.region
                    .read_desc(off)
                    .expect("ring entries are validated in new()"),
            );
        }
        self.tail = self.tail.wrapping_add(n as u32);
        index(&self.region, self.layout.tail).store(self.tail, Ordering::Release);
        Ok(n)
    }

    /// The local (authoritative) tail index.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    pub fn capacity(&self) -> u32 {
        self.layout.capacity
    }

    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;
    use proptest::prelude::*;

    fn layout() -> abi::Layout {
        abi::Layout {
            contexts: 1,
            ring_entries: 8,
            slots: 1,
            rx_buf_size: 4096,
            tx_buf_size: 4096,
        }
    }

    fn pair(l: &abi::Layout) -> (RingProducer, RingConsumer, Arc<Region>) {
        let r = Arc::new(Region::create("ring", l.region_size()).unwrap());
        let rl = l.request_ring(0);
        (
            RingProducer::new(r.clone(), rl).unwrap(),
            RingConsumer::new(r.clone(), rl).unwrap(),
            r,
        )
    }

    fn desc(i: u64) -> Desc {
        Desc {
            op: abi::OP_TX_PUSH,
            tag: i,
            conn: i ^ 0xdead_beef,
            a: i * 3,
            ..Desc::default()
        }
    }

    #[test]
    fn rejects_bad_layouts() {
        let l = layout();
        let r = Arc::new(Region::create("ring", l.region_size()).unwrap());
        let good = l.request_ring(0);
        let cases = [
            RingLayout {
                capacity: 6,
                ..good
            },
            RingLayout {
                capacity: 0,
                ..good
            },
            RingLayout { head: 2, ..good },
            RingLayout {
                head: good.tail,
                ..good
            },
            RingLayout {
                tail: usize::MAX - 3,
                ..good
            },
            RingLayout {
                entries: good.entries + 4,
                ..good
            },
            RingLayout {
                entries: r.len() - 48,
                ..good
            },
            RingLayout {
                entries: usize::MAX - 7,
                ..good
            },
            RingLayout {
                head: good.entries + 8,
                ..good
            },
            RingLayout {
                capacity: 1 << 31,
                ..good
            },
        ];
        for c in cases {
            assert!(
                matches!(
                    RingProducer::new(r.clone(), c),
                    Err(RingError::BadLayout(_))
                ),
                "{c:?}"
            );
            assert!(
                matches!(
                    RingConsumer::new(r.clone(), c),
                    Err(RingError::BadLayout(_))
                ),
                "{c:?}"
            );
        }
    }

    #[test]
    fn full_and_empty() {
        let (mut p, mut c, _r) = pair(&layout());
        assert_eq!(c.pop().unwrap(), None);
        assert_eq!(p.free().unwrap(), 8);
        for i in 0..8 {
            assert!(p.push(&desc(i)).unwrap());
        }
        assert!(!p.push(&desc(8)).unwrap());
        assert_eq!(p.free().unwrap(), 0);
        assert_eq!(c.pending().unwrap(), 8);
        assert_eq!(c.pop().unwrap(), Some(desc(0)));
        assert_eq!(p.free().unwrap(), 1);
        assert!(p.push(&desc(8)).unwrap());
        for i in 1..9 {
            assert_eq!(c.pop().unwrap(), Some(desc(i)));
        }
        assert_eq!(c.pop().unwrap(), None);
    }

    #[test]
    fn wraparound_many_laps() {
        let (mut p, mut c, _r) = pair(&layout());
        let (mut next_in, mut next_out) = (0u64, 0u64);
        let mut buf = Vec::new();
        for lap in 0..2000u64 {
            let n = 1 + (lap * 7) % 8;
            for _ in 0..n {
                if p.push(&desc(next_in)).unwrap() {
                    next_in += 1;
                }
            }
            if lap % 3 == 0 {
                buf.clear();
                c.pop_many(&mut buf, (lap % 5) as usize + 1).unwrap();
                for d in &buf {
                    assert_eq!(*d, desc(next_out));
                    next_out += 1;
                }
            } else {
                while let Some(d) = c.pop().unwrap() {
                    assert_eq!(d, desc(next_out));
                    next_out += 1;
                }
            }
        }
        assert!(next_in > 1000 * 8, "{next_in}");
        while let Some(d) = c.pop().unwrap() {
            assert_eq!(d, desc(next_out));
            next_out += 1;
        }
        assert_eq!(next_in, next_out);
    }

    #[test]
    fn indices_wrap_around_u32() {
        // Start both sides near u32::MAX by faking the indices.
        let (mut p, mut c, r) = pair(&layout());
        let start = u32::MAX - 3;
        p.head = start;
        c.tail = start;
        r.atomic_u32(p.layout.head)
            .unwrap()
            .store(start, Ordering::Release);
        r.atomic_u32(c.layout.tail)
            .unwrap()
            .store(start, Ordering::Release);
        for i in 0..100 {
            assert!(p.push(&desc(i)).unwrap());
            assert_eq!(c.pop().unwrap(), Some(desc(i)));
        }
        assert_eq!(p.head(), start.wrapping_add(100));
    }

    #[test]
    fn push_many_stops_when_full() {
        let (mut p, mut c, _r) = pair(&layout());
        let ds: Vec<Desc> = (0..20).map(desc).collect();
        assert_eq!(p.push_many(&ds).unwrap(), 8);
        assert_eq!(p.push_many(&ds).unwrap(), 0);
        let mut out = Vec::new();
        assert_eq!(c.pop_many(&mut out, 100).unwrap(), 8);
        assert_eq!(out, ds[..8]);
    }

    #[test]
    fn million_descriptors_across_threads() {
        const N: u64 = 1_000_000;
        let l = abi::Layout {
            ring_entries: 256,
            ..layout()
        };
        let (mut p, mut c, _r) = pair(&l);
        let consumer = std::thread::spawn(move || {
            let mut next = 0u64;
            let mut spins = 0u32;
            while next < N {
                match c.pop().unwrap() {
                    Some(d) => {
                        assert_eq!(d, desc(next));
                        next += 1;
                        spins = 0;
                    }
                    None => {
                        spins += 1;
                        if spins > 64 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
            assert_eq!(c.pop().unwrap(), None);
        });
        let mut i = 0u64;
        let mut spins = 0u32;
        while i < N {
            if p.push(&desc(i)).unwrap() {
                i += 1;
                spins = 0;
            } else {
                spins += 1;
                if spins > 64 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        consumer.join().unwrap();
    }

    #[test]
    fn corrupted_peer_index_is_an_error() {
        let (mut p, mut c, r) = pair(&layout());
        let rl = *p.layout();
        p.push(&desc(0)).unwrap();
        // Consumer: a head more than `capacity` ahead of its tail.
        r.atomic_u32(rl.head).unwrap().store(9, Ordering::Release);
        assert_eq!(
            c.pop(),
            Err(RingError::IndexOutOfRange {
                head: 9,
                tail: 0,
                capacity: 8
            })
        );
        // "Behind" the tail is just as bad (wraps to a huge distance).
        r.atomic_u32(rl.head)
            .unwrap()
            .store(u32::MAX, Ordering::Release);
        assert!(matches!(
            c.pending(),
            Err(RingError::IndexOutOfRange { .. })
        ));
        // Exactly `capacity` is legal for the consumer (a full ring).
        r.atomic_u32(rl.head).unwrap().store(8, Ordering::Release);
        assert_eq!(c.pending(), Ok(8));
        // Producer: a tail ahead of its head.
        r.atomic_u32(rl.tail).unwrap().store(5, Ordering::Release);
        assert_eq!(
            p.push(&desc(1)),
            Err(RingError::IndexOutOfRange {
                head: 1,
                tail: 5,
                capacity: 8
            })
        );
        assert!(p.free().is_err());
        // The producer's own head is never re-read from the region.
        r.atomic_u32(rl.tail).unwrap().store(0, Ordering::Release);
        assert_eq!(p.free(), Ok(7));
        assert_eq!(p.head(), 1);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push,
        Pop,
        CorruptHead(u32),
        CorruptTail(u32),
        Repair,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Push),
            4 => Just(Op::Pop),
            1 => any::<u32>().prop_map(Op::CorruptHead),
            1 => (0u32..20).prop_map(Op::CorruptTail),
            1 => Just(Op::Repair),
        ]
    }

    proptest! {
        /// Random corruption of the shared indices: every call either succeeds
        /// with a sane answer or reports IndexOutOfRange for a distance that
        /// really is out of range; nothing panics, and the local index never
        /// moves on an error.
        #[test]
        fn random_index_corruption(ops in proptest::collection::vec(op(), 1..200)) {
            let (mut p, mut c, r) = pair(&layout());
            let rl = *p.layout();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push => {
                        let before = p.head();
                        match p.push(&desc(i as u64)) {
                            Ok(true) => prop_assert_eq!(p.head(), before.wrapping_add(1)),
                            Ok(false) => prop_assert_eq!(p.head(), before),
                            Err(RingError::IndexOutOfRange { head, tail, capacity }) => {
                                prop_assert!(head.wrapping_sub(tail) > capacity);
                                prop_assert_eq!(p.head(), before);
                            }
                            Err(e) => prop_assert!(false, "{}", e),
                        }
                    }
                    Op::Pop => {
                        let before = c.tail();
                        match c.pop() {
                            Ok(Some(_)) => prop_assert_eq!(c.tail(), before.wrapping_add(1)),
                            Ok(None) => prop_assert_eq!(c.tail(), before),
                            Err(RingError::IndexOutOfRange { head, tail, capacity }) => {
                                prop_assert!(head.wrapping_sub(tail) > capacity);
                                prop_assert_eq!(c.tail(), before);
                            }
                            Err(e) => prop_assert!(false, "{}", e),
                        }
                    }
                    Op::CorruptHead(v) => r.atomic_u32(rl.head).unwrap().store(v, Ordering::Release),
                    Op::CorruptTail(v) => r.atomic_u32(rl.tail).unwrap().store(v, Ordering::Release),
                    Op::Repair => {
                        r.atomic_u32(rl.head).unwrap().store(p.head(), Ordering::Release);
                        r.atomic_u32(rl.tail).unwrap().store(c.tail(), Ordering::Release);
                    }
                }
                if let Ok(n) = p.free() {
                    prop_assert!(n <= 8);
                }
                if let Ok(n) = c.pending() {
                    prop_assert!(n <= 8);
                }
            }
        }
    }
}
