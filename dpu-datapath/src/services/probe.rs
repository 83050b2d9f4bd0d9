//! An active-open probe: connects once to a peer (which makes the engine
//! resolve the peer's MAC with ARP), sends a message, half-closes, reads the
//! reply to EOF and closes. Used to check our ARP requests and active opens
//! against a real stack (an echo server on the peer).

use crate::app::ConnId;
use crate::engine::{ApiError, Engine};
use crate::pipeline::ShardApp;
use std::net::Ipv4Addr;

/// Where the probe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeState {
    Idle,
    Connecting,
    Sending,
    Receiving,
    Done,
    Failed,
}

/// Connects to `ip:port` once the engine's clock reaches `start_at`.
#[derive(Debug)]
pub struct ProbeApp {
    ip: Ipv4Addr,
    port: u16,
    start_at: crate::proto::Nanos,
    message: Vec<u8>,
    conn: Option<ConnId>,
    sent: usize,
    buf: Vec<u8>,
    pub state: ProbeState,
    /// What came back.
    pub received: Vec<u8>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl ProbeApp {
    /// A probe that connects at engine time `start_at` (ns; the pipeline's
    /// real clock starts at 0), e.g. once the peer is configured.
    pub fn new(ip: Ipv4Addr, port: u16, message: Vec<u8>, start_at: crate::proto::Nanos) -> Self {
        Self {
            ip,
            port,
            start_at,
            message,
            conn: None,
            sent: 0,
            buf: vec![0u8; 16 * 1024],
            state: ProbeState::Idle,
            received: Vec::new(),
            error: None,
        }
    }

    /// Its connection, while it has one.
    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    /// Its connection moved with its flow group (`moves`: old and new
    /// handles); a probe whose connection did not arrive has failed.
    pub fn moved(&mut self, moves: &crate::engine::HandleMoves) {
        let Some(c) = self.conn else {
            return;
        };
        self.conn = moves.iter().find(|m| m.0 == c).map(|m| m.1);
        if self.conn.is_none() {
            self.error = Some("its connection was lost in a flow-group move".into());
            self.state = ProbeState::Failed;
        }
    }

    /// The reply equals the message (an echo peer).
    pub fn echoed(&self) -> bool {
        self.state == ProbeState::Done && self.received == self.message
    }

    fn fail(&mut self, engine: &mut Engine, why: String) {
        if let Some(c) = self.conn.take() {
            let _ = engine.abort(c);
        }
        tracing::warn!(target = %self.ip, port = self.port, %why, "probe failed");
        self.error = Some(why);
        self.state = ProbeState::Failed;
    }
}

impl ShardApp for ProbeApp {
    fn start(&mut self, _engine: &mut Engine) {}

    fn poll(&mut self, engine: &mut Engine) {
        match self.state {
            ProbeState::Idle if engine.now() < self.start_at => {}
            ProbeState::Idle => match engine.connect(self.ip, self.port, engine.now()) {
                Ok(c) => {
                    self.conn = Some(c);
                    self.state = ProbeState::Connecting;
                }
                Err(e) => self.fail(engine, format!("connect: {e}")),
            },
            ProbeState::Connecting | ProbeState::Sending => {
                let Some(c) = self.conn else { return };
                match engine.send(c, &self.message[self.sent..]) {
                    Ok(n) => self.sent += n,
                    Err(ApiError::NotConnected) | Err(ApiError::WouldBlock) => {}
                    Err(ApiError::Shutdown) if self.message.is_empty() => {}
                    Err(e) => return self.fail(engine, format!("send: {e}")),
                }
                if engine
                    .conn_state(c)
                    .is_some_and(|s| s != crate::proto::TcpState::SynSent)
                {
                    self.state = ProbeState::Sending;
                }
                if self.state == ProbeState::Sending && self.sent == self.message.len() {
                    let _ = engine.shutdown_write(c);
                    self.state = ProbeState::Receiving;
                }
            }
            ProbeState::Receiving => {
                let Some(c) = self.conn else { return };
                loop {
                    match engine.recv(c, &mut self.buf) {
                        Ok(0) => {
                            let _ = engine.close(c);
                            self.conn = None;
                            self.state = ProbeState::Done;
                            tracing::info!(bytes = self.received.len(), "probe done");
                            return;
                        }
                        Ok(n) => self.received.extend_from_slice(&self.buf[..n]),
                        Err(ApiError::WouldBlock) => return,
                        Err(e) => return self.fail(engine, format!("recv: {e}")),
                    }
                }
            }
            ProbeState::Done | ProbeState::Failed => {}
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
