//! The established-path segment writer: the common shape (no VLAN, no SACK
//! blocks, the timestamp option or none) written straight from the flow's
//! template into the buffer, with no generic option loop and no zero fill
//! of the buffer first. Everything else goes through the generic emitter
//! (`super::build_frame` falls back to it); both produce the same bytes,
//! which the tests below check.

#![forbid(unsafe_code)]

use crate::io::FrameBuf;
use crate::pre::HeaderTemplate;
use crate::proto::HeaderFields;
use crate::wire::{checksum, ChecksumCaps, TcpFlags};

/// Header bytes of the segment when it has the established-path shape.
pub fn header_len(template: &HeaderTemplate, fields: &HeaderFields) -> Option<usize> {
    if template.vlan.is_some() || fields.sack.count > 0 {
        return None;
    }
    Some(54 + if fields.ts_ecr.is_some() { 12 } else { 0 })
}

/// Writes the frame when it has the established-path shape; false
/// otherwise (buffer untouched when the shape does not apply, emptied when
/// the datagram would be too long).
pub fn write_segment<B: FrameBuf>(
    buf: &mut B,
    template: &HeaderTemplate,
    fields: &HeaderFields,
    ts_val: u32,
    payload: &[u8],
    caps: &ChecksumCaps,
) -> bool {
    let Some(headers) = header_len(template, fields) else {
        return false;
    };
    // Headers are written in place: built on the stack and copied, the
    // copy's wide loads stalled on the narrow stores that wrote them.
    buf.clear();
    buf.resize_zeroed(headers);
    buf.extend_from_slice(payload);
    let Some(header_sum) = fill_headers(
        &mut buf[..headers],
        template,
        fields,
        ts_val,
        payload.len(),
        caps,
    ) else {
        buf.clear();
        return false;
    };
    finish_checksum(buf, headers, header_sum, caps);
    true
}

/// Completes a frame whose payload already sits after [`header_len`]
/// bytes of room (the `dma` stage fetched it there): writes the headers in
/// front of it. False (frame untouched) when the shape does not apply.
pub fn write_headers_in_place(
    frame: &mut [u8],
    template: &HeaderTemplate,
    fields: &HeaderFields,
    ts_val: u32,
    caps: &ChecksumCaps,
) -> bool {
    let Some(headers) = header_len(template, fields) else {
        return false;
    };
    let Some(payload_len) = frame.len().checked_sub(headers) else {
        return false;
    };
    let Some(header_sum) = fill_headers(
        &mut frame[..headers],
        template,
        fields,
        ts_val,
        payload_len,
        caps,
    ) else {
        return false;
    };
    finish_checksum(frame, headers, header_sum, caps);
    true
}

