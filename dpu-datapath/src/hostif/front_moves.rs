//! The front's side of flow-group moves (`pipeline/moves.rs`): a host
//! connection keeps the handle its application was given, wherever its
//! flow group goes, and its commands reach the engine in the order the
//! application posted them.
//!
//! When a group moves, the old owner's shard gives back the commands it
//! still receives for the group's connections ([`OwnerEvt::Bounced`]), and
//! the new owner's shard announces each arrival ([`OwnerEvt::Moved`]: from
//! where, to where). On the first of the two, the front holds the
//! connection's new commands and sends the old owner a fence
//! ([`OwnerCmd::MoveFence`]); the owner's command queue is FIFO, so once
//! the fence comes back ([`OwnerEvt::Fenced`]) every earlier command has
//! been bounced. Then the front sends the bounced commands, then the held
//! ones, then a settle ([`OwnerCmd::MoveSettled`]), to the new place, and
//! routes the connection there from then on. Until its settle a moved
//! connection is not closed by its application's exit (that would run
//! before the commands the front held); the settle closes it if the
//! application has gone meanwhile.
//! A connection that moves again before that follows the same steps from
//! each place to the next (announcements can arrive out of order: they
//! are kept by the place they leave).

#![forbid(unsafe_code)]

use super::front::Front;
use super::handle;
use super::link::{AppKey, OwnerCmd, Place};
use std::collections::HashMap;

/// Where moved connections are, and the ones being moved.
#[derive(Debug, Default)]
pub(super) struct Moves {
    /// Host handle -> where the connection is now, for those that moved
    /// (the others are where their handle says).
    at: HashMap<u64, Place>,
    /// Announced moves not yet followed, by the place they leave.
    hops: HashMap<Place, Place>,
    /// Connections whose commands wait: a fence is out to where they were.
    held: HashMap<u64, Held>,
}

/// A connection between its old place and its new one.
#[derive(Debug)]
struct Held {
    app: AppKey,
    /// The old place has answered the fence.
    fenced: bool,
    /// Commands the old place gave back, in the order they were sent.
    bounced: Vec<OwnerCmd>,
    /// Commands the application posted since, in order.
    parked: Vec<OwnerCmd>,
}

#[cfg(test)]
impl Moves {
    /// Connections that changed owner and are still open.
    pub(super) fn moved(&self) -> usize {
        self.at.len()
    }

    /// Connections whose commands are held while they move.
    pub(super) fn holding(&self) -> usize {
        self.held.len()
    }
}

impl Front {
    /// Where connection `host` is: its owner and its handle there.
    pub(super) fn place(&self, host: u64) -> Option<Place> {
        match self.moves.at.get(&host) {
            Some(&p) => Some(p),
            None => handle::decode(host, self.owner_count()),
        }
    }

    /// Sends a command for connection `host` to where it is, or holds it
    /// while the connection moves.
    pub(super) fn send_conn(&mut self, host: u64, mut cmd: OwnerCmd) {
        if let Some(h) = self.moves.held.get_mut(&host) {
            h.parked.push(cmd);
            return;
        }
        if let Some((owner, id)) = self.place(host) {
            cmd.retarget(id);
            self.send(owner, cmd);
        }
    }

    /// [`OwnerEvt::Moved`]: `host` (of `app`) went from `from` to `to`.
    pub(super) fn moved(&mut self, app: AppKey, host: u64, from: Place, to: Place) {
        self.count(|c| &c.conns_moved);
        self.moves.hops.insert(from, to);
        if self.place(host) == Some(from) {
            self.hold(app, host);
            // A bounce may have started the hold, and the fence come back,
            // before this announcement.
            self.follow(host);
        }
        // Otherwise it is a later step: the one before it leads here.
    }

    /// [`OwnerEvt::Bounced`]: `cmd` reached the place `host` had left.
    pub(super) fn bounced(&mut self, host: u64, cmd: OwnerCmd) {
        self.count(|c| &c.commands_bounced);
        let Some((app, _)) = cmd.conn_of() else {
            return;
        };
        self.hold(app, host);
        if let Some(h) = self.moves.held.get_mut(&host) {
            h.bounced.push(cmd);
        }
    }

    /// [`OwnerEvt::Fenced`]: nothing more of `host` comes back from `at`.
    pub(super) fn fenced(&mut self, host: u64, at: Place) {
        if self.place(host) != Some(at) {
            return;
        }
        if let Some(h) = self.moves.held.get_mut(&host) {
            h.fenced = true;
        }
        self.follow(host);
    }

    /// [`OwnerEvt::Released`]: the moved connection was let go of where
    /// it is; no command can name it any more.
    pub(super) fn released(&mut self, host: u64) {
        if !self.moves.held.contains_key(&host) {
            self.moves.at.remove(&host);
        }
    }

    /// Starts holding `host`'s commands (if not yet) and fences the place
    /// it is leaving.
    fn hold(&mut self, app: AppKey, host: u64) {
        if self.moves.held.contains_key(&host) {
            return;
        }
        let Some((owner, conn)) = self.place(host) else {
            return;
        };
        self.moves.held.insert(
            host,
            Held {
                app,
                fenced: false,
                bounced: Vec::new(),
                parked: Vec::new(),
            },
        );
        self.send(owner, OwnerCmd::MoveFence { host, conn });
    }

    /// Once the old place is fenced and the new one known: sends what was
    /// held there, in order, and routes `host` there.
    fn follow(&mut self, host: u64) {
        let Some(from) = self.place(host) else {
            return;
        };
        if !self.moves.held.get(&host).is_some_and(|h| h.fenced) {
            return;
        }
        let Some(to) = self.moves.hops.remove(&from) else {
            return;
        };
        let Some(h) = self.moves.held.remove(&host) else {
            return;
        };
        self.moves.at.insert(host, to);
        for mut cmd in h.bounced.into_iter().chain(h.parked) {
            cmd.retarget(to.1);
            self.send(to.0, cmd);
        }
        let settle = OwnerCmd::MoveSettled {
            app: h.app,
            conn: to.1,
            release: self.app_gone(h.app),
        };
        self.send(to.0, settle);
        if self.moves.hops.contains_key(&to) {
            // It has left `to` as well: what was just sent there comes
            // back before this fence does.
            self.hold(h.app, host);
        }
    }
}
