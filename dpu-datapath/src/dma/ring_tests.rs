//! The host rings over DMA against an application reading and writing
//! them as fast as it can, with completions delayed and reordered: it
//! never sees an event index before its entry, and never has an entry
//! it wrote overwritten... by us or reused before we read it.

use super::{DmaConfig, DmaEngine, EmulatedDma, EventRing, RequestRing};
use doca_bindings::abi::{Desc, RingLayout};
use doca_bindings::{Region, RingConsumer, RingProducer};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LAYOUT: RingLayout = RingLayout {
    head: 0,
    tail: 64,
    entries: 128,
    capacity: 32,
};
const N: u64 = 4_000;

fn region() -> Arc<Region> {
    Arc::new(Region::create("dma-ring-test", 128 + 32 * 48).expect("region"))
}

fn engine(seed: u64, max_outstanding: usize) -> Box<dyn DmaEngine> {
    Box::new(EmulatedDma::new(DmaConfig {
        latency_ns: 2_000,
        max_outstanding,
        reorder: true,
        seed,
        jobs: false,
        fail_every: 0,
    }))
}

/// Descriptor number `i`: every field derived from it.
fn desc(i: u64) -> Desc {
    Desc {
        op: (i % 7) as u16 + 1,
        flags: (i % 13) as u16,
        status: -(i as i32 % 5),
        tag: i,
        conn: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        a: !i,
        b: i << 3,
        c: i ^ 0x5555,
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[test]
fn the_application_never_sees_an_event_index_before_its_entry() {
    event_ring_case(&|seed, outstanding, _| engine(seed, outstanding));
}

#[test]
fn requests_are_read_before_their_entries_are_given_back() {
    request_ring_case(&|seed, outstanding, _| engine(seed, outstanding));
}

/// An engine for a ring of `region`: (seed, copies in flight, region).
pub(crate) type MakeEngine = dyn Fn(u64, usize, &Arc<Region>) -> Box<dyn DmaEngine>;

/// The event ring written over `make`'s engines, read by an application
/// thread as fast as it can.
pub(crate) fn event_ring_case(make: &MakeEngine) {
    for (seed, outstanding) in [(1, 64), (2, 64), (3, 8), (4, 1), (5, 3), (6, 256)] {
        let region = region();
        let engine = make(seed, outstanding, &region);
        let mut ring = EventRing::new(region.clone(), LAYOUT, engine).unwrap();
        let mut app = RingConsumer::new(region.clone(), LAYOUT).unwrap();
        let reader = std::thread::spawn(move || {
            let end = deadline();
            let mut next = 0;
            while next < N {
                match app.pop().expect("indices in range") {
                    Some(d) => {
                        assert_eq!(
                            d,
                            desc(next),
                            "seed {seed}: entry {next} read before it landed"
                        );
                        next += 1;
                    }
                    None => assert!(Instant::now() < end, "seed {seed}: stuck at {next}"),
                }
            }
        });
        let end = deadline();
        let mut i = 0;
        while i < N {
            if ring.push(&desc(i)).unwrap() {
                i += 1;
            } else {
                assert!(Instant::now() < end, "seed {seed}: push stuck at {i}");
            }
            ring.poll();
        }
        ring.flush();
        reader.join().expect("reader");
    }
}

/// The request ring read over `make`'s engines, written by an application
/// thread as fast as it can.
pub(crate) fn request_ring_case(make: &MakeEngine) {
    for (seed, outstanding) in [(11, 64), (12, 8), (13, 1), (14, 3)] {
        let region = region();
        let engine = make(seed, outstanding, &region);
        let mut ring = RequestRing::new(region.clone(), LAYOUT, engine).unwrap();
        let mut app = RingProducer::new(region.clone(), LAYOUT).unwrap();
        let writer = std::thread::spawn(move || {
            let end = deadline();
            let mut i = 0;
            while i < N {
                if app.push(&desc(i)).expect("indices in range") {
                    i += 1;
                } else {
                    assert!(Instant::now() < end, "seed {seed}: ring stuck full at {i}");
                }
            }
        });
        let end = deadline();
        let mut got = Vec::new();
        let mut next = 0;
        while next < N {
            got.clear();
            ring.pop_many(&mut got, 16).unwrap();
            for d in &got {
                assert_eq!(
                    *d,
                    desc(next),
                    "seed {seed}: entry {next} overwritten or torn"
                );
                next += 1;
            }
            assert!(Instant::now() < end, "seed {seed}: stuck at {next}");
        }
        writer.join().expect("writer");
        while ring.in_flight() {
            ring.poll();
        }
        assert_eq!(ring.pending().unwrap(), 0);
    }
}
