//! One request/response exchange of a load generator, per protocol: the
//! echo RPC, memcached's text protocol (nine gets to one set, as
//! memcaslap's default mix) and HTTP/1.1 keep-alive GETs. Requests are
//! never pipelined, so a response is complete when its own framing says so.

use std::io::{self, Read, Write};

use super::{ByteGen, Stream};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// S bytes out, the same S bytes back (checked).
    Echo,
    /// `get`/`set` of one key per connection with an S-byte value.
    Memcached,
    /// `GET <path>` with keep-alive; the body's length from Content-Length.
    Http,
}

/// One connection's exchanges.
pub struct Exchanger {
    proto: Protocol,
    /// Echo: the request. Memcached: the `get` line. Http: the request.
    request: Vec<u8>,
    /// Memcached: the whole `set` command.
    set: Vec<u8>,
    buf: Vec<u8>,
    filled: usize,
    done: u64,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Exchanger {
    pub fn new(proto: Protocol, size: usize, seed: u64, path: &str) -> Exchanger {
        let (request, set) = match proto {
            Protocol::Echo => {
                let mut req = vec![0u8; size.div_ceil(8) * 8];
                ByteGen::new(seed).fill(&mut req);
                req.truncate(size);
                (req, Vec::new())
            }
            Protocol::Memcached => {
                let key = format!("flextoe-load-{seed}");
                // Printable bytes, never "\r\n": a get's reply ends at its
                // first "END\r\n".
                let value: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
                let mut set = format!("set {key} 0 0 {size}\r\n").into_bytes();
                set.extend_from_slice(&value);
                set.extend_from_slice(b"\r\n");
                (format!("get {key}\r\n").into_bytes(), set)
            }
            Protocol::Http => (
                format!("GET {path} HTTP/1.1\r\nHost: flextoe\r\nUser-Agent: rpc_client\r\n\r\n")
                    .into_bytes(),
                Vec::new(),
            ),
        };
        Exchanger {
            proto,
            request,
            set,
            buf: vec![0; 64 * 1024],
            filled: 0,
            done: 0,
        }
    }

    /// Whatever must happen before the first timed exchange (memcached:
    /// store the key, so every get hits).
    pub fn prepare(&mut self, s: &Stream) -> io::Result<()> {
        if self.proto == Protocol::Memcached {
            let set = std::mem::take(&mut self.set);
            let r = self.exchange(s, &set);
            self.set = set;
            r?;
        }
        Ok(())
    }

    /// The echo server ends its side when ours ends; memcached and HTTP
    /// servers are simply closed.
    pub fn closes_by_shutdown(&self) -> bool {
        self.proto == Protocol::Echo
    }

    /// One request and its whole response.
    pub fn one(&mut self, s: &Stream) -> io::Result<()> {
        self.done += 1;
        if self.proto == Protocol::Memcached && self.done.is_multiple_of(10) {
            let set = std::mem::take(&mut self.set);
            let r = self.exchange(s, &set);
            self.set = set;
            return r;
        }
        let req = std::mem::take(&mut self.request);
        let r = self.exchange(s, &req);
        self.request = req;
        r
    }

    fn exchange(&mut self, mut s: &Stream, req: &[u8]) -> io::Result<()> {
        s.write_all(req)?;
        loop {
            if let Some(len) = self.complete(req)? {
                // Nothing is pipelined: anything after the response is a
                // protocol error.
                if len != self.filled {
                    return Err(bad("bytes after the response"));
                }
                self.filled = 0;
                return Ok(());
            }
            if self.filled == self.buf.len() {
                let n = self.buf.len();
                self.buf.resize(n * 2, 0);
            }
            let n = s.read(&mut self.buf[self.filled..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed mid-response",
                ));
            }
            self.filled += n;
        }
    }

    /// The response's length once the buffer holds all of it.
    fn complete(&self, req: &[u8]) -> io::Result<Option<usize>> {
        let got = &self.buf[..self.filled];
        match self.proto {
            Protocol::Echo => {
                if got.len() < req.len() {
                    return Ok(None);
                }
                if got[..req.len()] != *req {
                    return Err(bad("response differs from request"));
                }
                Ok(Some(req.len()))
            }
            Protocol::Memcached => {
                let end: &[u8] = if req.starts_with(b"set") {
                    b"STORED\r\n"
                } else {
                    b"END\r\n"
                };
                if got.starts_with(b"SERVER_ERROR") || got.starts_with(b"ERROR") {
                    return Err(bad(String::from_utf8_lossy(got).into_owned()));
                }
                Ok(got.ends_with(end).then_some(got.len()))
            }
            Protocol::Http => {
                let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return Ok(None);
                };
                let header = String::from_utf8_lossy(&got[..head]);
                if !header.starts_with("HTTP/1.1 200") {
                    return Err(bad(format!(
                        "status: {}",
                        header.lines().next().unwrap_or("")
                    )));
                }
                let length = header
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| bad("no Content-Length"))?;
                let total = head + 4 + length;
                Ok((got.len() >= total).then_some(total))
            }
        }
    }
}
