//! exec: offloaded sockets without `FD_CLOEXEC` survive `execve` and keep
//! working in the new program, as kernel sockets do (inetd-style servers,
//! wrapper scripts, a forked child that execs a helper on its socket).
//!
//! Before the exec, this process asks the service for a fork ticket (the
//! service keeps a context holding its connections and listeners, as for a
//! fork child) and describes the sockets in the new program's environment:
//!
//! ```text
//! FLEXTOE_EXEC=<app_id>.<token>.<context>;<entry>;<entry>...
//!   c,<fds>,<handle>,<peer>,<local>,<accepted 0|1>,<cc>   a connection
//!   l,<fds>,<local>,<cc>                                   a listener
//!   p,<listener fd>,<handle>,<peer>,<local>                accepted ahead
//! ```
//!
//! (`fds` joined with `+`: every descriptor of the socket, dups included).
//! The placeholder kernel sockets keep their numbers across the exec; the
//! old control connection is close-on-exec, so the service sees this image
//! leave while the ticket holds its sockets. In the new program, a
//! constructor of this library joins with the ticket before `main` and
//! adopts each socket (`OP_ADOPT`), with the options its placeholder kept.
//! If the exec fails, the ticket expires unused (10 s) and nothing changed.

use std::ffi::{CStr, CString};
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use libc::{c_char, c_int};
use toe::{ForkTicket, TcpListener, TcpStream, Toe};

use crate::real;
use crate::state::{self, Sock, State};

const VAR: &str = "FLEXTOE_EXEC";

/// One socket to carry across the exec.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Conn {
        fds: Vec<c_int>,
        handle: u64,
        peer: SocketAddrV4,
        local: SocketAddrV4,
        accepted: bool,
        cc: u64,
    },
    Listener {
        fds: Vec<c_int>,
        local: SocketAddrV4,
        cc: u64,
    },
    /// A connection the listener at `listener` accepted ahead of the
    /// program's `accept`.
    Pending {
        listener: c_int,
        handle: u64,
        peer: SocketAddrV4,
        local: SocketAddrV4,
    },
}

fn fds_text(fds: &[c_int]) -> String {
    fds.iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("+")
}

fn encode(ticket: &ForkTicket, entries: &[Entry]) -> String {
    let mut s = format!("{}.{}.{}", ticket.app_id, ticket.token, ticket.context);
    for e in entries {
        s.push(';');
        s.push_str(&match e {
            Entry::Conn {
                fds,
                handle,
                peer,
                local,
                accepted,
                cc,
            } => format!(
                "c,{},{handle},{peer},{local},{},{cc}",
                fds_text(fds),
                u8::from(*accepted)
            ),
            Entry::Listener { fds, local, cc } => format!("l,{},{local},{cc}", fds_text(fds)),
            Entry::Pending {
                listener,
                handle,
                peer,
                local,
            } => format!("p,{listener},{handle},{peer},{local}"),
        });
    }
    s
}

fn decode(text: &str) -> Option<(ForkTicket, Vec<Entry>)> {
    let mut parts = text.split(';');
    let mut t = parts.next()?.split('.');
    let ticket = ForkTicket {
        app_id: t.next()?.parse().ok()?,
        token: t.next()?.parse().ok()?,
        context: t.next()?.parse().ok()?,
    };
    let fds = |s: &str| -> Option<Vec<c_int>> { s.split('+').map(|f| f.parse().ok()).collect() };
    let mut entries = Vec::new();
    for p in parts {
        let f: Vec<&str> = p.split(',').collect();
        entries.push(match f.as_slice() {
            ["c", fd, handle, peer, local, accepted, cc] => Entry::Conn {
                fds: fds(fd)?,
                handle: handle.parse().ok()?,
                peer: peer.parse().ok()?,
                local: local.parse().ok()?,
                accepted: *accepted == "1",
                cc: cc.parse().ok()?,
            },
            ["l", fd, local, cc] => Entry::Listener {
                fds: fds(fd)?,
                local: local.parse().ok()?,
                cc: cc.parse().ok()?,
            },
            ["p", listener, handle, peer, local] => Entry::Pending {
                listener: listener.parse().ok()?,
                handle: handle.parse().ok()?,
                peer: peer.parse().ok()?,
                local: local.parse().ok()?,
            },
            _ => return None,
        });
    }
    Some((ticket, entries))
}

