//! The simulated link. Each direction has its own impairments; every random
//! decision comes from one seeded ChaCha stream, so a seed replays exactly.
//!
//! Each direction is also a switch port: frames wait their turn for the
//! link (`bandwidth_bps`) in a queue that may be finite (`queue_bytes`:
//! drop-tail beyond it) and may mark ECN-capable frames CE while more than
//! `ecn_mark_bytes` wait (a datacenter switch's K threshold, as DCTCP
//! expects). The queue's length is recorded (maximum, time-weighted mean
//! per frame, and a sample per frame for plots).

use super::PcapWriter;
use crate::proto::Nanos;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::BufWriter;

/// Which way a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    AtoB,
    BtoA,
}

/// Impairments of one direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    pub latency_ns: Nanos,
    /// Bits per second; 0 means unlimited.
    pub bandwidth_bps: u64,
    pub loss: f64,
    pub duplicate: f64,
    /// Probability a frame is held back by up to `reorder_delay_ns`.
    pub reorder: f64,
    pub reorder_delay_ns: Nanos,
    /// Probability of one flipped bit inside the TCP segment (after the IP
    /// header), where only the TCP checksum can catch it.
    pub corrupt: f64,
    /// Bytes the port's queue holds (waiting for the link); a frame that
    /// does not fit is dropped. 0: unlimited.
    pub queue_bytes: u64,
    /// An ECT frame that finds more than this many bytes queued is marked
    /// CE instead of waiting unmarked (RFC 3168 AQM, DCTCP's K). 0: never.
    pub ecn_mark_bytes: u64,
}

impl Default for LinkParams {
    fn default() -> Self {
        Self {
            latency_ns: 50_000,
            bandwidth_bps: 10_000_000_000,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay_ns: 200_000,
            corrupt: 0.0,
            queue_bytes: 0,
            ecn_mark_bytes: 0,
        }
    }
}

/// What the wire did, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireCounters {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    /// Dropped because the port's queue was full.
    pub queue_drops: u64,
    /// Marked CE because the queue was above the marking threshold.
    pub ce_marked: u64,
    /// Bytes put on the link (frames not dropped at the queue).
    pub link_bytes: u64,
    /// Most bytes queued for the link at a frame's arrival.
    pub queue_max_bytes: u64,
    /// Sum of the queued bytes each frame found (for the mean).
    pub queue_sum_bytes: u64,
}

impl WireCounters {
    /// Mean bytes a frame found queued ahead of it.
    pub fn queue_mean_bytes(&self) -> f64 {
        self.queue_sum_bytes as f64 / self.sent.max(1) as f64
    }
}

/// A frame on the wire: arrival time, tie-breaking serial, direction, bytes.
type InFlight = (Nanos, u64, Direction, Vec<u8>);

/// A deterministic two-ended link.
#[derive(Debug)]
pub struct SimWire {
    params: [LinkParams; 2],
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<InFlight>>,
    serial: u64,
    link_free_at: [Nanos; 2],
    counters: [WireCounters; 2],
    /// (time, bytes queued) at each frame's arrival, when recording.
    queue_log: Option<[Vec<(Nanos, u64)>; 2]>,
    pcap: Option<PcapWriter<BufWriter<File>>>,
}

impl SimWire {
    pub fn new(a_to_b: LinkParams, b_to_a: LinkParams, seed: u64) -> Self {
        Self {
            params: [a_to_b, b_to_a],
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            serial: 0,
            link_free_at: [0; 2],
            counters: [WireCounters::default(); 2],
            queue_log: None,
            pcap: None,
        }
    }

    /// Records every frame as it is put on the wire (before impairment).
    pub fn capture_to(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        self.pcap = Some(PcapWriter::new(BufWriter::new(File::create(path)?))?);
        Ok(())
    }

    pub fn counters(&self, dir: Direction) -> WireCounters {
        self.counters[dir as usize]
    }

    /// Starts recording the queue length each frame finds, per direction.
    pub fn record_queue(&mut self) {
        self.queue_log = Some([Vec::new(), Vec::new()]);
    }

    /// The recorded (time, bytes queued) samples of a direction.
    pub fn queue_log(&self, dir: Direction) -> &[(Nanos, u64)] {
        self.queue_log
            .as_ref()
            .map(|l| l[dir as usize].as_slice())
            .unwrap_or(&[])
    }

    /// Clears the counters (after a warm-up).
    pub fn reset_counters(&mut self) {
        self.counters = [WireCounters::default(); 2];
        if let Some(l) = self.queue_log.as_mut() {
            l[0].clear();
            l[1].clear();
        }
    }

    /// Changes a direction's impairments (e.g. to stop loss mid-test).
    pub fn set_params(&mut self, dir: Direction, params: LinkParams) {
        self.params[dir as usize] = params;
    }

