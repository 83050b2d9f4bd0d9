//! Helpers for the host-interface tests: the service on the loopback
//! backend as a child process, its `stat` document, the example programs,
//! and [`RawApp`], an application speaking the ABI directly (to craft
//! hostile descriptors).

use doca_bindings::abi::{self, Desc, Layout};
use doca_bindings::control::{recv_json, send_json, ControlReply, ControlRequest, RegisterReply};
use doca_bindings::{Doorbell, Region, RingConsumer, RingProducer};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `target/<profile>`, from the running test binary's path
/// (`target/<profile>/deps/NAME-HASH`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The `flextoe-dpu` binary next to the tests, if built.
pub fn service_binary() -> Option<PathBuf> {
    Some(target_dir().join("flextoe-dpu")).filter(|p| p.exists())
}

/// A host-shim example program, if built.
pub fn example(name: &str) -> Option<PathBuf> {
    Some(target_dir().join("examples").join(name)).filter(|p| p.exists())
}

/// The service (loopback backend) running as a child process.
#[derive(Debug)]
pub struct Service {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: PathBuf,
    pub ip: std::net::Ipv4Addr,
}

impl Service {
    /// Starts the service with `replicas` run-to-completion replicas and
    /// waits until its control socket accepts; `None` (with the reason
    /// printed) if the binary was not built.
    pub fn start(name: &str, replicas: u32) -> Option<Self> {
        Self::start_with(name, replicas, |_| {})
    }

