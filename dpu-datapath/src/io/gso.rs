//! Software segmentation of a frame the port was asked to cut (TSO), for
//! the paths that handle frames before the port or instead of it: the
//! loopback to our own address, a capture, the impairment layer, an eBPF
//! program at egress. Each piece gets the whole's headers with its own
//! sequence number, IPv4 length and identification, PSH and FIN only on
//! the last piece, CWR only on the first, and checksums computed here: the
//! bytes a port doing TSO would send.

#![forbid(unsafe_code)]

use super::Frame;
use crate::wire::checksum;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Replaces each frame of `frames` that the port was to cut, and for which
/// `here` holds, by its pieces, in order.
pub fn expand_where(frames: &mut Vec<Frame>, here: impl Fn(&Frame) -> bool) {
    if !frames.iter().any(|f| f.tso_segment().is_some() && here(f)) {
        return;
    }
    let whole = std::mem::take(frames);
    for f in whole {
        match f.tso_segment() {
            Some(segment) if here(&f) => split(f, segment, frames),
            _ => frames.push(f),
        }
    }
}

/// [`expand_where`] for every frame.
pub fn expand(frames: &mut Vec<Frame>) {
    expand_where(frames, |_| true)
}

/// Appends `frame` cut into pieces of `segment` payload bytes (the last may
/// be shorter) to `out`, as heap frames with their checksums. A frame that
/// is not IPv4/TCP, or whose payload fits one piece, goes whole, its
/// checksums computed.
pub fn split(mut frame: Frame, segment: u16, out: &mut Vec<Frame>) {
    frame.finish_tx_checksums();
    match pieces(&frame, segment) {
        Some(pieces) => out.extend(pieces.into_iter().map(Frame::from)),
        None => out.push(frame),
    }
}

