//! TCP discard (RFC 863): everything received is read and thrown away; when
//! the peer closes its direction, the connection is closed. Useful as a
//! goodput sink: no bytes travel back.

use crate::app::ConnId;
use crate::engine::{ApiError, Engine};
use crate::pipeline::ShardApp;

/// Discard service on one port.
#[derive(Debug)]
pub struct DiscardApp {
    port: u16,
    conns: Vec<ConnId>,
    buf: Vec<u8>,
    /// Bytes read and discarded, all connections.
    pub discarded: u64,
    pub accepted: u64,
}

impl DiscardApp {
    pub fn new(port: u16) -> Self {
        Self {
            port,
            conns: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            discarded: 0,
            accepted: 0,
        }
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

impl ShardApp for DiscardApp {
    fn start(&mut self, engine: &mut Engine) {
        if let Err(e) = engine.listen(self.port, None) {
            tracing::warn!(port = self.port, error = %e, "discard: cannot listen");
        }
    }

    fn poll(&mut self, engine: &mut Engine) {
        while let Some(id) = engine.accept(self.port) {
            self.accepted += 1;
            self.conns.push(id);
        }
        let (buf, discarded) = (&mut self.buf, &mut self.discarded);
        self.conns.retain(|&id| loop {
            // Consume in place: no copy is needed to throw bytes away.
            let n = engine.readable(id);
            if n > 0 {
                let _ = engine.rx_consume(id, n);
                *discarded += n as u64;
                continue;
            }
            match engine.recv(id, &mut buf[..1]) {
                Ok(0) | Err(ApiError::Connection(_)) | Err(ApiError::InvalidHandle) => {
                    let _ = engine.close(id);
                    return false;
                }
                Ok(n) => *discarded += n as u64,
                Err(_) => return true,
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
        Box::new(super::moving::take_leaving(&mut self.conns, conns, |c| *c))
    }

    fn import_conns(
        &mut self,
        _engine: &mut Engine,
        parcel: crate::pipeline::AppParcel,
        moves: &crate::engine::HandleMoves,
    ) {
        if let Ok(arriving) = parcel.downcast::<Vec<ConnId>>() {
            super::moving::put_arriving(&mut self.conns, *arriving, moves, |c| c);
        }
    }
}
