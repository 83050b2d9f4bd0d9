//! Small services that run on the DPU next to the engine (as
//! [`crate::pipeline::ShardApp`]s on each flow-group owner): the demo and
//! interoperability tests use them until host applications arrive through
//! the host interface.

mod echo;

pub use echo::EchoApp;
