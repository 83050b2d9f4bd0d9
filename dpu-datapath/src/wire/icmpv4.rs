//! ICMPv4 echo request / reply (RFC 792); other message types are rejected so the engine can
//! count them.

use super::bytes::{get_u16, put_u16, Field};
use super::checksum;
use super::{Error, Result};

/// Type, code, checksum and the four bytes of identifier / sequence number.
pub const ICMPV4_HEADER_LEN: usize = 8;

const TYPE_ECHO_REPLY: u8 = 0;
const TYPE_ECHO_REQUEST: u8 = 8;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ_NO: Field = 6..8;
}

/// Zero-copy view of an ICMPv4 message. The buffer is the whole message (the IP payload):
/// the checksum covers all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Every ICMPv4 message has at least the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < ICMPV4_HEADER_LEN {
            return Err(Error);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQ_NO)
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// Bytes after the 8-byte header; borrows the buffer, not `self`.
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[ICMPV4_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_SEQ_NO, value);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[ICMPV4_HEADER_LEN..]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

/// Semantic echo message; `data` borrows the received buffer.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Fails on a short buffer, a bad checksum (when asked to verify) or a type other than
    /// echo request / reply. The code is ignored, as Linux does for echo.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        verify_checksum: bool,
    ) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error);
        }
        let (ident, seq_no, data) = (packet.echo_ident(), packet.echo_seq_no(), packet.data());
        match packet.msg_type() {
            TYPE_ECHO_REQUEST => Ok(Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }),
            TYPE_ECHO_REPLY => Ok(Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }),
            _ => Err(Error),
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                ICMPV4_HEADER_LEN + data.len()
            }
        }
    }

    /// Writes the message; the buffer must be exactly `buffer_len()` bytes when
    /// `fill_checksum` is set (the checksum covers the whole buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Icmpv4Packet<T>,
        fill_checksum: bool,
    ) {
        let (msg_type, ident, seq_no, data) = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (TYPE_ECHO_REQUEST, ident, seq_no, data),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (TYPE_ECHO_REPLY, ident, seq_no, data),
        };
        packet.set_msg_type(msg_type);
        packet.set_code(0);
        packet.set_echo_ident(ident);
        packet.set_echo_seq_no(seq_no);
        packet.data_mut()[..data.len()].copy_from_slice(data);
        if fill_checksum {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_frames;

    fn icmp_of(frame: &[u8]) -> &[u8] {
        &frame[34..]
    }

    #[test]
    fn parse_and_reemit_echo_request() {
        let bytes = icmp_of(&test_frames::ICMP);
        let packet = Icmpv4Packet::new_checked(bytes).unwrap();
        let repr = Icmpv4Repr::parse(&packet, true).unwrap();
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = repr
        else {
            panic!("not an echo request: {repr:?}");
        };
        assert_eq!((ident, seq_no, data.len()), (0x1234, 1, 56));
        assert_eq!(data[16], 0x10); // after Linux's 16-byte timeval

        let mut out = [0u8; 64];
        assert_eq!(repr.buffer_len(), out.len());
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), true);
        assert_eq!(out[..], bytes[..]);
    }

    #[test]
    fn echo_reply_behind_vlan_tag() {
        let bytes = &test_frames::VLAN_ICMP_REPLY[38..];
        let repr = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(bytes), true).unwrap();
        assert!(matches!(
            repr,
            Icmpv4Repr::EchoReply {
                ident: 0x1234,
                seq_no: 1,
                ..
            }
        ));
    }

    #[test]
    fn rejects_bad_checksum_short_and_other_types() {
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(icmp_of(&test_frames::ICMP));
        bytes[63] ^= 1;
        // Only the outcome matters here, so drop the borrowed repr.
        let parse =
            |b: &[u8], verify| Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(b), verify).map(drop);
        assert_eq!(parse(&bytes, true), Err(Error));
        assert!(parse(&bytes, false).is_ok());
        assert_eq!(parse(&bytes[..7], false), Err(Error));

        // Destination unreachable, checksum filled: well formed but not handled here.
        let mut unreachable = [3u8, 1, 0, 0, 0, 0, 0, 0];
        Icmpv4Packet::new_unchecked(&mut unreachable[..]).fill_checksum();
        assert_eq!(parse(&unreachable, true), Err(Error));
    }
}
