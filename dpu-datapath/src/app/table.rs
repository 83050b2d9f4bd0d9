//! Slab of application connections with generation-checked handles, so a
//! stale handle can never reach a newer connection in the same slot.

use super::{AppConn, AppEvent, ConnId};
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct AppTable {
    slots: Vec<(u32, Option<AppConn>)>,
    free: Vec<u32>,
    live: usize,
    notify: VecDeque<ConnId>,
}

impl AppTable {
    pub fn insert(&mut self, conn: AppConn) -> ConnId {
        self.live += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.0 = slot.0.wrapping_add(1);
            slot.1 = Some(conn);
            return ConnId {
                index,
                generation: slot.0,
            };
        }
        self.slots.push((0, Some(conn)));
        ConnId {
            index: (self.slots.len() - 1) as u32,
            generation: 0,
        }
    }

    pub fn get(&self, id: ConnId) -> Option<&AppConn> {
        match self.slots.get(id.index as usize) {
            Some((generation, Some(c))) if *generation == id.generation => Some(c),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut AppConn> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, Some(c))) if *generation == id.generation => Some(c),
            _ => None,
        }
    }

    pub fn remove(&mut self, id: ConnId) -> Option<AppConn> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.0 != id.generation {
            return None;
        }
        let conn = slot.1.take()?;
        self.free.push(id.index);
        self.live -= 1;
        Some(conn)
    }

    /// Handles of every live connection.
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, (_, c))| c.is_some())
            .map(|(i, (generation, _))| ConnId {
                index: i as u32,
                generation: *generation,
            })
    }

    /// Connections alive (including finished ones the application has not
    /// released yet).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Raises `kinds` on a connection, queueing it once.
    pub fn raise(&mut self, id: ConnId, kinds: u8) {
        if let Some(c) = self.get_mut(id) {
            let was_idle = c.pending == 0;
            c.pending |= kinds;
            if was_idle {
                self.notify.push_back(id);
                if self.notify.len() > 2 * self.live + 64 {
                    self.drop_stale_notifications();
                }
            }
        }
    }

    /// Keeps only entries of live connections with something pending. A
    /// connection removed before its notification was taken leaves a stale
    /// entry, and a consumer that never takes events (the built-in
    /// services poll their connections instead) would let the queue grow by
    /// one entry per connection ever opened: 16 MB after a million. At most
    /// one entry per live connection is valid, so compacting at twice that
    /// keeps the queue O(live) at amortised O(1) per raise.
    fn drop_stale_notifications(&mut self) {
        let slots = &self.slots;
        self.notify.retain(|id| {
            matches!(slots.get(id.index as usize),
                Some((generation, Some(c))) if *generation == id.generation && c.pending != 0)
        });
    }

    /// Takes the next connection's pending notifications.
    pub fn next_event(&mut self) -> Option<AppEvent> {
        while let Some(id) = self.notify.pop_front() {
            if let Some(c) = self.get_mut(id) {
                let kinds = std::mem::take(&mut c.pending);
                if kinds != 0 {
                    return Some(AppEvent { conn: id, kinds });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ConnPhase;
    use crate::flow::FourTuple;
    use std::net::Ipv4Addr;

    fn conn(port: u16) -> AppConn {
        let t = FourTuple {
            local_ip: Ipv4Addr::new(198, 18, 0, 2),
            local_port: 7,
            remote_ip: Ipv4Addr::new(198, 18, 0, 1),
            remote_port: port,
        };
        AppConn::new(t, 4096, 4096, ConnPhase::Connecting)
    }

    #[test]
    fn notifications_of_removed_connections_do_not_pile_up() {
        let mut table = AppTable::default();
        // Nobody takes events: each connection is raised, then removed.
        for i in 0..100_000u32 {
            let id = table.insert(conn(i as u16));
            table.raise(id, 1);
            table.remove(id);
        }
        assert!(
            table.notify.len() <= 64 + 2,
            "{} entries",
            table.notify.len()
        );
        // Live connections keep their one entry each, in order.
        let ids: Vec<ConnId> = (0..10u16).map(|p| table.insert(conn(p))).collect();
        for id in &ids {
            table.raise(*id, 1);
            table.raise(*id, 2); // already queued: no second entry
        }
        let events: Vec<AppEvent> = std::iter::from_fn(|| table.next_event()).collect();
        assert_eq!(events.len(), 10);
        assert!(events
            .iter()
            .zip(&ids)
            .all(|(e, id)| e.conn == *id && e.kinds == 3));
    }
}
