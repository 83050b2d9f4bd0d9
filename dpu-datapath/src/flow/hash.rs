//! The flow-group hash.
//!
//! We use the Toeplitz hash with the well-known default RSS key, over the
//! IPv4 4-tuple in the order NICs hash it for received packets (source
//! address, destination address, source port, destination port, where
//! "source" is the remote end). Using the NIC's own function means that on
//! hardware a replica's RSS queue receives exactly its own flow groups.

use super::FourTuple;

/// The 40-byte default RSS key used by most NIC drivers (Microsoft's
/// reference key), also DPDK's `rss_intel_key`.
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Toeplitz hash of `input` under `key` (key must be at least input + 4 bytes).
pub fn toeplitz_hash(key: &[u8], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit window of the key that lines up with the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, byte) in input.iter().enumerate() {
        let next_key_byte = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((next_key_byte >> (7 - bit)) & 1);
        }
    }
    result
}

/// Bytes of the hashed input: two IPv4 addresses and two ports.
const RSS_INPUT: usize = 12;

/// Per input byte position and byte value, that byte's contribution to the
/// Toeplitz hash under [`RSS_KEY`] (the hash is linear in its input), so a
/// 12-byte hash is 12 table loads and XORs instead of 96 bit steps.
static RSS_TABLE: std::sync::LazyLock<Box<[[u32; 256]; RSS_INPUT]>> =
    std::sync::LazyLock::new(|| {
        let mut table = Box::new([[0u32; 256]; RSS_INPUT]);
        for (pos, row) in table.iter_mut().enumerate() {
            for (value, entry) in row.iter_mut().enumerate() {
                let mut input = [0u8; RSS_INPUT];
                input[pos] = value as u8;
                *entry = toeplitz_hash(&RSS_KEY, &input);
            }
        }
        table
    });

/// RSS hash of a flow as the NIC computes it on an ingress packet.
pub fn rss_hash(tuple: &FourTuple) -> u32 {
    let mut input = [0u8; RSS_INPUT];
    input[0..4].copy_from_slice(&tuple.remote_ip.octets());
    input[4..8].copy_from_slice(&tuple.local_ip.octets());
    input[8..10].copy_from_slice(&tuple.remote_port.to_be_bytes());
    input[10..12].copy_from_slice(&tuple.local_port.to_be_bytes());
    let table = &*RSS_TABLE;
    input
        .iter()
        .zip(table.iter())
        .fold(0, |h, (&b, row)| h ^ row[b as usize])
}

/// Flow group of a tuple: the RSS hash modulo the (power-of-two) group count.
pub fn flow_group(tuple: &FourTuple, flow_groups: u32) -> u32 {
    group_of_hash(rss_hash(tuple), flow_groups)
}

/// RSS hash of a received IPv4/TCP frame (one parse, no checksum checks);
/// `None` for anything else.
pub fn frame_rss_hash(frame: &[u8]) -> Option<u32> {
    use crate::wire::{parse_ingress, ChecksumCaps, L3, L4};
    let caps = ChecksumCaps {
        verify_rx: false,
        fill_tx: false,
    };
    match parse_ingress(frame, &caps).ok()?.l3 {
        L3::Ipv4 { ip, l4: L4::Tcp(t) } => Some(rss_hash(&FourTuple {
            local_ip: ip.dst,
            local_port: t.dst_port,
            remote_ip: ip.src,
            remote_port: t.src_port,
        })),
        _ => None,
    }
}

/// Flow group of an already computed RSS hash.
pub fn group_of_hash(hash: u32, flow_groups: u32) -> u32 {
    hash & (flow_groups.max(1) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The table-driven hash equals the bitwise Toeplitz on any tuple.
    #[test]
    fn table_hash_equals_the_bitwise_hash() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = FourTuple {
                local_ip: Ipv4Addr::from((x >> 32) as u32),
                local_port: (x >> 16) as u16,
                remote_ip: Ipv4Addr::from(x as u32),
                remote_port: (x >> 48) as u16,
            };
            let mut input = [0u8; 12];
            input[0..4].copy_from_slice(&t.remote_ip.octets());
            input[4..8].copy_from_slice(&t.local_ip.octets());
            input[8..10].copy_from_slice(&t.remote_port.to_be_bytes());
            input[10..12].copy_from_slice(&t.local_port.to_be_bytes());
            assert_eq!(rss_hash(&t), toeplitz_hash(&RSS_KEY, &input));
        }
    }

    /// The verification vector from Microsoft's RSS specification
    /// ("Verifying the RSS hash calculation"): 66.9.149.187:2794 ->
    /// 161.142.100.80:1766 hashes to 0x51ccc178.
    #[test]
    fn matches_the_rss_specification_vector() {
        let tuple = FourTuple {
            remote_ip: Ipv4Addr::new(66, 9, 149, 187),
            remote_port: 2794,
            local_ip: Ipv4Addr::new(161, 142, 100, 80),
            local_port: 1766,
        };
        assert_eq!(rss_hash(&tuple), 0x51cc_c178);
    }

    #[test]
    fn groups_stay_in_range() {
        for port in 0..1000u16 {
            let t = FourTuple {
                remote_ip: Ipv4Addr::new(198, 18, 0, 1),
                remote_port: port,
                local_ip: Ipv4Addr::new(198, 18, 0, 2),
                local_port: 80,
            };
            assert!(flow_group(&t, 4) < 4);
            assert_eq!(flow_group(&t, 1), 0);
        }
    }
}
