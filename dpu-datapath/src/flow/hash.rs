//! The flow-group hash.
//!
//! We use the Toeplitz hash over the IPv4 4-tuple in the order NICs hash it
//! for received packets (source address, destination address, source port,
//! destination port, where "source" is the remote end), with the key the
//! port hashes with: the well-known default RSS key, which we program into
//! NICs that take a key, or the fixed key of `net_tap`'s RSS program (see
//! [`HashKey::NetTap`]). Using the port's own function means a replica's RSS
//! queue receives exactly its own flow groups, with no steering in software.
//!
//! The key is one per process, chosen by the service once when it opens its
//! port and before any flow is hashed ([`select_hash_key`]).

use super::FourTuple;
use std::sync::atomic::{AtomicU8, Ordering};

/// The 40-byte default RSS key used by most NIC drivers (Microsoft's
/// reference key), also DPDK's `rss_intel_key`.
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The key `net_tap`'s RSS program (DPDK 22.11, `tap_bpf_program.c`) really
/// hashes with. Its key is fixed (the one an RSS flow rule carries is
/// ignored), and it reads each 4-byte word of it as a little-endian number,
/// so the Toeplitz key it applies is its `def_rss_key` with every word's
/// bytes reversed. Only the first 16 bytes matter for a 12-byte input.
pub const NET_TAP_RSS_KEY: [u8; 40] = [
    0x2c, 0xc6, 0x81, 0xd1, 0x5b, 0xdb, 0xf4, 0xf7, 0xfc, 0xa2, 0x83, 0x19, 0xdb, 0x1a, 0x3e, 0x94,
    0x6b, 0x9e, 0x38, 0xd9, 0x2c, 0x9c, 0x03, 0xd1, 0xad, 0x99, 0x44, 0xa7, 0xd9, 0x56, 0x3d, 0x59,
    0x06, 0x3c, 0x25, 0xf3, 0xfc, 0x1f, 0xdc, 0x2a,
];

/// Which key the flow hash uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// [`RSS_KEY`]: the key we program into NICs (the default).
    Default = 0,
    /// [`NET_TAP_RSS_KEY`]: a `net_tap` port whose queues are chosen by its
    /// RSS flow rule.
    NetTap = 1,
}

impl HashKey {
    pub fn bytes(self) -> &'static [u8; 40] {
        match self {
            HashKey::Default => &RSS_KEY,
            HashKey::NetTap => &NET_TAP_RSS_KEY,
        }
    }
}

static SELECTED: AtomicU8 = AtomicU8::new(HashKey::Default as u8);

/// Chooses the flow hash's key for the whole process. Called by the service
/// after it opens its port and before it starts the pipeline: changing it
/// while flows exist would move them to other flow groups.
pub fn select_hash_key(key: HashKey) {
    SELECTED.store(key as u8, Ordering::Relaxed);
}

/// The key the flow hash uses now.
pub fn selected_hash_key() -> HashKey {
    match SELECTED.load(Ordering::Relaxed) {
        1 => HashKey::NetTap,
        _ => HashKey::Default,
    }
}

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
/// Toeplitz hash (the hash is linear in its input), so a 12-byte hash is 12
/// table loads and XORs instead of 96 bit steps.
type HashTable = [[u32; 256]; RSS_INPUT];

fn table_for(key: &[u8; 40]) -> Box<HashTable> {
    let mut table = Box::new([[0u32; 256]; RSS_INPUT]);
    for (pos, row) in table.iter_mut().enumerate() {
        for (value, entry) in row.iter_mut().enumerate() {
            let mut input = [0u8; RSS_INPUT];
            input[pos] = value as u8;
            *entry = toeplitz_hash(key, &input);
        }
    }
    table
}

/// One table per [`HashKey`], in its discriminant's order.
static TABLES: [std::sync::LazyLock<Box<HashTable>>; 2] = [
    std::sync::LazyLock::new(|| table_for(&RSS_KEY)),
    std::sync::LazyLock::new(|| table_for(&NET_TAP_RSS_KEY)),
];

/// RSS hash of a flow as the port computes it on an ingress packet, under
/// the selected key.
pub fn rss_hash(tuple: &FourTuple) -> u32 {
    rss_hash_with(selected_hash_key(), tuple)
}

/// RSS hash of a flow under `key`.
pub fn rss_hash_with(key: HashKey, tuple: &FourTuple) -> u32 {
    let mut input = [0u8; RSS_INPUT];
    input[0..4].copy_from_slice(&tuple.remote_ip.octets());
    input[4..8].copy_from_slice(&tuple.local_ip.octets());
    input[8..10].copy_from_slice(&tuple.remote_port.to_be_bytes());
    input[10..12].copy_from_slice(&tuple.local_port.to_be_bytes());
    let table = &**TABLES[key as usize];
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
        tx_offload: false,
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

    /// `n` pseudo-random tuples (xorshift from `seed`).
    fn tuples(mut x: u64, n: usize) -> impl Iterator<Item = FourTuple> {
        (0..n).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            FourTuple {
                local_ip: Ipv4Addr::from((x >> 32) as u32),
                local_port: (x >> 16) as u16,
                remote_ip: Ipv4Addr::from(x as u32),
                remote_port: (x >> 48) as u16,
            }
        })
    }

    /// The table-driven hash equals the bitwise Toeplitz on any tuple.
    #[test]
    fn table_hash_equals_the_bitwise_hash() {
        for t in tuples(0x9e37_79b9_7f4a_7c15, 10_000) {
            let mut input = [0u8; 12];
            input[0..4].copy_from_slice(&t.remote_ip.octets());
            input[4..8].copy_from_slice(&t.local_ip.octets());
            input[8..10].copy_from_slice(&t.remote_port.to_be_bytes());
            input[10..12].copy_from_slice(&t.local_port.to_be_bytes());
            for key in [HashKey::Default, HashKey::NetTap] {
                assert_eq!(rss_hash_with(key, &t), toeplitz_hash(key.bytes(), &input));
            }
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
        assert_eq!(rss_hash_with(HashKey::Default, &tuple), 0x51cc_c178);
    }

    /// `net_tap`'s RSS program, transcribed: 32-bit words of the tuple
    /// (addresses, then source port above destination port), each key word
    /// read little-endian from its `def_rss_key`, a 32-bit window sliding
    /// over consecutive words. [`NET_TAP_RSS_KEY`] must give the same hash.
    #[test]
    fn net_tap_key_matches_the_tap_rss_program() {
        const TAP_DEF_KEY: [u8; 16] = [
            0xd1, 0x81, 0xc6, 0x2c, 0xf7, 0xf4, 0xdb, 0x5b, 0x19, 0x83, 0xa2, 0xfc, 0x94, 0x3e,
            0x1a, 0xdb,
        ];
        let word = |j: usize| u32::from_le_bytes(TAP_DEF_KEY[4 * j..4 * j + 4].try_into().unwrap());
        let tap_hash = |t: &FourTuple| {
            let input = [
                u32::from(t.remote_ip),
                u32::from(t.local_ip),
                u32::from(t.remote_port) << 16 | u32::from(t.local_port),
            ];
            let mut hash = 0u32;
            for (j, w) in input.iter().enumerate() {
                for i in 0..32 {
                    if w & (1 << (31 - i)) != 0 {
                        hash ^= word(j) << i | ((u64::from(word(j + 1)) >> (32 - i)) as u32);
                    }
                }
            }
            hash
        };
        for t in tuples(0x2545_f491_4f6c_dd1d, 10_000) {
            assert_eq!(rss_hash_with(HashKey::NetTap, &t), tap_hash(&t));
        }
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
