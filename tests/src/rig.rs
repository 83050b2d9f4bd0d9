//! The rig of the Linux interoperability tests: the real `flextoe-dpu`
//! service on a DPDK port (`net_tap`, or `net_af_packet` / `net_af_xdp` over
//! a veth pair) with its peer's interface in a network namespace of the
//! test's own, torn down on drop (see tests/tests/linux_interop.rs).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const ENGINE_IP: &str = "198.18.0.2";
pub const ENGINE_MAC: &str = "02:00:c6:12:00:02";
pub const PEER_CIDR: &str = "198.18.0.1/24";
pub const MIB: u64 = 1 << 20;

pub static SERIAL: Mutex<()> = Mutex::new(());
pub static NEXT: AtomicUsize = AtomicUsize::new(0);

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLEXTOE_DPU_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/linux_interop-HASH -> target/<profile>/flextoe-dpu
    let bin = exe.parent()?.parent()?.join("flextoe-dpu");
    bin.exists().then_some(bin)
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

pub fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why the tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces, TAP, DPDK EAL)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    if !works("ip", &["-V"]) || !works("python3", &["-c", "1"]) {
        return Some("needs iproute2 and python3".into());
    }
    let tap = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
        .iter()
        .any(|d| {
            Path::new(d)
                .join("dpdk/pmds-23.0/librte_net_tap.so")
                .exists()
        });
    if !tap {
        return Some(
            "DPDK's net_tap PMD is not installed (apt-get install librte-net-tap23)".into(),
        );
    }
    if binary().is_none() {
        return Some(
            "flextoe-dpu binary not found next to the test executable; run `cargo build \
             --release -p dpu-datapath --bin flextoe-dpu` first (scripts/test.sh does)"
                .into(),
        );
    }
    None
}

#[macro_export]
macro_rules! skip_unless_ready {
    ($name:expr) => {
        if let Some(why) = $crate::rig::missing() {
            $crate::skip(format!("{}: {why}", $name));
            return;
        }
    };
    // Also the port's own prerequisites (PMD plugin, hugepages).
    ($name:expr, $port:expr) => {
        skip_unless_ready!($name);
        if let Some(why) = $port.missing() {
            $crate::skip(format!("{}: {why}", $name));
            return;
        }
    };
}

use crate::run;

/// Mbufs net_af_xdp keeps in its fill ring and never returns to the pool.
pub const AF_XDP_FILL_RING: u64 = 2048;

/// The DPDK port a test's service drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PortKind {
    /// `net_tap`: the service creates a TAP, which moves into the namespace.
    #[default]
    Tap,
    /// `net_af_packet` on the root-namespace end of a veth pair.
    AfPacket,
    /// `net_af_xdp` on the root-namespace end of a veth pair (hugepages).
    AfXdp,
}

impl PortKind {
    /// The PMD plugin this port needs, and why the test cannot run without
    /// it or its prerequisites.
    pub fn missing(self) -> Option<String> {
        let plugin = match self {
            PortKind::Tap => return None,
            PortKind::AfPacket => "librte_net_af_packet.so",
            PortKind::AfXdp => "librte_net_af_xdp.so",
        };
        let found = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
            .iter()
            .any(|d| Path::new(d).join("dpdk/pmds-23.0").join(plugin).exists());
        if !found {
            return Some(format!(
                "DPDK's {plugin} is not installed (scripts/setup.sh installs it)"
            ));
        }
        if self == PortKind::AfXdp {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let free = meminfo
                .lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if free < 16 {
                return Some(format!(
                    "net_af_xdp needs 2 MiB hugepages, {free} free (scripts/hugepages.sh)"
                ));
            }
        }
        None
    }
}

/// A running service plus its namespace; everything is removed on drop.
#[derive(Debug)]
pub struct Rig {
    pub name: String,
    pub ns: String,
    /// The peer's interface in the namespace (the TAP or a veth end).
    pub peer_if: String,
    /// The service's veth end in the root namespace (veth ports only).
    pub service_if: Option<String>,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub ns_created: bool,
    pub started: Instant,
}

/// Test knobs: JSON merged into the base configuration, extra CLI args.
#[derive(Debug, Default)]
pub struct Opts {
    pub config: Option<Value>,
    pub args: Vec<String>,
    pub port: PortKind,
}

pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

