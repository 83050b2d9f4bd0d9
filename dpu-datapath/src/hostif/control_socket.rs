//! The control socket: applications register here and receive their region
//! and doorbells (SCM_RIGHTS); operators' `flextoe-dpu stat` asks it for
//! counters. One thread per client, blocked on its socket; the socket's
//! EOF is how the service learns that an application exited or crashed.

use super::app::{AppInfo, HostApp};
use super::front::{FrontMsg, Inbox, JoinRequest};
use super::link::{FrontWaker, OwnerCmd, OwnerLink};
use super::{HostIfCounters, HostIfOptions};
use doca_bindings::abi::Layout;
use doca_bindings::control::{
    recv_json, send_json, ControlReply, ControlRequest, ForkReply, RegisterReply,
};
use doca_bindings::{Doorbell, Region};
use parking_lot::Mutex;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a client thread needs.
#[derive(Clone)]
pub(super) struct Shared {
    pub opts: HostIfOptions,
    pub inbox: Inbox,
    pub waker: Arc<FrontWaker>,
    pub counters: Arc<HostIfCounters>,
    pub next_key: Arc<AtomicU64>,
    /// Open control connections (a handle to shut each down at stop),
    /// removed when its thread ends.
    pub clients: Arc<Mutex<std::collections::HashMap<u64, UnixStream>>>,
    pub next_client: Arc<AtomicU64>,
    /// Answers `stats` requests (set once the pipeline runs).
    pub stats: Arc<Mutex<Option<StatsFn>>>,
    /// For `conns`: the owners, and registered applications' names.
    pub links: Vec<Arc<OwnerLink>>,
    pub names: Arc<Mutex<std::collections::HashMap<u64, String>>>,
    /// The NIC's capture tap (set by the service).
    pub tap: Arc<Mutex<Option<Arc<crate::capture::CaptureTap>>>>,
    /// The port's XDP hooks (set by a service that has a port).
    pub xdp: Arc<Mutex<Option<Arc<crate::xdp::XdpHooks>>>>,
    /// Moves flow groups between owners (set once the pipeline runs).
    pub mover: Arc<Mutex<Option<crate::pipeline::GroupMover>>>,
    pub stop: Arc<AtomicBool>,
}

/// Produces the JSON document `flextoe-dpu stat` shows.
pub type StatsFn = Box<dyn Fn() -> serde_json::Value + Send>;

/// Control connections allowed beyond `host.max_apps` (stat, conns,
/// capture clients).
const MAX_TOOL_CLIENTS: usize = 64;

