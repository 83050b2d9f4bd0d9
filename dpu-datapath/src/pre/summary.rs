//! The segment summary `pre` hands to `proto`: everything protocol processing
//! needs, so `proto` never touches packet bytes.

use crate::flow::FlowId;
use crate::wire::{SeqNumber, TcpFlags};

/// Up to four SACK blocks (RFC 2018).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlocks {
    pub blocks: [(SeqNumber, SeqNumber); 4],
    pub count: u8,
}

impl SackBlocks {
    pub fn as_slice(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.blocks[..(self.count as usize).min(4)]
    }
}

/// Summary of one received TCP segment of an installed flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub flow: FlowId,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    /// Raw (unscaled) window field.
    pub window: u16,
    pub flags: TcpFlags,
    /// (TSval, TSecr) when the timestamp option is present.
    pub ts: Option<(u32, u32)>,
    pub sack: SackBlocks,
    /// Where the payload starts in the frame, and its length.
    pub payload_offset: u16,
    pub payload_len: u16,
    /// IP ECN field was CE.
    pub ecn_ce: bool,
}
