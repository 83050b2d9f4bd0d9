//! The demo service set one flow-group owner runs: echo (7), discard (9),
//! a finite source (19) and, on one owner, an optional active-open probe.

use super::{DiscardApp, EchoApp, ProbeApp, SourceApp};
use crate::app::ConnId;
use crate::engine::{Engine, HandleMoves};
use crate::pipeline::{AppParcel, ShardApp};

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

    fn movable(&self) -> bool {
        true
    }

    fn export_conns(&mut self, conns: &[ConnId]) -> AppParcel {
        // The probe (one connection, on one owner) goes whole with it.
        let probe = match &self.probe {
            Some(p) if p.conn().is_some_and(|c| conns.contains(&c)) => self.probe.take(),
            _ => None,
        };
        Box::new(BundleParcel {
            echo: self.echo.export_conns(conns),
            discard: self.discard.export_conns(conns),
            source: self.source.export_conns(conns),
            probe,
        })
    }

    fn import_conns(&mut self, engine: &mut Engine, parcel: AppParcel, moves: &HandleMoves) {
        let Ok(p) = parcel.downcast::<BundleParcel>() else {
            return;
        };
        let p = *p;
        self.echo.import_conns(engine, p.echo, moves);
        self.discard.import_conns(engine, p.discard, moves);
        self.source.import_conns(engine, p.source, moves);
        if let Some(mut probe) = p.probe {
            probe.moved(moves);
            match (&self.probe, probe.conn()) {
                (None, _) => self.probe = Some(probe),
                // One probe per service; a second one cannot be kept.
                (Some(_), conn) => {
                    if let Some(c) = conn {
                        let _ = engine.abort(c);
                    }
                    tracing::warn!("a moved probe found another here: its connection is reset");
                }
            }
        }
    }
}

/// The services' side of a moved flow group.
struct BundleParcel {
    echo: AppParcel,
    discard: AppParcel,
    source: AppParcel,
    probe: Option<ProbeApp>,
}
