//! The shim against a hand-scripted DPU side: the test itself pops the
//! request ring and posts events, descriptor by descriptor (no service, no
//! engine), to check the shim's side of the protocol: registration checks,
//! replies by tag, connection state from events, buffer wrap-around,
//! EOF, sleeping and doorbells, and what is sent on drop.

use super::*;
use crate::{BatchOp, TcpListener, TcpStream};
use doca_bindings::abi::Desc;
use doca_bindings::{RingConsumer, RingProducer};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::time::Instant;

const LAYOUT: Layout = Layout {
    contexts: 1,
    ring_entries: 8,
    slots: 2,
    rx_buf_size: 4096,
    tx_buf_size: 4096,
};
const LOCAL: &str = "198.18.0.1:40000";
const REMOTE: &str = "198.18.0.2:7";

/// The DPU's side of one context, driven by the test.
struct Dpu {
    region: Arc<Region>,
    req: RingConsumer,
    evt: RingProducer,
    bell: Doorbell,
    /// What the application rings to wake the DPU.
    dpu_bell: Doorbell,
    _control: UnixStream,
}

impl Dpu {
    /// Blocks (5 s at most) for the next request.
    fn next_request(&mut self) -> Desc {
        let t = Instant::now();
        loop {
            if let Some(d) = self.req.pop().unwrap() {
                return d;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "no request came");
            std::thread::yield_now();
        }
    }

    /// Posts an event and rings the application if it sleeps (what the
    /// service does).
    fn post(&mut self, d: Desc) {
        assert!(self.evt.push(&d).unwrap(), "event ring full");
        std::sync::atomic::fence(Ordering::SeqCst);
        let w = self
            .region
            .atomic_u32(LAYOUT.app_waiting_offset(0))
            .unwrap();
        if w.load(Ordering::SeqCst) != 0 {
            w.store(0, Ordering::SeqCst);
            self.bell.ring().unwrap();
        }
    }

    fn reply(&mut self, req: &Desc, status: i32, conn: u64, a: u64) {
        self.post(Desc {
            op: abi::EV_REPLY,
            flags: req.op,
            status,
            tag: req.tag,
            conn,
            a,
            b: abi::pack_addr(REMOTE.parse().unwrap()),
            c: abi::pack_addr(LOCAL.parse().unwrap()),
        });
    }

