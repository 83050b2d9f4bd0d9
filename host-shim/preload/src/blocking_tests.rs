//! libtoe's blocking calls from many threads on one context (a thread per
//! connection, as threaded servers run under the preload): an event wakes
//! the thread that waits for it, not every blocked thread, and the role of
//! the thread sleeping on the doorbell passes on when that thread leaves.
//! Follower parks are made a minute long, so a thread that is not woken
//! would make the test fail by its deadline instead of passing late.

use std::io::Read;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use toe::{TcpStream, Toe, WaitStats};

use crate::test_support::{attach, serial, Conn, Dpu};

/// Restores the default follower park on drop (also when a test fails).
struct LongParks;

impl LongParks {
    fn set() -> Self {
        toe::set_follower_max_sleep(Duration::from_secs(60));
        LongParks
    }
}

impl Drop for LongParks {
    fn drop(&mut self) {
        toe::set_follower_max_sleep(Duration::from_secs(1));
    }
}

/// Waits (10 s at most) until one thread sleeps on the doorbell and
/// `followers` others are parked; the counters then.
fn settled(toe: &Toe, followers: usize) -> WaitStats {
    let t = Instant::now();
    loop {
        let s = toe.wait_stats();
        if s.leaders == 1 && s.followers == followers {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "never settled with 1 leader and {followers} followers: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `n` connected streams, each read by its own blocked thread.
fn blocked_readers(
    toe: &Arc<Toe>,
    dpu: &mut Dpu,
    n: usize,
) -> (Vec<Conn>, Vec<std::thread::JoinHandle<Vec<u8>>>) {
    let mut conns = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..n {
        let (s, c) = dpu.connect(toe, true);
        conns.push(c);
        readers.push(std::thread::spawn(move || {
            let mut s: TcpStream = s;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            buf[..n].to_vec()
        }));
    }
    (conns, readers)
}

#[test]
fn an_event_wakes_only_the_thread_waiting_for_it() {
    let _s = serial();
    let _parks = LongParks::set();
    let (toe, mut dpu) = attach();
    const THREADS: usize = 12;
    let (mut conns, readers) = blocked_readers(&toe, &mut dpu, THREADS);
    let start = settled(&toe, THREADS - 1);
    // Each connection in turn gets data: its reader returns with it, the
    // others stay asleep. One of the turns is the leader's own (the first
    // reader blocked first and likely still leads: its turn comes first,
    // so the others need the role handed over to settle).
    let mut readers: Vec<Option<_>> = readers.into_iter().map(Some).collect();
    for i in 0..THREADS {
        let before = toe.wait_stats();
        let msg = format!("for reader {i}");
        dpu.deliver(&mut conns[i], msg.as_bytes());
        let got = readers[i].take().unwrap().join().unwrap();
        assert_eq!(got, msg.as_bytes());
        let left = THREADS - 1 - i;
        let after = if left > 0 {
            settled(&toe, left - 1)
        } else {
            toe.wait_stats()
        };
        let wakes = (after.woken - before.woken) + (after.handovers - before.handovers);
        assert!(
            wakes <= 1,
            "one event woke {wakes} parked threads ({before:?} -> {after:?})"
        );
    }
    let end = toe.wait_stats();
    assert_eq!(end.timeouts, start.timeouts, "a park ran out: {end:?}");
    assert!(
        end.handovers > start.handovers,
        "the leader's turn: {end:?}"
    );
}

#[test]
fn a_local_shutdown_wakes_its_blocked_reader() {
    let _s = serial();
    let _parks = LongParks::set();
    let (toe, mut dpu) = attach();
    // Two blocked readers: whichever is parked, the shutdown must reach it.
    let mut streams = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (s, _c) = dpu.connect(&toe, true);
        let s = Arc::new(s);
        streams.push(s.clone());
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            (&*s).read(&mut buf)
        }));
    }
    settled(&toe, 1);
    for (s, r) in streams.iter().zip(readers) {
        s.shutdown(Shutdown::Read).unwrap();
        // A read after shutdown(SHUT_RD) returns end of stream.
        assert_eq!(r.join().unwrap().unwrap(), 0);
    }
}
