//! RPC client: N connections, each making M request/response exchanges of
//! S bytes against an echo server (one thread per connection). Prints one
//! JSON line: requests/s, p50/p99 latency, and the process CPU time per
//! request (getrusage(RUSAGE_SELF) before and after).
//!
//! ```text
//! rpc_client --connect 198.18.0.1:7777 --conns 4 --requests 10000 --size 64 [--kernel]
//! ```

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{ByteGen, Stack, StackArgs, Stream};

#[derive(Parser, Debug)]
#[command(about = "Request/response load against an echo server (libtoe or --kernel)")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Echo server address.
    #[arg(long)]
    connect: String,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Requests per connection.
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Request (and response) size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
}

/// `requests` exchanges on one connection; returns their latencies.
fn run_conn(mut s: &Stream, requests: u64, size: usize, seed: u64) -> io::Result<Vec<Duration>> {
    let mut req = vec![0u8; size.div_ceil(8) * 8];
    ByteGen::new(seed).fill(&mut req);
    req.truncate(size);
    let mut resp = vec![0u8; size];
    let mut lat = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let t = Instant::now();
        s.write_all(&req)?;
        s.read_exact(&mut resp)?;
        lat.push(t.elapsed());
        if resp != req {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response differs from request",
            ));
        }
    }
    s.shutdown(Shutdown::Write)?;
    common::drain_to_eof(s)?;
    Ok(lat)
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    if args.size == 0 || args.conns == 0 {
        eprintln!("rpc_client: --size and --conns must be positive");
        std::process::exit(2);
    }
    let stack = Stack::open(&args.stack)?;
    let addr: SocketAddr = common::resolve(&args.connect)?;
    // Each worker connects from its own thread (with libtoe the connection
    // is bound to that thread's context); timing starts once all are up.
    let barrier = Arc::new(Barrier::new(args.conns + 1));
    let workers: Vec<_> = (0..args.conns)
        .map(|i| {
            let (barrier, stack) = (barrier.clone(), stack.clone());
            let (requests, size) = (args.requests, args.size);
            std::thread::spawn(move || {
                let s = stack.connect(addr).and_then(|s| {
                    s.set_nodelay(true)?;
                    Ok(s)
                });
                barrier.wait();
                run_conn(&s?, requests, size, i as u64 + 1)
            })
        })
        .collect();
    let cpu0 = common::process_cpu_time();
    barrier.wait();
    let start = Instant::now();
    let mut lat = Vec::new();
    for w in workers {
        let l = w
            .join()
            .map_err(|_| io::Error::other("worker panicked"))??;
        lat.extend(l);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = (common::process_cpu_time() - cpu0).as_secs_f64();
    lat.sort_unstable();
    let n = lat.len() as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{}",
        serde_json::json!({
            "stack": stack.name(),
            "conns": args.conns,
            "requests": lat.len(),
            "size": args.size,
            "secs": secs,
            "rps": n / secs.max(1e-9),
            "p50_us": us(common::percentile(&lat, 50.0)),
            "p99_us": us(common::percentile(&lat, 99.0)),
            "cpu_secs": cpu,
            "cpu_us_per_req": cpu * 1e6 / n.max(1.0),
        })
    );
    io::stdout().flush()
}
