//! TCP options: MSS (RFC 9293), window scale and timestamps (RFC 7323), SACK (RFC 2018).

use super::seq::SeqNumber;
use super::{Error, Result};

/// SACK blocks kept per segment; a 40-byte option area cannot carry more.
pub const TCP_MAX_SACK_BLOCKS: usize = 4;

/// Room for options: data offset 15 words minus the 20-byte fixed header.
const MAX_OPTIONS_LEN: usize = 40;

mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

const LEN_MSS: usize = 4;
const LEN_WINDOW_SCALE: usize = 3;
const LEN_SACK_PERMITTED: usize = 2;
const LEN_TIMESTAMPS: usize = 10;
const LEN_SACK_BASE: usize = 2;
const LEN_SACK_BLOCK: usize = 8;

/// The options the engine understands. Equality compares only the active SACK blocks.
#[derive(Copy, Clone, Debug, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    /// Shift count as received; clamping to 14 (RFC 7323 §2.3) is the engine's job.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// `(left edge, right edge)` pairs; only the first `sack_count` are meaningful.
    pub sack_blocks: [(SeqNumber, SeqNumber); TCP_MAX_SACK_BLOCKS],
    pub sack_count: u8,
    /// `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
}

impl PartialEq for TcpOptions {
    fn eq(&self, other: &Self) -> bool {
        self.mss == other.mss
            && self.window_scale == other.window_scale
            && self.sack_permitted == other.sack_permitted
            && self.sack_blocks() == other.sack_blocks()
            && self.timestamps == other.timestamps
    }
}

impl Eq for TcpOptions {}

impl TcpOptions {
    /// The active SACK blocks (`sack_count` clamped to the array size).
    pub fn sack_blocks(&self) -> &[(SeqNumber, SeqNumber)] {
        let count = usize::from(self.sack_count).min(TCP_MAX_SACK_BLOCKS);
        &self.sack_blocks[..count]
    }

    /// Appends a block; returns false (and drops it) when four are already held.
    pub fn push_sack_block(&mut self, block: (SeqNumber, SeqNumber)) -> bool {
        let count = self.sack_blocks().len();
        match self.sack_blocks.get_mut(count) {
            Some(slot) => {
                *slot = block;
                self.sack_count = (count + 1) as u8;
                true
            }
            None => false,
        }
    }

    /// Parses the option area of a TCP header.
    ///
    /// EOL ends the list, NOP is skipped, unknown kinds are skipped by their length. Errors: a
    /// length byte missing, below 2 or running past the area, or a SACK option whose length is
    /// not 2 + 8n. Known kinds with any other wrong length are ignored (as Linux does). Blocks
    /// beyond four are dropped; a repeated option overwrites the earlier one.
    pub fn parse(options: &[u8]) -> Result<TcpOptions> {
        // The established-path shapes first, without the option loop:
        // nothing, NOP NOP TS (Linux, FreeBSD) or TS NOP NOP (ours).
        match options {
            [] => return Ok(TcpOptions::default()),
            [kind::NOP, kind::NOP, kind::TIMESTAMPS, 10, ts @ ..]
            | [kind::TIMESTAMPS, 10, ts @ .., kind::NOP, kind::NOP]
                if ts.len() == 8 =>
            {
                let (val, ecr) = ts.split_at(4);
                return Ok(TcpOptions {
                    timestamps: Some((be_u32(val), be_u32(ecr))),
                    ..TcpOptions::default()
                });
            }
            _ => {}
        }
        Self::parse_generic(options)
    }

    /// Any option list, one option at a time.
    fn parse_generic(options: &[u8]) -> Result<TcpOptions> {
        let mut parsed = TcpOptions::default();
        let mut rest = options;
        while let [kind, tail @ ..] = rest {
            match *kind {
                kind::EOL => break,
                kind::NOP => {
                    rest = tail;
                    continue;
                }
                _ => {}
            }
            let [len, ..] = tail else {
                return Err(Error);
            };
            let len = usize::from(*len);
            if len < 2 || len > rest.len() {
                return Err(Error);
            }
            let (option, next) = rest.split_at(len);
            parsed.apply(*kind, &option[2..])?;
            rest = next;
        }
        Ok(parsed)
    }