    /// Puts a frame on the wire at `now`.
    pub fn send(&mut self, dir: Direction, mut frame: Vec<u8>, now: Nanos) {
        let d = dir as usize;
        let p = self.params[d];
        self.counters[d].sent += 1;
        if let Some(pcap) = self.pcap.as_mut() {
            let _ = pcap.write_frame(now, &frame);
        }
        // The switch port: bytes still waiting for the link when this frame
        // arrives (the link carries one frame at a time).
        let queued = (self.link_free_at[d].saturating_sub(now) as u128 * p.bandwidth_bps as u128
            / 8_000_000_000) as u64;
        let c = &mut self.counters[d];
        c.queue_max_bytes = c.queue_max_bytes.max(queued);
        c.queue_sum_bytes += queued;
        if let Some(log) = self.queue_log.as_mut() {
            log[d].push((now, queued));
        }
        if p.queue_bytes > 0 && queued + frame.len() as u64 > p.queue_bytes {
            self.counters[d].queue_drops += 1;
            return;
        }
        if p.ecn_mark_bytes > 0 && queued > p.ecn_mark_bytes && mark_ce(&mut frame) {
            self.counters[d].ce_marked += 1;
        }
        self.counters[d].link_bytes += frame.len() as u64;
        let start = now.max(self.link_free_at[d]);
        let serialise = (frame.len() as u64 * 8 * 1_000_000_000)
            .checked_div(p.bandwidth_bps)
            .unwrap_or(0);
        self.link_free_at[d] = start + serialise;
        if self.rng.gen_bool(p.loss.clamp(0.0, 1.0)) {
            self.counters[d].lost += 1;
            return;
        }
        let copies = if self.rng.gen_bool(p.duplicate.clamp(0.0, 1.0)) {
            self.counters[d].duplicated += 1;
            2
        } else {
            1
        };
        for i in 0..copies {
            let mut f = if i + 1 < copies {
                frame.clone()
            } else {
                std::mem::take(&mut frame)
            };
            if self.rng.gen_bool(p.corrupt.clamp(0.0, 1.0)) && self.corrupt_tcp(&mut f) {
                self.counters[d].corrupted += 1;
            }
            let mut at = start + serialise + p.latency_ns;
            if self.rng.gen_bool(p.reorder.clamp(0.0, 1.0)) && p.reorder_delay_ns > 0 {
                at += self.rng.gen_range(1..=p.reorder_delay_ns);
                self.counters[d].reordered += 1;
            }
            self.serial += 1;
            self.queue.push(Reverse((at, self.serial, dir, f)));
        }
    }

    /// Flips one bit inside the TCP segment of an IPv4/TCP frame.
    fn corrupt_tcp(&mut self, frame: &mut [u8]) -> bool {
        const ETH: usize = 14;
        if frame.len() <= ETH + 20 || frame[12..14] != [0x08, 0x00] || frame[ETH + 9] != 6 {
            return false;
        }
        let ihl = ((frame[ETH] & 0x0f) as usize) * 4;
        let total = u16::from_be_bytes([frame[ETH + 2], frame[ETH + 3]]) as usize;
        let seg_start = ETH + ihl;
        let seg_end = (ETH + total).min(frame.len());
        if seg_end <= seg_start {
            return false;
        }
        let byte = self.rng.gen_range(seg_start..seg_end);
        let bit = self.rng.gen_range(0..8);
        frame[byte] ^= 1 << bit;
        true
    }

    /// When the next frame arrives.
    pub fn next_delivery(&self) -> Option<Nanos> {
        self.queue.peek().map(|Reverse((t, ..))| *t)
    }

    /// Takes the next frame due by `now`.
    pub fn pop_due(&mut self, now: Nanos) -> Option<(Direction, Vec<u8>)> {
        let Reverse((t, _, _, _)) = self.queue.peek()?;
        if *t > now {
            return None;
        }
        let Reverse((_, _, dir, frame)) = self.queue.pop()?;
        self.counters[dir as usize].delivered += 1;
        Some((dir, frame))
    }

    pub fn flush_capture(&mut self) {
        if let Some(p) = self.pcap.as_mut() {
            let _ = p.flush();
        }
    }
}

/// Marks an ECN-capable (ECT(0) or ECT(1)) IPv4 frame CE and fixes the IP
/// header checksum, as a switch does; false for anything else.
fn mark_ce(frame: &mut [u8]) -> bool {
    const ETH: usize = 14;
    if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let tos = frame[ETH + 1];
    if tos & 0b11 == crate::wire::ECN_NOT_ECT || tos & 0b11 == crate::wire::ECN_CE {
        return false;
    }
    let ihl = ((frame[ETH] & 0x0f) as usize) * 4;
    if ihl < 20 || frame.len() < ETH + ihl {
        return false;
    }
    frame[ETH + 1] = tos | crate::wire::ECN_CE;
    frame[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
    let sum = crate::wire::checksum::data(&frame[ETH..ETH + ihl]);
    frame[ETH + 10..ETH + 12].copy_from_slice(&sum.to_be_bytes());
    true
}
