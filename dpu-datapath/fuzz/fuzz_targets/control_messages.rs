//! The control socket's decoder fed arbitrary bytes (issue 21: every
//! untrusted input fuzzed): what a local client sends the service
//! (`hostif::control_socket` reads one `ControlRequest` per frame with
//! `recv_json`) and what an application reads back from it (libtoe and
//! `flextoe-dpu` read a `ControlReply`, then a `RegisterReply` and its
//! layout).
//!
//! The first byte chooses how the rest reaches a real Unix socket pair:
//! - even: as raw stream bytes, so the `u32` length prefixes are fuzzed too
//!   (truncated frames, oversized lengths, several frames);
//! - odd: each line of the rest as the payload of one well-formed frame
//!   (`fdpass::send_frame`), with 0 to 3 file descriptors attached to the
//!   first, so the JSON decoders are reached directly.
//!
//! Checks: no panic; errors are values (`io::Error` of kind `InvalidData` or
//! `UnexpectedEof` with a message); a frame with more fds than allowed is
//! refused and the stream stays framed; every decoded request and register
//! reply serializes back to an equal value; a capture filter a request
//! carries goes through `Filter::parse` as the service does; a layout that
//! validates yields consistent offsets.
#![no_main]

use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;

use doca_bindings::abi::{self, Layout};
use doca_bindings::control::{self, ControlReply, ControlRequest, RegisterReply};
use doca_bindings::{fdpass, Doorbell};
use dpu_datapath::capture::Filter;
use libfuzzer_sys::fuzz_target;

/// Larger inputs could fill the socket buffer before anyone reads.
const MAX_INPUT: usize = 64 << 10;
/// Frames decoded per stream at most.
const MAX_FRAMES: usize = 64;

fn check_error(e: &io::Error) {
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        ),
        "unexpected error kind {:?}: {e}",
        e.kind()
    );
    assert!(!e.to_string().is_empty(), "an error without a message");
}

/// What the service does with a request before acting on it.
fn check_request(req: &ControlRequest) {
    let bytes = serde_json::to_vec(req).expect("a request serializes");
    let back: ControlRequest = serde_json::from_slice(&bytes).expect("and reads back");
    assert_eq!(&back, req, "request round trip");
    if let ControlRequest::Capture { filter, .. } = req {
        if let Err(e) = Filter::parse(filter) {
            assert!(!e.is_empty(), "a filter error without a message");
        }
    }
}

/// What libtoe does with the reply to `register`.
fn check_reply(reply: ControlReply) {
    let _ = reply.clone().into_result::<serde_json::Value>();
    let Ok(reg) = reply.into_result::<RegisterReply>() else {
        return;
    };
    let bytes = serde_json::to_vec(&reg).expect("a register reply serializes");
    let back: RegisterReply = serde_json::from_slice(&bytes).expect("and reads back");
    assert_eq!(back, reg, "register reply round trip");
    check_layout(&reg.layout);
}

/// A layout the application accepts must describe a region whose parts do
/// not overlap and fit its size.
fn check_layout(l: &Layout) {
    if let Err(e) = l.validate() {
        assert!(e.starts_with("layout"), "{e}");
        return;
    }
    let size = l.region_size();
    assert!(size < usize::MAX);
    let desc = std::mem::size_of::<abi::Desc>();
    let ring_bytes = l.ring_entries as usize * desc;
    for ctx in [0, l.contexts - 1] {
        let evt = l.event_ring(ctx);
        assert!(l.request_ring(ctx).entries + ring_bytes <= evt.entries);
        assert!(evt.entries + ring_bytes <= l.ctx_offset(ctx) + l.ctx_stride());
    }
    assert!(l.ctx_offset(l.contexts - 1) + l.ctx_stride() <= l.slots_offset());
    assert_eq!(l.tx_buf_offset(l.slots - 1) + l.tx_buf_size as usize, size);
}

/// Decodes the frames of `rx` as the service does and those of `rx2` as
/// an application does; `keep_going`: past a frame that did not decode.
fn decode(rx: &UnixStream, rx2: &UnixStream, keep_going: bool) {
    for _ in 0..MAX_FRAMES {
        match control::recv_json::<ControlRequest>(rx, 0) {
            Ok(Some((req, fds))) => {
                assert!(fds.is_empty(), "the service accepts no fds");
                check_request(&req);
            }
            Ok(None) => break,
            Err(e) => {
                check_error(&e);
                if !keep_going {
                    break;
                }
            }
        }
    }
    let max_fds = control::REGISTER_FDS_BASE + abi::MAX_CONTEXTS as usize;
    for _ in 0..MAX_FRAMES {
        match control::recv_json::<ControlReply>(rx2, max_fds) {
            Ok(Some((reply, fds))) => {
                assert!(fds.len() <= max_fds);
                check_reply(reply);
            }
            Ok(None) => break,
            Err(e) => {
                check_error(&e);
                if !keep_going {
                    break;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() > MAX_INPUT {
        return;
    }
    let (mut tx, rx) = UnixStream::pair().expect("socketpair");
    let (mut tx2, rx2) = UnixStream::pair().expect("socketpair");
    if mode % 2 == 0 {
        // Raw bytes; after an error the stream is out of step (as the
        // service, stop reading it).
        tx.write_all(rest).expect("fits the socket buffer");
        tx2.write_all(rest).expect("fits the socket buffer");
        drop((tx, tx2));
        decode(&rx, &rx2, false);
        return;
    }
    // Well-formed frames: a JSON error consumes its frame, so decoding goes
    // on with the next one.
    let bells: Vec<Doorbell> = (0..(mode >> 1) % 4)
        .map(|_| Doorbell::new().expect("eventfd"))
        .collect();
    let fds: Vec<BorrowedFd<'_>> = bells.iter().map(|b| b.fd()).collect();
    for (i, line) in rest.split(|&b| b == b'\n').enumerate().take(MAX_FRAMES) {
        let attach: &[BorrowedFd<'_>] = if i == 0 { &fds } else { &[] };
        fdpass::send_frame(&tx, line, attach).expect("fits the socket buffer");
        fdpass::send_frame(&tx2, line, attach).expect("fits the socket buffer");
    }
    drop((tx, tx2));
    if !fds.is_empty() {
        // The service takes no fds: the first frame is refused whole.
        match control::recv_json::<ControlRequest>(&rx, 0) {
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                assert!(e.to_string().contains("fds"), "{e}");
            }
            Ok(_) => panic!("a frame with fds was accepted by the service"),
        }
        // The application takes them with the frame.
        let max_fds = control::REGISTER_FDS_BASE + abi::MAX_CONTEXTS as usize;
        let (_, got) = fdpass::recv_frame(&rx2, max_fds)
            .expect("a well-formed frame")
            .expect("not at EOF");
        assert_eq!(got.len(), fds.len(), "fds received with the frame");
    }
    decode(&rx, &rx2, true);
});
