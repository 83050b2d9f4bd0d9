//! libc's own functions, found with `dlsym(RTLD_NEXT, ...)` on first use
//! (no constructor: calls may arrive before, or from, other libraries'
//! constructors). Resolution takes no lock and allocates nothing.

use libc::{
    c_char, c_int, c_long, c_ulong, c_void, epoll_event, fd_set, iovec, msghdr, nfds_t, off_t,
    pollfd, sigset_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};
use std::sync::atomic::{AtomicUsize, Ordering};

fn resolve(name: &'static str) -> usize {
    // SAFETY: `name` is NUL-terminated (see the macro); dlsym is
    // thread-safe and does not call back into interposed functions.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if p.is_null() {
        // Without libc's function we cannot do anything sensible.
        std::process::abort();
    }
    p as usize
}

macro_rules! real {
    ($($name:ident($($a:ident: $t:ty),*) -> $r:ty;)*) => {$(
        /// libc's function of this name.
        ///
        /// # Safety
        /// The C function's contract.
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn $name($($a: $t),*) -> $r {
            static P: AtomicUsize = AtomicUsize::new(0);
            let mut p = P.load(Ordering::Relaxed);
            if p == 0 {
                p = resolve(concat!(stringify!($name), "\0"));
                P.store(p, Ordering::Relaxed);
            }
            // SAFETY: `p` is the address of libc's function of this name,
            // whose C prototype is the one declared here (variadic ones
            // take their optional argument in the same register on x86-64
            // and aarch64).
            let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(p) };
            // SAFETY: the caller upholds the C function's contract.
            unsafe { f($($a),*) }
        }
    )*};
}

real! {
    socket(d: c_int, t: c_int, p: c_int) -> c_int;
    execve(p: *const c_char, a: *const *const c_char, e: *const *const c_char) -> c_int;
    execvpe(f: *const c_char, a: *const *const c_char, e: *const *const c_char) -> c_int;
    fexecve(fd: c_int, a: *const *const c_char, e: *const *const c_char) -> c_int;
    bind(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int;
    listen(fd: c_int, b: c_int) -> c_int;
    accept4(fd: c_int, a: *mut sockaddr, l: *mut socklen_t, f: c_int) -> c_int;
    connect(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int;
    read(fd: c_int, b: *mut c_void, n: size_t) -> ssize_t;
    readv(fd: c_int, v: *const iovec, n: c_int) -> ssize_t;
    recv(fd: c_int, b: *mut c_void, n: size_t, f: c_int) -> ssize_t;
    recvfrom(fd: c_int, b: *mut c_void, n: size_t, f: c_int, a: *mut sockaddr, l: *mut socklen_t) -> ssize_t;
    recvmsg(fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t;
    write(fd: c_int, b: *const c_void, n: size_t) -> ssize_t;
    writev(fd: c_int, v: *const iovec, n: c_int) -> ssize_t;
    send(fd: c_int, b: *const c_void, n: size_t, f: c_int) -> ssize_t;
    sendto(fd: c_int, b: *const c_void, n: size_t, f: c_int, a: *const sockaddr, l: socklen_t) -> ssize_t;
    sendmsg(fd: c_int, m: *const msghdr, f: c_int) -> ssize_t;
    sendfile(o: c_int, i: c_int, off: *mut off_t, n: size_t) -> ssize_t;
    pread(fd: c_int, b: *mut c_void, n: size_t, off: off_t) -> ssize_t;
    lseek(fd: c_int, off: off_t, w: c_int) -> off_t;
    close(fd: c_int) -> c_int;
    shutdown(fd: c_int, h: c_int) -> c_int;
    fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int;
    setsockopt(fd: c_int, lv: c_int, n: c_int, v: *const c_void, l: socklen_t) -> c_int;
    getsockopt(fd: c_int, lv: c_int, n: c_int, v: *mut c_void, l: *mut socklen_t) -> c_int;
    getsockname(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int;
    getpeername(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int;
    poll(f: *mut pollfd, n: nfds_t, t: c_int) -> c_int;
    ppoll(f: *mut pollfd, n: nfds_t, t: *const timespec, m: *const sigset_t) -> c_int;
    select(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *mut timeval) -> c_int;
    pselect(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *const timespec, m: *const sigset_t) -> c_int;
    epoll_create(s: c_int) -> c_int;
    epoll_create1(f: c_int) -> c_int;
    epoll_ctl(ep: c_int, op: c_int, fd: c_int, e: *mut epoll_event) -> c_int;
    epoll_wait(ep: c_int, e: *mut epoll_event, n: c_int, t: c_int) -> c_int;
    epoll_pwait(ep: c_int, e: *mut epoll_event, n: c_int, t: c_int, m: *const sigset_t) -> c_int;
    dup(fd: c_int) -> c_int;
    dup2(a: c_int, b: c_int) -> c_int;
    dup3(a: c_int, b: c_int, f: c_int) -> c_int;
    syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long;
    sigaction(s: c_int, a: *const libc::sigaction, o: *mut libc::sigaction) -> c_int;
}
