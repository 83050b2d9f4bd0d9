//! Work items that leave `proto` for the data-parallel stages (`dma`, then
//! `post`), and the commit that comes back after the egress reorder. They
//! carry everything those stages need (header template, buffer handles), so
//! `dma` and `post` never read flow state and can run on any worker.

use crate::app::{ConnError, ConnId};
use crate::dma::HostBuffer;
use crate::flow::FlowId;
use crate::io::Frame;
use crate::pre::HeaderTemplate;
use crate::proto::{HeaderFields, Placement};
use std::sync::Arc;

/// Application notifications, applied in stamp order once the DMA is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    pub conn: Option<ConnId>,
    /// New in-order bytes readable.
    pub delivered: u32,
    /// TX bytes acknowledged.
    pub tx_freed: u32,
    pub peer_fin: bool,
    /// The connection left the data path (with an error if abnormal).
    pub finished: bool,
    pub error: Option<ConnError>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.delivered == 0
            && self.tx_freed == 0
            && !self.peer_fin
            && !self.finished
            && self.error.is_none()
    }

    /// Folds `later`, the next commit in order, into this one when
    /// applying the two at once leaves the application where applying
    /// them in turn would: the same connection, this one not its last (not
    /// finished, no error), and `later` not a failed copy (an error
    /// without `finished`, which must stay apart: `Engine::commit`).
    /// Returns whether it did.
    pub fn absorb(&mut self, later: &Commit) -> bool {
        let fits = self.conn.is_some()
            && self.conn == later.conn
            && !self.finished
            && self.error.is_none()
            && (later.error.is_none() || later.finished);
        let (Some(delivered), Some(tx_freed), true) = (
            self.delivered.checked_add(later.delivered),
            self.tx_freed.checked_add(later.tx_freed),
            fits,
        ) else {
            return false;
        };
        self.delivered = delivered;
        self.tx_freed = tx_freed;
        self.peer_fin |= later.peer_fin;
        self.finished = later.finished;
        self.error = later.error;
        true
    }
}

/// Appends `c` to `commits`, folded into the last one when
/// [`Commit::absorb`] allows: the owner then applies, and the application
/// is woken for, one commit per connection and burst instead of one per
/// segment.
pub fn push_commit(commits: &mut Vec<Commit>, c: Commit) {
    if !commits.last_mut().is_some_and(|last| last.absorb(&c)) {
        commits.push(c);
    }
}

/// A received segment after `proto`: payload to place, ACK to build.
#[derive(Clone, Debug)]
pub struct RxWork {
    pub template: HeaderTemplate,
    pub ack: Option<HeaderFields>,
    /// The flow, and whether its ACK may give way to a later one of the
    /// same flow in the same burst ([`coalesce_acks`]).
    pub flow: FlowId,
    pub ack_stretchable: bool,
    pub place: Option<Placement>,
    /// Offset of the segment's payload in the frame.
    pub payload_offset: u16,
    pub rx_buf: Option<Arc<HostBuffer>>,
    pub ts_val: u32,
    pub commit: Commit,
}

/// A segment to transmit after `proto`: payload to fetch, header to build.
#[derive(Clone, Debug)]
pub struct TxWork {
    /// The connection (reset if the payload's copy fails).
    pub conn: Option<ConnId>,
    pub template: HeaderTemplate,
    pub header: HeaderFields,
    pub buf_pos: u32,
    pub len: u32,
    pub tx_buf: Option<Arc<HostBuffer>>,
    pub ts_val: u32,
    /// When the payload is longer than this (non-zero) MSS, the port cuts
    /// it into segments of that size (TSO; `ProtoConfig::tso_max`).
    pub segment_size: u16,
}

/// What one engine produced for the later stages, in order.
#[derive(Debug)]
pub enum Work {
    /// A received frame and what to do with it.
    Rx { frame: Frame, work: RxWork },
    /// A segment to send.
    Tx(TxWork),
    /// A complete frame from the control plane.
    Frame(Frame),
    /// Only notifications (no frame).
    Commit(Commit),
}

/// Flows [`coalesce_acks`] tracks per burst; more leave their ACKs alone.
const COALESCE_FLOWS: usize = 64;