    fn conn_event(&mut self, conn: u64, flags: u16, rx_ready: u64, tx_acked: u64) {
        self.post(Desc {
            op: abi::EV_CONN,
            flags,
            conn,
            a: rx_ready,
            b: tx_acked,
            ..Desc::default()
        });
    }
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> OwnedFd {
    fd.try_clone_to_owned().unwrap()
}

/// An attachment whose DPU side is the returned [`Dpu`].
fn attach(spin: Duration) -> (Arc<Toe>, Dpu) {
    let region = Arc::new(Region::create("toe-test", LAYOUT.region_size()).unwrap());
    region.write_header(&LAYOUT).unwrap();
    let dpu_bell = Doorbell::new().unwrap();
    let ctx_bell = Doorbell::new().unwrap();
    let (app_sock, dpu_sock) = UnixStream::pair().unwrap();
    let reply = RegisterReply {
        app_id: 1,
        abi_version: abi::ABI_VERSION,
        layout: LAYOUT,
        local_ip: "198.18.0.1".parse().unwrap(),
        congestion_control: "reno".into(),
        congestion_control_by_port: Default::default(),
        first_context: 0,
        granted_contexts: None,
    };
    let fds = vec![dup(region.fd()), dup(dpu_bell.fd()), dup(ctx_bell.fd())];
    let toe = Arc::new(Toe::attach(app_sock, reply, fds, spin).unwrap());
    let dpu = Dpu {
        req: RingConsumer::new(region.clone(), LAYOUT.request_ring(0)).unwrap(),
        evt: RingProducer::new(region.clone(), LAYOUT.event_ring(0)).unwrap(),
        region,
        bell: ctx_bell,
        dpu_bell,
        _control: dpu_sock,
    };
    (toe, dpu)
}

/// Connects through the script: returns the stream (conn 7, slot 1).
fn connected(toe: &Arc<Toe>, dpu: &mut Dpu) -> TcpStream {
    connected_as(toe, dpu, 7, 1)
}

/// Connects through the script as connection `conn` in buffer slot `slot`.
fn connected_as(toe: &Arc<Toe>, dpu: &mut Dpu, conn: u64, slot: u64) -> TcpStream {
    let t = toe.clone();
    let app = std::thread::spawn(move || TcpStream::connect(&t, REMOTE));
    let req = dpu.next_request();
    assert_eq!(req.op, abi::OP_CONNECT);
    assert_eq!(abi::unpack_addr(req.a), Some(REMOTE.parse().unwrap()));
    dpu.reply(&req, 0, conn, slot);
    dpu.conn_event(conn, abi::CONN_CONNECTED | abi::CONN_WRITABLE, 0, 0);
    let s = app.join().unwrap().unwrap();
    assert_eq!(s.peer_addr().unwrap(), REMOTE.parse().unwrap());
    assert_eq!(s.local_addr().unwrap(), LOCAL.parse().unwrap());
    s
}

#[test]
fn registration_rejects_a_bad_reply() {
    let region = Region::create("toe-test", LAYOUT.region_size()).unwrap();
    let bell = Doorbell::new().unwrap();
    let reply = |abi_version| RegisterReply {
        app_id: 1,
        abi_version,
        layout: LAYOUT,
        local_ip: "198.18.0.1".parse().unwrap(),
        congestion_control: "reno".into(),
        congestion_control_by_port: Default::default(),
        first_context: 0,
        granted_contexts: None,
    };
    let fds = || vec![dup(region.fd()), dup(bell.fd()), dup(bell.fd())];
    let sock = || UnixStream::pair().unwrap().0;
    let e = Toe::attach(sock(), reply(abi::ABI_VERSION + 1), fds(), Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("ABI"), "{e}");
    // No header written yet: the magic differs.
    let e = Toe::attach(sock(), reply(abi::ABI_VERSION), fds(), Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
    region.write_header(&LAYOUT).unwrap();
    let mut two = fds();
    two.pop();
    let e = Toe::attach(sock(), reply(abi::ABI_VERSION), two, Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("expected 3"), "{e}");
}

#[test]
fn stream_round_trip_with_wrap_eof_and_close() {
    // No spinning: every wait goes through app_waiting and the doorbell.
    let (toe, mut dpu) = attach(Duration::ZERO);
    let s = connected(&toe, &mut dpu);
    let rx = LAYOUT.rx_buf_offset(1);
    let tx = LAYOUT.tx_buf_offset(1);

    // Write 3000 bytes, then 3000 more: the second write fills the buffer
    // (4096) and has to wait for an ACK; its data wraps.
    let data: Vec<u8> = (0..6000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    (&s).write_all(&data[..3000]).unwrap();
    let push = dpu.next_request();
    assert_eq!((push.op, push.conn, push.a), (abi::OP_TX_PUSH, 7, 3000));
    let writer = {
        let data = data.clone();
        std::thread::scope(|sc| {
            let h = sc.spawn(|| (&s).write_all(&data[3000..]));
            let push = dpu.next_request();
            assert_eq!((push.op, push.a), (abi::OP_TX_PUSH, 4096));
            std::thread::sleep(Duration::from_millis(20));
            assert!(!h.is_finished(), "the writer must wait for space");
            dpu.conn_event(7, abi::CONN_WRITABLE, 0, 3000);
            let push = dpu.next_request();
            assert_eq!((push.op, push.a), (abi::OP_TX_PUSH, 6000));
            h.join().unwrap()
        })
    };
    writer.unwrap();
    // Stream bytes 4096..6000 wrapped to the start of the TX buffer.
    let mut buf = vec![0u8; 4096];
    dpu.region.read(tx, &mut buf).unwrap();
    assert_eq!(&buf[..1904], &data[4096..6000]);
    assert_eq!(&buf[1904..], &data[1904..4096]);

    // RX: 4050 bytes, then 100 that wrap around the RX buffer's end.
    dpu.region.write(rx, &[0xAB; 4050]).unwrap();
    dpu.conn_event(7, abi::CONN_READABLE, 4050, 6000);
    let mut first = vec![0u8; 4050];
    (&s).read_exact(&mut first).unwrap();
    assert!(first.iter().all(|&b| b == 0xAB));
    let pop = dpu.next_request();
    assert_eq!((pop.op, pop.conn, pop.a), (abi::OP_RX_POP, 7, 4050));
    let msg: Vec<u8> = (0..100u8).collect();
    dpu.region.write(rx + 4050, &msg[..46]).unwrap();
    dpu.region.write(rx, &msg[46..]).unwrap();
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let mut buf = [0u8; 200];
            let n = (&s).read(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        std::thread::sleep(Duration::from_millis(20));
        dpu.conn_event(7, abi::CONN_READABLE, 4150, 6000);
        assert_eq!(h.join().unwrap(), msg);
    });
    let pop = dpu.next_request();
    assert_eq!((pop.op, pop.conn, pop.a), (abi::OP_RX_POP, 7, 4150));

    // Peer closes: read returns 0; writing is still allowed (half-close).
    dpu.conn_event(7, abi::CONN_PEER_CLOSED, 4150, 6000);
    assert_eq!((&s).read(&mut [0u8; 8]).unwrap(), 0);
    assert!(s.is_eof().unwrap());
    assert_eq!(s.writable_bytes().unwrap(), 4096);

    // shutdown(Write) waits for its reply.
    std::thread::scope(|sc| {
        let h = sc.spawn(|| s.shutdown(Shutdown::Write));
        let req = dpu.next_request();
        assert_eq!((req.op, req.conn), (abi::OP_SHUTDOWN, 7));
        dpu.reply(&req, 0, 7, 0);
        h.join().unwrap().unwrap();
    });
    assert_eq!(
        (&s).write(b"x").unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );

    drop(s);
    let close = dpu.next_request();
    assert_eq!((close.op, close.conn), (abi::OP_CLOSE, 7));
}

#[test]
fn errors_timeouts_and_nonblocking() {
    let (toe, mut dpu) = attach(Duration::from_micros(20));
    // Refused connect: the stream is closed again.
    let t = toe.clone();
    let app = std::thread::spawn(move || TcpStream::connect(&t, REMOTE));
    let req = dpu.next_request();
    dpu.reply(&req, 0, 9, 0);
    dpu.post(Desc {
        op: abi::EV_CONN,
        flags: abi::CONN_ERROR,
        status: -libc::ECONNREFUSED,
        conn: 9,
        ..Desc::default()
    });
    let e = app.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(dpu.next_request().op, abi::OP_CLOSE);

    let s = connected(&toe, &mut dpu);
    s.set_nonblocking(true).unwrap();
    let e = (&s).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    let t0 = Instant::now();
    let e = (&s).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert!(t0.elapsed() >= Duration::from_millis(30));

    // A reset: reads fail with ConnectionReset, writes with BrokenPipe.
    dpu.post(Desc {
        op: abi::EV_CONN,
        flags: abi::CONN_ERROR | abi::CONN_FINISHED,
        status: -libc::ECONNRESET,
        conn: 7,
        ..Desc::default()
    });
    let e = (&s).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    let e = (&s).write(b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(
        s.take_error().unwrap().unwrap().kind(),
        std::io::ErrorKind::ConnectionReset
    );
    assert!(s.take_error().unwrap().is_none());
    let r = s.poll_events().unwrap();
    assert!(r.error && r.hangup && r.readable && r.writable);
}

#[test]
fn listener_accept_waits_for_acceptable() {
    let (toe, mut dpu) = attach(Duration::ZERO);
    let t = toe.clone();
    let app = std::thread::spawn(move || TcpListener::bind(&t, "0.0.0.0:7"));
    let req = dpu.next_request();
    assert_eq!((req.op, req.a), (abi::OP_LISTEN, 7));
    dpu.reply(&req, 0, 0, 0);
    let l = app.join().unwrap().unwrap();
    assert_eq!(
        TcpListener::bind(&toe, "0.0.0.0:7").unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );

    std::thread::scope(|sc| {
        let h = sc.spawn(|| l.accept());
        let req = dpu.next_request();
        assert_eq!((req.op, req.a), (abi::OP_ACCEPT, 7));
        dpu.reply(&req, -libc::EAGAIN, 0, 0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished());
        dpu.post(Desc {
            op: abi::EV_ACCEPTABLE,
            a: 7,
            ..Desc::default()
        });
        let req = dpu.next_request();
        assert_eq!(req.op, abi::OP_ACCEPT);
        dpu.reply(&req, 0, 11, 0);
        let (s, peer) = h.join().unwrap().unwrap();
        assert_eq!(peer, REMOTE.parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(s.handle(), 11);
        // Accepted connections are established: writable at once.
        assert_eq!(s.writable_bytes().unwrap(), 4096);
        drop(s);
        assert_eq!(dpu.next_request().op, abi::OP_CLOSE);
    });

    l.set_nonblocking(true).unwrap();
    std::thread::scope(|sc| {
        let h = sc.spawn(|| l.accept());
        let req = dpu.next_request();
        dpu.reply(&req, -libc::EAGAIN, 0, 0);
        let e = h.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    });
    drop(l);
    let req = dpu.next_request();
    assert_eq!((req.op, req.a), (abi::OP_UNLISTEN, 7));
}

#[test]
fn fatal_event_fails_everything_and_abort_releases() {
    let (toe, mut dpu) = attach(Duration::ZERO);
    let s = connected(&toe, &mut dpu);
    // abort: nothing is sent for the handle afterwards, not even OP_CLOSE.
    std::thread::scope(|sc| {
        let h = sc.spawn(|| s.abort());
        let req = dpu.next_request();
        assert_eq!((req.op, req.conn), (abi::OP_ABORT, 7));
        dpu.reply(&req, 0, 7, 0);
        h.join().unwrap().unwrap();
    });
    let e = (&s).write(b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
    assert!(s.set_nodelay(true).is_err());
    drop(s);

    let s = connected(&toe, &mut dpu);
    dpu.post(Desc {
        op: abi::EV_FATAL,
        status: -libc::EPROTO,
        a: abi::VIOLATION_UNKNOWN_OP,
        ..Desc::default()
    });
    let e = (&s).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPROTO));
    let e = TcpStream::connect(&toe, REMOTE).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPROTO));
    drop(s);
    // Only the stream's close reached the ring (no OP_CLOSE for conn 7
    // after its abort, no connect after the fatal event).
    let close = dpu.next_request();
    assert_eq!((close.op, close.conn), (abi::OP_CLOSE, 7));
    assert_eq!(dpu.req.pop().unwrap(), None);
}

#[test]
fn service_hangup_breaks_blocked_calls() {
    let (toe, mut dpu) = attach(Duration::ZERO);
    let s = connected(&toe, &mut dpu);
    std::thread::scope(|sc| {
        let h = sc.spawn(|| (&s).read(&mut [0u8; 4]));
        std::thread::sleep(Duration::from_millis(20));
        drop(std::mem::replace(
            &mut dpu._control,
            UnixStream::pair().unwrap().0,
        ));
        let e = h.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    });
    assert!(TcpStream::connect(&toe, REMOTE).is_err());
}

#[test]
fn full_request_ring_queues_and_coalesces() {
    let (toe, mut dpu) = attach(Duration::ZERO);
    let s = connected(&toe, &mut dpu);
    // Non-blocking: 8 ring entries, 8 pushes fit, the other 12 coalesce
    // into one queued push.
    s.set_nonblocking(true).unwrap();
    for _ in 0..20 {
        assert_eq!((&s).write(b"x").unwrap(), 1);
    }
    for i in 1..=8 {
        let d = dpu.next_request();
        assert_eq!((d.op, d.a), (abi::OP_TX_PUSH, i));
    }
    assert_eq!(dpu.req.pop().unwrap(), None);
    // Any call flushes what waited.
    s.writable_bytes().unwrap();
    let d = dpu.next_request();
    assert_eq!((d.op, d.a), (abi::OP_TX_PUSH, 20));
    assert_eq!(dpu.req.pop().unwrap(), None);

    // Blocking: a write returns only once its push is in the ring.
    s.set_nonblocking(false).unwrap();
    for _ in 0..8 {
        (&s).write_all(b"y").unwrap();
    }
    std::thread::scope(|sc| {
        let h = sc.spawn(|| (&s).write_all(b"z"));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished(), "the write must wait for ring space");
        for i in 21..=28 {
            assert_eq!(dpu.next_request().a, i);
        }
        h.join().unwrap().unwrap();
    });
    assert_eq!(dpu.next_request().a, 29);
}

