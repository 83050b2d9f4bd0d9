//! The `/metrics` HTTP endpoint: a minimal HTTP/1.x server on a
//! `std::net::TcpListener`, in one thread of its own.
//!
//! Why not an HTTP crate: the endpoint answers one kind of request, a few
//! times a minute, to a scraper; a std listener does that in a page of code
//! with no dependency (and no async runtime) added to the data-path binary.
//! It serves one connection at a time, `Connection: close`, with a 5 s
//! budget per connection (read and write timeouts), so a stuck client
//! delays a scrape at most that long and never touches the data path.
//!
//! `GET` or `HEAD /metrics` (query string ignored): 200 with the text
//! exposition format. Another method on `/metrics`: 405. Any other path:
//! 404. A malformed or oversized request: 400.

use super::Exporter;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the accept loop checks for new connections and for shutdown.
const POLL: Duration = Duration::from_millis(50);
/// Time one connection may take, request and response together.
const CONNECTION_BUDGET: Duration = Duration::from_secs(5);
/// Largest request head accepted (request line and headers).
const MAX_HEAD: usize = 8 * 1024;

/// A running `/metrics` server; stopped (and its thread joined) by
/// [`MetricsServer::shutdown`] or on drop.
#[derive(Debug)]
pub struct MetricsServer {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port: see
    /// [`MetricsServer::local_addr`]) and starts serving `exporter`.
    pub fn start(addr: SocketAddr, exporter: Arc<Exporter>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || serve(&listener, &exporter, &flag))?;
        Ok(Self {
            local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, finishes the connection in progress and joins the
    /// thread (within [`POLL`] plus at most one connection's budget).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the metrics server thread panicked");
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn serve(listener: &TcpListener, exporter: &Exporter, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = handle(stream, exporter) {
                    tracing::debug!(%peer, error = %e, "metrics connection failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // E.g. out of file descriptors: keep serving once it clears.
                tracing::warn!(error = %e, "metrics endpoint cannot accept");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn handle(mut stream: TcpStream, exporter: &Exporter) -> io::Result<()> {
    let started = Instant::now();
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CONNECTION_BUDGET))?;
    stream.set_write_timeout(Some(CONNECTION_BUDGET))?;
    let Some(head) = read_head(&mut stream, started)? else {
        return Ok(()); // connected and closed without a request
    };
    let response = match parse_request_line(&head) {
        None => Response::text(400, "Bad Request", "malformed request\n"),
        Some((method, path)) => route(method, path, exporter),
    };
    stream.write_all(&response.into_bytes())?;
    stream.flush()
}

/// Reads up to the end of the request head. `None` if the client closed
/// before sending anything; an oversized head is returned truncated (and
/// then fails to parse only if its request line is incomplete).
fn read_head(stream: &mut TcpStream, started: Instant) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if started.elapsed() > CONNECTION_BUDGET {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request too slow"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok((!head.is_empty()).then_some(head));
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n")
            || head.windows(2).any(|w| w == b"\n\n")
            || head.len() >= MAX_HEAD
        {
            return Ok(Some(head));
        }
    }
}

/// `METHOD TARGET HTTP/1.x` -> (method, path without the query string).
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let end = head.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&head[..end])
        .ok()?
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Some((method, path))
}

fn route(method: &str, path: &str, exporter: &Exporter) -> Response {
    if path != "/metrics" {
        return Response::text(404, "Not Found", "not found; metrics are at /metrics\n");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: 200,
            reason: "OK",
            content_type: Exporter::CONTENT_TYPE,
            extra: "",
            body: exporter.render(),
            head_only: method == "HEAD",
        },
        _ => Response {
            extra: "Allow: GET, HEAD\r\n",
            ..Response::text(405, "Method Not Allowed", "use GET\n")
        },
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    /// Further header lines, each ending in CRLF.
    extra: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: body.to_owned(),
            head_only: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET /metrics SPDY/3\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET /metrics HTTP/1.1"), None);
    }
}