/// Ethernet, IPv4 (with its checksum) and TCP headers with a zero TCP
/// checksum into `h` (exactly [`header_len`] bytes); returns the TCP
/// checksum's sum over the pseudo header and the TCP header. None when the
/// datagram would exceed 65,535 bytes.
///
/// Both sums are computed from the values, not read back from `h`: reading
/// bytes just written with narrower stores stalls on store forwarding,
/// which cost most of this function's time.
fn fill_headers(
    h: &mut [u8],
    template: &HeaderTemplate,
    fields: &HeaderFields,
    ts_val: u32,
    payload_len: usize,
    caps: &ChecksumCaps,
) -> Option<u32> {
    let tcp_header = h.len() - 34;
    let ip_total = u16::try_from(20 + tcp_header + payload_len).ok()?;
    let t = &template.tuple;
    let (src, dst) = (t.local_ip.octets(), t.remote_ip.octets());
    let addr_sum = words(u32::from_be_bytes(src)) + words(u32::from_be_bytes(dst));
    // Ethernet.
    h[0..6].copy_from_slice(&template.remote_mac.0);
    h[6..12].copy_from_slice(&template.local_mac.0);
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    // IPv4: no options, DSCP 0, ECN ECT(0) or Not-ECT, ident 0, DF, TTL 64, TCP.
    let tos = if fields.ect { crate::wire::ECN_ECT0 } else { 0 };
    h[14] = 0x45;
    h[15] = tos;
    h[16..18].copy_from_slice(&ip_total.to_be_bytes());
    h[18..20].copy_from_slice(&[0, 0]);
    h[20..22].copy_from_slice(&[0x40, 0]);
    h[22] = 64;
    h[23] = 6;
    let ip_sum = if caps.fill_tx {
        let sum = 0x4500 + u32::from(tos) + u32::from(ip_total) + 0x4000 + 0x4006 + addr_sum;
        !checksum::fold(sum)
    } else {
        0
    };
    h[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    h[26..30].copy_from_slice(&src);
    h[30..34].copy_from_slice(&dst);
    // TCP.
    h[34..36].copy_from_slice(&t.local_port.to_be_bytes());
    h[36..38].copy_from_slice(&t.remote_port.to_be_bytes());
    h[38..42].copy_from_slice(&fields.seq.0.to_be_bytes());
    let ack = if fields.flags.contains(TcpFlags::ACK) {
        fields.ack.0
    } else {
        0
    };
    h[42..46].copy_from_slice(&ack.to_be_bytes());
    let offset_flags = ((tcp_header as u16 / 4) << 12) | u16::from(fields.flags.0);
    h[46..48].copy_from_slice(&offset_flags.to_be_bytes());
    h[48..50].copy_from_slice(&fields.window.to_be_bytes());
    h[50..54].copy_from_slice(&[0, 0, 0, 0]);
    let mut tcp_sum = addr_sum
        + 6
        + (tcp_header + payload_len) as u32
        + u32::from(t.local_port)
        + u32::from(t.remote_port)
        + words(fields.seq.0)
        + words(ack)
        + u32::from(offset_flags)
        + u32::from(fields.window);
    if let Some(ecr) = fields.ts_ecr {
        // Kind 8, length 10, TSval, TSecr, then two NOPs of padding.
        h[54] = 8;
        h[55] = 10;
        h[56..60].copy_from_slice(&ts_val.to_be_bytes());
        h[60..64].copy_from_slice(&ecr.to_be_bytes());
        h[64] = 1;
        h[65] = 1;
        tcp_sum += 0x080a + words(ts_val) + words(ecr) + 0x0101;
    }
    Some(tcp_sum)
}

/// The two 16-bit words of `v` added (a ones-complement partial sum).
fn words(v: u32) -> u32 {
    (v >> 16) + (v & 0xffff)
}

/// The TCP checksum: `header_sum` (pseudo header and TCP header, from
/// [`fill_headers`]) plus the payload after `headers` bytes.
fn finish_checksum(frame: &mut [u8], headers: usize, header_sum: u32, caps: &ChecksumCaps) {
    if caps.fill_tx {
        let sum = !checksum::fold(header_sum + checksum::sum(&frame[headers..]));
        frame[50..52].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FourTuple;
    use crate::pre::SackBlocks;
    use crate::wire::{EthernetAddress, SeqNumber, VlanTag};
    use std::net::Ipv4Addr;

    fn template() -> HeaderTemplate {
        HeaderTemplate {
            local_mac: EthernetAddress([2, 0, 0xc6, 0x12, 0, 2]),
            remote_mac: EthernetAddress([2, 0, 0xc6, 0x12, 0, 1]),
            vlan: None,
            tuple: FourTuple {
                local_ip: Ipv4Addr::new(198, 18, 0, 2),
                local_port: 7,
                remote_ip: Ipv4Addr::new(198, 18, 0, 1),
                remote_port: 40_001,
            },
            timestamps: true,
        }
    }

    /// The generic emitter's bytes for the same segment.
    fn generic(
        t: &HeaderTemplate,
        f: &HeaderFields,
        ts_val: u32,
        payload: &[u8],
        caps: &ChecksumCaps,
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        super::super::build_generic(&mut buf, t, f, ts_val, payload, caps);
        buf
    }

    #[test]
    fn same_bytes_as_the_generic_emitter() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..2_000 {
            let r = next();
            let fields = HeaderFields {
                seq: SeqNumber(r as u32),
                ack: SeqNumber((r >> 32) as u32),
                // Every flag, ECE and CWR included; some segments ECT(0).
                flags: TcpFlags(((r >> 8) as u8) | (TcpFlags::ACK.0 * (i % 3 != 0) as u8)),
                window: (r >> 17) as u16,
                ts_ecr: (i % 2 == 0).then_some((r >> 5) as u32),
                sack: SackBlocks::default(),
                ect: i % 5 == 0,
            };
            let payload: Vec<u8> = (0..(r % 1500) as usize)
                .map(|k| k as u8 ^ i as u8)
                .collect();
            for fill_tx in [true, false] {
                let caps = ChecksumCaps {
                    verify_rx: true,
                    fill_tx,
                };
                let mut fast = vec![0xee; 3];
                assert!(write_segment(
                    &mut fast,
                    &template(),
                    &fields,
                    r as u32 ^ 7,
                    &payload,
                    &caps
                ));
                let want = generic(&template(), &fields, r as u32 ^ 7, &payload, &caps);
                assert_eq!(fast, want, "segment {i} fill_tx {fill_tx}");
                // Headers written in front of a payload already in place
                // (over stale bytes from a recycled buffer).
                let hdr = header_len(&template(), &fields).unwrap();
                let mut in_place = vec![0xa5u8; hdr];
                in_place.extend_from_slice(&payload);
                assert!(write_headers_in_place(
                    &mut in_place,
                    &template(),
                    &fields,
                    r as u32 ^ 7,
                    &caps
                ));
                assert_eq!(in_place, want, "in place, segment {i} fill_tx {fill_tx}");
            }
        }
    }

    #[test]
    fn unusual_shapes_are_left_to_the_generic_emitter() {
        let caps = ChecksumCaps::default();
        let fields = HeaderFields {
            seq: SeqNumber(1),
            ack: SeqNumber(2),
            flags: TcpFlags::ACK,
            window: 100,
            ts_ecr: None,
            sack: SackBlocks {
                blocks: [(SeqNumber(5), SeqNumber(9)); 4],
                count: 1,
            },
            ect: false,
        };
        let mut buf = vec![1, 2, 3];
        assert!(!write_segment(
            &mut buf,
            &template(),
            &fields,
            0,
            &[],
            &caps
        ));
        assert_eq!(buf, [1, 2, 3], "untouched");
        let mut vlan = template();
        vlan.vlan = Some(VlanTag {
            pcp: 0,
            dei: false,
            vid: 5,
        });
        let plain = HeaderFields {
            sack: SackBlocks::default(),
            ..fields
        };
        assert!(!write_segment(&mut buf, &vlan, &plain, 0, &[], &caps));
    }
}
