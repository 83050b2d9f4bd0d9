//! Semantic TCP segment: header fields, understood options and a borrowed payload.

use std::net::Ipv4Addr;

use super::seq::SeqNumber;
use super::tcp::{TcpError, TcpPacket, TCP_HEADER_LEN};
use super::tcp_flags::TcpFlags;
use super::tcp_options::TcpOptions;

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    /// Parsed as received whatever the flags; meaningful only with ACK set, and `emit` writes
    /// 0 without ACK (RFC 9293 §3.1).
    pub ack: SeqNumber,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a whole segment (the buffer is the IP payload).
    ///
    /// The checksum is verified (when asked) before the data offset and options are trusted,
    /// so a corrupted segment reports `BadChecksum` rather than whatever its damaged header
    /// looks like. Flag combinations are not judged here.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        verify_checksum: bool,
    ) -> Result<TcpRepr<'a>, TcpError> {
        if packet.buffer_len() < TCP_HEADER_LEN {
            return Err(TcpError::Truncated);
        }
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(TcpError::BadChecksum);
        }
        packet.check_len()?;
        let options = TcpOptions::parse(packet.options()).map_err(|_| TcpError::BadOptions)?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options,
            payload: packet.payload(),
        })
    }

    /// 20 plus the emitted options (padded, at most 40).
    pub fn header_len(&self) -> usize {
        TCP_HEADER_LEN + self.options.emit_len()
    }

    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space consumed: payload plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }

    /// Writes header, options and payload. The buffer must be exactly `buffer_len()` bytes:
    /// the checksum covers all of it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        fill_checksum: bool,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq);
        let ack = if self.flags.contains(TcpFlags::ACK) {
            self.ack
        } else {
            SeqNumber(0)
        };
        packet.set_ack_number(ack);
        packet.set_header_len(self.header_len());
        packet.set_flags(self.flags);
        packet.set_window_len(self.window);
        packet.set_urgent_at(self.urgent);
        self.options.emit(packet.options_mut());
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        if fill_checksum {
            packet.fill_checksum(src, dst);
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn parse(frame: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> TcpRepr<'_> {
        TcpRepr::parse(&TcpPacket::new_unchecked(&frame[34..]), src, dst, true).unwrap()
    }

    /// Emits `repr`, checks it parses back equal, and returns the emitted length.
    fn reemit(repr: &TcpRepr<'_>, src: Ipv4Addr, dst: Ipv4Addr) -> usize {
        let mut buf = [0u8; 128];
        let len = repr.buffer_len();
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..len]),
            src,
            dst,
            true,
        );
        let again = TcpRepr::parse(&TcpPacket::new_unchecked(&buf[..len]), src, dst, true);
        assert_eq!(again.as_ref(), Ok(repr));
        len
    }

    #[test]
    fn linux_syn() {
        let repr = parse(&test_frames::SYN, CLIENT, SERVER);
        assert_eq!(repr.flags, TcpFlags::SYN);
        assert_eq!(repr.seq, SeqNumber(0x3a5c_1f20));
        assert_eq!(repr.window, 64240);
        assert_eq!(repr.options.mss, Some(1460));
        assert!(repr.options.sack_permitted);
        assert_eq!(repr.options.timestamps, Some((2_216_804_224, 0)));
        assert_eq!(repr.options.window_scale, Some(7));
        assert_eq!(repr.segment_len(), 1);
        assert_eq!(reemit(&repr, CLIENT, SERVER), 40);
    }

    #[test]
    fn syn_ack_with_all_options() {
        let repr = parse(&test_frames::SYNACK_ALL_OPTIONS, SERVER, CLIENT);
        assert_eq!(repr.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(repr.ack, SeqNumber(0x3a5c_1f21));
        assert_eq!(
            repr.options.timestamps,
            Some((1_104_312_871, 2_216_804_224))
        );
        assert_eq!(repr.options.mss, Some(1460));
        assert_eq!(repr.options.window_scale, Some(7));
        assert_eq!(reemit(&repr, SERVER, CLIENT), 40);
    }

    #[test]
    fn data_segment() {
        let repr = parse(&test_frames::DATA, CLIENT, SERVER);
        assert_eq!(repr.flags, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(repr.payload, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            repr.options.timestamps,
            Some((2_216_804_235, 1_104_312_871))
        );
        assert_eq!(repr.header_len(), 32);
        // Same length as Linux's NOP NOP TS layout, different order: compare semantically.
        assert_eq!(reemit(&repr, CLIENT, SERVER), test_frames::DATA.len() - 34);
    }

    #[test]
    fn pure_ack_with_sack_blocks() {
        let repr = parse(&test_frames::SACK_ACK, SERVER, CLIENT);
        assert_eq!(repr.flags, TcpFlags::ACK);
        assert!(repr.payload.is_empty());
        assert_eq!(
            repr.options.sack_blocks(),
            &[
                (SeqNumber(0x3a5c_2421), SeqNumber(0x3a5c_29c9)),
                (SeqNumber(0x3a5c_2f71), SeqNumber(0x3a5c_3519)),
            ]
        );
        // TS (10) + SACK with 2 blocks (18) = 28 bytes, no padding needed.
        assert_eq!(reemit(&repr, SERVER, CLIENT), 48);
    }

    #[test]
    fn fin_and_rst() {
        let fin = parse(&test_frames::FIN, CLIENT, SERVER);
        assert_eq!(fin.flags, TcpFlags::FIN | TcpFlags::ACK);
        assert_eq!(fin.segment_len(), 1);
        reemit(&fin, CLIENT, SERVER);

        // The RST frame carries Ethernet padding: the TCP segment ends at the IP total length.
        let segment = &test_frames::RST[34..54];
        let rst = TcpRepr::parse(&TcpPacket::new_unchecked(segment), SERVER, CLIENT, true).unwrap();
        assert_eq!(rst.flags, TcpFlags::RST | TcpFlags::ACK);
        assert_eq!((rst.window, rst.ack), (0, SeqNumber(0x1122_3345)));
        let mut out = [0u8; 20];
        rst.emit(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            SERVER,
            CLIENT,
            true,
        );
        assert_eq!(out[..], segment[..]);
    }

    #[test]
    fn corruption_is_a_checksum_error_first() {
        let mut segment = [0u8; 40];
        segment.copy_from_slice(&test_frames::SYN[34..]);
        segment[12] = 0xf0; // data offset 60 > 40
        let parse = |b: &[u8], verify| {
            TcpRepr::parse(&TcpPacket::new_unchecked(b), CLIENT, SERVER, verify).map(drop)
        };
        assert_eq!(parse(&segment, true), Err(TcpError::BadChecksum));
        assert_eq!(parse(&segment, false), Err(TcpError::BadDataOffset));
        segment[12] = 0xa0;
        segment[21] = 1; // MSS option length 1
        assert_eq!(parse(&segment, true), Err(TcpError::BadChecksum));
        assert_eq!(parse(&segment, false), Err(TcpError::BadOptions));
        assert_eq!(parse(&segment[..19], false), Err(TcpError::Truncated));
    }

    #[test]
    fn emit_without_checksum_and_without_ack() {
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNumber(3),
            ack: SeqNumber(99),
            flags: TcpFlags::SYN,
            window: 5,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        let mut out = [0xffu8; 20];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            CLIENT,
            SERVER,
            false,
        );
        let packet = TcpPacket::new_checked(&out[..]).unwrap();
        assert_eq!(packet.checksum(), 0);
        assert_eq!(packet.ack_number(), SeqNumber(0));
    }
}
