//! The burst data path: `impl Nic for DpdkPort`.
//!
//! RX hands each received mbuf on as a [`Frame`] (no copy). TX sends a
//! frame's own mbuf when it is one, and copies heap frames (control-plane
//! frames, or frames of a backend without mbufs) into a fresh mbuf; it
//! offers the burst to the NIC again as long as each call takes at least one
//! mbuf, and what the full ring still refuses is freed and counted in
//! `tx_dropped_full`.

use super::mbuf::MbufBurst;
use super::port::DpdkPort;
use super::{DpdkError, MAX_BURST};
use crate::io::{Frame, FrameSource, IoStats, Nic};
use crate::proto::Nanos;

const RX_IP_CKSUM_BAD: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD as u64;
const RX_IP_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
const RX_L4_CKSUM_BAD: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_BAD as u64;
const RX_L4_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;

fn csum_bad(ol_flags: u64) -> bool {
    ol_flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_BAD || ol_flags & RX_L4_CKSUM_MASK == RX_L4_CKSUM_BAD
}

impl DpdkPort {
    /// Sends up to [`MAX_BURST`] of `frames`; returns frames sent. The
    /// caller holds queue `queue`'s TX lock (`counters`).
    fn tx_chunk(
        &self,
        queue: u16,
        frames: &mut std::vec::Drain<'_, Frame>,
        counters: &mut IoStats,
    ) -> usize {
        let port_id = self.port_id;
        let mut burst = MbufBurst::new(self.pool);
        let mut bytes = [0u32; MAX_BURST];
        while !burst.is_full() {
            let Some(frame) = frames.next() else { break };
            let len = frame.len();
            let mbuf = match frame.into_mbuf() {
                Ok(mbuf) => mbuf,
                Err(heap) => match self.pool.alloc() {
                    None => {
                        counters.tx_dropped_nombuf += 1;
                        continue;
                    }
                    Some(mut mbuf) => match mbuf.append(heap.len()) {
                        None => {
                            counters.tx_dropped_oversize += 1;
                            continue;
                        }
                        Some(dst) => {
                            dst.copy_from_slice(&heap);
                            mbuf
                        }
                    },
                },
            };
            bytes[burst.as_slice().len()] = len as u32;
            burst.push(mbuf);
        }
        let offered = burst.as_slice().len();
        // SAFETY: the array holds `count` mbufs we own; rte_eth_tx_burst takes ownership
        // of the first `taken` of them and leaves the array alone. `queue` was checked
        // against the configured queues, and the caller holds its TX lock.
        let sent = unsafe {
            burst.drain(|array, count| dpdk_sys::rte_eth_tx_burst(port_id, queue, array, count))
        };
        counters.tx_frames += sent as u64;
        counters.tx_bytes += bytes[..sent].iter().map(|&b| u64::from(b)).sum::<u64>();
        counters.tx_dropped_full += (offered - sent) as u64;
        sent
        // `burst` drops here, freeing the unsent mbufs.
    }
}

impl Nic for DpdkPort {
    fn rx_burst(&self, q: usize, max: usize, out: &mut Vec<(Nanos, Frame)>) -> usize {
        let Some(locks) = self.locks.get(q) else {
            return 0;
        };
        let queue = q as u16;
        let mut counters = locks.rx.lock();
        let port_id = self.port_id;
        let mut total = 0;
        while total < max {
            let want = (max - total).min(MAX_BURST);
            let mut burst = MbufBurst::new(self.pool);
            // SAFETY: rte_eth_rx_burst writes at most `cap` mbufs of this port's pool
            // (which is never freed) into the array and hands them to us; `queue` is a
            // configured queue and we hold its RX lock.
            let got = unsafe {
                burst.fill(want, |array, cap| {
                    dpdk_sys::rte_eth_rx_burst(port_id, queue, array, cap)
                })
            };
            burst.take_all(|mbuf| {
                counters.rx_bytes += mbuf.pkt_len() as u64;
                if csum_bad(mbuf.ol_flags()) {
                    counters.rx_csum_bad += 1;
                }
                out.push((0, Frame::from_mbuf(mbuf)));
            });
            counters.rx_frames += got as u64;
            total += got;
            if got < want {
                break;
            }
        }
        total
    }

    fn tx_burst(&self, q: usize, frames: &mut Vec<Frame>) {
        let Some(locks) = self.locks.get(q) else {
            self.locks[0].tx.lock().tx_dropped_bad_queue += frames.len() as u64;
            frames.clear();
            return;
        };
        let mut counters = locks.tx.lock();
        let mut drain = frames.drain(..);
        while drain.len() > 0 {
            self.tx_chunk(q as u16, &mut drain, &mut counters);
        }
    }

    fn frame_source(&self) -> FrameSource {
        FrameSource::Mbufs(self.pool)
    }

    fn stats(&self) -> IoStats {
        let mut stats = IoStats::default();
        for locks in &self.locks {
            stats.add(&locks.rx.lock());
            stats.add(&locks.tx.lock());
        }
        stats.pool_in_use = u64::from(self.pool.in_use());
        stats.pool_free = u64::from(self.pool.available());
        let mut hw = dpdk_sys::rte_eth_stats::default();
        // SAFETY: `hw` is a valid out-parameter; the port is open.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.port_id, &mut hw) };
        match DpdkError::check(|| format!("rte_eth_stats_get(port {})", self.port_id), ret) {
            Ok(_) => {
                stats.rx_nombuf = hw.rx_nombuf;
                stats.rx_missed = hw.imissed;
                stats.rx_errors = hw.ierrors;
                stats.tx_errors = hw.oerrors;
            }
            Err(err) => tracing::debug!(%err, "no NIC counters"),
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_flags_bad_only_when_marked_bad() {
        let ip_good = u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD);
        let ip_none = u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_NONE);
        let l4_good = u64::from(dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD);
        assert!(!csum_bad(0));
        assert!(!csum_bad(ip_good | l4_good));
        assert!(!csum_bad(ip_none));
        assert!(csum_bad(RX_IP_CKSUM_BAD | l4_good));
        assert!(csum_bad(ip_good | RX_L4_CKSUM_BAD));
    }
}
