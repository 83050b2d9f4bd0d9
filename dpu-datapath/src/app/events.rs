//! Notifications to the application. Coalesced per connection: a connection
//! is queued once until the application takes its events, so the queue is
//! bounded by the number of connections.

use super::ConnId;

/// Kinds of notification, as bits (several may be pending at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKind;

impl EventKind {
    /// In-order data arrived.
    pub const READABLE: u8 = 1;
    /// TX space was freed by an acknowledgement.
    pub const WRITABLE: u8 = 2;
    /// The active open completed.
    pub const CONNECTED: u8 = 4;
    /// The peer closed its direction (EOF after the readable bytes).
    pub const PEER_CLOSED: u8 = 8;
    /// Reset, refused or timed out: see the connection's error.
    pub const ERROR: u8 = 16;
    /// The connection left the data path.
    pub const FINISHED: u8 = 32;
    /// A new connection waits in a listener's accept queue.
    pub const ACCEPTABLE: u8 = 64;
}

/// Pending notifications of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppEvent {
    pub conn: ConnId,
    pub kinds: u8,
}
