//! A small packetdrill-like scripting layer over one [`Engine`].
//!
//! The engine under test is 198.18.0.2 (`02:00:c6:12:00:02`); the script plays
//! the remote peer 198.18.0.1 (`02:00:c6:12:00:01`). Time is a mock clock the
//! script advances with [`Script::at`]; every timer that falls due on the way
//! fires at its own deadline, and every frame the engine emits is stamped with
//! the time it left, so [`Script::expect`] also checks *when* a segment went out
//! (with zero tolerance: the engine is deterministic).
//!
//! Sequence numbers are relative, as in packetdrill:
//! - inbound (`inject`): `seq` is relative to the peer's ISN ([`Script::peer_isn`]),
//!   `ack` and SACK blocks to the engine's ISS;
//! - outbound (`expect`): `seq` is relative to the engine's ISS, `ack` and SACK
//!   blocks to the peer's ISN.
//!
//! The engine's ISS is captured from the first SYN or SYN-ACK it emits (its
//! relative `seq` is then 0). Before that, `ack` numbers are absolute; `.abs()`
//! makes a segment's `seq`/`ack` absolute explicitly.
#![allow(dead_code)]

use dpu_datapath::app::{ConnError, ConnId};
use dpu_datapath::engine::ApiError;
use dpu_datapath::proto::TcpState;
use dpu_datapath::sim::sim_engine_config;
use dpu_datapath::stats::DropReason;
use dpu_datapath::wire::{
    emit_arp_frame, emit_tcp_frame, parse_ingress, ArpOperation, ArpRepr, ChecksumCaps, EtherType,
    EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, SeqNumber, TcpFlags, TcpOptions, TcpRepr,
    L3, L4,
};
use dpu_datapath::Engine;
use pipeline_config::Config;
use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x02]);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);

/// Our listening port (passive opens) or the peer's port (active opens).
pub const SERVER_PORT: u16 = 8080;
/// The peer's port in passive opens.
pub const CLIENT_PORT: u16 = 40000;
/// Default ISN of the scripted peer.
pub const DEFAULT_PEER_ISN: u32 = 0x1000_0000;

pub const FIN: TcpFlags = TcpFlags::FIN;
pub const SYN: TcpFlags = TcpFlags::SYN;
pub const RST: TcpFlags = TcpFlags::RST;
pub const PSH: TcpFlags = TcpFlags::PSH;
pub const ACK: TcpFlags = TcpFlags::ACK;
pub const ECE: TcpFlags = TcpFlags::ECE;
pub const CWR: TcpFlags = TcpFlags::CWR;
/// IP ECN codepoints (RFC 3168 5).
pub const NOT_ECT: u8 = 0b00;
pub const ECT0: u8 = 0b10;
pub const CE: u8 = 0b11;

const CAPS: ChecksumCaps = ChecksumCaps {
    verify_rx: true,
    fill_tx: true,
    tx_offload: false,
};

/// A check on one option: not looked at, must be absent, or must equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Opt<T> {
    #[default]
    Any,
    Absent,
    Is(T),
}

/// One segment, as injected or as expected. Unset fields are not checked
/// (expect) or take defaults (inject: seq 0, ack 0, window 65535, no options).
#[derive(Clone, Debug, Default)]
pub struct Seg {
    flags: Option<TcpFlags>,
    seq: Option<u32>,
    ack: Option<u32>,
    win: Option<u16>,
    payload: Option<Vec<u8>>,
    len: Option<usize>,
    mss: Opt<u16>,
    ws: Opt<u8>,
    sack_perm: Opt<()>,
    /// (TSval, TSecr); `None` inside means "any" (expect only).
    ts: Opt<(Option<u32>, Option<u32>)>,
    sack: Opt<Vec<(u32, u32)>>,
    abs: bool,
    /// The IP header's ECN codepoint (inject: default Not-ECT).
    ecn: Option<u8>,
}

/// Starts a segment description.
pub fn seg() -> Seg {
    Seg::default()
}

