//! Ingress: one received frame through `pre`, then either the control plane
//! (exception) or `proto` on the established fast path, whose result goes to
//! `dma` and `post` (inline when running to completion, on other workers in
//! the pipeline) and is committed to the application afterwards.

use super::work::{Commit, RxWork, Work};
use super::Engine;
use crate::post::post_rx;
use crate::pre::{self, PreOutcome, Summary};
use crate::proto::{ack_ts_clock, FlowEvents, Nanos};

impl Engine {
    /// Processes one received frame.
    pub fn receive(&mut self, frame: &[u8], now: Nanos) {
        self.now = self.now.max(now);
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len() as u64;
        let outcome = pre::classify(frame, &self.local, &self.pre, &self.cfg.caps);
        self.after_pre(outcome, frame);
    }

    /// Continues with what `pre` decided (the pipeline runs `pre` on its own
    /// workers and enters here on the flow group's owner).
    pub fn after_pre(&mut self, outcome: PreOutcome<'_>, frame: &[u8]) {
        match outcome {
            PreOutcome::Drop(reason) => self.stats.drop(reason),
            PreOutcome::Exception(parsed) => {
                self.stats.exceptions += 1;
                self.exception(&parsed, frame);
            }
            PreOutcome::Fast(summary) => self.fast_path(&summary, frame),
        }
    }

    /// Like [`Engine::after_validate`], taking the frame's buffer so the
    /// fast path can pass it on to `dma`/`post` without copying. Returns
    /// the frame when nothing kept it (exceptions, segments that need no
    /// work), for the caller to reuse.
    pub fn after_validate_owned(
        &mut self,
        verdict: pre::Verdict,
        frame: crate::io::Frame,
        now: Nanos,
    ) -> Option<crate::io::Frame> {
        if let (
            true,
            pre::Verdict::Tcp {
                tuple,
                mut summary,
                fast: true,
                ..
            },
        ) = (self.staged, verdict)
        {
            if let Some(flow) = self.pre.lookup(&tuple) {
                self.now = self.now.max(now);
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += frame.len() as u64;
                summary.flow = flow;
                return match self.proto_stage(&summary) {
                    Some(work) => {
                        self.work_out.push(Work::Rx { frame, work });
                        None
                    }
                    None => Some(frame),
                };
            }
        }
        self.after_validate(verdict, &frame, now);
        Some(frame)
    }

    /// Continues from the stateless half of `pre` (run on a `pre` worker):
    /// flow lookup, then the fast path or the control plane. Used by the
    /// flow group's owner in the pipeline.
    pub fn after_validate(&mut self, verdict: pre::Verdict, frame: &[u8], now: Nanos) {
        self.now = self.now.max(now);
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += frame.len() as u64;
        let flow = match verdict {
            pre::Verdict::Drop(reason) => return self.stats.drop(reason),
            pre::Verdict::Tcp {
                tuple,
                mut summary,
                fast: true,
                ..
            } => match self.pre.lookup(&tuple) {
                Some(flow) => {
                    summary.flow = flow;
                    Some(summary)
                }
                None => None,
            },
            _ => None,
        };
        match flow {
            Some(summary) => self.fast_path(&summary, frame),
            None => {
                // Exceptions are rare: parse again rather than ship the parse.
                if let Ok(parsed) = crate::wire::parse_ingress(frame, &self.cfg.caps) {
                    self.stats.exceptions += 1;
                    self.exception(&parsed, frame);
                }
            }
        }
    }

    /// `proto` for one established-path segment, then its `dma`/`post` work
    /// inline (run to completion) or queued (pipeline; the frame is copied).
    pub(crate) fn fast_path(&mut self, s: &Summary, frame: &[u8]) {
        let Some(work) = self.proto_stage(s) else {
            return;
        };
        if self.staged {
            self.work_out.push(Work::Rx {
                frame: frame.to_vec().into(),
                work,
            });
        } else {
            if let (Some(place), Some(conn)) = (work.place, work.commit.conn) {
                if let Some(app) = self.apps.get(conn) {
                    let start = s.payload_offset as usize + place.skip as usize;
                    if let Some(data) = frame.get(start..start + place.len as usize) {
                        crate::dma::place_rx(&app.rx, place.buf_pos, data);
                    }
                }
            }
            if work.ack.is_some() {
                let mut buf = self.buffer();
                post_rx(&work, &mut buf, &self.cfg.caps);
                self.emit(buf);
            }
            self.commit(work.commit);
        }
    }