/// The pieces of IPv4/TCP `frame` with `segment` payload bytes each; None
/// when it is not one or needs no cutting.
pub fn pieces(frame: &[u8], segment: u16) -> Option<Vec<Vec<u8>>> {
    let (eth, ihl) = checksum::ipv4_tcp_header_lens(frame)?;
    let ip = eth;
    let tcp = ip + ihl;
    let tcp_len = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    if tcp_len < 20 {
        return None;
    }
    let headers = tcp + tcp_len;
    let total = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
    let end = (ip + total).min(frame.len());
    let payload = frame.get(headers..end)?;
    let segment = usize::from(segment);
    if segment == 0 || payload.len() <= segment {
        return None;
    }
    let id = u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]);
    let seq = u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().ok()?);
    let flags = frame[tcp + 13];
    let count = payload.len().div_ceil(segment);
    let mut pieces = Vec::with_capacity(count);
    for (i, chunk) in payload.chunks(segment).enumerate() {
        let mut p = Vec::with_capacity(headers + chunk.len());
        p.extend_from_slice(&frame[..headers]);
        p.extend_from_slice(chunk);
        let ip_total = (ihl + tcp_len + chunk.len()) as u16;
        p[ip + 2..ip + 4].copy_from_slice(&ip_total.to_be_bytes());
        p[ip + 4..ip + 6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        let offset = (i * segment) as u32;
        p[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        p[tcp + 13] = f;
        checksum::fill_ipv4_tcp(&mut p);
        pieces.push(p);
    }
    Some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_ingress, ChecksumCaps, TcpFlags, TcpRepr, L3, L4};

    fn tcp_of(p: &[u8]) -> TcpRepr<'_> {
        // Valid checksums: the strict parser takes it.
        match parse_ingress(p, &ChecksumCaps::default())
            .expect("valid piece")
            .l3
        {
            L3::Ipv4 {
                l4: L4::Tcp(tcp), ..
            } => tcp,
            other => panic!("not TCP: {other:?}"),
        }
    }

    /// An Ethernet/IPv4/TCP frame with the timestamp option, checksums filled.
    fn frame(payload: &[u8], flags: u8) -> Vec<u8> {
        let tcp_len = 32;
        let mut f = vec![0u8; 14 + 20 + tcp_len];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + tcp_len + payload.len()) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&7u16.to_be_bytes());
        f[20] = 0x40;
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[198, 18, 0, 2]);
        f[30..34].copy_from_slice(&[198, 18, 0, 1]);
        f[34..36].copy_from_slice(&7u16.to_be_bytes());
        f[36..38].copy_from_slice(&40_000u16.to_be_bytes());
        f[38..42].copy_from_slice(&0xffff_f000u32.to_be_bytes());
        f[42..46].copy_from_slice(&99u32.to_be_bytes());
        f[46] = ((tcp_len / 4) as u8) << 4;
        f[47] = flags;
        f[48..50].copy_from_slice(&512u16.to_be_bytes());
        f[54..56].copy_from_slice(&[8, 10]);
        f[64..66].copy_from_slice(&[1, 1]);
        f.extend_from_slice(payload);
        assert!(checksum::fill_ipv4_tcp(&mut f));
        f
    }

    #[test]
    fn pieces_are_the_segments_a_port_would_send() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let flags = TcpFlags::ACK.0 | TCP_PSH | TCP_FIN | TCP_CWR;
        let whole = frame(&payload, flags);
        let pieces = pieces(&whole, 1448).expect("cut");
        assert_eq!(pieces.len(), 7);
        let mut joined = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let tcp = tcp_of(p);
            assert_eq!(
                tcp.seq.0,
                0xffff_f000u32.wrapping_add(1448 * i as u32),
                "piece {i} (wraps)"
            );
            let last = i == pieces.len() - 1;
            assert_eq!(tcp.flags.contains(TcpFlags::FIN), last, "piece {i}");
            assert_eq!(tcp.flags.contains(TcpFlags::PSH), last, "piece {i}");
            assert_eq!(tcp.flags.contains(TcpFlags::CWR), i == 0, "piece {i}");
            assert!(tcp.flags.contains(TcpFlags::ACK));
            assert_eq!(u16::from_be_bytes([p[18], p[19]]), 7 + i as u16);
            assert_eq!(
                tcp.payload.len(),
                if last { 10_000 - 6 * 1448 } else { 1448 }
            );
            joined.extend_from_slice(tcp.payload);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn what_fits_or_is_not_tcp_is_left_whole() {
        assert!(pieces(&frame(&[1; 1448], TcpFlags::ACK.0), 1448).is_none());
        assert!(pieces(&frame(&[1; 3000], TcpFlags::ACK.0), 0).is_none());
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(pieces(&arp, 1448).is_none());
        // A TCP data offset below the header's own length (the fuzzer's find).
        let mut short = frame(&[1; 3000], 0x10);
        short[46] = 0x10;
        assert!(pieces(&short, 1448).is_none());
        let mut out = Vec::new();
        split(Frame::from(frame(&[1; 3000], 0x10)), 1448, &mut out);
        assert_eq!(out.len(), 3, "a heap frame is cut too when asked");
    }

    /// A segment to cut that got no NIC buffer (the 64 KiB pool ran dry)
    /// is written whole on the heap, remembers its piece size, and is cut
    /// in software where frames meet the port.
    #[test]
    fn a_heap_segment_to_cut_is_cut_before_the_port() {
        use crate::pre::HeaderTemplate;
        use crate::proto::HeaderFields;
        use crate::wire::{EthernetAddress, SeqNumber};
        let template = HeaderTemplate {
            local_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            remote_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            vlan: None,
            tuple: crate::flow::FourTuple {
                local_ip: std::net::Ipv4Addr::new(198, 18, 0, 2),
                local_port: 7,
                remote_ip: std::net::Ipv4Addr::new(198, 18, 0, 1),
                remote_port: 40_000,
            },
            timestamps: true,
        };
        let fields = HeaderFields {
            seq: SeqNumber(1),
            ack: SeqNumber(2),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 100,
            ts_ecr: Some(3),
            sack: Default::default(),
            ect: false,
        };
        let payload: Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        let mut f = Frame::new();
        f.resize_zeroed(66);
        f.extend_from_slice(&payload);
        assert!(crate::post::write_headers_in_place(
            &mut f,
            &template,
            &fields,
            9,
            &ChecksumCaps::default(),
            1448
        ));
        assert_eq!(f.tso_segment(), Some(1448));
        let mut frames = vec![Frame::from(vec![1u8; 60]), f];
        expand_where(&mut frames, |f| !f.is_nic_buffer());
        assert_eq!(frames.len(), 1 + 5);
        let mut joined = Vec::new();
        for p in &frames[1..] {
            assert_eq!(p.tso_segment(), None);
            joined.extend_from_slice(tcp_of(p).payload);
        }
        assert_eq!(joined, payload);
        // A reused frame forgets it.
        let mut reused = frames.pop().unwrap();
        reused.clear();
        assert_eq!(reused.tso_segment(), None);
    }

    #[test]
    fn any_bytes_never_panic() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(proptest::collection::vec(any::<u8>(), 0..400), 0u16..600),
                |(bytes, segment)| {
                    let _ = pieces(&bytes, segment);
                    Ok(())
                },
            )
            .unwrap();
    }
}
