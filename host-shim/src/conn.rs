//! What the application knows about one connection: its four stream
//! positions and its state bits, updated from `EV_CONN` events. Pure
//! bookkeeping; the context owns the states and does the copies.

use doca_bindings::abi;

/// Per-connection state, kept in the context the connection is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnState {
    /// Connection slot: where its RX and TX buffers are.
    pub slot: u32,
    pub rx_size: u64,
    pub tx_size: u64,
    /// Unacknowledged bytes allowed at once: the TX buffer, or less with
    /// `SO_SNDBUF` ([`crate::TcpStream::set_send_buffer_size`]).
    pub tx_limit: u64,
    /// Total bytes the DPU made readable (RX stream offset).
    pub rx_ready: u64,
    /// Total bytes the application consumed.
    pub rx_read: u64,
    /// Total bytes the application wrote into the TX buffer.
    pub tx_written: u64,
    /// Total bytes the peer acknowledged (their TX space is free again).
    pub tx_acked: u64,
    pub connected: bool,
    pub peer_closed: bool,
    pub finished: bool,
    /// Local `shutdown(Read)`: data is consumed as it arrives.
    pub shut_rd: bool,
    /// Local `shutdown(Write)`: writes fail with EPIPE.
    pub shut_wr: bool,
    /// First error reported by the DPU (positive errno).
    pub error: Option<i32>,
    /// Whether `take_error` already returned `error`.
    pub error_taken: bool,
    /// `OP_ABORT` was sent: the DPU forgot the handle, so no request may
    /// name it any more (not even `OP_CLOSE`) and its buffers may be reused.
    pub released: bool,
    /// Another process sharing the connection adopted it (`CONN_MOVED`):
    /// this view is stale until this process adopts it back.
    pub moved: bool,
}

/// Readiness of a connection, as `poll_events` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes that can be read now without blocking.
    pub readable_bytes: u64,
    /// Bytes that can be written now without blocking.
    pub writable_bytes: u64,
    /// A read returns at once: data, EOF or an error (like `POLLIN`).
    pub readable: bool,
    /// A write returns at once: space, or an error (like `POLLOUT`).
    pub writable: bool,
    /// No more data will arrive after `readable_bytes` (like `POLLRDHUP`).
    pub eof: bool,
    /// The connection failed (like `POLLERR`); `take_error` tells why.
    pub error: bool,
    /// The connection left the engine (like `POLLHUP`).
    pub hangup: bool,
}

impl ConnState {
    pub(crate) fn new(slot: u32, rx_size: u32, tx_size: u32) -> ConnState {
        ConnState {
            slot,
            rx_size: rx_size.into(),
            tx_size: tx_size.into(),
            tx_limit: tx_size.into(),
            rx_ready: 0,
            rx_read: 0,
            tx_written: 0,
            tx_acked: 0,
            connected: false,
            peer_closed: false,
            finished: false,
            shut_rd: false,
            shut_wr: false,
            error: None,
            error_taken: false,
            released: false,
            moved: false,
        }
    }

    /// The state of a connection adopted from another process sharing it
    /// (`OP_ADOPT`'s reply): its positions, and its state bits; the
    /// readable and acknowledged positions follow in an `EV_CONN`.
    pub(crate) fn rebase(&mut self, rx_read: u64, tx_written: u64, sticky: u16) {
        self.rx_read = rx_read;
        self.rx_ready = rx_read;
        self.tx_written = tx_written;
        // At most a buffer's worth is unacknowledged; the EV_CONN that
        // follows tells the exact figure.
        self.tx_acked = tx_written.saturating_sub(self.tx_size);
        self.moved = false;
        self.connected |= sticky & abi::CONN_CONNECTED != 0;
        self.peer_closed |= sticky & abi::CONN_PEER_CLOSED != 0;
        self.finished |= sticky & abi::CONN_FINISHED != 0;
    }