    /// Records one option given its kind and the bytes after kind and length.
    fn apply(&mut self, kind: u8, body: &[u8]) -> Result<()> {
        match (kind, body) {
            (kind::MSS, &[hi, lo]) => self.mss = Some(u16::from_be_bytes([hi, lo])),
            (kind::WINDOW_SCALE, &[shift]) => self.window_scale = Some(shift),
            (kind::SACK_PERMITTED, []) => self.sack_permitted = true,
            (kind::TIMESTAMPS, &[a, b, c, d, e, f, g, h]) => {
                self.timestamps = Some((
                    u32::from_be_bytes([a, b, c, d]),
                    u32::from_be_bytes([e, f, g, h]),
                ));
            }
            (kind::SACK, body) => {
                let (blocks, remainder) = body.as_chunks::<LEN_SACK_BLOCK>();
                if !remainder.is_empty() {
                    return Err(Error);
                }
                for &[a, b, c, d, e, f, g, h] in blocks {
                    let left = SeqNumber(u32::from_be_bytes([a, b, c, d]));
                    let right = SeqNumber(u32::from_be_bytes([e, f, g, h]));
                    self.push_sack_block((left, right));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Bytes of every option except SACK blocks, unpadded.
    fn fixed_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += LEN_MSS;
        }
        if self.sack_permitted {
            len += LEN_SACK_PERMITTED;
        }
        if self.timestamps.is_some() {
            len += LEN_TIMESTAMPS;
        }
        if self.window_scale.is_some() {
            len += LEN_WINDOW_SCALE;
        }
        len
    }

    /// How many of the SACK blocks `emit` writes: as many as fit in 40 bytes after the other
    /// options (e.g. three next to timestamps).
    pub fn emitted_sack_blocks(&self) -> usize {
        let room = MAX_OPTIONS_LEN - self.fixed_len();
        let fit = room.saturating_sub(LEN_SACK_BASE) / LEN_SACK_BLOCK;
        self.sack_blocks().len().min(fit)
    }

    /// Bytes `emit` writes: the options padded to a multiple of 4, at most 40.
    pub fn emit_len(&self) -> usize {
        let blocks = self.emitted_sack_blocks();
        let sack_len = if blocks > 0 {
            LEN_SACK_BASE + LEN_SACK_BLOCK * blocks
        } else {
            0
        };
        (self.fixed_len() + sack_len).next_multiple_of(4)
    }

    /// Writes MSS, SACK-permitted, timestamps, window scale, then the SACK blocks that fit,
    /// padded with NOPs. `buf` must hold `emit_len()` bytes. Returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut out = Cursor { buf, pos: 0 };
        if let Some(mss) = self.mss {
            out.put(&[kind::MSS, LEN_MSS as u8]);
            out.put(&mss.to_be_bytes());
        }
        if self.sack_permitted {
            out.put(&[kind::SACK_PERMITTED, LEN_SACK_PERMITTED as u8]);
        }
        if let Some((value, echo)) = self.timestamps {
            out.put(&[kind::TIMESTAMPS, LEN_TIMESTAMPS as u8]);
            out.put(&value.to_be_bytes());
            out.put(&echo.to_be_bytes());
        }
        if let Some(shift) = self.window_scale {
            out.put(&[kind::WINDOW_SCALE, LEN_WINDOW_SCALE as u8, shift]);
        }
        let blocks = &self.sack_blocks()[..self.emitted_sack_blocks()];
        if !blocks.is_empty() {
            out.put(&[
                kind::SACK,
                (LEN_SACK_BASE + LEN_SACK_BLOCK * blocks.len()) as u8,
            ]);
            for (left, right) in blocks {
                out.put(&left.0.to_be_bytes());
                out.put(&right.0.to_be_bytes());
            }
        }
        while !out.pos.is_multiple_of(4) {
            out.put(&[kind::NOP]);
        }
        out.pos
    }
}

/// Sequential writer for `emit`.
struct Cursor<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
}