    /// [`Service::start`] with a last change to the configuration.
    pub fn start_with(name: &str, replicas: u32, tweak: impl FnOnce(&mut Value)) -> Option<Self> {
        let Some(bin) = service_binary() else {
            crate::skip("flextoe-dpu not built (cargo build --release -p dpu-datapath)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("ftoe-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("control.sock");
        let out = Command::new(&bin)
            .arg("default-config")
            .output()
            .expect("default-config");
        let mut cfg: Value = serde_json::from_slice(&out.stdout).expect("config JSON");
        cfg["port"]["backend"] = "loopback".into();
        cfg["host"]["control_socket"] = socket.display().to_string().into();
        cfg["metrics"]["enabled"] = false.into();
        // Payload copies complete late and out of order, as a DPU's DMA
        // engine may (issue 18): every application test runs on them. The
        // DPDK and Linux tests keep the default (1 µs, in order).
        cfg["host"]["dma_latency_ns"] = 2_000.into();
        cfg["host"]["dma_reorder"] = true.into();
        cfg["topology"]["replicas"] = replicas.into();
        cfg["topology"]["flow_groups"] = 8.into();
        tweak(&mut cfg);
        let ip: std::net::Ipv4Addr = cfg["identity"]["ipv4"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("identity.ipv4");
        let cfg_path = dir.join("config.json");
        std::fs::write(&cfg_path, cfg.to_string()).expect("write config");
        let mut child = Command::new(&bin)
            .args(["run", "--config"])
            .arg(&cfg_path)
            .args(["--stats-interval", "0", "--duration", "900"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flextoe-dpu");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("service: {line}");
                if line.contains("ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("service did not become ready");
        Some(Self {
            child,
            socket,
            dir,
            ip,
        })
    }

    /// The service's `stat` document.
    pub fn stat(&self) -> Value {
        stat(&self.socket).expect("stat")
    }

    /// A `stat` document whose counters were taken after this call began.
    pub fn fresh_stat(&self) -> Value {
        self.wait_stat(Duration::from_secs(10), |_| true).1
    }

    /// Resident memory of the service process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `pred(stat)` holds; the last document either way.
    pub fn wait_stat(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> (bool, Value) {
        let deadline = Instant::now() + timeout;
        let since = self.stat();
        loop {
            let s = self.stat();
            if refreshed_since(&since, &s) && pred(&s) {
                return (true, s);
            }
            if Instant::now() > deadline {
                return (false, s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks the control socket at `path` for its `stat` document.
/// True when `now` holds counters taken after `since` was served: the
/// engines publish every 100 ms, so a document may predate what a test just
/// did (two publications later, every owner has published after it).
pub fn refreshed_since(since: &Value, now: &Value) -> bool {
    match (since["refreshes"].as_u64(), now["refreshes"].as_u64()) {
        (Some(a), Some(b)) => b >= a + 2,
        _ => true,
    }
}

pub fn stat(path: &Path) -> Result<Value, String> {
    query(path, &ControlRequest::Stats)
}

/// Sends one request to the control socket at `path`; its answer, or the
/// service's error message.
pub fn query(path: &Path, req: &ControlRequest) -> Result<Value, String> {
    let sock = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    send_json(&sock, req, &[]).map_err(|e| e.to_string())?;
    let (reply, _) = recv_json::<ControlReply>(&sock, 0)
        .map_err(|e| e.to_string())?
        .ok_or("control socket closed")?;
    reply.into_result()
}

/// An application that speaks the ring ABI by hand.
#[derive(Debug)]
pub struct RawApp {
    pub sock: UnixStream,
    pub reply: RegisterReply,
    pub region: Arc<Region>,
    pub layout: Layout,
    pub req: Vec<RingProducer>,
    pub evt: Vec<RingConsumer>,
    pub dpu_bell: Doorbell,
    next_tag: u64,
}

impl RawApp {
    pub fn register(path: &Path, name: &str, contexts: u32) -> Result<Self, String> {
        let sock = UnixStream::connect(path).map_err(|e| e.to_string())?;
        let req = ControlRequest::Register {
            name: name.into(),
            pid: std::process::id(),
            contexts,
        };
        send_json(&sock, &req, &[]).map_err(|e| e.to_string())?;
        let (reply, mut fds) = recv_json::<ControlReply>(&sock, 2 + contexts as usize)
            .map_err(|e| e.to_string())?
            .ok_or("closed")?;
        let reply: RegisterReply = reply.into_result()?;
        if fds.len() != 2 + contexts as usize {
            return Err(format!("expected {} fds, got {}", 2 + contexts, fds.len()));
        }
        let mut fds = fds.drain(..);
        let region = Arc::new(Region::from_fd(fds.next().unwrap()).map_err(|e| e.to_string())?);
        let dpu_bell = Doorbell::from_fd(fds.next().unwrap()).map_err(|e| e.to_string())?;
        let layout = reply.layout;
        region.check_header(&layout)?;
        let mut req = Vec::new();
        let mut evt = Vec::new();
        for i in 0..contexts {
            req.push(
                RingProducer::new(region.clone(), layout.request_ring(i))
                    .map_err(|e| e.to_string())?,
            );
            evt.push(
                RingConsumer::new(region.clone(), layout.event_ring(i))
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(Self {
            sock,
            reply,
            region,
            layout,
            req,
            evt,
            dpu_bell,
            next_tag: 1,
        })
    }

    /// Posts a request on context `ctx` (a fresh tag unless `d.tag` is set).
    pub fn post(&mut self, ctx: usize, mut d: Desc) -> u64 {
        if d.tag == 0 {
            d.tag = self.next_tag;
            self.next_tag += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.req[ctx].push(&d).expect("request ring") {
            assert!(Instant::now() < deadline, "request ring stays full");
            std::thread::sleep(Duration::from_millis(1));
        }
        self.kick();
        d.tag
    }

    /// Rings the DPU if it sleeps.
    pub fn kick(&self) {
        fence(Ordering::SeqCst);
        let flag = self
            .region
            .atomic_u32(self.layout.dpu_sleeping_offset())
            .expect("flag");
        if flag.load(Ordering::SeqCst) != 0 {
            let _ = self.dpu_bell.ring();
        }
    }

    /// The next event on `ctx` matching `pred` (others are dropped).
    pub fn wait_event(
        &mut self,
        ctx: usize,
        timeout: Duration,
        pred: impl Fn(&Desc) -> bool,
    ) -> Option<Desc> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.evt[ctx].pop() {
                Ok(Some(d)) if pred(&d) => return Some(d),
                Ok(Some(_)) => continue,
                Ok(None) => std::thread::sleep(Duration::from_micros(200)),
                Err(e) => panic!("event ring: {e}"),
            }
        }
        None
    }

    /// Sends a request and waits for its reply.
    pub fn call(&mut self, ctx: usize, d: Desc) -> Option<Desc> {
        let tag = self.post(ctx, d);
        self.wait_event(ctx, Duration::from_secs(10), |e| {
            e.op == abi::EV_REPLY && e.tag == tag
        })
    }

    /// Opens a connection and waits until it is established; (handle, slot).
    pub fn connect(&mut self, ctx: usize, to: std::net::SocketAddrV4) -> Result<(u64, u32), i32> {
        let r = self
            .call(
                ctx,
                Desc {
                    op: abi::OP_CONNECT,
                    a: abi::pack_addr(to),
                    ..Desc::default()
                },
            )
            .ok_or(-libc::ETIMEDOUT)?;
        if r.status != 0 {
            return Err(r.status);
        }
        let conn = r.conn;
        let ev = self
            .wait_event(ctx, Duration::from_secs(10), |e| {
                e.op == abi::EV_CONN
                    && e.conn == conn
                    && e.flags & (abi::CONN_CONNECTED | abi::CONN_ERROR) != 0
            })
            .ok_or(-libc::ETIMEDOUT)?;
        if ev.flags & abi::CONN_ERROR != 0 {
            return Err(ev.status);
        }
        Ok((conn, r.a as u32))
    }
}
