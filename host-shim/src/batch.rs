//! Reads and writes on many streams in one call, as an event loop handles
//! what one wait returned (XLIO's and TAS's APIs offer the same).
//!
//! Separate calls each take their context's lock, poll its event ring,
//! push what they queued and check whether the DPU must be woken. A batch
//! does that once per context for all of its operations on that context's
//! streams: one lock, one poll, one push of every descriptor (`OP_RX_POP`,
//! `OP_TX_PUSH`) and at most one doorbell. It never blocks: an operation
//! that would wait gets `WouldBlock`, whatever the stream's mode.

use std::io;

use crate::toe::Toe;
use crate::TcpStream;

/// One operation of [`Toe::submit`].
#[derive(Debug)]
pub enum BatchOp<'a> {
    /// Reads up to `buf.len()` bytes (`Ok(0)`: end of stream).
    Read {
        stream: &'a TcpStream,
        buf: &'a mut [u8],
    },
    /// Writes up to `buf.len()` bytes (as much as the send buffer takes).
    Write {
        stream: &'a TcpStream,
        buf: &'a [u8],
    },
}

impl BatchOp<'_> {
    fn stream(&self) -> &TcpStream {
        match self {
            BatchOp::Read { stream, .. } | BatchOp::Write { stream, .. } => stream,
        }
    }

    /// The operation on its own (a stream that must be adopted first, after
    /// a fork, takes this path).
    fn alone(&mut self) -> io::Result<usize> {
        match self {
            BatchOp::Read { stream, buf } => stream.read_now(buf),
            BatchOp::Write { stream, buf } => stream.write_now(buf),
        }
    }
}

impl Toe {
    /// Runs `ops` (reads and writes on streams of this attachment) and puts
    /// each one's result in `results`, in the same order: the bytes moved,
    /// `WouldBlock` where nothing could be, or the error the same call on its
    /// own would return. Operations on one stream run in their order. A
    /// stream of another attachment gets `InvalidInput`.
    pub fn submit(&self, ops: &mut [BatchOp<'_>], results: &mut Vec<io::Result<usize>>) {
        results.clear();
        results.extend(
            ops.iter()
                .map(|_| Err(io::Error::from_raw_os_error(libc::EAGAIN))),
        );
        for first in 0..ops.len() {
            let ctx = ops[first].stream().ctx_index();
            let done_before = ops[..first].iter().any(|op| {
                std::ptr::eq(op.stream().toe_ptr(), self) && op.stream().ctx_index() == ctx
            });
            if done_before {
                continue;
            }
            if !std::ptr::eq(ops[first].stream().toe_ptr(), self) {
                results[first] = Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "libtoe: a stream of another attachment in the batch",
                ));
                continue;
            }
            // One lock, poll and push for every operation on this context.
            let same = |op: &BatchOp<'_>| {
                std::ptr::eq(op.stream().toe_ptr(), self) && op.stream().ctx_index() == ctx
            };
            let ran = self.context(ctx).with(|g, sh| {
                for (op, result) in ops.iter_mut().zip(results.iter_mut()).skip(first) {
                    if !same(op) {
                        continue;
                    }
                    let r = match op {
                        BatchOp::Read { stream, buf } => stream.try_read_locked(g, sh, buf),
                        BatchOp::Write { stream, buf } => stream.try_write_locked(g, sh, buf),
                    };
                    match r {
                        Some(r) => *result = r,
                        // A context the service gave up on never unblocks:
                        // what a call alone would say (not WouldBlock forever).
                        None if g.fatal.is_some() => {
                            *result = Err(io::Error::from_raw_os_error(libc::EPROTO))
                        }
                        None => {}
                    }
                }
            });
            if let Err(e) = ran {
                // The attachment is broken: every operation on it says so.
                for (op, result) in ops.iter().zip(results.iter_mut()).skip(first) {
                    if same(op) {
                        *result = Err(io::Error::new(e.kind(), e.to_string()));
                    }
                }
            }
        }
        // A connection inherited across fork answers EREMCHG until adopted:
        // those go alone (which adopts).
        for (op, result) in ops.iter_mut().zip(results.iter_mut()) {
            if matches!(result, Err(e) if e.raw_os_error() == Some(libc::EREMCHG)) {
                *result = op.alone();
            }
        }
    }
}