/// Whether `fd` stays open across exec.
fn survives_exec(fd: c_int) -> bool {
    // SAFETY: F_GETFD takes no argument.
    let flags = unsafe { real::fcntl(fd, libc::F_GETFD, 0) };
    flags >= 0 && flags & libc::FD_CLOEXEC == 0
}

/// The sockets of this process that survive an exec.
fn entries() -> Vec<Entry> {
    // Every descriptor of each socket, grouped (dups share one `Sock`).
    let mut groups: Vec<(Arc<Sock>, Vec<c_int>)> = Vec::new();
    for (fd, sock) in state::offloaded_fds() {
        if sock.stale() || !survives_exec(fd) {
            continue;
        }
        match groups.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &sock)) {
            Some((_, fds)) => fds.push(fd),
            None => groups.push((sock, vec![fd])),
        }
    }
    let v4 = |a: std::io::Result<std::net::SocketAddr>| match a {
        Ok(std::net::SocketAddr::V4(a)) => Some(a),
        _ => None,
    };
    let mut out = Vec::new();
    for (sock, fds) in groups {
        let cc = sock.cc.load(Ordering::Relaxed);
        // A socket another thread holds locked is left behind.
        let Some(st) = sock
            .state
            .try_lock_for(std::time::Duration::from_millis(100))
        else {
            continue;
        };
        match &*st {
            State::Stream {
                s,
                connecting: false,
                failed: None,
                ..
            } => {
                let (Some(peer), Some(local)) = (v4(s.peer_addr()), v4(s.local_addr())) else {
                    continue;
                };
                out.push(Entry::Conn {
                    fds,
                    handle: s.handle(),
                    peer,
                    local,
                    accepted: s.is_accepted(),
                    cc,
                });
            }
            State::Listening { l, pending, .. } => {
                let Some(local) = v4(l.local_addr()) else {
                    continue;
                };
                let listener = fds[0];
                out.push(Entry::Listener {
                    fds,
                    local,
                    cc: l.congestion_control_id(),
                });
                // An inherited listener not adopted here still holds the
                // parent's accepted-ahead connections: the parent's to
                // accept, not this process's.
                let inherited = sock.inherited.load(Ordering::Relaxed);
                for p in pending.iter().filter(|_| !inherited) {
                    if let (Some(peer), Some(local)) = (v4(p.peer_addr()), v4(p.local_addr())) {
                        out.push(Entry::Pending {
                            listener,
                            handle: p.handle(),
                            peer,
                            local,
                        });
                    }
                }
            }
            // Not connected (or failed, or connecting): after the exec it is
            // the placeholder kernel socket it always was.
            _ => {}
        }
    }
    out
}

