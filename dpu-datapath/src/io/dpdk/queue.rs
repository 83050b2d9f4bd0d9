//! The burst data path: `impl PacketIo for DpdkPort`.
//!
//! RX copies each frame into a reused `Vec<u8>` and frees the whole burst of mbufs in
//! one call. TX copies each frame into a fresh mbuf and offers the burst to the NIC
//! again as long as each call takes at least one mbuf; what the full ring still refuses
//! is freed and counted in `tx_dropped_full`.

use super::mbuf::MbufBurst;
use super::port::DpdkPort;
use super::{DpdkError, MAX_BURST};
use crate::io::{IoStats, PacketIo};

const RX_IP_CKSUM_BAD: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD as u64;
const RX_IP_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
const RX_L4_CKSUM_BAD: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_BAD as u64;
const RX_L4_CKSUM_MASK: u64 = dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;

fn csum_bad(ol_flags: u64) -> bool {
    ol_flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_BAD || ol_flags & RX_L4_CKSUM_MASK == RX_L4_CKSUM_BAD
}

impl DpdkPort {
    /// Copies `frames[..]` into mbufs and sends them; returns frames sent.
    fn tx_chunk(&mut self, queue: u16, frames: &mut std::vec::Drain<'_, Vec<u8>>) -> usize {
        let port_id = self.port_id;
        let mut burst = MbufBurst::new(&self.pool);
        let mut bytes = [0u32; MAX_BURST];
        while !burst.is_full() {
            let Some(frame) = frames.next() else { break };
            match self.pool.alloc() {
                None => self.counters.tx_dropped_nombuf += 1,
                Some(mut mbuf) => match mbuf.append(frame.len()) {
                    None => self.counters.tx_dropped_oversize += 1,
                    Some(dst) => {
                        dst.copy_from_slice(&frame);
                        bytes[burst.as_slice().len()] = frame.len() as u32;
                        burst.push(mbuf);
                    }
                },
            }
            self.frames.put(frame);
        }
        let offered = burst.as_slice().len();
        // SAFETY: the array holds `count` mbufs we own; rte_eth_tx_burst takes ownership
        // of the first `taken` of them and leaves the array alone. `queue` was checked
        // against the configured queues by the caller.
        let sent = unsafe {
            burst.drain(|array, count| dpdk_sys::rte_eth_tx_burst(port_id, queue, array, count))
        };
        self.counters.tx_frames += sent as u64;
        self.counters.tx_bytes += bytes[..sent].iter().map(|&b| u64::from(b)).sum::<u64>();
        self.counters.tx_dropped_full += (offered - sent) as u64;
        sent
        // `burst` drops here, freeing the unsent mbufs.
    }
}

impl PacketIo for DpdkPort {
    fn rx_burst(&mut self, queue: u16, max: usize, out: &mut Vec<Vec<u8>>) -> usize {
        if queue >= self.queues {
            return 0;
        }
        let port_id = self.port_id;
        let mut total = 0;
        while total < max {
            let want = (max - total).min(MAX_BURST);
            let mut burst = MbufBurst::new(&self.pool);
            // SAFETY: rte_eth_rx_burst writes at most `cap` mbufs of this port's pool
            // (which outlives the burst) into the array and hands them to us; `queue`
            // is a configured queue.
            let got = unsafe {
                burst.fill(want, |array, cap| {
                    dpdk_sys::rte_eth_rx_burst(port_id, queue, array, cap)
                })
            };
            for mbuf in burst.as_slice() {
                let mut buf = self.frames.get();
                mbuf.copy_to(&mut buf);
                self.counters.rx_bytes += buf.len() as u64;
                if csum_bad(mbuf.ol_flags()) {
                    self.counters.rx_csum_bad += 1;
                }
                out.push(buf);
            }
            self.counters.rx_frames += got as u64;
            total += got;
            if got < want {
                break;
            }
            // `burst` drops here: one rte_pktmbuf_free_bulk for the lot.
        }
        total
    }

    fn tx_burst(&mut self, queue: u16, frames: &mut Vec<Vec<u8>>) -> usize {
        if queue >= self.queues {
            self.counters.tx_dropped_bad_queue += frames.len() as u64;
            for frame in frames.drain(..) {
                self.frames.put(frame);
            }
            return 0;
        }
        let mut drain = frames.drain(..);
        let mut sent = 0;
        while drain.len() > 0 {
            sent += self.tx_chunk(queue, &mut drain);
        }
        sent
    }

    fn stats(&self) -> IoStats {
        let mut stats = self.counters;
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

    fn mac(&self) -> [u8; 6] {
        self.mac
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
