//! FlexTOE-rs data path and control plane.
//!
//! A packet's journey, one folder per stage:
//! `wire` (formats) -> `pre` (parse, classify, flow lookup) -> `proto`
//! (TCP state) -> `dma` (payload to/from application buffers) -> `post`
//! (headers, ACKs, CC counters); anything unusual goes to `control`. The
//! `engine` composes them run-to-completion; `app` is the application-facing
//! side of a connection; `sim` is a deterministic simulated wire for tests;
//! `io` is real packet I/O (DPDK, behind the `dpdk` feature).

pub mod app;
pub mod capture;
pub mod cc;
pub mod control;
pub mod dma;
pub mod engine;
pub mod flow;
pub mod hostif;
pub mod io;
pub mod metrics;
pub mod pipeline;
pub mod post;
pub mod pre;
pub mod proto;
pub mod services;
pub mod sim;
pub mod stats;
pub mod wire;
pub mod xdp;

pub use engine::{ApiError, Engine, EngineConfig};
