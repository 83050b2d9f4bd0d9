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
    let Some(sums) = fill_headers(&mut buf[..headers], template, fields, ts_val, payload.len())
    else {
        buf.clear();
        return false;
    };
    finish_checksums(buf, headers, sums, caps, 0);
    true
}

/// Completes a frame whose payload already sits after [`header_len`]
/// bytes of room (the `dma` stage fetched it there): writes the headers in
/// front of it. A payload longer than a non-zero `segment` is for the port
/// to cut into pieces of that size (TSO). False (frame untouched) when the
/// shape does not apply.
pub fn write_headers_in_place<B: FrameBuf>(
    frame: &mut B,
    template: &HeaderTemplate,
    fields: &HeaderFields,
    ts_val: u32,
    caps: &ChecksumCaps,
    segment: u16,
) -> bool {
    let Some(headers) = header_len(template, fields) else {
        return false;
    };
    let Some(payload_len) = frame.len().checked_sub(headers) else {
        return false;
    };
    let Some(sums) = fill_headers(&mut frame[..headers], template, fields, ts_val, payload_len)
    else {
        return false;
    };
    finish_checksums(frame, headers, sums, caps, segment);
    true
}

/// Partial sums of a segment's checksums, from [`fill_headers`].
#[derive(Clone, Copy)]
struct HeaderSums {
    /// The IPv4 header with a zero checksum field.
    ip: u32,
    /// The TCP pseudo header.
    pseudo: u32,
    /// The TCP header with a zero checksum field.
    tcp: u32,
}

/// Ethernet, IPv4 and TCP headers with zero checksum fields into `h`
/// (exactly [`header_len`] bytes); returns the sums the checksums start
/// from. None when the datagram would exceed 65,535 bytes.
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
) -> Option<HeaderSums> {
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
    let ip = 0x4500 + u32::from(tos) + u32::from(ip_total) + 0x4000 + 0x4006 + addr_sum;
    h[24..26].copy_from_slice(&[0, 0]);
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
    let pseudo = addr_sum + 6 + (tcp_header + payload_len) as u32;
    let mut tcp_sum = u32::from(t.local_port)
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
    Some(HeaderSums {
        ip,
        pseudo,
        tcp: tcp_sum,
    })
}

/// The two 16-bit words of `v` added (a ones-complement partial sum).
fn words(v: u32) -> u32 {
    (v >> 16) + (v & 0xffff)
}