/// Accepts clients until `stop`.
pub(super) fn accept_loop(listener: UnixListener, shared: Shared, stop: Arc<AtomicBool>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((sock, _)) => {
                let _ = sock.set_nonblocking(false);
                // One thread per connection: bounded, so a local client
                // cannot make the service spawn threads without limit.
                let limit = shared.opts.max_apps as usize + MAX_TOOL_CLIENTS;
                if shared.clients.lock().len() >= limit {
                    fail(&sock, format!("too many control connections ({limit})"));
                    continue;
                }
                let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
                if let Ok(clone) = sock.try_clone() {
                    shared.clients.lock().insert(id, clone);
                }
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("ftoe-ctl-client".into())
                    .spawn(move || {
                        client(sock, &shared);
                        shared.clients.lock().remove(&id);
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "hostif: cannot start a control client thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_readable(&listener),
            Err(e) => {
                tracing::warn!(error = %e, "hostif: control socket accept failed");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Until a client connects (or 100 ms pass, to look at `stop` again): a
/// registration, or a forked process's join, is answered at once.
fn wait_readable(listener: &UnixListener) {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the listening socket, which outlives
    // the call.
    unsafe { libc::poll(&mut p, 1, 100) };
}

fn fail(sock: &UnixStream, msg: impl Into<String>) {
    let _ = send_json(sock, &ControlReply::failure(msg), &[]);
}

fn client(sock: UnixStream, shared: &Shared) {
    let mut registered = None;
    // A forked process (its exit is logged at debug level, as its join).
    let mut forked = false;
    loop {
        let req = match recv_json::<ControlRequest>(&sock, 0) {
            Ok(Some((req, _))) => req,
            Ok(None) => break,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    fail(&sock, format!("bad request: {e}"));
                }
                break;
            }
        };
        match req {
            ControlRequest::Register {
                name,
                pid,
                contexts,
            } => {
                if registered.is_some() {
                    fail(&sock, "already registered on this connection");
                    continue;
                }
                match register(&sock, shared, name, pid, contexts) {
                    Ok(key) => registered = Some(key),
                    Err(msg) => fail(&sock, msg),
                }
            }
            ControlRequest::Stats => {
                let mut doc = match shared.stats.lock().as_ref() {
                    Some(f) => f(),
                    None => serde_json::json!({}),
                };
                if let (Some(h), Some(map)) = (shared.xdp.lock().clone(), doc.as_object_mut()) {
                    map.insert("xdp".into(), h.json());
                }
                let reply = ControlReply::success(&doc)
                    .unwrap_or_else(|e| ControlReply::failure(e.to_string()));
                let _ = send_json(&sock, &reply, &[]);
            }
            ControlRequest::Capture { count, filter } => {
                capture(&sock, shared, count, &filter);
                break;
            }
            ControlRequest::Conns => {
                let reply = ControlReply::success(&connections(shared))
                    .unwrap_or_else(|e| ControlReply::failure(e.to_string()));
                let _ = send_json(&sock, &reply, &[]);
            }
            ControlRequest::Bpf(cmd) if cmd.cmd == "capture" => {
                match shared.xdp.lock().clone() {
                    _ if !is_operator(&sock) => fail(
                        &sock,
                        "bpf: only root or the service's own user may load programs or touch maps",
                    ),
                    None => fail(&sock, "bpf: this service has no port, so no XDP hooks"),
                    Some(h) => bpf_capture(&sock, shared, &h, cmd.count.unwrap_or(0)),
                }
                break;
            }
            ControlRequest::Bpf(cmd) => {
                let hooks = shared.xdp.lock().clone();
                let reply = match hooks {
                    // Programs see every frame: an operator's act, not an
                    // application's, whatever the socket's file mode.
                    _ if !is_operator(&sock) => ControlReply::failure(
                        "bpf: only root or the service's own user may load programs or touch maps",
                    ),
                    None => ControlReply::failure(
                        "bpf: this service has no port, so no XDP hooks (port.backend \"loopback\")",
                    ),
                    Some(h) => match crate::xdp::ops::handle(&h, &cmd) {
                        Ok(doc) => ControlReply::success(&doc)
                            .unwrap_or_else(|e| ControlReply::failure(e.to_string())),
                        Err(msg) => ControlReply::failure(format!("bpf {}: {msg}", cmd.cmd)),
                    },
                };
                let _ = send_json(&sock, &reply, &[]);
            }
            ControlRequest::Groups => {
                let reply = match shared.mover.lock().clone() {
                    None => ControlReply::failure("groups: the pipeline is not running"),
                    Some(m) => ControlReply::success(&serde_json::json!({
                        "owners": shared.links.len(),
                        "owners_per_replica": m.owners_per_replica(),
                        "owner_of": m.group_owners(),
                        "drained": m.drained_replicas(),
                    }))
                    .unwrap_or_else(|e| ControlReply::failure(e.to_string())),
                };
                let _ = send_json(&sock, &reply, &[]);
            }
            ControlRequest::MoveGroup { group, to } => {
                let mover = shared.mover.lock().clone();
                let reply = match mover {
                    // It moves other applications' connections.
                    _ if !is_operator(&sock) => ControlReply::failure(
                        "move-group: only root or the service's own user may move flow groups",
                    ),
                    None => ControlReply::failure("move-group: the pipeline is not running"),
                    Some(m) => move_group(&m, group, to),
                };
                let _ = send_json(&sock, &reply, &[]);
            }
            ControlRequest::DrainReplica { .. } | ControlRequest::Rebalance => {
                let what = match &req {
                    ControlRequest::DrainReplica { .. } => "drain-replica",
                    _ => "rebalance",
                };
                let mover = shared.mover.lock().clone();
                let reply = match mover {
                    _ if !is_operator(&sock) => ControlReply::failure(format!(
                        "{what}: only root or the service's own user may move flow groups"
                    )),
                    None => ControlReply::failure(format!("{what}: the pipeline is not running")),
                    Some(m) => {
                        let resized = match req {
                            ControlRequest::DrainReplica { replica } => {
                                m.drain_replica(replica, MOVE_TIMEOUT)
                            }
                            _ => m.rebalance(MOVE_TIMEOUT),
                        };
                        resize_reply(what, &resized)
                    }
                };
                let _ = send_json(&sock, &reply, &[]);
            }
            ControlRequest::Fork => match registered {
                None => fail(&sock, "fork: not registered on this connection"),
                Some(member) => {
                    let reply = match fork(shared, member) {
                        Ok(r) => ControlReply::success(&r)
                            .unwrap_or_else(|e| ControlReply::failure(e.to_string())),
                        Err(msg) => ControlReply::failure(format!("fork: {msg}")),
                    };
                    let _ = send_json(&sock, &reply, &[]);
                }
            },
            ControlRequest::Join {
                app_id,
                token,
                pid,
                name,
                conns,
                ports,
            } => {
                if registered.is_some() {
                    fail(&sock, "already registered on this connection");
                    continue;
                }
                let c = &shared.counters.apps_connected;
                if c.fetch_add(1, Ordering::Relaxed) >= u64::from(shared.opts.max_apps) {
                    c.fetch_sub(1, Ordering::Relaxed);
                    fail(&sock, "too many applications (host.max_apps)");
                    continue;
                }
                let req = Join {
                    app: u64::from(app_id),
                    token,
                    pid,
                    name,
                    conns,
                    ports,
                };
                match join(&sock, shared, req) {
                    Ok(key) => {
                        registered = Some(key);
                        forked = true;
                    }
                    Err(msg) => {
                        c.fetch_sub(1, Ordering::Relaxed);
                        fail(&sock, format!("join: {msg}"))
                    }
                }
            }
        }
    }
    if let Some(key) = registered {
        if forked {
            tracing::debug!(member = key, "hostif: forked process left");
        } else {
            tracing::info!(
                app = key,
                "hostif: application left (control socket closed)"
            );
        }
        shared.inbox.lock().push_back(FrontMsg::Gone(key));
        shared.waker.wake();
        shared.names.lock().remove(&key);
        shared
            .counters
            .apps_connected
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long an operator's move may take before it is reported as not
/// landed (it still lands when the pipeline gets to it).
const MOVE_TIMEOUT: Duration = Duration::from_secs(5);

fn move_group(m: &crate::pipeline::GroupMover, group: u32, to: usize) -> ControlReply {
    let from = m.group_owners().get(group as usize).copied();
    let started = std::time::Instant::now();
    match m.move_group(group, to, MOVE_TIMEOUT) {
        Ok(moves) => {
            tracing::info!(
                group,
                ?from,
                to,
                connections = moves.len(),
                "flow group moved"
            );
            ControlReply::success(&serde_json::json!({
                "group": group,
                "from": from,
                "to": to,
                "connections": moves.len(),
                "micros": started.elapsed().as_micros() as u64,
            }))
            .unwrap_or_else(|e| ControlReply::failure(e.to_string()))
        }
        Err(e) => ControlReply::failure(format!("move-group: {e}")),
    }
}

/// The answer to a drain or a rebalance: what moved, or why it stopped
/// (and how far it got).
fn resize_reply(what: &str, r: &crate::pipeline::Resized) -> ControlReply {
    let connections: usize = r.moved.iter().map(|m| m.connections).sum();
    tracing::info!(
        what,
        groups = r.moved.len(),
        connections,
        error = r.error.as_ref().map(|e| e.to_string()),
        "flow groups moved"
    );
    if let Some(e) = &r.error {
        return ControlReply::failure(format!(
            "{what}: stopped after moving {} flow groups: {e}",
            r.moved.len()
        ));
    }
    let moved: Vec<serde_json::Value> = r
        .moved
        .iter()
        .map(|m| {
            serde_json::json!({
                "group": m.group,
                "from": m.from,
                "to": m.to,
                "connections": m.connections,
            })
        })
        .collect();
    ControlReply::success(&serde_json::json!({
        "moved": moved,
        "connections": connections,
        "micros": r.took.as_micros() as u64,
    }))
    .unwrap_or_else(|e| ControlReply::failure(e.to_string()))
}

/// True when the peer runs as root or as the service's own user.
fn is_operator(sock: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of a ucred; the fd is
    // the connected socket, alive for the call.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // SAFETY: geteuid has no preconditions.
    rc == 0 && (cred.uid == 0 || cred.uid == unsafe { libc::geteuid() })
}

/// True when the client hung up (or sent something: a capture client only
/// listens).
fn client_gone(sock: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for an open socket, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0
}

/// Streams captured frames to the client (see `ControlRequest::Capture`).
fn capture(sock: &UnixStream, shared: &Shared, count: u64, filter: &str) {
    let filter = match crate::capture::Filter::parse(filter) {
        Ok(f) => f,
        Err(e) => return fail(sock, format!("capture filter: {e}")),
    };
    let Some(tap) = shared.tap.lock().clone() else {
        return fail(sock, "this backend has no capture tap");
    };
    let Some(session) = tap.start(filter) else {
        return fail(sock, "a capture is already running (one at a time)");
    };
    tracing::info!(count, "capture: started");
    stream(
        sock,
        shared,
        count,
        || session.pop(),
        || session.dropped.load(Ordering::Relaxed),
    );
    tap.stop();
}

/// `bpf capture`: the frames programs pass to `flextoe_capture`.
fn bpf_capture(sock: &UnixStream, shared: &Shared, hooks: &crate::xdp::XdpHooks, count: u64) {
    let ring = &hooks.capture;
    if !ring.start() {
        return fail(
            sock,
            "bpf capture: a capture is already running (one at a time)",
        );
    }
    tracing::info!(count, "bpf capture: started");
    stream(
        sock,
        shared,
        count,
        || ring.pop(),
        || ring.dropped.load(Ordering::Relaxed),
    );
    ring.stop();
}

/// Sends an ok reply, then each frame `pop` gives as
/// `[CAPTURE_PACKET] + ns timestamp + frame` until `count` (0: until the
/// client leaves or the service stops), then `[CAPTURE_END] + JSON`.
fn stream(
    sock: &UnixStream,
    shared: &Shared,
    count: u64,
    mut pop: impl FnMut() -> Option<(u64, Vec<u8>)>,
    dropped: impl Fn() -> u64,
) {
    use doca_bindings::control::{CAPTURE_END, CAPTURE_PACKET};
    use doca_bindings::fdpass::send_frame;
    let ok = ControlReply::success(&serde_json::json!({ "capturing": true }))
        .unwrap_or_else(|e| ControlReply::failure(e.to_string()));
    let mut sent = 0u64;
    let mut alive = send_json(sock, &ok, &[]).is_ok();
    let mut idle = 0u32;
    let mut buf = Vec::new();
    while alive && (count == 0 || sent < count) && !shared.stop.load(Ordering::Relaxed) {
        match pop() {
            Some((ts, frame)) => {
                idle = 0;
                buf.clear();
                buf.push(CAPTURE_PACKET);
                buf.extend_from_slice(&ts.to_le_bytes());
                buf.extend_from_slice(&frame);
                alive = send_frame(sock, &buf, &[]).is_ok();
                sent += 1;
            }
            None => {
                idle += 1;
                if idle.is_multiple_of(50) && client_gone(sock) {
                    alive = false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let dropped = dropped();
    tracing::info!(sent, dropped, "capture: ended");
    if alive {
        let end = serde_json::json!({ "captured": sent, "dropped": dropped });
        let mut b = vec![CAPTURE_END];
        b.extend_from_slice(end.to_string().as_bytes());
        let _ = send_frame(sock, &b, &[]);
    }
}

/// Every connection of every owner, each tagged with its application.
fn connections(shared: &Shared) -> serde_json::Value {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut asked = 0;
    for link in &shared.links {
        let mut cmd = OwnerCmd::Dump { reply: tx.clone() };
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match link.cmds.push(cmd) {
                Ok(()) => {
                    asked += 1;
                    break;
                }
                Err(c) if std::time::Instant::now() < deadline => {
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => break,
            }
        }
    }
    let names = shared.names.lock().clone();
    let mut rows = Vec::new();
    for _ in 0..asked {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(part) => rows.extend(part),
            Err(_) => break,
        }
    }
    rows.sort_by(|a, b| (a.owner, &a.local, &a.remote).cmp(&(b.owner, &b.local, &b.remote)));
    serde_json::Value::Array(
        rows.into_iter()
            .map(|r| {
                let app = match r.app {
                    Some(k) => names.get(&k).cloned().unwrap_or_else(|| format!("app {k}")),
                    None => "dpu-service".to_owned(),
                };
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["app"] = app.into();
                v
            })
            .collect(),
    )
}

fn register(
    sock: &UnixStream,
    shared: &Shared,
    name: String,
    pid: u32,
    contexts: u32,
) -> Result<u64, String> {
    let o = &shared.opts;
    if contexts == 0 {
        return Err("register.contexts: 0 is not allowed (at least 1)".to_owned());
    }
    // More than allowed: grant the maximum (the reply tells how many).
    let contexts = contexts.min(o.max_contexts);
    let c = &shared.counters.apps_connected;
    if c.fetch_add(1, Ordering::Relaxed) >= u64::from(o.max_apps) {
        c.fetch_sub(1, Ordering::Relaxed);
        return Err(format!(
            "too many applications ({} registered, host.max_apps)",
            o.max_apps
        ));
    }
    let result = create(sock, shared, name, pid, contexts);
    if result.is_err() {
        c.fetch_sub(1, Ordering::Relaxed);
    }
    result
}

fn create(
    sock: &UnixStream,
    shared: &Shared,
    name: String,
    pid: u32,
    contexts: u32,
) -> Result<u64, String> {
    let o = &shared.opts;
    // The contexts after the granted ones are kept for forked processes.
    let layout = Layout {
        contexts: contexts + o.fork_contexts,
        ring_entries: o.ring_entries,
        slots: o.slots,
        rx_buf_size: o.rx_buf_size,
        tx_buf_size: o.tx_buf_size,
    };
    layout.validate()?;
    let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
    let err = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let region = Region::create(&format!("flextoe-app-{key}"), layout.region_size())
        .map_err(|e| err("creating the memory region", e))?;
    region
        .write_header(&layout)
        .map_err(|e| format!("writing the region header: {e}"))?;
    let region = Arc::new(region);
    let dpu_bell = Doorbell::new().map_err(|e| err("creating a doorbell", e))?;
    let bells = (0..contexts)
        .map(|_| Doorbell::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("creating a doorbell", e))?;
    let reply = RegisterReply {
        app_id: key as u32,
        abi_version: doca_bindings::abi::ABI_VERSION,
        layout,
        local_ip: o.local_ip,
        congestion_control: o.congestion_control.clone(),
        congestion_control_by_port: o.congestion_control_by_port.clone(),
        first_context: 0,
        granted_contexts: Some(contexts),
    };
    let reply = ControlReply::success(&reply).map_err(|e| e.to_string())?;
    // Everything that can fail happens before the reply: a client told it
    // is registered is registered.
    let info = AppInfo {
        key,
        name: name.clone(),
        pid,
    };
    let app = HostApp::new(info, region, layout, bells, dpu_bell, &shared.opts.dma)
        .map_err(|e| format!("setting up rings: {e}"))?;
    {
        let mut fds = vec![app.region.fd(), app.dpu_bell.fd()];
        fds.extend(
            app.ctxs
                .iter()
                .filter_map(|c| c.bell.as_ref())
                .map(|b| b.fd()),
        );
        send_json(sock, &reply, &fds).map_err(|e| err("sending the registration", e))?;
    }
    tracing::info!(app = key, name = %name, pid, contexts, "hostif: application registered");
    shared.names.lock().insert(key, format!("{name}[{pid}]"));
    shared
        .inbox
        .lock()
        .push_back(FrontMsg::Register(Box::new(app)));
    shared.waker.wake();
    Ok(key)
}

/// A forked process's `join`, as the client thread received it.
struct Join {
    app: u64,
    token: u64,
    pid: u32,
    name: String,
    conns: Vec<u64>,
    ports: Vec<u16>,
}

/// Asks the front to reserve a context for `member`'s child.
fn fork(shared: &Shared, member: u64) -> Result<ForkReply, String> {
    let mut token = [0u8; 8];
    getrandom(&mut token)?;
    // Never 0, and never a small number that a member key could be.
    let token = u64::from_le_bytes(token) | 1 << 63;
    let (tx, rx) = std::sync::mpsc::channel();
    shared.inbox.lock().push_back(FrontMsg::Fork {
        member,
        token,
        reply: tx,
    });
    shared.waker.wake();
    let ctx = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the host-interface worker did not answer".to_owned())??;
    Ok(ForkReply {
        token,
        context: u32::from(ctx),
    })
}

/// Unpredictable bytes (a fork ticket must not be guessable by another
/// application).
fn getrandom(buf: &mut [u8]) -> Result<(), String> {
    // SAFETY: writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        return Err(format!("getrandom: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A forked process joins its parent's application with its ticket.
fn join(sock: &UnixStream, shared: &Shared, j: Join) -> Result<u64, String> {
    let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
    let bell = Doorbell::new().map_err(|e| format!("creating a doorbell: {e}"))?;
    let bell_fd = bell
        .fd()
        .try_clone_to_owned()
        .map_err(|e| format!("creating a doorbell: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    shared
        .inbox
        .lock()
        .push_back(FrontMsg::Join(Box::new(JoinRequest {
            app: j.app,
            token: j.token,
            member: key,
            conns: j.conns,
            ports: j.ports,
            bell,
            reply: tx,
        })));
    shared.waker.wake();
    let grant = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the host-interface worker did not answer".to_owned())??;
    let o = &shared.opts;
    let reply = RegisterReply {
        app_id: j.app as u32,
        abi_version: doca_bindings::abi::ABI_VERSION,
        layout: grant.layout,
        local_ip: o.local_ip,
        congestion_control: o.congestion_control.clone(),
        congestion_control_by_port: o.congestion_control_by_port.clone(),
        first_context: u32::from(grant.ctx),
        granted_contexts: Some(1),
    };
    let reply = ControlReply::success(&reply).map_err(|e| e.to_string())?;
    {
        use std::os::fd::AsFd;
        let fds = [grant.region.fd(), grant.dpu_bell.as_fd(), bell_fd.as_fd()];
        // If this fails the child is gone: the connection's EOF follows
        // and gives back what it held (so the member is registered anyway).
        if let Err(e) = send_json(sock, &reply, &fds) {
            tracing::warn!(error = %e, member = key, "hostif: cannot answer a join");
        }
    }
    tracing::debug!(
        app = j.app,
        member = key,
        pid = j.pid,
        ctx = grant.ctx,
        "hostif: forked process joined"
    );
    shared
        .names
        .lock()
        .insert(key, format!("{}[{}]", j.name, j.pid));
    Ok(key)
}
