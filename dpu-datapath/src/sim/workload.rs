//! Workloads for the simulator: a seeded byte stream and a bulk transfer in
//! both directions over one connection, hashed with SHA-256 on both ends.

use crate::app::ConnId;
use crate::engine::Engine;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// One direction of a bulk transfer: a seeded stream written into a
/// connection, hashed as it is written, then a half-close.
#[derive(Debug)]
pub struct StreamSender {
    rng: ChaCha8Rng,
    total: u64,
    sent: u64,
    chunk: Vec<u8>,
    chunk_off: usize,
    hash: Sha256,
    shut: bool,
}

impl StreamSender {
    pub fn new(seed: u64, total: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            total,
            sent: 0,
            chunk: Vec::new(),
            chunk_off: 0,
            hash: Sha256::new(),
            shut: false,
        }
    }

    /// Writes as much as the connection takes; half-closes at the end.
    pub fn pump(&mut self, engine: &mut Engine, conn: ConnId) {
        while self.sent < self.total {
            if self.chunk_off == self.chunk.len() {
                let n = (self.total - self.sent).min(16 * 1024) as usize;
                self.chunk.resize(n, 0);
                self.rng.fill_bytes(&mut self.chunk);
                self.chunk_off = 0;
            }
            match engine.send(conn, &self.chunk[self.chunk_off..]) {
                Ok(n) => {
                    self.hash
                        .update(&self.chunk[self.chunk_off..self.chunk_off + n]);
                    self.chunk_off += n;
                    self.sent += n as u64;
                }
                Err(_) => return,
            }
        }
        if !self.shut {
            self.shut = engine.shutdown_write(conn).is_ok();
        }
    }

    pub fn done(&self) -> bool {
        self.sent == self.total && self.shut
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn digest(&self) -> [u8; 32] {
        self.hash.clone().finalize().into()
    }
}

/// The receiving side: reads to EOF, counting and hashing.
#[derive(Debug)]
pub struct StreamReceiver {
    received: u64,
    hash: Sha256,
    eof: bool,
    buf: Vec<u8>,
}

impl Default for StreamReceiver {
    fn default() -> Self {
        Self {
            received: 0,
            hash: Sha256::new(),
            eof: false,
            buf: vec![0u8; 64 * 1024],
        }
    }
}

impl StreamReceiver {
    /// Reads everything available.
    pub fn pump(&mut self, engine: &mut Engine, conn: ConnId) {
        loop {
            match engine.recv(conn, &mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    self.hash.update(&self.buf[..n]);
                    self.received += n as u64;
                }
                Err(_) => return,
            }
        }
    }

    pub fn eof(&self) -> bool {
        self.eof
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn digest(&self) -> [u8; 32] {
        self.hash.clone().finalize().into()
    }
}
