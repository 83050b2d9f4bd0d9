//! A byte source in the spirit of chargen (RFC 864), but finite: every
//! accepted connection is sent `bytes` bytes of a fixed pattern
//! ([`pattern_byte`]), then our direction is shut (FIN) while the peer may
//! keep sending; what it sends is read and discarded until its FIN, then the
//! connection is closed. This exercises a half-close started by the service.

use crate::app::ConnId;
use crate::engine::{ApiError, Engine};
use crate::pipeline::ShardApp;

/// Byte `offset` of the stream every connection receives:
/// `offset mod 251` (a prime, so the pattern does not align with segments).
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    sent: u64,
    shut: bool,
}

/// The source service on one port.
#[derive(Debug)]
pub struct SourceApp {
    port: u16,
    bytes: u64,
    conns: Vec<Conn>,
    chunk: Vec<u8>,
    buf: Vec<u8>,
    pub accepted: u64,
    /// Bytes sent, all connections.
    pub sent: u64,
    /// Bytes received (and discarded), all connections.
    pub received: u64,
}

impl SourceApp {
    /// Sends `bytes` on each connection accepted on `port`.
    pub fn new(port: u16, bytes: u64) -> Self {
        Self {
            port,
            bytes,
            conns: Vec::new(),
            chunk: vec![0u8; 64 * 1024],
            buf: vec![0u8; 64 * 1024],
            accepted: 0,
            sent: 0,
            received: 0,
        }
    }
}

impl ShardApp for SourceApp {
    fn start(&mut self, engine: &mut Engine) {
        if let Err(e) = engine.listen(self.port, None) {
            tracing::warn!(port = self.port, error = %e, "source: cannot listen");
        }
    }

    fn poll(&mut self, engine: &mut Engine) {
        while let Some(id) = engine.accept(self.port) {
            self.accepted += 1;
            self.conns.push(Conn {
                id,
                sent: 0,
                shut: false,
            });
        }
        let total = self.bytes;
        let (chunk, buf) = (&mut self.chunk, &mut self.buf);
        let (sent_all, received) = (&mut self.sent, &mut self.received);
        self.conns.retain_mut(|c| {
            while c.sent < total {
                let n = (total - c.sent).min(chunk.len() as u64) as usize;
                for (i, b) in chunk[..n].iter_mut().enumerate() {
                    *b = pattern_byte(c.sent + i as u64);
                }
                match engine.send(c.id, &chunk[..n]) {
                    Ok(k) => {
                        c.sent += k as u64;
                        *sent_all += k as u64;
                    }
                    Err(ApiError::WouldBlock) => break,
                    Err(_) => {
                        let _ = engine.close(c.id);
                        return false;
                    }
                }
            }
            if c.sent == total && !c.shut {
                c.shut = true;
                let _ = engine.shutdown_write(c.id);
            }
            loop {
                match engine.recv(c.id, buf) {
                    Ok(0) if c.shut => {
                        let _ = engine.close(c.id);
                        return false;
                    }
                    // EOF before we finished sending: keep sending.
                    Ok(0) | Err(ApiError::WouldBlock) => return true,
                    Ok(n) => *received += n as u64,
                    Err(_) => {
                        let _ = engine.close(c.id);
                        return false;
                    }
                }
            }
        });
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