    /// `proto` for one segment: the only stage that touches flow state.
    /// Returns the work for `dma` and `post`.
    fn proto_stage(&mut self, s: &Summary) -> Option<RxWork> {
        let id = s.flow;
        let now = self.now;
        let Some(Some(flow)) = self.proto.get_mut(id.index()) else {
            return None;
        };
        self.stats.fast_path_segments += 1;
        let snap = flow.on_segment(s, now, &self.cfg.proto, &mut self.stats);
        let paced = flow.paced();
        if let Some(reason) = snap.drop {
            self.stats.drop(reason);
        }
        let (Some(pre), Some(Some(post))) = (self.pre.get(id), self.post.get_mut(id.index()))
        else {
            return None;
        };
        post.account(&snap.cc);
        let conn = post.conn;
        let template = pre.template;
        if let Some(prior) = snap.prior_ack {
            // Before this segment's own ACK (RFC 8257 3.2).
            self.stats.pure_acks_sent += 1;
            self.send_fields(id, &prior, &[]);
        }
        if paced && (snap.cc.loss || snap.cc.acked_bytes > 0) {
            self.rate_feedback(id, &snap.cc);
        }
        let rx_buf = match snap.place {
            Some(place) => {
                self.stats.rx_payload_bytes += place.len as u64;
                // Run to completion places the payload right away from the
                // application table; only the pipeline needs a handle.
                if self.staged {
                    self.apps.get(conn).map(|a| a.rx.clone())
                } else {
                    None
                }
            }
            None => None,
        };
        if snap.ack.is_some() {
            self.stats.pure_acks_sent += 1;
        }
        if snap.events.has(FlowEvents::OUT_OF_ORDER) {
            self.stats.rx_out_of_order_segments += 1;
        }
        let mut commit = Commit {
            conn: Some(conn),
            delivered: snap.delivered,
            tx_freed: snap.tx_freed,
            peer_fin: snap.events.has(FlowEvents::PEER_FIN),
            ..Commit::default()
        };
        if snap.wake_tx {
            self.wake(id);
        }
        if snap.events.has(FlowEvents::TIME_WAIT) || snap.events.has(FlowEvents::CLOSED) {
            self.finish_flow(id, snap.events.has(FlowEvents::TIME_WAIT));
            commit.finished = true;
        } else {
            self.arm_flow_timer(id);
        }
        Some(RxWork {
            template,
            ack: snap.ack,
            flow: id,
            ack_stretchable: snap.ack_stretchable,
            place: snap.place,
            payload_offset: s.payload_offset,
            rx_buf,
            ts_val: ack_ts_clock(now),
            commit,
        })
    }

    /// Applies notifications to the application side, in stamp order.
    pub fn commit(&mut self, c: Commit) {
        use crate::app::{ConnPhase, EventKind};
        let Some(conn) = c.conn else {
            return;
        };
        let Some(app) = self.apps.get_mut(conn) else {
            return;
        };
        let failed = Some(crate::app::ConnError::DmaFailed);
        let mut c = c;
        if app.error == failed {
            // After a failed copy the commits of the connection's later
            // segments, already in the pipeline, must not make bytes after
            // the hole readable (one may also carry the reset's `finished`,
            // folded in by `push_commit`): only `finished` applies.
            if !c.finished {
                return;
            }
            (c.delivered, c.tx_freed, c.peer_fin) = (0, 0, false);
        } else if c.error == failed && !c.finished {
            // A copy for this connection failed in `dma`: bytes the peer
            // sent cannot be delivered, or bytes to send were not fetched.
            // Its ACK or segment did not leave; reset the connection.
            self.stats.dma_copy_failures += 1;
            app.error = failed;
            if let Some(flow) = app.flow {
                self.abort_flow(flow, crate::app::ConnError::DmaFailed, true);
            }
            return;
        }
        let mut kinds = 0;
        let mut window_update = None;
        if c.delivered > 0 {
            app.rx_ready += c.delivered as u64;
            if app.app_closed {
                // Nobody will read: consume so the window stays open.
                app.rx_read = app.rx_ready;
                if let Some(flow) = app.flow {
                    window_update = self
                        .proto
                        .get_mut(flow.index())
                        .and_then(Option::as_mut)
                        .and_then(|p| p.app_consumed(c.delivered))
                        .map(|h| (flow, h));
                }
                self.stats.drop(crate::stats::DropReason::AppGone);
            } else {
                kinds |= EventKind::READABLE;
            }
        }
        if c.tx_freed > 0 {
            app.tx_acked += c.tx_freed as u64;
            kinds |= EventKind::WRITABLE;
        }
        if c.peer_fin {
            app.peer_fin = true;
            kinds |= EventKind::PEER_CLOSED;
        }
        if c.finished {
            app.phase = ConnPhase::Finished;
            if c.error.is_some() {
                app.error = c.error;
                kinds |= EventKind::ERROR;
            }
            kinds |= EventKind::FINISHED;
            if app.app_closed {
                self.apps.remove(conn);
                self.keepalive.remove(&conn);
                kinds = 0;
            }
        }
        if kinds != 0 {
            self.apps.raise(conn, kinds);
        }
        if let Some((flow, h)) = window_update {
            self.stats.pure_acks_sent += 1;
            self.send_fields(flow, &h, &[]);
        }
    }

    /// Notifications without a frame: applied now, or queued behind the
    /// work already in the pipeline.
    pub(crate) fn dispatch_commit(&mut self, c: Commit) {
        if c.is_empty() {
            return;
        }
        if self.staged {
            self.work_out.push(Work::Commit(c));
        } else {
            self.commit(c);
        }
    }

    /// `post`: builds and emits a pure ACK (or RST) of an installed flow.
    pub(crate) fn send_fields(
        &mut self,
        id: crate::flow::FlowId,
        h: &crate::proto::HeaderFields,
        payload: &[u8],
    ) {
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
