//! Echo server: echoes every connection until the peer's EOF, one thread
//! per connection (each accepted by the thread that serves it).
//!
//! ```text
//! echo_server --listen 0.0.0.0:7777 [--kernel] [--exit-after N]
//!             [--exit-at-bytes N]
//! ```
//!
//! `--exit-at-bytes N` exits the process, without closing anything, as soon
//! as one connection has echoed N bytes (issue 12: the stack must deliver
//! the echo, then a FIN).
//!
//! Prints `{"listening":...,"stack":...}` once ready, then one JSON line per
//! finished connection.

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use clap::Parser;
use common::{Listener, Stack, StackArgs, Stream};

#[derive(Parser, Debug)]
#[command(about = "Echo server on libtoe (or the kernel with --kernel)")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:7777")]
    listen: String,
    /// Exit after serving this many connections (0: never).
    #[arg(long, default_value_t = 0)]
    exit_after: u64,
    /// Read buffer size in bytes.
    #[arg(long, default_value_t = 65536)]
    buffer: usize,
    /// Exit (no close) once a connection has echoed this many bytes.
    #[arg(long)]
    exit_at_bytes: Option<u64>,
}

/// Echoes until EOF (or exits at `exit_at` bytes); returns the bytes echoed.
fn echo(s: &Stream, buffer: usize, exit_at: Option<u64>) -> io::Result<u64> {
    let mut buf = vec![0u8; buffer.max(1)];
    let mut total = 0u64;
    let (mut r, mut w) = (s, s);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])?;
        total += n as u64;
        if exit_at.is_some_and(|x| total >= x) {
            std::process::exit(0);
        }
    }
    s.shutdown(Shutdown::Write)?;
    Ok(total)
}

/// Accepts one connection, hands accepting on to a new thread, and serves
/// the connection itself (with libtoe each accepted connection gets its own
/// context, round-robin over the contexts other than the listener's).
fn acceptor(listener: Arc<Listener>, state: Arc<State>) {
    let (s, peer) = match listener.accept() {
        Ok(x) => x,
        Err(e) => {
            let _ = state.done.send(serde_json::json!({"error": e.to_string()}));
            return;
        }
    };
    let n = state.accepted.fetch_add(1, Ordering::Relaxed) + 1;
    if state.exit_after == 0 || n < state.exit_after {
        let (l, st) = (listener.clone(), state.clone());
        std::thread::spawn(move || acceptor(l, st));
    }
    let _ = s.set_nodelay(true);
    let line = match echo(&s, state.buffer, state.exit_at) {
        Ok(bytes) => serde_json::json!({"peer": peer.to_string(), "bytes": bytes}),
        Err(e) => serde_json::json!({"peer": peer.to_string(), "error": e.to_string()}),
    };
    drop(s);
    let _ = state.done.send(line);
}

struct State {
    accepted: AtomicU64,
    exit_after: u64,
    buffer: usize,
    exit_at: Option<u64>,
    done: mpsc::Sender<serde_json::Value>,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let stack = Stack::open(&args.stack)?;
    let listener = Arc::new(stack.bind(common::resolve(&args.listen)?)?);
    println!(
        "{}",
        serde_json::json!({"listening": listener.local_addr()?.to_string(), "stack": stack.name()})
    );
    io::stdout().flush()?;
    let (tx, rx) = mpsc::channel();
    let state = Arc::new(State {
        accepted: AtomicU64::new(0),
        exit_after: args.exit_after,
        buffer: args.buffer,
        exit_at: args.exit_at_bytes,
        done: tx,
    });
    std::thread::spawn(move || acceptor(listener, state));
    let mut finished = 0u64;
    while args.exit_after == 0 || finished < args.exit_after {
        let Ok(line) = rx.recv() else { break };
        println!("{line}");
        io::stdout().flush()?;
        if line.get("peer").is_none() {
            // accept failed: the listener is unusable.
            return Err(io::Error::other(line.to_string()));
        }
        finished += 1;
    }
    Ok(())
}
