//! Why a packet was dropped. Labels are stable: they become the `reason` label
//! of `flextoe_drops_total`.

use crate::wire::ParseError;

macro_rules! drop_reasons {
    ($($variant:ident => $label:literal, $doc:literal;)*) => {
        /// Reason a received packet was dropped.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $doc] $variant,)* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case label.
            pub fn as_str(self) -> &'static str {
                match self { $(DropReason::$variant => $label,)* }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", "Frame shorter than an Ethernet header.";
    UnsupportedEthertype => "unsupported_ethertype", "Neither IPv4 nor ARP.";
    ArpMalformed => "arp_malformed", "ARP that is not Ethernet/IPv4 or is truncated.";
    IpTruncated => "ip_truncated", "Shorter than its IPv4 header.";
    IpBadVersion => "ip_bad_version", "IP version is not 4.";
    IpBadHeaderLen => "ip_bad_header_len", "IHL below 5 or past the end.";
    IpBadTotalLen => "ip_bad_total_len", "Total length past the end of the frame.";
    IpBadChecksum => "ip_bad_checksum", "IPv4 header checksum mismatch.";
    IpFragment => "ip_fragment", "IPv4 fragments are not reassembled.";
    UnsupportedIpProtocol => "unsupported_ip_protocol", "Neither TCP nor ICMP.";
    IcmpMalformed => "icmp_malformed", "ICMP that is not a well-formed echo.";
    TcpTruncated => "tcp_truncated", "Shorter than a TCP header.";
    TcpBadDataOffset => "tcp_bad_data_offset", "Data offset below 5 or past the end.";
    TcpBadChecksum => "tcp_bad_checksum", "TCP checksum mismatch.";
    TcpBadOptions => "tcp_bad_options", "Option lengths overrun the header.";
    NotForUs => "not_for_us", "Destination MAC or IPv4 address is not ours.";
    BadFlags => "bad_flags", "Illegal flag combination (SYN+FIN, SYN+RST, no ACK in a synchronized state, none at all).";
    NoConnection => "no_connection", "Segment for no connection (answered with RST unless it is a RST).";
    ListenOverflow => "listen_overflow", "SYN for a listener whose backlog is full.";
    CookieRateLimited => "cookie_rate_limited", "SYN to be answered with a cookie beyond tcp.syn_cookie_rate (silent drop: the peer retries).";
    OldDuplicate => "old_duplicate", "Segment entirely below RCV.NXT, already received (answered with ACK).";
    OutOfWindow => "out_of_window", "Sequence number outside the receive window (answered with ACK).";
    AckUnsent => "ack_unsent", "Acknowledges data never sent (answered with ACK).";
    AckTooOld => "ack_too_old", "Acknowledgement below SND.UNA - MAX.SND.WND (RFC 5961).";
    Paws => "paws", "Timestamp older than TS.Recent (RFC 7323 PAWS).";
    OooFull => "ooo_full", "Out-of-order payload needing more intervals than configured.";
    RstOutOfWindow => "rst_out_of_window", "RST outside the receive window (RFC 5961).";
    RstChallenged => "rst_challenged", "In-window but inexact RST (answered with a challenge ACK).";
    SynChallenged => "syn_challenged", "SYN on a synchronized connection (answered with a challenge ACK).";
    BadHandshake => "bad_handshake", "Unacceptable segment during the handshake.";
    IcmpUnsupported => "icmp_unsupported", "ICMP other than echo request.";
    ArpIgnored => "arp_ignored", "ARP not about our address.";
    AppGone => "app_gone", "Payload for a connection the application already closed.";
    Misrouted => "misrouted", "TCP frame on the queue of a replica that does not own its flow group: the port's RSS disagrees with the plan.";
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::EthTruncated => DropReason::EthTruncated,
            ParseError::UnsupportedEthertype => DropReason::UnsupportedEthertype,
            ParseError::ArpMalformed => DropReason::ArpMalformed,
            ParseError::IpTruncated => DropReason::IpTruncated,
            ParseError::IpBadVersion => DropReason::IpBadVersion,
            ParseError::IpBadHeaderLen => DropReason::IpBadHeaderLen,
            ParseError::IpBadTotalLen => DropReason::IpBadTotalLen,
            ParseError::IpBadChecksum => DropReason::IpBadChecksum,
            ParseError::IpFragment => DropReason::IpFragment,
            ParseError::UnsupportedIpProtocol => DropReason::UnsupportedIpProtocol,
            ParseError::IcmpMalformed => DropReason::IcmpMalformed,
            ParseError::TcpTruncated => DropReason::TcpTruncated,
            ParseError::TcpBadDataOffset => DropReason::TcpBadDataOffset,
            ParseError::TcpBadChecksum => DropReason::TcpBadChecksum,
            ParseError::TcpBadOptions => DropReason::TcpBadOptions,
        }
    }
}
