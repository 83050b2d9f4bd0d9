//! `libtoe_preload.so`: POSIX sockets on the DPU's TCP engine for
//! unmodified programs, loaded with `LD_PRELOAD` (see `flextoe-run` and
//! docs/preload.md).
//!
//! Only `AF_INET` + `SOCK_STREAM` sockets are offloaded; every other fd
//! goes to libc untouched. An offloaded socket keeps the kernel socket the
//! program created (unused, never bound or connected) as its fd, so fd
//! numbers never collide and close/dup/FD_CLOEXEC behave; the library maps
//! that fd to a `toe::TcpStream` or `toe::TcpListener`. A socket bound to,
//! or connecting to, a loopback address is handed back to the kernel.

#[cfg(test)]
mod blocking_tests;
#[cfg(test)]
mod call_cost_tests;
mod epoll_set;
mod exec;
mod interpose;
mod io;
mod real;
mod signals;
mod state;
#[cfg(test)]
mod test_support;
mod wait;
