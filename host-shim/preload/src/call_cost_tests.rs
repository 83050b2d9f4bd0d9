//! What one call of the application costs inside the library (issue 22):
//! `read` with nothing to read, `read` of 64 bytes, `write` of 64 bytes,
//! on an established offloaded socket that is a member of an epoll set,
//! as an event loop's socket is. The DPU side is the hand-driven stand-in
//! (`test_support::Dpu`), fed between timed batches, so the figure is the
//! library's own work: the fd lookup, the socket's state, the context and
//! the descriptor it queues.
//!
//! `cargo test --release -p toe-preload --lib -- --nocapture call_cost`
//! prints ns per call; the checks make sure every timed call did what it
//! is timed for (a byte count or `EAGAIN`), so the loop cannot measure a
//! failing shortcut.

use crate::interpose;
use crate::state::tests::Attached;
use crate::test_support::*;
use crate::wait::errno;
use doca_bindings::abi;
use libc::c_int;
use std::time::Instant;

const CHUNK: usize = 64;
/// Calls per timed batch: the test layout's buffers hold 4,096 bytes.
const BATCH: usize = LAYOUT.rx_buf_size as usize / CHUNK;

fn read_now(fd: c_int, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for its length.
    unsafe { interpose::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn write_now(fd: c_int, buf: &[u8]) -> isize {
    // SAFETY: `buf` is valid for its length.
    unsafe { interpose::write(fd, buf.as_ptr().cast(), buf.len()) }
}

#[test]
fn call_cost_of_read_and_write() {
    let _g = serial();
    let (toe, mut dpu) = attach();
    let _a = Attached::ready(toe.clone());
    let (fd, sock, mut conn) = connected(&toe, &mut dpu);
    // As the library sets every stream it makes (the waits are its own).
    sock.stream().unwrap().set_nonblocking(true).unwrap();
    toe.poll().unwrap();
    let ep = kernel_epoll();
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, Some((libc::EPOLLIN as u32, 7))).unwrap();
    fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK).unwrap();
    let batches = 3000;
    let mut buf = [0u8; CHUNK];
    let payload = [0x5au8; CHUNK];

    // Nothing to read.
    let t = Instant::now();
    for _ in 0..batches * BATCH {
        assert_eq!(read_now(fd, &mut buf), -1);
        assert_eq!(errno(), libc::EAGAIN);
    }
    let eagain = t.elapsed().as_secs_f64() * 1e9 / (batches * BATCH) as f64;

    // 64 bytes at a time out of 4 KiB delivered before each batch.
    let block: Vec<u8> = (0..LAYOUT.rx_buf_size).map(|i| i as u8).collect();
    let mut timed = 0.0;
    for _ in 0..batches {
        dpu.deliver(&mut conn, &block);
        toe.poll().unwrap();
        let t = Instant::now();
        for i in 0..BATCH {
            assert_eq!(read_now(fd, &mut buf), CHUNK as isize);
            assert_eq!(buf[0], (i * CHUNK) as u8);
        }
        timed += t.elapsed().as_secs_f64();
        // Every read told the DPU what it consumed: the last one all of it.
        let mut last = dpu.take_requests().pop().expect("the reads' RX pops");
        loop {
            toe.poll().unwrap();
            match dpu.take_requests().pop() {
                Some(d) => last = d,
                None => break,
            }
        }
        assert_eq!((last.op, last.a), (abi::OP_RX_POP, conn.rx_ready));
    }
    let reads = timed * 1e9 / (batches * BATCH) as f64;

    // 64 bytes at a time into the 4 KiB TX buffer, acknowledged after each
    // batch.
    let mut timed = 0.0;
    let mut acked = 0u64;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..BATCH {
            assert_eq!(write_now(fd, &payload), CHUNK as isize);
        }
        timed += t.elapsed().as_secs_f64();
        while !dpu.take_requests().is_empty() {
            toe.poll().unwrap();
        }
        acked += LAYOUT.tx_buf_size as u64;
        dpu.ack(&conn, acked);
        toe.poll().unwrap();
    }
    let writes = timed * 1e9 / (batches * BATCH) as f64;
    println!(
        "one call on an offloaded epoll member: read with nothing to read {eagain:.0} ns, \
         read of 64 B {reads:.0} ns, write of 64 B {writes:.0} ns"
    );
    close(fd).unwrap();
    close(ep).unwrap();
}
