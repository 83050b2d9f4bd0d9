//! Ingress: one received frame through `pre`, then either the control plane
//! (exception) or `proto` -> `dma` -> `post` on the established fast path.

use super::Engine;
use crate::app::EventKind;
use crate::dma;
use crate::flow::FlowId;
use crate::pre::{self, PreOutcome, Summary};
use crate::proto::{ack_ts_clock, FlowEvents, HeaderFields, Nanos};

impl Engine {
    /// Processes one received frame.
    pub fn receive(&mut self, frame: &[u8], now: Nanos) {
        self.now = self.now.max(now);
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len() as u64;
        match pre::classify(frame, &self.local, &self.pre, &self.cfg.caps) {
            PreOutcome::Drop(reason) => self.stats.drop(reason),
            PreOutcome::Exception(parsed) => {
                self.stats.exceptions += 1;
                self.exception(&parsed, frame);
            }
            PreOutcome::Fast(summary) => self.fast_path(&summary, frame),
        }
    }

    /// `proto`, `dma` and `post` for one established-path segment.
    pub(crate) fn fast_path(&mut self, s: &Summary, frame: &[u8]) {
        let id = s.flow;
        let now = self.now;
        let Some(Some(flow)) = self.proto.get_mut(id.index()) else {
            return;
        };
        self.stats.fast_path_segments += 1;
        let snap = flow.on_segment(s, now, &self.cfg.proto, &mut self.stats);
        if let Some(reason) = snap.drop {
            self.stats.drop(reason);
        }
        let Some(Some(post)) = self.post.get_mut(id.index()) else {
            return;
        };
        post.account(&snap.cc);
        let conn = post.conn;

        // dma: payload straight to its final place in the RX buffer.
        let mut window_update = None;
        if let Some(app) = self.apps.get_mut(conn) {
            if let Some(place) = snap.place {
                let start = s.payload_offset as usize + place.skip as usize;
                let data = &frame[start..start + place.len as usize];
                dma::write_wrapping(&mut app.rx, place.buf_pos, data);
                self.stats.rx_payload_bytes += place.len as u64;
            }
            let mut kinds = 0;
            if snap.delivered > 0 {
                app.rx_ready += snap.delivered as u64;
                if app.app_closed {
                    // Nobody will read: consume so the window stays open.
                    app.rx_read = app.rx_ready;
                    if let Some(Some(p)) = self.proto.get_mut(id.index()) {
                        window_update = p.app_consumed(snap.delivered);
                    }
                    self.stats.drop(crate::stats::DropReason::AppGone);
                } else {
                    kinds |= EventKind::READABLE;
                }
            }
            if snap.tx_freed > 0 {
                app.tx_acked += snap.tx_freed as u64;
                kinds |= EventKind::WRITABLE;
            }
            if snap.events.has(FlowEvents::PEER_FIN) {
                app.peer_fin = true;
                kinds |= EventKind::PEER_CLOSED;
            }
            if kinds != 0 {
                self.apps.raise(conn, kinds);
            }
        }

        // post: the ACK, built from the snapshot and the flow's template.
        if let Some(h) = snap.ack.or(window_update) {
            self.stats.pure_acks_sent += 1;
            self.send_fields(id, &h, &[]);
        }
        if snap.wake_tx {
            self.wake(id);
        }
        if snap.events.has(FlowEvents::TIME_WAIT) || snap.events.has(FlowEvents::CLOSED) {
            self.finish_flow(id, snap.events.has(FlowEvents::TIME_WAIT));
        } else {
            self.arm_flow_timer(id);
        }
    }

    /// `post`: builds and emits a segment of an installed flow.
    pub(crate) fn send_fields(&mut self, id: FlowId, h: &HeaderFields, payload: &[u8]) {
        let Some(pre) = self.pre.get(id) else {
            return;
        };
        let template = pre.template;
        let mut buf = self.buffer();
        crate::post::build_frame(
            &mut buf,
            &template,
            h,
            ack_ts_clock(self.now),
            payload,
            &self.cfg.caps,
        );
        self.emit(buf);
    }
}