impl Seg {
    pub fn flags(mut self, f: TcpFlags) -> Self {
        self.flags = Some(f);
        self
    }
    pub fn seq(mut self, v: u32) -> Self {
        self.seq = Some(v);
        self
    }
    /// The IP ECN codepoint ([`NOT_ECT`], [`ECT0`], [`CE`]).
    pub fn ecn(mut self, cp: u8) -> Self {
        self.ecn = Some(cp);
        self
    }
    pub fn ack(mut self, v: u32) -> Self {
        self.ack = Some(v);
        self
    }
    pub fn win(mut self, v: u16) -> Self {
        self.win = Some(v);
        self
    }
    /// Exact payload (inject: the bytes sent; expect: the bytes required).
    pub fn payload(mut self, p: &[u8]) -> Self {
        self.len = Some(p.len());
        self.payload = Some(p.to_vec());
        self
    }
    /// Inject: `n` filler bytes; expect: payload length `n`.
    pub fn len(mut self, n: usize) -> Self {
        self.len = Some(n);
        self
    }
    pub fn mss(mut self, v: u16) -> Self {
        self.mss = Opt::Is(v);
        self
    }
    pub fn no_mss(mut self) -> Self {
        self.mss = Opt::Absent;
        self
    }
    pub fn ws(mut self, v: u8) -> Self {
        self.ws = Opt::Is(v);
        self
    }
    pub fn no_ws(mut self) -> Self {
        self.ws = Opt::Absent;
        self
    }
    pub fn sack_perm(mut self) -> Self {
        self.sack_perm = Opt::Is(());
        self
    }
    pub fn no_sack_perm(mut self) -> Self {
        self.sack_perm = Opt::Absent;
        self
    }
    pub fn ts(mut self, val: u32, ecr: u32) -> Self {
        self.ts = Opt::Is((Some(val), Some(ecr)));
        self
    }
    /// Expect only: a timestamp option whose TSecr is `ecr` (any TSval).
    pub fn tsecr(mut self, ecr: u32) -> Self {
        self.ts = Opt::Is((None, Some(ecr)));
        self
    }
    pub fn no_ts(mut self) -> Self {
        self.ts = Opt::Absent;
        self
    }
    /// SACK blocks `[left, right)`, relative (see the module docs).
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        self.sack = Opt::Is(blocks.to_vec());
        self
    }
    pub fn no_sack(mut self) -> Self {
        self.sack = Opt::Absent;
        self
    }
    /// Expect only: no options at all.
    pub fn no_opts(self) -> Self {
        self.no_mss().no_ws().no_sack_perm().no_ts().no_sack()
    }
    /// `seq` and `ack` are absolute sequence numbers.
    pub fn abs(mut self) -> Self {
        self.abs = true;
        self
    }
}

/// A TCP segment the engine emitted, with relative numbers.
#[derive(Clone, Debug)]
pub struct Out {
    /// When it left the engine (ns).
    pub at_ns: u64,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub abs_seq: u32,
    pub abs_ack: u32,
    pub win: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
    pub src_port: u16,
    pub dst_port: u16,
    /// SACK blocks relative to the peer's ISN.
    pub sack: Vec<(u32, u32)>,
    /// The IP header's ECN codepoint.
    pub ecn: u8,
}

fn flag_str(f: TcpFlags) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (FIN, 'F'),
        (SYN, 'S'),
        (RST, 'R'),
        (PSH, 'P'),
        (ECE, 'E'),
        (CWR, 'W'),
    ] {
        if f.contains(bit) {
            s.push(c);
        }
    }
    if f.contains(ACK) {
        s.push('.');
    }
    if s.is_empty() {
        s.push_str("(none)");
    }
    s
}