/// The checksum fields of a frame [`fill_headers`] wrote: left to the port
/// when it takes the request (the TCP field then holds the folded pseudo
/// header sum, as DPDK's `rte_ipv4_phdr_cksum` gives), computed here
/// otherwise (the TCP one over the payload after `headers` bytes), or left
/// zero without `fill_tx`.
///
/// A payload longer than a non-zero `segment` goes to the port to cut
/// (TSO) when the buffer takes the request: the TCP field then holds the
/// pseudo-header sum without the length, as DPDK asks for TSO. A buffer
/// that cannot carry it gets a whole segment with its checksums (the port
/// counts it oversize and drops it; TCP sends the bytes again).
fn finish_checksums<B: FrameBuf>(
    frame: &mut B,
    headers: usize,
    sums: HeaderSums,
    caps: &ChecksumCaps,
    segment: u16,
) {
    if !caps.fill_tx {
        return;
    }
    let tcp_len = frame.len() - 34;
    if segment > 0
        && tcp_len - (headers - 34) > usize::from(segment)
        && frame.request_tso(14, 20, (headers - 34) as u8, segment)
    {
        let pseudo = sums.pseudo - tcp_len as u32;
        frame[50..52].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        return;
    }
    if caps.tx_offload && frame.request_tx_checksums(14, 20) {
        frame[50..52].copy_from_slice(&checksum::fold(sums.pseudo).to_be_bytes());
        return;
    }
    let ip = !checksum::fold(sums.ip);
    frame[24..26].copy_from_slice(&ip.to_be_bytes());
    let tcp = !checksum::fold(sums.pseudo + sums.tcp + checksum::sum(&frame[headers..]));
    frame[50..52].copy_from_slice(&tcp.to_be_bytes());
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
                    tx_offload: false,
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
                    &caps,
                    0
                ));
                assert_eq!(in_place, want, "in place, segment {i} fill_tx {fill_tx}");
                if !fill_tx {
                    continue;
                }
                // A port that checksums at TX: a buffer that cannot carry
                // the request gets the software sums; one that can gets
                // the pseudo-header sum, which the port's computation
                // (`fill_ipv4_tcp`) turns into the same bytes.
                let offload = ChecksumCaps {
                    tx_offload: true,
                    ..caps
                };
                let mut plain = Vec::new();
                assert!(write_segment(
                    &mut plain,
                    &template(),
                    &fields,
                    r as u32 ^ 7,
                    &payload,
                    &offload
                ));
                assert_eq!(plain, want, "a heap buffer, segment {i}");
                let mut nic = PortBuf::default();
                assert!(write_segment(
                    &mut nic,
                    &template(),
                    &fields,
                    r as u32 ^ 7,
                    &payload,
                    &offload
                ));
                assert!(nic.asked, "segment {i}");
                assert_eq!(nic.bytes[24..26], [0, 0], "IPv4 checksum left to the port");
                let ip = |at: usize| {
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&nic.bytes[at..at + 4]).unwrap())
                };
                // DPDK's `rte_ipv4_phdr_cksum`: folded, not complemented.
                let tcp_len = (nic.bytes.len() - 34) as u32;
                let phdr = checksum::fold(checksum::pseudo_header_v4(ip(26), ip(30), 6, tcp_len));
                assert_eq!(
                    nic.bytes[50..52],
                    phdr.to_be_bytes(),
                    "rte_ipv4_phdr_cksum's value"
                );
                let mut in_place = PortBuf {
                    bytes: vec![0xa5u8; hdr],
                    ..PortBuf::default()
                };
                in_place.bytes.extend_from_slice(&payload);
                assert!(write_headers_in_place(
                    &mut in_place,
                    &template(),
                    &fields,
                    r as u32 ^ 7,
                    &offload,
                    0
                ));
                assert_eq!(in_place.bytes, nic.bytes, "in place, segment {i}");
                assert!(checksum::fill_ipv4_tcp(&mut nic.bytes));
                assert_eq!(nic.bytes, want, "as the port fills it, segment {i}");
            }
        }
    }

    /// A payload longer than the segment size goes to the port to cut
    /// (TSO): the request names the header lengths and the size, the TCP
    /// field holds the pseudo-header sum without the length (DPDK's rule
    /// for TSO), and the pieces cut from it, as a port cuts them, are
    /// valid segments carrying the payload in order.
    #[test]
    fn long_payloads_go_to_the_port_to_cut() {
        let fields = HeaderFields {
            seq: SeqNumber(0xffff_0000),
            ack: SeqNumber(77),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 300,
            ts_ecr: Some(5),
            sack: SackBlocks::default(),
            ect: false,
        };
        let caps = ChecksumCaps::default();
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let mut frame = PortBuf {
            bytes: vec![0u8; 66],
            ..PortBuf::default()
        };
        frame.bytes.extend_from_slice(&payload);
        assert!(write_headers_in_place(
            &mut frame,
            &template(),
            &fields,
            9,
            &caps,
            1434
        ));
        assert_eq!(frame.tso, Some((14, 20, 32, 1434)));
        let t = &template().tuple;
        let pseudo = checksum::pseudo_header_v4(t.local_ip, t.remote_ip, 6, 0);
        assert_eq!(frame.bytes[50..52], checksum::fold(pseudo).to_be_bytes());
        assert_eq!(frame.bytes[24..26], [0, 0], "the IPv4 sum is the port's");
        let pieces = crate::io::gso::pieces(&frame.bytes, 1434).expect("cut");
        assert_eq!(pieces.len(), 20_000usize.div_ceil(1434));
        let mut joined = Vec::new();
        for p in &pieces {
            let parsed = crate::wire::parse_ingress(p, &caps).expect("valid piece");
            let crate::wire::L3::Ipv4 {
                l4: crate::wire::L4::Tcp(tcp),
                ..
            } = parsed.l3
            else {
                panic!("not TCP");
            };
            assert_eq!(tcp.seq, SeqNumber(0xffff_0000) + joined.len() as u32);
            joined.extend_from_slice(tcp.payload);
        }
        assert_eq!(joined, payload);
        // Short enough for one segment: no request, checksums in place.
        let mut short = PortBuf {
            bytes: vec![0u8; 66 + 1434],
            ..PortBuf::default()
        };
        assert!(write_headers_in_place(
            &mut short,
            &template(),
            &fields,
            9,
            &caps,
            1434
        ));
        assert_eq!(short.tso, None);
        assert!(crate::wire::parse_ingress(&short.bytes, &caps).is_ok());
    }

    /// A buffer whose port computes checksums at TX (an mbuf's stand-in).
    #[derive(Default)]
    struct PortBuf {
        bytes: Vec<u8>,
        asked: bool,
        tso: Option<(u8, u16, u8, u16)>,
    }

    impl core::ops::Deref for PortBuf {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl core::ops::DerefMut for PortBuf {
        fn deref_mut(&mut self) -> &mut [u8] {
            &mut self.bytes
        }
    }

    impl FrameBuf for PortBuf {
        fn clear(&mut self) {
            self.bytes.clear();
            self.asked = false;
        }
        fn truncate(&mut self, len: usize) {
            self.bytes.truncate(len)
        }
        fn resize_zeroed(&mut self, len: usize) {
            self.bytes.resize(len, 0)
        }
        fn extend_from_slice(&mut self, data: &[u8]) {
            self.bytes.extend_from_slice(data)
        }
        fn request_tx_checksums(&mut self, l2_len: u8, l3_len: u16) -> bool {
            assert_eq!((l2_len, l3_len), (14, 20));
            self.asked = true;
            true
        }
        fn request_tso(&mut self, l2_len: u8, l3_len: u16, l4_len: u8, segment: u16) -> bool {
            self.tso = Some((l2_len, l3_len, l4_len, segment));
            true
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
