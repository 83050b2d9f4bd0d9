//! What the examples share: the choice of TCP stack (libtoe, or the Linux
//! kernel with `--kernel`) behind one small set of types, so each program's
//! logic is written once and runs unchanged on both stacks.

#![allow(dead_code)]

pub mod exchange;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Stack selection, flattened into every example's arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct StackArgs {
    /// Use the Linux kernel's TCP (std::net) instead of libtoe.
    #[arg(long)]
    pub kernel: bool,
    /// libtoe: the DPU service's control socket (default: $FLEXTOE_CONTROL,
    /// else /run/flextoe/control.sock).
    #[arg(long)]
    pub control: Option<PathBuf>,
}

/// A TCP stack.
#[derive(Debug, Clone)]
pub enum Stack {
    Kernel,
    Toe(Arc<toe::Toe>),
}

impl Stack {
    pub fn open(args: &StackArgs) -> io::Result<Stack> {
        if args.kernel {
            return Ok(Stack::Kernel);
        }
        let path = args
            .control
            .clone()
            .unwrap_or_else(toe::control_path_from_env);
        Ok(Stack::Toe(toe::Toe::connect(path)?))
    }

    /// "kernel" or "toe".
    pub fn name(&self) -> &'static str {
        match self {
            Stack::Kernel => "kernel",
            Stack::Toe(_) => "toe",
        }
    }

    pub fn connect(&self, addr: SocketAddr) -> io::Result<Stream> {
        match self {
            Stack::Kernel => std::net::TcpStream::connect(addr).map(Stream::Kernel),
            Stack::Toe(t) => toe::TcpStream::connect(t, addr).map(Stream::Toe),
        }
    }

    pub fn bind(&self, addr: SocketAddr) -> io::Result<Listener> {
        match self {
            Stack::Kernel => std::net::TcpListener::bind(addr).map(Listener::Kernel),
            Stack::Toe(t) => toe::TcpListener::bind(t, addr).map(Listener::Toe),
        }
    }
}

/// Resolves `host:port` to its first address.
pub fn resolve(s: &str) -> io::Result<SocketAddr> {
    s.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{s}: no address")))
}

#[derive(Debug)]
pub enum Listener {
    Kernel(std::net::TcpListener),
    Toe(toe::TcpListener),
}

impl Listener {
    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Kernel(l) => l.accept().map(|(s, a)| (Stream::Kernel(s), a)),
            Listener::Toe(l) => l.accept().map(|(s, a)| (Stream::Toe(s), a)),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Kernel(l) => l.local_addr(),
            Listener::Toe(l) => l.local_addr(),
        }
    }
}

#[derive(Debug)]
pub enum Stream {
    Kernel(std::net::TcpStream),
    Toe(toe::TcpStream),
}

impl Stream {
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Kernel(s) => s.shutdown(how),
            Stream::Toe(s) => s.shutdown(how),
        }
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Kernel(s) => s.set_nodelay(on),
            Stream::Toe(s) => s.set_nodelay(on),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Kernel(s) => s.set_read_timeout(t),
            Stream::Toe(s) => s.set_read_timeout(t),
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Kernel(s) => s.peer_addr(),
            Stream::Toe(s) => s.peer_addr(),
        }
    }

    /// `SO_MAX_PACING_RATE` in bytes per second.
    pub fn set_max_pacing_rate(&self, bytes_per_sec: u64) -> io::Result<()> {
        match self {
            Stream::Kernel(s) => {
                use std::os::fd::AsRawFd;
                // SAFETY: an 8-byte option from a live u64 on a live socket.
                let r = unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_MAX_PACING_RATE,
                        (&bytes_per_sec as *const u64).cast(),
                        8,
                    )
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
            Stream::Toe(s) => s.set_max_pacing_rate(Some(bytes_per_sec)),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            Stream::Kernel(s) => (&*s).read(buf),
            Stream::Toe(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            Stream::Kernel(s) => (&*s).write(buf),
            Stream::Toe(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Deterministic pseudo-random bytes: the little-endian outputs of
/// splitmix64 from `seed`, so any program can regenerate a stream.
#[derive(Debug, Clone)]
pub struct ByteGen {
    state: u64,
}

impl ByteGen {
    pub fn new(seed: u64) -> ByteGen {
        ByteGen { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf`, whose length must be a multiple of 8 (so the stream
    /// does not depend on how it is cut into buffers).
    pub fn fill(&mut self, buf: &mut [u8]) {
        assert_eq!(
            buf.len() % 8,
            0,
            "ByteGen::fill needs a multiple of 8 bytes"
        );
        for chunk in buf.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// User plus system CPU time of this process so far.
pub fn process_cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is a valid who.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The `p`-th percentile (0..=100) of sorted values (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Reads until EOF, discarding; returns the byte count.
pub fn drain_to_eof(mut s: &Stream) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}
