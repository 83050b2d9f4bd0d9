//! The burst data path: `impl Nic for DpdkPort`.
//!
//! RX hands each received mbuf on as a [`Frame`] (no copy). TX sends a
//! frame's own mbuf when it is one, and copies heap frames (control-plane
//! frames, or frames of a backend without mbufs) into a fresh mbuf; it
//! offers the burst to the NIC again as long as each call takes at least one
//! mbuf, and what the full ring still refuses is freed and counted in
//! `tx_dropped_full`.

use super::mbuf::{Mbuf, MbufBurst};
use super::port::DpdkPort;
use super::{DpdkError, MAX_BURST};
use crate::flow::frame_rss_hash;
use crate::io::{Frame, FrameSource, IoStats, Nic};
use crate::proto::Nanos;
use std::sync::atomic::Ordering;

const RX_IP_CKSUM_BAD: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD as u64;
const RX_IP_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
const RX_L4_CKSUM_BAD: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_BAD as u64;
const RX_L4_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;

fn csum_bad(ol_flags: u64) -> bool {
    ol_flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_BAD || ol_flags & RX_L4_CKSUM_MASK == RX_L4_CKSUM_BAD
}

impl DpdkPort {
    /// Whether `mbuf`'s RSS hash (if any) may stand for our flow hash. Only
    /// with RSS on our key; the first frames are checked against the
    /// software hash, and one mismatch ends the trust (logged).
    fn hash_trusted(&self, mbuf: &Mbuf<'_>) -> bool {
        if !self.trust_hash.load(Ordering::Relaxed) {
            return false;
        }
        let Some(nic) = mbuf.rss_hash() else {
            return true;
        };
        if self.hash_checks_left.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let Some(ours) = frame_rss_hash(mbuf.data()) else {
            return true;
        };
        if nic == ours {
            if self.hash_checks_left.fetch_sub(1, Ordering::Relaxed) == 1 {
                tracing::info!(
                    port_id = self.port_id,
                    frames = super::port::HASH_CHECKS,
                    "the NIC's RSS hash matched our flow hash; the stages use it"
                );
            }
            return true;
        }
        self.trust_hash.store(false, Ordering::Relaxed);
        tracing::warn!(
            port_id = self.port_id,
            nic_hash = nic,
            our_hash = ours,
            "the NIC's RSS hash is not our flow hash; computing it in software"
        );
        if matches!(self.steering(), super::RxSteering::Reta { .. }) {
            // The queues were chosen by that other hash: frames land on
            // replicas that do not own them (dropped, counted as misrouted).
            tracing::error!(
                port_id = self.port_id,
                "the NIC spreads frames over its queues with another hash than ours: \
                 frames will be dropped as misrouted; set port.dpdk.software_rss to true"
            );
        }
        false
    }

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
        let mut checksummed = [false; MAX_BURST];
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
            checksummed[burst.as_slice().len()] = mbuf.tx_checksums_requested();
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
        counters.tx_csum_offloaded += checksummed[..sent].iter().filter(|&&c| c).count() as u64;
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
            burst.take_all(|mut mbuf| {
                if !self.hash_trusted(&mbuf) {
                    mbuf.clear_rss_hash();
                }
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
        // Segments to cut that did not get a 64 KiB buffer (their pool ran
        // dry) are cut here, in software, into ordinary ones.
        crate::io::gso::expand_where(frames, |f| !f.is_nic_buffer());
        let mut counters = locks.tx.lock();
        let mut drain = frames.drain(..);
        while drain.len() > 0 {
            self.tx_chunk(q as u16, &mut drain, &mut counters);
        }
    }

    fn frame_source(&self) -> FrameSource {
        FrameSource::Mbufs {
            pool: self.pool,
            large: self.tso_pool,
        }
    }

    /// Registers the worker as a non-EAL lcore: the mempool's per-lcore
    /// cache then serves its allocations and frees (LIFO, so buffers are
    /// reused while warm). Unregistered threads go to the pool's shared
    /// FIFO ring every time, and every buffer they get is cache-cold.
    fn attach_thread(&self) {
        // SAFETY: EAL is initialised (a port exists); both calls only read or
        // set this thread's lcore id.
        unsafe {
            if dpdk_sys::rte_lcore_id() != dpdk_sys::LCORE_ID_ANY
                || dpdk_sys::rte_thread_register() == 0
            {
                return;
            }
        }
        let err = DpdkError::from_rte_errno("rte_thread_register");
        tracing::warn!(%err, "worker thread runs without a mempool cache");
    }

    fn detach_thread(&self) {
        // SAFETY: releases this thread's lcore id if it registered one (a no-op
        // otherwise, and for EAL lcores DPDK refuses it harmlessly).
        unsafe { dpdk_sys::rte_thread_unregister() };
    }

    fn stats(&self) -> IoStats {
        let mut stats = IoStats::default();
        for locks in &self.locks {
            stats.add(&locks.rx.lock());
            stats.add(&locks.tx.lock());
        }
        stats.rx_dropped_kernel = self.kernel_drops.as_ref().map_or(0, |k| k.since_start())
            + self.packet_drops.as_ref().map_or(0, |p| p.read());
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