fn opts_str(o: &TcpOptions, sack: &[(u32, u32)]) -> String {
    let mut parts = Vec::new();
    if let Some(m) = o.mss {
        parts.push(format!("mss {m}"));
    }
    if o.sack_permitted {
        parts.push("sackOK".to_string());
    }
    if let Some((v, e)) = o.timestamps {
        parts.push(format!("TS val {v} ecr {e}"));
    }
    if let Some(w) = o.window_scale {
        parts.push(format!("wscale {w}"));
    }
    if !sack.is_empty() {
        let blocks: Vec<String> = sack.iter().map(|(l, r)| format!("{l}:{r}")).collect();
        parts.push(format!("sack {}", blocks.join(" ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" <{}>", parts.join(","))
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.seq.wrapping_add(self.payload.len() as u32);
        write!(
            f,
            "{:.3} > {} {}:{}({})",
            self.at_ns as f64 / 1e9,
            flag_str(self.flags),
            self.seq,
            end,
            self.payload.len()
        )?;
        if self.flags.contains(ACK) {
            write!(f, " ack {}", self.ack)?;
        }
        write!(
            f,
            " win {}{}",
            self.win,
            opts_str(&self.options, &self.sack)
        )
    }
}

/// One scripted connection endpoint: the engine plus the peer's view.
#[derive(Debug)]
pub struct Script {
    pub eng: Engine,
    now: u64,
    /// The engine's ISS once seen.
    pub iss: Option<SeqNumber>,
    pub peer_isn: SeqNumber,
    /// The engine's port (listening port, or ephemeral port of an active open).
    pub our_port: u16,
    /// The scripted peer's port.
    pub peer_port: u16,
    out: VecDeque<(u64, Vec<u8>)>,
    scratch: Vec<Vec<u8>>,
}

impl Script {
    /// An engine with `tcp.delayed_ack_us = 0` (one ACK per segment) and
    /// otherwise default configuration.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Like [`Script::new`], then `tweak` on the configuration.
    pub fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let cfg = sim_engine_config(2, 7, |c| {
            c.tcp.delayed_ack_us = 0;
            tweak(c);
        });
        assert_eq!(cfg.ip, OUR_IP);
        assert_eq!(cfg.mac, OUR_MAC);
        Self {
            eng: Engine::new(cfg),
            now: 0,
            iss: None,
            peer_isn: SeqNumber(DEFAULT_PEER_ISN),
            our_port: SERVER_PORT,
            peer_port: CLIENT_PORT,
            out: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    // ------------------------------------------------------------------
    // Time
    // ------------------------------------------------------------------

    /// Script time in milliseconds (what the engine's TSval reads).
    pub fn now_ms(&self) -> u32 {
        (self.now / 1_000_000) as u32
    }

    /// Advances the clock to `ms` milliseconds, firing every timer at its
    /// own deadline on the way.
    pub fn at(&mut self, ms: u64) {
        self.at_us(ms * 1000);
    }

    pub fn at_us(&mut self, us: u64) {
        let target = us * 1000;
        assert!(
            target >= self.now,
            "time goes forward only ({} -> {target} ns)",
            self.now
        );
        let mut guard = 0;
        loop {
            self.flush();
            guard += 1;
            assert!(guard < 100_000, "engine keeps scheduling work");
            match self.eng.next_deadline() {
                // Queued TX work (a burst was cut short): poll again.
                Some(d) if d <= self.now => continue,
                Some(d) if d <= target => self.now = d,
                _ => break,
            }
        }
        self.now = target;
        self.flush();
    }

    /// Polls the engine at the current time and collects its output.
    fn flush(&mut self) {
        self.eng.poll(self.now);
        self.eng.drain_tx(&mut self.scratch);
        for f in self.scratch.drain(..) {
            self.out.push_back((self.now, f));
        }
    }

    // ------------------------------------------------------------------
    // Packets
    // ------------------------------------------------------------------

    fn abs_in_seq(&self, s: &Seg) -> SeqNumber {
        let v = s.seq.unwrap_or(0);
        if s.abs {
            SeqNumber(v)
        } else {
            self.peer_isn + v
        }
    }

    fn abs_in_ack(&self, v: u32, abs: bool) -> SeqNumber {
        match (abs, self.iss) {
            (false, Some(iss)) => iss + v,
            _ => SeqNumber(v),
        }
    }

    /// Builds the frame for `s` sent by the peer.
    pub fn frame(&self, s: &Seg) -> Vec<u8> {
        let payload: Vec<u8> = match (&s.payload, s.len) {
            (Some(p), _) => p.clone(),
            (None, Some(n)) => (0..n).map(|i| b'a' + (i % 26) as u8).collect(),
            (None, None) => Vec::new(),
        };
        let mut options = TcpOptions::default();
        if let Opt::Is(m) = s.mss {
            options.mss = Some(m);
        }
        if let Opt::Is(w) = s.ws {
            options.window_scale = Some(w);
        }
        options.sack_permitted = s.sack_perm == Opt::Is(());
        if let Opt::Is((v, e)) = s.ts {
            options.timestamps = Some((v.expect("inject needs TSval"), e.unwrap_or(0)));
        }
        if let Opt::Is(blocks) = &s.sack {
            for &(l, r) in blocks {
                options.push_sack_block((self.abs_in_ack(l, s.abs), self.abs_in_ack(r, s.abs)));
            }
        }
        let tcp = TcpRepr {
            src_port: self.peer_port,
            dst_port: self.our_port,
            seq: self.abs_in_seq(s),
            ack: self.abs_in_ack(s.ack.unwrap_or(0), s.abs),
            flags: s.flags.expect("inject: flags are required"),
            window: s.win.unwrap_or(65535),
            urgent: 0,
            options,
            payload: &payload,
        };
        let eth = EthernetRepr {
            src: PEER_MAC,
            dst: OUR_MAC,
            vlan: None,
            ethertype: EtherType::Ipv4,
        };
        let ip = Ipv4Repr {
            src: PEER_IP,
            dst: OUR_IP,
            protocol: IpProtocol::Tcp,
            payload_len: 0,
            ttl: 64,
            dscp_ecn: s.ecn.unwrap_or(NOT_ECT),
            ident: 0,
            dont_frag: true,
        };
        let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len()];
        let n = emit_tcp_frame(&mut buf, &eth, &ip, &tcp, &CAPS).expect("emit");
        buf.truncate(n);
        buf
    }

    /// The peer sends `s` now.
    pub fn inject(&mut self, s: Seg) {
        let frame = self.frame(&s);
        self.eng.receive(&frame, self.now);
        self.flush();
    }

    /// The peer answers the engine's ARP request for 198.18.0.1.
    pub fn inject_arp_reply(&mut self) {
        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: PEER_MAC,
            source_protocol_addr: PEER_IP,
            target_hardware_addr: OUR_MAC,
            target_protocol_addr: OUR_IP,
        };
        let eth = EthernetRepr {
            src: PEER_MAC,
            dst: OUR_MAC,
            vlan: None,
            ethertype: EtherType::Arp,
        };
        let mut buf = vec![0u8; 60];
        let n = emit_arp_frame(&mut buf, &eth, &arp).expect("emit arp");
        buf.truncate(n);
        self.eng.receive(&buf, self.now);
        self.flush();
    }

    fn next_frame(&mut self, what: &str) -> (u64, Vec<u8>) {
        self.flush();
        match self.out.pop_front() {
            Some(f) => f,
            None => panic!(
                "{:.3}: expected {what}, the engine sent nothing",
                self.now as f64 / 1e9
            ),
        }
    }

    /// Discards every frame the engine sent so far (traffic to other
    /// scripted sources); how many there were.
    pub fn discard_all(&mut self) -> usize {
        self.flush();
        let n = self.out.len();
        self.out.clear();
        n
    }

    /// Expects an ARP request for the peer, now.
    pub fn expect_arp_request(&mut self) {
        let (at, frame) = self.next_frame("an ARP request");
        let parsed = parse_ingress(&frame, &CAPS).expect("engine frame parses");
        let L3::Arp(arp) = parsed.l3 else {
            panic!("expected an ARP request, got {parsed:?}");
        };
        assert_eq!(arp.operation, ArpOperation::Request);
        assert_eq!(arp.target_protocol_addr, PEER_IP);
        assert_eq!(arp.source_protocol_addr, OUR_IP);
        assert!(parsed.eth.dst.is_broadcast());
        assert_eq!(
            at, self.now,
            "ARP request sent at {at} ns, expected now ({} ns)",
            self.now
        );
    }

    /// Parses the next frame as a TCP segment of the scripted connection.
    fn next_segment(&mut self, what: &str) -> Out {
        let (at, frame) = self.next_frame(what);
        let parsed = parse_ingress(&frame, &CAPS).expect("engine frame parses (checksums ok)");
        let L3::Ipv4 {
            ip,
            l4: L4::Tcp(tcp),
        } = parsed.l3
        else {
            panic!("expected TCP ({what}), got {parsed:?}");
        };
        assert_eq!(parsed.eth.src, OUR_MAC);
        assert_eq!(
            parsed.eth.dst, PEER_MAC,
            "TCP frame not addressed to the peer's MAC"
        );
        assert_eq!((ip.src, ip.dst), (OUR_IP, PEER_IP));
        if tcp.flags.contains(SYN) && self.iss.is_none() {
            self.iss = Some(tcp.seq);
        }
        let iss = self.iss.unwrap_or(SeqNumber(0));
        let rel_peer = |s: SeqNumber| s.0.wrapping_sub(self.peer_isn.0);
        let ack_flag = tcp.flags.contains(ACK);
        Out {
            at_ns: at,
            flags: tcp.flags,
            seq: tcp.seq.0.wrapping_sub(iss.0),
            ack: if ack_flag {
                rel_peer(tcp.ack)
            } else {
                tcp.ack.0
            },
            abs_seq: tcp.seq.0,
            abs_ack: tcp.ack.0,
            win: tcp.window,
            options: tcp.options,
            payload: tcp.payload.to_vec(),
            src_port: tcp.src_port,
            dst_port: tcp.dst_port,
            sack: tcp
                .options
                .sack_blocks()
                .iter()
                .map(|&(l, r)| (rel_peer(l), rel_peer(r)))
                .collect(),
            ecn: ip.ecn(),
        }
    }

    /// Expects the engine's next frame to be `want`, sent now. Returns it.
    #[track_caller]
    pub fn expect(&mut self, want: Seg) -> Out {
        let got = self.next_segment("a TCP segment");
        let mut errs = String::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                let _ = write!(errs, "\n  {what}");
            }
        };
        check(
            got.at_ns == self.now,
            format!("sent at {} ns, expected now", got.at_ns),
        );
        check(
            (got.src_port, got.dst_port) == (self.our_port, self.peer_port),
            format!("ports {}->{}", got.src_port, got.dst_port),
        );
        if let Some(f) = want.flags {
            check(
                got.flags == f,
                format!("flags {} != {}", flag_str(got.flags), flag_str(f)),
            );
        }
        let (seq, ack) = if want.abs {
            (got.abs_seq, got.abs_ack)
        } else {
            (got.seq, got.ack)
        };
        if let Some(v) = want.seq {
            check(seq == v, format!("seq {seq} != {v}"));
        }
        if let Some(v) = want.ack {
            check(ack == v, format!("ack {ack} != {v}"));
        }
        if let Some(v) = want.win {
            check(got.win == v, format!("win {} != {v}", got.win));
        }
        if let Some(v) = want.ecn {
            check(got.ecn == v, format!("IP ECN {:#04b} != {v:#04b}", got.ecn));
        }
        if let Some(n) = want.len {
            check(
                got.payload.len() == n,
                format!("payload len {} != {n}", got.payload.len()),
            );
        }
        if let Some(p) = &want.payload {
            check(&got.payload == p, "payload bytes differ".to_string());
        }
        let o = &got.options;
        match want.mss {
            Opt::Any => {}
            Opt::Absent => check(o.mss.is_none(), "unexpected mss".into()),
            Opt::Is(m) => check(o.mss == Some(m), format!("mss {:?} != {m}", o.mss)),
        }
        match want.ws {
            Opt::Any => {}
            Opt::Absent => check(o.window_scale.is_none(), "unexpected wscale".into()),
            Opt::Is(w) => check(
                o.window_scale == Some(w),
                format!("wscale {:?} != {w}", o.window_scale),
            ),
        }
        match want.sack_perm {
            Opt::Any => {}
            Opt::Absent => check(!o.sack_permitted, "unexpected sackOK".into()),
            Opt::Is(()) => check(o.sack_permitted, "missing sackOK".into()),
        }
        match want.ts {
            Opt::Any => {}
            Opt::Absent => check(o.timestamps.is_none(), "unexpected TS".into()),
            Opt::Is((v, e)) => match o.timestamps {
                None => check(false, "missing TS option".into()),
                Some((gv, ge)) => {
                    if let Some(v) = v {
                        check(gv == v, format!("TS val {gv} != {v}"));
                    }
                    if let Some(e) = e {
                        check(ge == e, format!("TS ecr {ge} != {e}"));
                    }
                }
            },
        }
        match &want.sack {
            Opt::Any => {}
            Opt::Absent => check(got.sack.is_empty(), "unexpected SACK blocks".into()),
            Opt::Is(b) => check(&got.sack == b, format!("sack {:?} != {b:?}", got.sack)),
        }
        if !errs.is_empty() {
            panic!(
                "{:.3}: unexpected segment\n  got {got}{errs}",
                self.now as f64 / 1e9
            );
        }
        got
    }

    /// Expects the engine to have sent nothing (up to now).
    #[track_caller]
    pub fn expect_none(&mut self) {
        self.flush();
        if let Some((at, frame)) = self.out.front().cloned() {
            let desc = match parse_ingress(&frame, &CAPS) {
                Ok(p) => match p.l3 {
                    L3::Ipv4 { l4: L4::Tcp(_), .. } => {
                        format!("{}", self.next_segment("anything"))
                    }
                    other => format!("{other:?}"),
                },
                Err(e) => format!("unparseable frame {e:?}"),
            };
            panic!(
                "{:.3}: expected no output, engine sent (at {at} ns): {desc}",
                self.now as f64 / 1e9
            );
        }
    }

    // ------------------------------------------------------------------
    // Application calls (each followed by a poll at the current time)
    // ------------------------------------------------------------------

    pub fn listen(&mut self, backlog: Option<u32>) {
        self.eng.listen(self.our_port, backlog).expect("listen");
    }

    pub fn accept(&mut self) -> Option<ConnId> {
        self.eng.accept(self.our_port)
    }

    /// Active open to the peer's `SERVER_PORT`; the engine first ARPs for it.
    pub fn connect(&mut self) -> ConnId {
        self.connect_with_cc(None)
    }

    /// [`Script::connect`] with the connection's congestion control.
    pub fn connect_with_cc(&mut self, cc: Option<dpu_datapath::proto::CcAlgorithm>) -> ConnId {
        self.peer_port = SERVER_PORT;
        let c = self
            .eng
            .connect_with_cc(PEER_IP, SERVER_PORT, None, cc)
            .expect("connect");
        self.our_port = self.eng.conn_tuple(c).expect("tuple").local_port;
        self.flush();
        c
    }

    pub fn send(&mut self, c: ConnId, data: &[u8]) -> usize {
        let n = self.eng.send(c, data).expect("send");
        self.flush();
        n
    }

    /// Reads up to `max` bytes.
    pub fn recv(&mut self, c: ConnId, max: usize) -> Result<Vec<u8>, ApiError> {
        let mut buf = vec![0u8; max];
        let r = self.eng.recv(c, &mut buf);
        self.flush();
        r.map(|n| buf[..n].to_vec())
    }

    pub fn shutdown_write(&mut self, c: ConnId) {
        self.eng.shutdown_write(c).expect("shutdown_write");
        self.flush();
    }

    pub fn close(&mut self, c: ConnId) {
        self.eng.close(c).expect("close");
        self.flush();
    }

    pub fn abort(&mut self, c: ConnId) {
        self.eng.abort(c).expect("abort");
        self.flush();
    }

    pub fn state(&self, c: ConnId) -> Option<TcpState> {
        self.eng.conn_state(c)
    }

    pub fn error(&self, c: ConnId) -> Option<ConnError> {
        self.eng.conn_error(c)
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.eng.stats().drops(r)
    }

    /// (handshakes, TIME-WAIT entries)
    pub fn control_counts(&self) -> (usize, usize) {
        self.eng.control_counts()
    }

    /// Forget the captured ISS (a new incarnation of the connection follows).
    pub fn forget_iss(&mut self) {
        self.iss = None;
    }
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}
