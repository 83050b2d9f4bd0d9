//! TCP echo (RFC 862): everything received is sent back; when the peer
//! half-closes and all its data was echoed, the connection is closed.

use crate::app::ConnId;
use crate::engine::Engine;
use crate::pipeline::ShardApp;

/// Echo service on one port.
#[derive(Debug)]
pub struct EchoApp {
    port: u16,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    /// Bytes echoed so far, all connections.
    pub echoed: u64,
    pub accepted: u64,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    /// Read but not yet accepted by `send`.
    backlog: Vec<u8>,
}

impl EchoApp {
    pub fn new(port: u16) -> Self {
        Self {
            port,
            conns: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            echoed: 0,
            accepted: 0,
        }
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

impl ShardApp for EchoApp {
    fn start(&mut self, engine: &mut Engine) {
        if let Err(e) = engine.listen(self.port, None) {
            tracing::warn!(port = self.port, error = %e, "echo: cannot listen");
        }
    }

    fn poll(&mut self, engine: &mut Engine) {
        while let Some(id) = engine.accept(self.port) {
            self.accepted += 1;
            self.conns.push(Conn {
                id,
                backlog: Vec::new(),
            });
        }
        let buf = &mut self.buf;
        let echoed = &mut self.echoed;
        self.conns.retain_mut(|c| {
            // A connection reset while its TX buffer is full (the peer did
            // not read its echo) offers neither room to send nor a reason
            // to read: without this check it was never closed and its
            // entry stayed in the table (linux_rst_mid_transfer, 1 run in
            // about 12).
            if engine.conn_error(c.id).is_some() {
                let _ = engine.close(c.id);
                return false;
            }
            // Send what is pending first; read only what we can send back.
            if !c.backlog.is_empty() {
                match engine.send(c.id, &c.backlog) {
                    Ok(n) => {
                        c.backlog.drain(..n);
                        *echoed += n as u64;
                    }
                    Err(crate::engine::ApiError::WouldBlock) => {}
                    Err(_) => {
                        let _ = engine.close(c.id);
                        return false;
                    }
                }
            }
            while c.backlog.is_empty() {
                let room = engine.writable(c.id).min(buf.len());
                if room == 0 {
                    break;
                }
                match engine.recv(c.id, &mut buf[..room]) {
                    Ok(0) => {
                        // Peer finished and everything was echoed.
                        let _ = engine.close(c.id);
                        return false;
                    }
                    Ok(n) => match engine.send(c.id, &buf[..n]) {
                        Ok(sent) => {
                            *echoed += sent as u64;
                            c.backlog.extend_from_slice(&buf[sent..n]);
                        }
                        Err(_) => c.backlog.extend_from_slice(&buf[..n]),
                    },
                    Err(crate::engine::ApiError::WouldBlock) => break,
                    Err(_) => {
                        let _ = engine.close(c.id);
                        return false;
                    }
                }
            }
            true
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
