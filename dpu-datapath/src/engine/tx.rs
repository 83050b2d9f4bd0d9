//! The flow scheduler and timers: flows with something to send are queued
//! once; each turn sends up to a burst of segments (payload read by `dma`
//! from the TX buffer, headers by `post`), then yields to the next flow.

use super::work::{TxWork, Work};
use super::{Engine, TimerKey};
use crate::app::ConnError;
use crate::post::post_tx;
use crate::proto::{ack_ts_clock, Deadline, Nanos};

/// Segments one flow may send per scheduler turn (fairness between flows).
const TX_BURST: usize = 16;

impl Engine {
    /// Runs expired timers and the TX scheduler.
    pub fn poll(&mut self, now: Nanos) {
        self.now = self.now.max(now);
        while let Some((at, key)) = self.timers.pop_due(self.now) {
            self.on_timer(key, at);
        }
        self.run_tx();
    }

    fn on_timer(&mut self, key: TimerKey, at: Nanos) {
        match key {
            TimerKey::Flow(id) => {
                let now = self.now;
                let Some(Some(p)) = self.proto.get_mut(id.index()) else {
                    return;
                };
                if p.timer_queued_at != Deadline::of_queue_entry(at) {
                    return; // superseded by an earlier entry
                }
                p.timer_queued_at = Deadline::OFF;
                let action = p.on_timers(now, &self.cfg.proto, &mut self.stats);
                if action.abort {
                    self.abort_flow(id, ConnError::TimedOut, false);
                    return;
                }
                if let Some(h) = action.send {
                    self.stats.pure_acks_sent += 1;
                    self.send_fields(id, &h, &[]);
                }
                if action.timeout {
                    self.rate_timeout(id);
                }
                if action.wake_tx {
                    self.wake(id);
                }
                self.arm_flow_timer(id);
            }
            TimerKey::Handshake(tuple) => self.handshake_timer(tuple),
            TimerKey::TimeWait(tuple) => self.time_wait_timer(tuple),
            TimerKey::Arp(ip) => self.arp_timer(ip),
            TimerKey::Pace(id) => self.pace_timer(id, at),
            TimerKey::Keepalive(conn) => self.keepalive_timer(conn, at),
        }
    }

    fn run_tx(&mut self) {
        let now = self.now;
        let mut turns = self.txq.len();
        while turns > 0 {
            turns -= 1;
            let Some(id) = self.txq.pop_front() else {
                break;
            };
            let Some(Some(_)) = self.proto.get(id.index()) else {
                continue;
            };
            let (Some(pre), Some(Some(post))) = (self.pre.get(id), self.post.get(id.index()))
            else {
                continue;
            };
            let template = pre.template;
            let conn = post.conn;
            let mut sent = 0;
            while sent < TX_BURST {
                let Some(Some(p)) = self.proto.get_mut(id.index()) else {
                    break;
                };
                p.set_tx_queued(false);
                // Paced and early: the wheel wakes the flow at its time.
                let paced = p.paced();
                if paced && self.pace_hold(id) {
                    break;
                }
                let Some(Some(p)) = self.proto.get_mut(id.index()) else {
                    break;
                };
                let Some(seg) = p.next_segment(now, &self.cfg.proto, &mut self.stats) else {
                    break;
                };
                if seg.segment_size > 0 {
                    self.stats.tso_segments += 1;
                }
                let work = TxWork {
                    conn: Some(conn),
                    template,
                    header: seg.header,
                    buf_pos: seg.buf_pos,
                    len: seg.len,
                    tx_buf: self.apps.get(conn).map(|a| a.tx.clone()),
                    ts_val: ack_ts_clock(now),
                    segment_size: seg.segment_size,
                };
                self.stats.tx_frames += 1;
                if paced {
                    self.pace_sent(id, &seg);
                }
                if self.staged {
                    self.work_out.push(Work::Tx(work));
                } else {
                    let mut buf = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(1600));
                    crate::dma::tx_now(&work, &mut self.scratch);
                    post_tx(&work, &self.scratch, &mut buf, &self.cfg.caps);
                    self.stats.tx_bytes += buf.len() as u64;
                    self.out.push(buf);
                }
                sent += 1;
            }
            if sent == TX_BURST {
                self.wake(id);
            }
            self.arm_flow_timer(id);
        }
    }
}
