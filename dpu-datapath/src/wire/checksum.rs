//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! `sum` values can be added together (pseudo header + header + payload) before one final
//! `fold`; the pieces must each start on an even offset of the checksummed data.

use std::net::Ipv4Addr;

/// Ones-complement sum of `data` read as big-endian 16-bit words, an odd last byte padded with
/// zero. Not complemented; reduced to at most `0xffff` so that many sums can be added in a `u32`.
pub fn sum(data: &[u8]) -> u32 {
    // 2^32 ≡ 1 (mod 0xffff), so adding 32-bit halves keeps the 16-bit ones-complement sum
    // modulo 0xffff while doing a quarter of the additions. The bulk is summed in native
    // byte order in four independent lanes and byte-swapped once at the end (the
    // ones-complement sum is byte-order independent, RFC 1071 section 2(B)).
    let (blocks, rest) = data.as_chunks::<32>();
    let mut lanes = [0u64; 4];
    for block in blocks {
        let (words, _) = block.as_chunks::<8>();
        for (lane, word) in lanes.iter_mut().zip(words) {
            let v = u64::from_ne_bytes(*word);
            *lane += (v >> 32) + (v & 0xffff_ffff);
        }
    }
    let native = fold_u64(lanes.iter().map(|&l| fold_u64(l) as u64).sum()) as u16;
    let mut acc = u64::from(if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    });
    let (octs, rest) = rest.as_chunks::<8>();
    for oct in octs {
        let v = u64::from_be_bytes(*oct);
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let (quads, rest) = rest.as_chunks::<4>();
    for quad in quads {
        acc += u64::from(u32::from_be_bytes(*quad));
    }
    let (pairs, rest) = rest.as_chunks::<2>();
    for pair in pairs {
        acc += u64::from(u16::from_be_bytes(*pair));
    }
    if let [last] = rest {
        acc += u64::from(*last) << 8;
    }
    fold_u64(acc)
}

fn fold_u64(mut acc: u64) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves acc <= 0xffff.
    acc as u32
}

/// Folds the carries of an accumulated sum into 16 bits (end-around carry).
pub fn fold(sum: u32) -> u16 {
    fold_u64(u64::from(sum)) as u16
}

/// The checksum to store for `data` (complemented fold of its sum). Over data that already
/// contains a correct checksum field this is 0.
pub fn data(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Sum of the IPv4 pseudo header used by TCP and UDP (RFC 793 §3.1). `length` is the
/// transport header plus payload length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    sum(&src.octets())
        + sum(&dst.octets())
        + u32::from(protocol)
        + (length >> 16)
        + (length & 0xffff)
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `old` to `new`.
///
/// Equals a full recompute whenever the data covered is not all zeros (always the case for
/// IPv4 and TCP headers, whose version / data offset fields are non-zero).
pub fn update_u16(old_checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!old_checksum) + u32::from(!old) + u32::from(new))
}

/// [`update_u16`] for a 32-bit field (an address or sequence number) at an even offset.
pub fn update_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let (old_hi, old_lo) = ((old >> 16) as u16, old as u16);
    let (new_hi, new_lo) = ((new >> 16) as u16, new as u16);
    !fold(
        u32::from(!old_checksum)
            + u32::from(!old_hi)
            + u32::from(!old_lo)
            + u32::from(new_hi)
            + u32::from(new_lo),
    )
}

/// The Ethernet (no VLAN) and IPv4 header lengths of an IPv4/TCP frame;
/// None for any other frame.
pub(crate) fn ipv4_tcp_header_lens(frame: &[u8]) -> Option<(usize, usize)> {
    let eth = 14;
    let ip = frame.get(eth..)?;
    if frame[12..14] != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    (ihl >= 20 && total >= ihl + 20 && total <= ip.len()).then_some((eth, ihl))
}

/// Computes the IPv4 header checksum and the TCP checksum of an IPv4/TCP
/// frame in place, from scratch (what a port with TX checksum offload would
/// have done). False, frame untouched, when the frame is not one
/// ([`ipv4_tcp_header_lens`]).
pub fn fill_ipv4_tcp(frame: &mut [u8]) -> bool {
    let Some((eth, ihl)) = ipv4_tcp_header_lens(frame) else {
        return false;
    };
    let ip = &mut frame[eth..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ip[10..12].fill(0);
    let ip_sum = data(&ip[..ihl]);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let tcp = &mut ip[ihl..total];
    tcp[16..18].fill(0);
    let tcp_sum = !fold(pseudo_header_v4(src, dst, 6, tcp.len() as u32) + sum(tcp));
    tcp[16..18].copy_from_slice(&tcp_sum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {

    /// The plain big-endian word sum the fast one must equal.
    fn reference(data: &[u8]) -> u32 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            acc += hi + pair.get(1).map_or(0, |&lo| u64::from(lo));
        }
        fold_u64(acc)
    }

    #[test]
    fn lane_sum_equals_the_word_by_word_sum() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..3000), |data| {
                // fold may give 0xffff or 0 for the same class: compare folded sums mod 0xffff.
                prop_assert_eq!(sum(&data) % 0xffff, reference(&data) % 0xffff);
                prop_assert_eq!(data_fold(&data), data_fold_ref(&data));
                Ok(())
            })
            .unwrap();
        assert_eq!(sum(&[0xff; 64]), reference(&[0xff; 64]));
    }

    fn data_fold(d: &[u8]) -> u16 {
        data(d)
    }

    fn data_fold_ref(d: &[u8]) -> u16 {
        !fold(reference(d))
    }
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: words 0001 f203 f4f5 f6f7 sum to ddf2 after folding.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), 0xddf2);
        assert_eq!(data(&bytes), !0xddf2);
    }

    #[test]
    fn ipv4_header_from_capture() {
        // Header of the SYN in test_frames (checksum field 0x0a74, hand-verified).
        let hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x74, 0x0a, 0x00,
            0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
        ];
        assert_eq!(data(&hdr), 0);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(data(&zeroed), 0x0a74);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn fold_handles_large_sums() {
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn incremental_ttl_decrement() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x74, 0x0a, 0x00,
            0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
        ];
        let old_word = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] -= 1;
        let new_word = u16::from_be_bytes([hdr[8], hdr[9]]);
        let updated = update_u16(0x0a74, old_word, new_word);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(updated, data(&hdr));
    }
}