/// ACK coalescing per burst, as GRO gives Linux: leaves out each delayed
/// ACK (one due only to the every-second-segment rule) that a later
/// delayed ACK of the same flow in `work` covers. Both would leave in the
/// same burst, and the later one acknowledges at least as much with a
/// window at least as recent, so the peer learns the same, from fewer
/// packets. Duplicate ACKs (out of order, holes), FIN ACKs and window
/// updates are always sent, and a delayed ACK never gives way to a later
/// duplicate ACK (the peer counts duplicates). `seen` is scratch space.
/// Returns how many ACKs were left out.
pub fn coalesce_acks(work: &mut [Work], seen: &mut Vec<FlowId>) -> u64 {
    seen.clear();
    let mut left_out = 0;
    // Backwards: `seen` holds the flows whose next ACK (in burst order) is
    // a delayed one that will be sent, so earlier delayed ACKs may go.
    for item in work.iter_mut().rev() {
        let Work::Rx { work: rx, .. } = item else {
            continue;
        };
        if rx.ack.is_none() {
            continue;
        }
        let known = seen.iter().position(|&f| f == rx.flow);
        match (rx.ack_stretchable, known) {
            (true, Some(_)) => {
                rx.ack = None;
                left_out += 1;
            }
            (true, None) if seen.len() < COALESCE_FLOWS => seen.push(rx.flow),
            (true, None) => {}
            // A duplicate ACK is only a duplicate after the ACK before it:
            // that one stays.
            (false, Some(i)) => {
                seen.swap_remove(i);
            }
            (false, None) => {}
        }
    }
    left_out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FourTuple;
    use crate::wire::{EthernetAddress, SeqNumber, TcpFlags};
    use std::net::Ipv4Addr;

    /// A received segment of `flow` whose ACK (if `ack`) acknowledges up to
    /// `ack`, due to the delayed-ACK rule (`stretch`) or not (a duplicate).
    fn rx(flow: u32, ack: Option<u32>, stretch: bool) -> Work {
        let ip = Ipv4Addr::new(198, 18, 0, 1);
        let work = RxWork {
            template: HeaderTemplate {
                local_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
                remote_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
                vlan: None,
                tuple: FourTuple {
                    local_ip: ip,
                    local_port: 7,
                    remote_ip: ip,
                    remote_port: flow as u16,
                },
                timestamps: false,
            },
            ack: ack.map(|a| HeaderFields {
                seq: SeqNumber(1),
                ack: SeqNumber(a),
                flags: TcpFlags::ACK,
                window: 1000,
                ts_ecr: None,
                sack: Default::default(),
                ect: false,
            }),
            flow: FlowId(flow),
            ack_stretchable: stretch,
            place: None,
            payload_offset: 54,
            rx_buf: None,
            ts_val: 0,
            commit: Commit::default(),
        };
        Work::Rx {
            frame: Frame::new(),
            work,
        }
    }

    /// (flow, ack) of the ACKs still to be sent.
    fn sent(work: &[Work]) -> Vec<(u32, u32)> {
        work.iter()
            .filter_map(|w| match w {
                Work::Rx { work, .. } => work.ack.map(|h| (work.flow.0, h.ack.0)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_later_delayed_ack_of_the_same_flow_stands_in() {
        let mut seen = Vec::new();
        let mut work = vec![
            rx(1, Some(100), true),
            rx(2, Some(500), true),
            rx(1, None, true),
            rx(1, Some(300), true),
            rx(2, Some(700), true),
            rx(1, Some(400), true),
        ];
        assert_eq!(coalesce_acks(&mut work, &mut seen), 3);
        assert_eq!(sent(&work), [(2, 700), (1, 400)]);
    }

    #[test]
    fn duplicate_acks_and_what_they_duplicate_are_kept() {
        let mut seen = Vec::new();
        // 100 and 200 in order, then out-of-order data: the duplicate of 200
        // only counts as one if the ACK of 200 went out before it.
        let mut work = vec![
            rx(1, Some(100), true),
            rx(1, Some(200), true),
            rx(1, Some(200), false),
            rx(1, Some(200), false),
        ];
        assert_eq!(coalesce_acks(&mut work, &mut seen), 1);
        assert_eq!(sent(&work), [(1, 200), (1, 200), (1, 200)]);
        // A delayed ACK after the duplicates still covers nothing before them.
        let mut work = vec![
            rx(1, Some(100), true),
            rx(1, Some(100), false),
            rx(1, Some(300), true),
        ];
        assert_eq!(coalesce_acks(&mut work, &mut seen), 0);
    }

    #[test]
    fn other_work_and_immediate_acks_are_untouched() {
        let mut seen = Vec::new();
        let mut work = vec![
            rx(1, Some(100), false),
            Work::Commit(Commit::default()),
            rx(1, Some(200), false),
        ];
        assert_eq!(coalesce_acks(&mut work, &mut seen), 0);
        assert_eq!(sent(&work), [(1, 100), (1, 200)]);
    }

    fn conn(index: u32) -> Option<ConnId> {
        Some(ConnId {
            index,
            generation: 1,
        })
    }

    /// Commits of one connection in a burst fold into one; the last of a
    /// connection, another connection's and a failed copy's stay apart.
    #[test]
    fn commits_fold_only_where_applying_them_at_once_is_the_same() {
        let data = |c, n| Commit {
            conn: conn(c),
            delivered: n,
            tx_freed: 1,
            ..Commit::default()
        };
        let mut all = Vec::new();
        push_commit(&mut all, data(1, 100));
        push_commit(&mut all, data(1, 50));
        push_commit(&mut all, data(2, 10));
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].delivered, all[0].tx_freed), (150, 2));
        // A reset after data folds in (data, then the error)...
        let reset = Commit {
            conn: conn(2),
            finished: true,
            error: Some(ConnError::Reset),
            ..Commit::default()
        };
        push_commit(&mut all, reset);
        assert_eq!(all.len(), 2);
        assert!(all[1].finished && all[1].error == Some(ConnError::Reset));
        assert_eq!(all[1].delivered, 10);
        // ...but nothing folds into a finished commit.
        push_commit(&mut all, data(2, 5));
        assert_eq!(all.len(), 3);
        // A failed copy stays apart from the data before it.
        let failed = Commit {
            conn: conn(2),
            error: Some(ConnError::DmaFailed),
            ..Commit::default()
        };
        push_commit(&mut all, failed);
        assert_eq!(all.len(), 4);
        assert!(!all[3].is_empty(), "a failed copy's commit is not empty");
        // Nor does data fold into it.
        push_commit(&mut all, data(2, 7));
        assert_eq!(all.len(), 5);
    }
}
