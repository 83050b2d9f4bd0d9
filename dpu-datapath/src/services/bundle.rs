//! The demo service set one flow-group owner runs: echo (7), discard (9),
//! a finite source (19) and, on one owner, an optional active-open probe.

use super::{DiscardApp, EchoApp, ProbeApp, SourceApp};
use crate::engine::Engine;
use crate::pipeline::ShardApp;

/// Well-known ports of the services.
pub const ECHO_PORT: u16 = 7;
pub const DISCARD_PORT: u16 = 9;
pub const SOURCE_PORT: u16 = 19;

/// Echo, discard, source and an optional probe, polled in turn.
#[derive(Debug)]
pub struct Services {
    pub echo: EchoApp,
    pub discard: DiscardApp,
    pub source: SourceApp,
    pub probe: Option<ProbeApp>,
}

impl Services {
    /// The standard set; the source sends `source_bytes` per connection.
    pub fn new(source_bytes: u64, probe: Option<ProbeApp>) -> Self {
        Self {
            echo: EchoApp::new(ECHO_PORT),
            discard: DiscardApp::new(DISCARD_PORT),
            source: SourceApp::new(SOURCE_PORT, source_bytes),
            probe,
        }
    }
}

impl ShardApp for Services {
    fn start(&mut self, engine: &mut Engine) {
        self.echo.start(engine);
        self.discard.start(engine);
        self.source.start(engine);
        if let Some(p) = self.probe.as_mut() {
            p.start(engine);
        }
    }

    fn poll(&mut self, engine: &mut Engine) {
        self.echo.poll(engine);
        self.discard.poll(engine);
        self.source.poll(engine);
        if let Some(p) = self.probe.as_mut() {
            p.poll(engine);
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
