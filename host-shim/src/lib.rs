//! `libtoe`: the thin host shim through which applications reach the DPU's
//! TCP engine. The host runs no TCP: connections live in the engine, and
//! the application talks to it over shared-memory descriptor rings
//! (`doca_bindings::abi`), one context (request ring, event ring, doorbell)
//! per application thread.
//!
//! The Rust API follows `std::net`:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! let toe = toe::Toe::from_env()?;
//! let listener = toe::TcpListener::bind(&toe, "0.0.0.0:7")?;
//! let (mut s, _peer) = listener.accept()?;
//! let mut buf = [0u8; 4096];
//! loop {
//!     let n = s.read(&mut buf)?;
//!     if n == 0 {
//!         break;
//!     }
//!     s.write_all(&buf[..n])?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Threads and contexts: each application thread is given a context on
//! first use (round-robin; threads share contexts when there are more
//! threads than contexts). A connection is bound to the context of the
//! thread that connected it, or, when accepted, to a context other than the
//! listener's (round-robin): its events arrive there, and any thread may
//! use the stream. Blocking calls poll for `ToeOptions::spin` (default 0),
//! then sleep on the context's doorbell, so an idle application uses no
//! CPU.
//!
//! Environment: `FLEXTOE_CONTROL` (control socket, default
//! `/run/flextoe/control.sock`), `FLEXTOE_CONTEXTS`, `FLEXTOE_SPIN_US`,
//! `FLEXTOE_APP_NAME`.
//!
//! The C API (`include/toe.h`) is in [`capi`].

mod activity;
mod batch;
mod bufpos;
pub mod capi;
mod conn;
mod context;
mod errors;
mod listener;
mod shared;
mod slab;
mod sleep;
mod stream;
mod toe;
mod waiters;

pub use activity::{Activity, ActivityHook};
pub use batch::BatchOp;
pub use conn::Readiness;
pub use doca_bindings::abi::{cc_from_name, cc_name};
pub use errors::errno_of;
pub use listener::{Incoming, TcpListener};
pub use stream::{congestion_control_id, Keepalive, TcpInfo, TcpStream};
pub use toe::{
    control_path_from_env, ForkTicket, Toe, ToeOptions, WakeupGuard, CONTROL_ENV,
    DEFAULT_CONTROL_PATH,
};
pub use waiters::{set_follower_max_sleep, WaitStats};