    /// Applies an `EV_CONN` event. Positions only move forward and stay
    /// within what the buffers can hold (a wrong value cannot make the
    /// application read beyond its RX buffer or overwrite unacknowledged TX
    /// data).
    pub(crate) fn apply(&mut self, flags: u16, rx_ready: u64, tx_acked: u64, status: i32) {
        if self.released {
            return;
        }
        if flags & abi::CONN_MOVED != 0 {
            self.moved = true;
        }
        if self.moved {
            return;
        }
        let rx_limit = self.rx_read.saturating_add(self.rx_size);
        self.rx_ready = self.rx_ready.max(rx_ready.min(rx_limit));
        self.tx_acked = self.tx_acked.max(tx_acked.min(self.tx_written));
        if flags & abi::CONN_CONNECTED != 0 {
            self.connected = true;
        }
        if flags & abi::CONN_PEER_CLOSED != 0 {
            self.peer_closed = true;
        }
        if flags & abi::CONN_ERROR != 0 {
            self.fail(crate::errors::errno_of_status(status));
        }
        if flags & abi::CONN_FINISHED != 0 {
            self.finished = true;
        }
    }

    /// After `OP_ABORT`: nothing more to read or write, ECONNABORTED.
    pub(crate) fn release(&mut self) {
        self.released = true;
        self.rx_ready = self.rx_read;
        self.fail(libc::ECONNABORTED);
    }

    /// Records an error (the first one wins).
    pub(crate) fn fail(&mut self, errno: i32) {
        if self.error.is_none() {
            self.error = Some(errno);
        }
    }

    pub(crate) fn readable(&self) -> u64 {
        self.rx_ready - self.rx_read
    }

    pub(crate) fn writable(&self) -> u64 {
        if self.shut_wr || self.error.is_some() || self.finished || !self.connected {
            return 0;
        }
        self.tx_limit
            .min(self.tx_size)
            .saturating_sub(self.tx_written - self.tx_acked)
    }

    /// No more data will become readable.
    pub(crate) fn rx_closed(&self) -> bool {
        self.shut_rd || self.peer_closed || self.finished || self.error.is_some()
    }

    /// All data read and no more coming: a read returns 0 (or the error).
    pub(crate) fn is_eof(&self) -> bool {
        self.rx_closed() && self.readable() == 0
    }

    /// The error a write gets, if any: after a reset or a local shutdown,
    /// EPIPE like Linux; other errors (ETIMEDOUT, ...) as they are.
    pub(crate) fn write_error(&self) -> Option<i32> {
        match self.error {
            Some(e) if e == libc::ECONNRESET => Some(libc::EPIPE),
            Some(e) => Some(e),
            None if self.shut_wr || self.finished => Some(libc::EPIPE),
            None => None,
        }
    }

