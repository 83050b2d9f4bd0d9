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
    (offset % PERIOD) as u8
}

/// The pattern's period.
const PERIOD: u64 = 251;

/// Bytes handed to `Engine::send` at a time.
const CHUNK: usize = 64 * 1024;

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
    /// The pattern from offset 0, one period longer than a chunk: the
    /// chunk at stream offset `o` starts at `o % PERIOD` (computing the
    /// pattern byte by byte took two thirds of the worker at 1.5 Gbit/s).
    pattern: Vec<u8>,
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
            pattern: (0..CHUNK as u64 + PERIOD).map(pattern_byte).collect(),
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
        let (pattern, buf) = (&self.pattern, &mut self.buf);
        let (sent_all, received) = (&mut self.sent, &mut self.received);
        self.conns.retain_mut(|c| {
            while c.sent < total {
                let n = (total - c.sent).min(CHUNK as u64) as usize;
                let from = (c.sent % PERIOD) as usize;
                match engine.send(c.id, &pattern[from..from + n]) {
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

    fn movable(&self) -> bool {
        true
    }

    fn export_conns(&mut self, conns: &[ConnId]) -> crate::pipeline::AppParcel {
        Box::new(super::moving::take_leaving(&mut self.conns, conns, |c| {
            c.id
        }))
    }

    fn import_conns(
        &mut self,
        _engine: &mut Engine,
        parcel: crate::pipeline::AppParcel,
        moves: &crate::engine::HandleMoves,
    ) {
        if let Ok(arriving) = parcel.downcast::<Vec<Conn>>() {
            super::moving::put_arriving(&mut self.conns, *arriving, moves, |c| &mut c.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_the_pattern_at_its_offset() {
        let app = SourceApp::new(SOURCE_PORT_FOR_TEST, 0);
        for offset in [0u64, 1, 250, 251, 252, 65_536, 123_456_789] {
            let from = (offset % PERIOD) as usize;
            let chunk = &app.pattern[from..from + CHUNK];
            assert!(chunk
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern_byte(offset + i as u64)));
        }
    }

    const SOURCE_PORT_FOR_TEST: u16 = 19;
}
