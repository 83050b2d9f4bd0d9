//! Small services that run on the DPU next to the engine (as
//! [`crate::pipeline::ShardApp`]s on each flow-group owner): the demo and
//! interoperability tests use them until host applications arrive through
//! the host interface. One service per file; [`Services`] bundles them.

#![forbid(unsafe_code)]

mod bundle;
mod discard;
mod echo;
mod moving;
mod probe;
mod source;

pub use bundle::{Services, DISCARD_PORT, ECHO_PORT, SOURCE_PORT};
pub use discard::DiscardApp;
pub use echo::EchoApp;
pub use probe::{ProbeApp, ProbeState};
pub use source::{pattern_byte, SourceApp};