/// A big-endian u32 from the first four bytes (0 when shorter: callers pass
/// exactly four).
fn be_u32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {

    /// The established-path shortcuts give what the option loop gives, on
    /// their shapes and on any other bytes.
    #[test]
    fn shortcut_shapes_parse_as_the_generic_loop() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        let shaped = prop_oneof![
            any::<[u8; 8]>().prop_map(|ts| [&[1u8, 1, 8, 10][..], &ts].concat()),
            any::<[u8; 8]>().prop_map(|ts| [&[8u8, 10][..], &ts, &[1, 1]].concat()),
            proptest::collection::vec(any::<u8>(), 0..40),
        ];
        runner
            .run(&shaped, |bytes| {
                prop_assert_eq!(TcpOptions::parse(&bytes), TcpOptions::parse_generic(&bytes));
                Ok(())
            })
            .unwrap();
    }
    use super::*;

    const LINUX_SYN: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x84, 0x21, 0xbf, 0x80, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    fn syn_options() -> TcpOptions {
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x8421_bf80, 0)),
            ..TcpOptions::default()
        }
    }

    #[test]
    fn parse_linux_syn_options() {
        assert_eq!(TcpOptions::parse(&LINUX_SYN).unwrap(), syn_options());
    }

    #[test]
    fn emit_syn_options_in_documented_order() {
        let opts = syn_options();
        assert_eq!(opts.emit_len(), 20);
        let mut out = [0u8; 20];
        assert_eq!(opts.emit(&mut out), 20);
        // MSS, SACK-permitted, timestamps, window scale, one NOP of padding.
        assert_eq!(out[..16], LINUX_SYN[..16]);
        assert_eq!(out[16..], [0x03, 0x03, 0x07, 0x01]);
        assert_eq!(TcpOptions::parse(&out).unwrap(), opts);
    }

    #[test]
    fn eol_unknown_and_errors() {
        // EOL stops parsing even if garbage follows.
        assert_eq!(
            TcpOptions::parse(&[0, 0xff, 0xff]).unwrap(),
            TcpOptions::default()
        );
        // Unknown kind 30 (MPTCP) with 4 bytes is skipped; MSS after it still parses.
        let opts = TcpOptions::parse(&[30, 4, 0, 0, 2, 4, 0x02, 0x18]).unwrap();
        assert_eq!(opts.mss, Some(536));
        // MSS with a wrong length is ignored, like Linux.
        assert_eq!(TcpOptions::parse(&[2, 3, 5, 1]).unwrap().mss, None);
        for bad in [
            &[2][..],
            &[30, 0],
            &[30, 1],
            &[2, 5, 0, 0],
            &[5, 9, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(TcpOptions::parse(bad), Err(Error), "{bad:?}");
        }
    }

    #[test]
    fn sack_blocks_beyond_four_are_dropped() {
        let mut opts = TcpOptions::default();
        for i in 0..5u32 {
            let pushed = opts.push_sack_block((SeqNumber(i), SeqNumber(i + 1)));
            assert_eq!(pushed, i < 4);
        }
        assert_eq!(opts.sack_blocks().len(), 4);
        // Two SACK options of 3 blocks each: the first four blocks are kept.
        let mut bytes = [0u8; 52];
        for (n, chunk) in bytes.chunks_exact_mut(26).enumerate() {
            chunk[0] = 5;
            chunk[1] = 26;
            for (b, block) in chunk[2..].chunks_exact_mut(8).enumerate() {
                block[3] = (n * 3 + b) as u8;
            }
        }
        let parsed = TcpOptions::parse(&bytes).unwrap();
        let lefts: Vec<u32> = parsed.sack_blocks().iter().map(|b| b.0 .0).collect();
        assert_eq!(lefts, [0, 1, 2, 3]);
    }

    #[test]
    fn sack_blocks_that_do_not_fit_are_left_out() {
        let mut opts = TcpOptions {
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        };
        for i in 0..4u32 {
            opts.push_sack_block((SeqNumber(i * 100), SeqNumber(i * 100 + 50)));
        }
        assert_eq!(opts.emitted_sack_blocks(), 3);
        assert_eq!(opts.emit_len(), 36);
        let mut out = [0u8; 40];
        assert_eq!(opts.emit(&mut out), 36);
        let parsed = TcpOptions::parse(&out[..36]).unwrap();
        assert_eq!(parsed.sack_blocks(), &opts.sack_blocks()[..3]);

        // Every option at once: 19 fixed bytes leave room for two blocks.
        let all = TcpOptions {
            mss: Some(1),
            window_scale: Some(2),
            sack_permitted: true,
            ..opts
        };
        assert_eq!(all.emitted_sack_blocks(), 2);
        assert_eq!(all.emit_len(), 40);
    }
}
