//! Bulk receiver: accepts one connection, reads until EOF, and prints the
//! byte count and SHA-256 of what arrived as one JSON line.
//!
//! ```text
//! bulk_recv --listen 0.0.0.0:9000 [--kernel]
//! ```

mod common;

use std::io::{self, Read, Write};
use std::time::Instant;

use clap::Parser;
use common::{Stack, StackArgs, Stream};
use sha2::{Digest, Sha256};

#[derive(Parser, Debug)]
#[command(about = "Receive a bulk transfer and hash it (libtoe or --kernel)")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:9000")]
    listen: String,
    /// Read buffer size in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    buffer: usize,
}

/// Reads `s` to EOF; returns (bytes, SHA-256).
fn receive(mut s: &Stream, buffer: usize) -> io::Result<(u64, [u8; 32])> {
    let mut buf = vec![0u8; buffer.max(1)];
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok((total, h.finalize().into()));
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let stack = Stack::open(&args.stack)?;
    let listener = stack.bind(common::resolve(&args.listen)?)?;
    eprintln!(
        "bulk_recv: listening on {} ({})",
        listener.local_addr()?,
        stack.name()
    );
    let (s, peer) = listener.accept()?;
    let start = Instant::now();
    let (bytes, digest) = receive(&s, args.buffer)?;
    let secs = start.elapsed().as_secs_f64();
    // Closing after EOF tells the sender everything arrived.
    drop(s);
    println!(
        "{}",
        serde_json::json!({
            "stack": stack.name(),
            "peer": peer.to_string(),
            "bytes": bytes,
            "sha256": common::hex(&digest),
            "secs": secs,
            "gbps": bytes as f64 * 8.0 / secs.max(1e-9) / 1e9,
        })
    );
    io::stdout().flush()
}