/// A batch of reads and writes on two streams of one context: every result
/// as the calls alone would give it, the four requests (`OP_RX_POP` and
/// `OP_TX_PUSH` for each stream) pushed together behind one doorbell where
/// four calls ring it four times, and `WouldBlock` where a call would wait.
#[test]
fn a_batch_takes_one_poll_and_one_doorbell_per_context() {
    let (toe, mut dpu) = attach(Duration::ZERO);
    let a = connected_as(&toe, &mut dpu, 7, 1);
    let b = connected_as(&toe, &mut dpu, 8, 0);
    // The DPU sleeps: every push rings its doorbell.
    dpu.region
        .atomic_u32(LAYOUT.dpu_sleeping_offset())
        .unwrap()
        .store(1, Ordering::SeqCst);
    dpu.dpu_bell.drain().ok();
    dpu.region.write(LAYOUT.rx_buf_offset(1), b"hello").unwrap();
    dpu.region
        .write(LAYOUT.rx_buf_offset(0), b"world!")
        .unwrap();
    dpu.conn_event(7, abi::CONN_WRITABLE, 5, 0);
    dpu.conn_event(8, abi::CONN_WRITABLE, 6, 0);

    let (mut ra, mut rb, mut rc) = ([0u8; 16], [0u8; 16], [0u8; 16]);
    let mut ops = [
        BatchOp::Read {
            stream: &a,
            buf: &mut ra,
        },
        BatchOp::Read {
            stream: &b,
            buf: &mut rb,
        },
        BatchOp::Write {
            stream: &a,
            buf: b"one",
        },
        BatchOp::Write {
            stream: &b,
            buf: b"two!",
        },
        BatchOp::Read {
            stream: &a,
            buf: &mut rc,
        },
    ];
    let mut results = Vec::new();
    toe.submit(&mut ops, &mut results);
    let moved: Vec<_> = results.iter().map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(moved, [Some(5), Some(6), Some(3), Some(4), None]);
    assert_eq!(
        results[4].as_ref().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing more to read: the batch does not wait"
    );
    assert_eq!((&ra[..5], &rb[..6]), (&b"hello"[..], &b"world!"[..]));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let d = dpu.next_request();
        seen.push((d.op, d.conn, d.a));
    }
    seen.sort_unstable();
    let mut expected = vec![
        (abi::OP_RX_POP, 7, 5),
        (abi::OP_RX_POP, 8, 6),
        (abi::OP_TX_PUSH, 7, 3),
        (abi::OP_TX_PUSH, 8, 4),
    ];
    expected.sort_unstable();
    assert_eq!(seen, expected);
    assert_eq!(
        dpu.dpu_bell.drain().unwrap(),
        1,
        "one doorbell for the batch"
    );

    // The same four operations as single calls ring four times.
    dpu.conn_event(7, abi::CONN_WRITABLE, 10, 3);
    dpu.conn_event(8, abi::CONN_WRITABLE, 12, 4);
    let mut buf = [0u8; 16];
    assert_eq!((&a).read(&mut buf).unwrap(), 5);
    assert_eq!((&b).read(&mut buf).unwrap(), 6);
    (&a).write_all(b"x").unwrap();
    (&b).write_all(b"y").unwrap();
    for _ in 0..4 {
        dpu.next_request();
    }
    assert_eq!(dpu.dpu_bell.drain().unwrap(), 4);
}

/// Operations that cannot run say why, without disturbing the others.
#[test]
fn a_batch_reports_each_operation_on_its_own() {
    let (toe, mut dpu) = attach(Duration::ZERO);
    let a = connected(&toe, &mut dpu);
    let (other, mut other_dpu) = attach(Duration::ZERO);
    let foreign = connected(&other, &mut other_dpu);
    let mut empty = [0u8; 0];
    let mut ops = [
        BatchOp::Write {
            stream: &foreign,
            buf: b"x",
        },
        BatchOp::Read {
            stream: &a,
            buf: &mut empty,
        },
        BatchOp::Write {
            stream: &a,
            buf: b"ok",
        },
    ];
    let mut results = Vec::new();
    toe.submit(&mut ops, &mut results);
    assert_eq!(
        results[0].as_ref().unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(results[1].as_ref().ok(), Some(&0));
    assert_eq!(results[2].as_ref().ok(), Some(&2));
    let d = dpu.next_request();
    assert_eq!((d.op, d.a), (abi::OP_TX_PUSH, 2));
}