/// The environment for an exec: `envp` (or, when null, this process's)
/// with `FLEXTOE_EXEC` describing the sockets that survive it, or `None`
/// when none do (the exec then goes ahead unchanged).
pub(crate) struct ExecEnv {
    _strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl ExecEnv {
    pub(crate) fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// See [`ExecEnv`].
///
/// # Safety
/// `envp` is null or a null-terminated array of C strings.
pub(crate) unsafe fn prepare(envp: *const *const c_char) -> Option<ExecEnv> {
    if !state::ANY.load(Ordering::Relaxed) {
        return None;
    }
    let toe = state::toe()?;
    let entries = entries();
    if entries.is_empty() {
        return None;
    }
    let ticket = match toe.fork_ticket() {
        Ok(t) => t,
        Err(e) => {
            state::warn(&format!(
                "libtoe_preload: exec: the new program cannot keep this process's sockets ({e})"
            ));
            return None;
        }
    };
    let ours = CString::new(format!("{VAR}={}", encode(&ticket, &entries))).ok()?;
    let mut strings = Vec::new();
    let base = if envp.is_null() {
        // SAFETY: libc's environment array, read before the exec.
        unsafe { environ_ptr() }
    } else {
        envp
    };
    let mut i = 0;
    while !base.is_null() {
        // SAFETY: the caller's (or libc's) null-terminated array.
        let p = unsafe { *base.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: each entry is a C string.
        let entry = unsafe { CStr::from_ptr(p) };
        if !entry.to_bytes().starts_with(b"FLEXTOE_EXEC=") {
            strings.push(entry.to_owned());
        }
        i += 1;
    }
    strings.push(ours);
    let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    Some(ExecEnv {
        _strings: strings,
        ptrs,
    })
}

/// libc's `environ`.
///
/// # Safety
/// Reads a libc global; nothing may change the environment meanwhile.
pub(crate) unsafe fn environ_ptr() -> *const *const c_char {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: a plain read of libc's global.
    unsafe { environ }
}

/// In a program started by an exec that carried sockets: joins with the
/// ticket and puts each socket back under its descriptors. Runs once, from
/// the library's constructor, before `main` and any other thread.
pub(crate) fn join_at_start() {
    let Some(text) = std::env::var_os(VAR) else {
        return;
    };
    // Not passed on to this program's own children.
    std::env::remove_var(VAR);
    let Some((ticket, entries)) = text.to_str().and_then(decode) else {
        state::warn("libtoe_preload: exec: FLEXTOE_EXEC unreadable; inherited sockets unusable");
        return;
    };
    let (mut conns, mut ports) = (Vec::new(), Vec::new());
    for e in &entries {
        match e {
            Entry::Conn { handle, .. } | Entry::Pending { handle, .. } => conns.push(*handle),
            Entry::Listener { local, .. } => ports.push(local.port()),
        }
    }
    let path = toe::control_path_from_env();
    let toe = match Toe::join(&path, &ticket, conns, ports, toe::ToeOptions::from_env()) {
        Ok(t) => t,
        Err(e) => {
            state::warn(&format!(
                "libtoe_preload: exec: cannot keep the sockets of the program before ({e})"
            ));
            return;
        }
    };
    state::attach_joined(toe.clone());
    for e in &entries {
        adopt(&toe, e);
    }
}

fn adopt(toe: &Arc<Toe>, e: &Entry) {
    match e {
        Entry::Conn {
            fds,
            handle,
            peer,
            local,
            accepted,
            cc,
        } => {
            let Ok(s) = TcpStream::inherit(toe, *handle, *peer, *local, *accepted) else {
                return;
            };
            let _ = s.set_nonblocking(true);
            s.inherit_congestion_control(*cc);
            let sndbuf = crate::io::placeholder_buffer_size(fds[0], libc::SO_SNDBUF);
            if sndbuf != 0 {
                // Kept by the library, not the engine: set again.
                let _ = s.set_send_buffer_size(sndbuf as usize);
            }
            let sock = Sock::new(
                State::Stream {
                    s: Arc::new(s),
                    connecting: false,
                    failed: None,
                    reported: true,
                },
                nonblocking(fds[0]),
            );
            sock.cc.store(*cc, Ordering::Relaxed);
            crate::io::options_from_placeholder(fds[0], &sock);
            for &fd in fds {
                state::insert(fd, sock.clone());
            }
        }
        Entry::Listener { fds, local, cc } => {
            let Ok(l) = TcpListener::inherit(toe, *local, *cc) else {
                return;
            };
            let _ = l.set_nonblocking(true);
            let sock = Sock::new(
                State::Listening {
                    l,
                    pending: Default::default(),
                    seen: 0,
                },
                nonblocking(fds[0]),
            );
            sock.cc.store(*cc, Ordering::Relaxed);
            crate::io::options_from_placeholder(fds[0], &sock);
            for &fd in fds {
                state::insert(fd, sock.clone());
            }
        }
        Entry::Pending {
            listener,
            handle,
            peer,
            local,
        } => {
            let Ok(s) = TcpStream::inherit(toe, *handle, *peer, *local, true) else {
                return;
            };
            let _ = s.set_nonblocking(true);
            match state::lookup_quiet(*listener) {
                Some(sock) => {
                    if let State::Listening { pending, .. } = &mut *sock.state.lock() {
                        pending.push_back(s);
                    }
                }
                // Its listener was not kept: the connection goes.
                None => drop(s),
            }
        }
    }
}

/// O_NONBLOCK of the placeholder (kept in step by fcntl and ioctl).
fn nonblocking(fd: c_int) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let fl = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_reads_back_and_garbage_is_refused() {
        let ticket = ForkTicket {
            app_id: 7,
            token: u64::MAX,
            context: 65,
        };
        let a: SocketAddrV4 = "198.18.0.2:7".parse().unwrap();
        let b: SocketAddrV4 = "198.18.0.1:40000".parse().unwrap();
        let entries = vec![
            Entry::Conn {
                fds: vec![0, 1, 7],
                handle: 1 << 40 | 3,
                peer: b,
                local: a,
                accepted: true,
                cc: 2,
            },
            Entry::Listener {
                fds: vec![5],
                local: a,
                cc: 0,
            },
            Entry::Pending {
                listener: 5,
                handle: 9,
                peer: b,
                local: a,
            },
        ];
        let text = encode(&ticket, &entries);
        let (t, e) = decode(&text).expect("decodes");
        assert_eq!((t.app_id, t.token, t.context), (7, u64::MAX, 65));
        assert_eq!(e, entries);
        for bad in [
            "",
            "1.2",
            "1.2.3;x,1",
            "1.2.3;c,1,2,3",
            "1.2.3;l,a,198.18.0.2:7,0",
        ] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
    }
}

// The interposed exec calls. `execl`, `execlp` and `execle` are variadic,
// which stable Rust cannot define: `execl.c` collects their arguments and
// calls `execv`, `execvp` or `execve` below. The exported symbols are
// naked Rust functions that jump to the C ones, registers and stack
// untouched (the variadic arguments with them): the library's version
// script exports only Rust's symbols.

extern "C" {
    fn toe_preload_execl();
    fn toe_preload_execlp();
    fn toe_preload_execle();
}

/// A naked exported function that jumps to `$target`.
macro_rules! jump_to {
    ($name:ident, $target:ident) => {
        /// # Safety
        /// The C function's contract (a variadic exec call).
        #[no_mangle]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            std::arch::naked_asm!("jmp {f}", f = sym $target);
            #[cfg(target_arch = "aarch64")]
            std::arch::naked_asm!("b {f}", f = sym $target);
        }
    };
}

jump_to!(execl, toe_preload_execl);
jump_to!(execlp, toe_preload_execlp);
jump_to!(execle, toe_preload_execle);

/// Runs `exec` with the environment that carries this process's sockets,
/// or with `envp` unchanged when none survive the exec.
///
/// # Safety
/// `envp` is null or a null-terminated array of C strings.
unsafe fn with_sockets(
    envp: *const *const c_char,
    exec: impl FnOnce(*const *const c_char) -> c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { prepare(envp) } {
        Some(env) => exec(env.as_ptr()),
        None => exec(envp),
    }
}

/// # Safety
/// The C function's contract.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    unsafe { with_sockets(envp, |e| real::execve(path, argv, e)) }
}

/// # Safety
/// The C function's contract.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the caller's arguments and libc's environment, forwarded.
    unsafe { execve(path, argv, environ_ptr()) }
}

/// # Safety
/// The C function's contract.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    unsafe { with_sockets(envp, |e| real::execvpe(file, argv, e)) }
}

/// # Safety
/// The C function's contract.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the caller's arguments and libc's environment, forwarded.
    unsafe { execvpe(file, argv, environ_ptr()) }
}

/// # Safety
/// The C function's contract.
#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's arguments, forwarded.
    unsafe { with_sockets(envp, |e| real::fexecve(fd, argv, e)) }
}

/// The library's constructor: a program started by an exec that carried
/// sockets gets them back before `main`.
#[used]
#[link_section = ".init_array"]
static JOIN_AT_START: extern "C" fn() = {
    extern "C" fn init() {
        join_at_start();
    }
    init
};