    pub(crate) fn readiness(&self) -> Readiness {
        let readable_bytes = if self.shut_rd { 0 } else { self.readable() };
        let eof = self.is_eof() || self.shut_rd;
        let writable_bytes = self.writable();
        Readiness {
            readable_bytes,
            writable_bytes,
            readable: readable_bytes > 0 || eof,
            writable: writable_bytes > 0 || self.write_error().is_some(),
            eof,
            error: self.error.is_some(),
            hangup: self.finished || self.error.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnState {
        let mut c = ConnState::new(3, 4096, 8192);
        c.apply(abi::CONN_CONNECTED, 0, 0, 0);
        c
    }

    #[test]
    fn positions_move_forward_only() {
        let mut c = conn();
        c.apply(abi::CONN_READABLE, 100, 0, 0);
        assert_eq!(c.readable(), 100);
        c.apply(abi::CONN_READABLE, 50, 0, 0);
        assert_eq!(c.rx_ready, 100);
        c.rx_read = 60;
        assert_eq!(c.readable(), 40);
        c.tx_written = 1000;
        c.apply(abi::CONN_WRITABLE, 100, 400, 0);
        assert_eq!(c.tx_acked, 400);
        assert_eq!(c.writable(), 8192 - 600);
        c.apply(abi::CONN_WRITABLE, 100, 300, 0);
        assert_eq!(c.tx_acked, 400);
    }

    #[test]
    fn the_send_limit_bounds_what_is_unacknowledged() {
        let mut c = conn();
        c.tx_limit = 2048;
        c.tx_written = 1500;
        assert_eq!(c.writable(), 548);
        c.apply(abi::CONN_WRITABLE, 0, 1000, 0);
        assert_eq!(c.writable(), 2048 - 500);
        // Lowered below what is in flight: nothing until the ACKs come.
        c.tx_limit = 256;
        assert_eq!(c.writable(), 0);
    }

    #[test]
    fn positions_are_clamped_to_the_buffers() {
        let mut c = conn();
        c.rx_read = 10;
        c.rx_ready = 10;
        c.apply(abi::CONN_READABLE, 1 << 40, 0, 0);
        assert_eq!(c.rx_ready, 10 + 4096);
        assert_eq!(c.readable(), 4096);
        c.tx_written = 500;
        c.apply(abi::CONN_WRITABLE, 0, 9999, 0);
        assert_eq!(c.tx_acked, 500);
        assert_eq!(c.writable(), 8192);
        c.apply(0, u64::MAX, u64::MAX, 0);
        assert!(c.readable() <= 4096);
    }

    #[test]
    fn eof_after_peer_close_and_all_data_read() {
        let mut c = conn();
        c.apply(abi::CONN_READABLE | abi::CONN_PEER_CLOSED, 5, 0, 0);
        assert!(!c.is_eof());
        let r = c.readiness();
        assert!(r.readable && !r.eof && r.readable_bytes == 5);
        c.rx_read = 5;
        assert!(c.is_eof());
        assert!(c.readiness().eof);
        // Half-close: writing is still allowed.
        assert_eq!(c.write_error(), None);
        assert!(c.writable() > 0);
    }

    #[test]
    fn errors_first_one_wins_and_map_for_writes() {
        let mut c = conn();
        c.apply(abi::CONN_ERROR, 0, 0, -libc::ECONNRESET);
        c.apply(abi::CONN_ERROR, 0, 0, -libc::ETIMEDOUT);
        assert_eq!(c.error, Some(libc::ECONNRESET));
        assert_eq!(c.write_error(), Some(libc::EPIPE));
        assert_eq!(c.writable(), 0);
        let r = c.readiness();
        assert!(r.error && r.readable && r.writable && r.hangup);

        let mut c = conn();
        c.apply(abi::CONN_ERROR, 0, 0, 0);
        assert_eq!(c.error, Some(libc::EIO));
        let mut c = conn();
        c.apply(abi::CONN_ERROR, 0, 0, -libc::ETIMEDOUT);
        assert_eq!(c.write_error(), Some(libc::ETIMEDOUT));
    }

    #[test]
    fn shutdowns_and_finish() {
        let mut c = conn();
        c.shut_wr = true;
        assert_eq!(c.write_error(), Some(libc::EPIPE));
        assert_eq!(c.writable(), 0);
        let mut c = conn();
        c.apply(abi::CONN_READABLE, 7, 0, 0);
        c.shut_rd = true;
        let r = c.readiness();
        assert_eq!(r.readable_bytes, 0);
        assert!(r.eof && r.readable);
        let mut c = conn();
        c.apply(abi::CONN_FINISHED, 0, 0, 0);
        assert!(c.is_eof());
        assert_eq!(c.write_error(), Some(libc::EPIPE));
    }

    #[test]
    fn released_connections_ignore_events() {
        let mut c = conn();
        c.apply(abi::CONN_READABLE, 10, 0, 0);
        c.release();
        assert_eq!(c.readable(), 0);
        assert_eq!(c.error, Some(libc::ECONNABORTED));
        assert_eq!(c.write_error(), Some(libc::ECONNABORTED));
        c.apply(
            abi::CONN_READABLE | abi::CONN_ERROR,
            50,
            0,
            -libc::ECONNRESET,
        );
        assert_eq!(c.readable(), 0);
        assert_eq!(c.error, Some(libc::ECONNABORTED));
    }

    #[test]
    fn not_writable_before_connected() {
        let c = ConnState::new(0, 4096, 4096);
        assert_eq!(c.writable(), 0);
        assert_eq!(c.write_error(), None);
    }
}