impl Rig {
    pub fn start(name: &str, opts: Opts) -> Rig {
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ftoe-it-{pid}-{k}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let peer_if = format!("ft{}t{k}", pid % 100_000);
        let service_if = format!("ft{}s{k}", pid % 100_000);
        let mut rig = Rig {
            name: name.to_owned(),
            ns: format!("ftoe-it-{pid}-{k}"),
            peer_if: peer_if.clone(),
            service_if: None,
            dir: dir.clone(),
            child: None,
            ns_created: false,
            started: Instant::now(),
        };
        let vdev = match opts.port {
            PortKind::Tap => format!("net_tap0,iface={peer_if}"),
            PortKind::AfPacket => format!(
                "net_af_packet0,iface={service_if},qpairs=1,blocksz=4096,framesz=2048,framecnt=4096"
            ),
            PortKind::AfXdp => {
                format!("net_af_xdp0,iface={service_if},start_queue=0,queue_count=1")
            }
        };
        if opts.port != PortKind::Tap {
            rig.create_veth(&service_if);
        }
        let mut config = serde_json::json!({
            "port": {
                "backend": "dpdk",
                "dpdk": {
                    "vdevs": [vdev],
                    "eal_args": ["--no-pci", "--no-telemetry"],
                    "no_huge": opts.port != PortKind::AfXdp,
                    // The TAP is the one port here that offers TX checksum
                    // offload (off by default on it: its driver sums in
                    // software); the tests run that path.
                    "tx_checksum_offload": opts.port == PortKind::Tap,
                }
            },
            "tcp": { "time_wait_ms": 1000 },
            "host": { "control_socket": dir.join("control.sock").display().to_string() },
            "metrics": { "enabled": false },
        });
        if let Some(over) = &opts.config {
            merge(&mut config, over);
        }
        let cfg_path = dir.join("config.json");
        std::fs::write(&cfg_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.join("service.log")).unwrap();
        let mut cmd = Command::new(binary().unwrap());
        cmd.arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .arg("--stats-json")
            .arg(dir.join("stats.json"))
            .args(&opts.args)
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd.spawn().expect("spawn flextoe-dpu");
        let stdout = child.stdout.take().unwrap();
        rig.child = Some(child);
        // The TAP may only move once the port is started (its queues are
        // opened by name in our namespace): wait for the ready line.
        let (tx, rx) = std::sync::mpsc::channel();
        let out_path = dir.join("service.out");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(out_path).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("ready:") {
                    let _ = tx.send(());
                }
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("{name}: service not ready in 30 s:\n{}", rig.logs());
        }
        rig.setup_ns();
        eprintln!(
            "{name}: service ready, namespace {} up in {:?}",
            rig.ns,
            rig.started.elapsed()
        );
        rig
    }

    pub fn create_ns(&mut self) {
        if self.ns_created {
            return;
        }
        let _ = run(&["ip", "netns", "del", &self.ns]);
        run(&["ip", "netns", "add", &self.ns]).unwrap();
        self.ns_created = true;
    }

    /// A veth pair before the service starts: `service_if` stays in our
    /// namespace (up, no address, IPv6 and offloads off) for the PMD, the
    /// other end goes into the test's namespace.
    pub fn create_veth(&mut self, service_if: &str) {
        self.create_ns();
        let _ = run(&["ip", "link", "del", service_if]);
        run(&[
            "ip",
            "link",
            "add",
            service_if,
            "type",
            "veth",
            "peer",
            "name",
            &self.peer_if,
            "netns",
            &self.ns,
        ])
        .unwrap();
        self.service_if = Some(service_if.to_owned());
        let sysctl = format!("net.ipv6.conf.{service_if}.disable_ipv6=1");
        let _ = run(&["sysctl", "-q", "-w", &sysctl]);
        if works("ethtool", &["--version"]) {
            let _ = run(&[
                "ethtool", "-K", service_if, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
            ]);
        }
        run(&["ip", "link", "set", "dev", service_if, "up"]).unwrap();
    }

    pub fn setup_ns(&mut self) {
        if self.service_if.is_none() {
            self.create_ns();
            run(&["ip", "link", "set", "dev", &self.peer_if, "netns", &self.ns]).unwrap();
        }
        let sysctl = format!("net.ipv6.conf.{}.disable_ipv6=1", self.peer_if);
        let _ = self.ns_run(&["sysctl", "-q", "-w", &sysctl]);
        if works("ethtool", &["--version"]) {
            // Only some offloads are changeable on a TAP; ignore the rest.
            let _ = self.ns_run(&[
                "ethtool",
                "-K",
                &self.peer_if,
                "tso",
                "off",
                "gso",
                "off",
                "gro",
                "off",
                "tx",
                "off",
            ]);
        }
        self.ns_run(&["ip", "addr", "add", PEER_CIDR, "dev", &self.peer_if])
            .unwrap();
        self.ns_run(&["ip", "link", "set", "dev", &self.peer_if, "up"])
            .unwrap();
        self.ns_run(&["ip", "link", "set", "dev", "lo", "up"])
            .unwrap();
    }

    pub fn ns_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(args);
        c
    }

    pub fn ns_run(&self, args: &[&str]) -> Result<Output, String> {
        let mut full = vec!["ip", "netns", "exec", &self.ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs `scripts/peer.py` in the namespace with a deadline; its JSON.
    pub fn peer(&self, args: &[&str], deadline: Duration) -> Value {
        let script = repo().join("scripts/peer.py");
        let secs = deadline.as_secs().to_string();
        let mut full = vec!["timeout", &secs, "python3"];
        let script_s = script.display().to_string();
        full.push(&script_s);
        full.extend_from_slice(args);
        let t0 = Instant::now();
        let out = self.ns_cmd(&full).output().expect("run peer.py");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| {
            panic!(
                "{}: peer.py {args:?} gave no result in {:?} ({}): {text}{}\n{}",
                self.name,
                t0.elapsed(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            )
        });
        eprintln!(
            "{}: peer {args:?} -> {} in {:?}",
            self.name,
            line,
            t0.elapsed()
        );
        v
    }

    /// The tail of the service's output, for failure messages.
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        format!(
            "--- service stdout ---\n{}\n--- service stderr ---\n{}",
            tail(read("service.out")),
            tail(read("service.log"))
        )
    }

    /// Waits until the running service holds no flow, application
    /// connection or handshake (its `stat` over the control socket), so the
    /// counters read at `stop` are final; panics after 10 s.
    pub fn settled(&self) {
        self.wait_stat("connections closed after the peer finished", |s| {
            s["flows"] == 0 && s["app_conns"] == 0 && s["handshakes"] == 0
        });
    }

    /// Waits until `pred` holds for the running service's `stat` (over the
    /// control socket); panics after 10 s, naming `what`.
    /// A `stat` document whose counters were taken after this call began.
    pub fn fresh_stat(&self) -> Value {
        self.wait_stat("a fresh stat document", |_| true)
    }

    pub fn wait_stat(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let control = self.dir.join("control.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        let since = crate::hostif::stat(&control).unwrap_or_default();
        loop {
            let s = crate::hostif::stat(&control).unwrap_or_default();
            if crate::hostif::refreshed_since(&since, &s) && pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{}: not within 10 s: {what}: {s}\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait for exit, return the final counters.
    pub fn stop(&mut self) -> Value {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let _ = run(&["kill", "-TERM", &pid]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{}: service did not stop in 20 s\n{}",
                    self.name,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "{}: service exited {status}\n{}",
            self.name,
            self.logs()
        );
        let text = std::fs::read_to_string(self.dir.join("stats.json"))
            .unwrap_or_else(|e| panic!("{}: no stats.json ({e})\n{}", self.name, self.logs()));
        serde_json::from_str(&text).expect("stats json")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        eprintln!("{}: finished in {:.1?}", self.name, self.started.elapsed());
        if let Some(mut c) = self.child.take() {
            // SIGTERM first, so the service closes its port and removes its
            // EAL runtime directory; SIGKILL if it does not stop.
            let pid = c.id();
            let _ = run(&["kill", "-TERM", &pid.to_string()]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/ftoe-{pid}"));
        }
        if self.ns_created {
            let _ = run(&["ip", "netns", "del", &self.ns]);
        }
        if let Some(veth) = &self.service_if {
            // Gone with its peer when the namespace went; otherwise here.
            let _ = run(&["ip", "link", "del", veth]);
        }
        // A TAP never moved (setup failed) disappears with the process.
        // Failure messages carry the service's log tail; set
        // FLEXTOE_KEEP_TEST_DIRS to keep the whole directory.
        if std::thread::panicking() && std::env::var_os("FLEXTOE_KEEP_TEST_DIRS").is_some() {
            eprintln!(
                "{}: keeping {} for inspection",
                self.name,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn n(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} missing in {v}"))
}

pub fn ok(v: &Value) -> bool {
    v["ok"].as_bool() == Some(true)
}
