//! Request/response load: N connections, each making M exchanges (one
//! thread per connection), against an echo server (default), memcached
//! (`--protocol memcached`: nine gets to one set of an S-byte value) or an
//! HTTP server (`--protocol http`, keep-alive GETs of `--path`). Closed
//! loop by default; `--rate R` offers R requests/s in total, on a fixed
//! schedule per connection (so two stacks can be compared at the same
//! load). Prints one JSON line: requests/s, p50/p99 latency, and the
//! process CPU time per request (getrusage(RUSAGE_SELF) before and after).
//!
//! ```text
//! rpc_client --connect 198.18.0.1:7777 --conns 4 --requests 10000 --size 64 [--kernel]
//! rpc_client --connect 198.18.0.2:11211 --protocol memcached --size 100 --rate 20000
//! rpc_client --connect 198.18.0.2:8080 --protocol http --rate 20000 --conns 16 --idle 1000
//! ```

mod common;

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use common::exchange::{Exchanger, Protocol};
use common::{Stack, StackArgs, Stream};

#[derive(Parser, Debug)]
#[command(
    about = "Request/response load against an echo, memcached or HTTP server (libtoe or --kernel)"
)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Server address.
    #[arg(long)]
    connect: String,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Requests per connection.
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Echo: request (and response) size. Memcached: value size.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// What the server speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Echo)]
    protocol: Protocol,
    /// HTTP: the path to GET.
    #[arg(long, default_value = "/")]
    path: String,
    /// Requests per second offered in total (0: as fast as the replies
    /// come). Each connection sends on its own fixed schedule; a late
    /// request goes at once.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Extra connections opened before the run and held open, idle, until
    /// it ends (servers with many quiet keep-alive clients).
    #[arg(long, default_value_t = 0)]
    idle: usize,
}

/// `requests` exchanges on one connection; returns their latencies.
fn run_conn(
    s: &Stream,
    mut ex: Exchanger,
    requests: u64,
    interval: Option<Duration>,
    phase: Duration,
    start: &Barrier,
) -> io::Result<Vec<Duration>> {
    let prepared = ex.prepare(s);
    start.wait();
    prepared?;
    let t0 = Instant::now() + phase;
    let mut lat = Vec::with_capacity(requests as usize);
    for k in 0..requests {
        if let Some(i) = interval {
            let due = t0 + i.mul_f64(k as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let t = Instant::now();
        ex.one(s)?;
        lat.push(t.elapsed());
    }
    if ex.closes_by_shutdown() {
        s.shutdown(Shutdown::Write)?;
        common::drain_to_eof(s)?;
    }
    Ok(lat)
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    if args.conns == 0 || (args.size == 0 && args.protocol != Protocol::Http) {
        eprintln!("rpc_client: --conns and --size (echo, memcached) must be positive");
        std::process::exit(2);
    }
    let stack = Stack::open(&args.stack)?;
    let addr: SocketAddr = common::resolve(&args.connect)?;
    let idle = (0..args.idle)
        .map(|_| stack.connect(addr))
        .collect::<io::Result<Vec<Stream>>>()?;
    // Each worker connects from its own thread (with libtoe the connection
    // is bound to that thread's context); timing starts once all are up.
    let barrier = Arc::new(Barrier::new(args.conns + 1));
    let interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.conns as f64 / args.rate));
    let workers: Vec<_> = (0..args.conns)
        .map(|i| {
            let (barrier, stack) = (barrier.clone(), stack.clone());
            let (requests, conns) = (args.requests, args.conns);
            let ex = Exchanger::new(args.protocol, args.size, i as u64 + 1, &args.path);
            std::thread::spawn(move || {
                let s = stack.connect(addr).and_then(|s| {
                    s.set_nodelay(true)?;
                    Ok(s)
                });
                // Connections take turns, not bursts: i/conns of an interval apart.
                let phase = interval.map_or(Duration::ZERO, |d| d.mul_f64(i as f64 / conns as f64));
                match s {
                    Ok(s) => run_conn(&s, ex, requests, interval, phase, &barrier),
                    Err(e) => {
                        barrier.wait();
                        Err(e)
                    }
                }
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
    drop(idle);
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
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "offered_rps": args.rate,
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
