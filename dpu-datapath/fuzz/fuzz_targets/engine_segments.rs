//! One engine driven by whatever a remote peer and its application could
//! do (issue 21: every untrusted input fuzzed). The harness completes a
//! passive open first, so the engine's ISS is known and fuzzed segments
//! land on a live connection; then each record of the input is one of:
//! - a segment on that connection: fuzzed flags, sequence and
//!   acknowledgment numbers near what the engine expects, window, options
//!   (timestamps, SACK blocks, MSS, window scale) and payload;
//! - a segment from another port (new handshakes, stray RSTs and ACKs);
//! - an application call (send, read, close, abort, shutdown);
//! - time passing (timers fire: retransmissions, probes, TIME-WAIT).
//!
//! The engine must never panic (debug assertions are on in fuzz builds),
//! never loop on its own timers, and never hold more connections than the
//! peer opened. Frames use the packetdrill-like script of the integration
//! tests (`tests/script`).
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/script/mod.rs"]
mod script;

use dpu_datapath::app::ConnId;
use dpu_datapath::wire::TcpFlags;
use libfuzzer_sys::fuzz_target;
use script::*;

/// Bytes per record; a shorter tail is ignored.
const RECORD: usize = 8;

fn connection(s: &mut Script) -> Option<ConnId> {
    s.listen(Some(16));
    s.at(1);
    s.inject(
        seg()
            .flags(SYN)
            .seq(0)
            .win(65535)
            .mss(1460)
            .sack_perm()
            .ts(1, 0),
    );
    // Reading the SYN-ACK teaches the script the engine's ISS.
    s.expect(seg().flags(SYN | ACK));
    s.at(2);
    s.inject(seg().flags(ACK).seq(1).ack(1).win(65535).ts(2, 1));
    s.discard_all();
    s.accept()
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new();
    let Some(conn) = connection(&mut s) else {
        panic!("the harness's own handshake failed");
    };
    let mut now_ms = 2u64;
    // The peer's next sequence number (relative), advanced by data it sends.
    let mut peer_next: u32 = 1;
    let mut tsval: u32 = 2;
    let mut opened = 1u64;
    let mut rest = data;
    while rest.len() >= RECORD {
        let (r, tail) = rest.split_at(RECORD);
        rest = tail;
        let flags = TcpFlags(r[1]);
        let seq_off = i16::from_be_bytes([r[2], r[3]]) as i32;
        let ack_rel = u16::from_be_bytes([r[4], r[5]]) as u32;
        let win = u16::from_be_bytes([r[6], r[7]]);
        match r[0] % 8 {
            // A segment on the connection (most records).
            0..=3 => {
                // Up to 1,984 bytes of payload, taken from the input.
                let len = ((r[0] >> 3) as usize * 64).min(rest.len());
                let (payload, after) = rest.split_at(len);
                rest = after;
                let seq = (peer_next as i64 + seq_off as i64) as u32;
                let mut sg = seg()
                    .flags(flags)
                    .seq(seq)
                    .ack(ack_rel)
                    .win(win)
                    .payload(payload);
                tsval = tsval.wrapping_add(1);
                sg = match r[0] % 4 {
                    0 => sg.ts(tsval, 1),
                    1 => sg
                        .ts(tsval, 1)
                        .sack(&[(ack_rel, ack_rel.wrapping_add(win as u32))]),
                    2 => sg.sack(&[
                        (ack_rel, ack_rel.wrapping_add(100)),
                        (
                            ack_rel.wrapping_add(200),
                            ack_rel.wrapping_add(300 + win as u32),
                        ),
                    ]),
                    _ => sg.no_opts(),
                };
                if seq_off == 0 {
                    peer_next = peer_next.wrapping_add(payload.len() as u32);
                }
                s.inject(sg);
            }
            // A segment from another port of the peer.
            4 => {
                let keep = s.peer_port;
                s.peer_port = 40001 + (r[1] as u16 % 8);
                opened += u64::from(flags.contains(SYN));
                s.inject(
                    seg()
                        .flags(flags)
                        .seq(seq_off as u32)
                        .ack(ack_rel)
                        .win(win)
                        .abs(),
                );
                s.peer_port = keep;
            }
            // The application.
            5 => {
                let _ = match r[1] % 6 {
                    0 => s.eng.send(conn, &r[2..]).map(|_| ()),
                    1 => {
                        let mut buf = [0u8; 4096];
                        s.eng.recv(conn, &mut buf).map(|_| ())
                    }
                    2 => s.eng.close(conn),
                    3 => s.eng.abort(conn),
                    4 => s.eng.shutdown_write(conn),
                    _ => {
                        // Accept whatever completed on the other ports.
                        while s.accept().is_some() {}
                        Ok(())
                    }
                };
                s.at(now_ms);
            }
            // Time passes: up to 65 s in one step.
            _ => {
                now_ms += u64::from(u16::from_be_bytes([r[2], r[3]]));
                s.at(now_ms);
            }
        }
        s.discard_all();
        assert!(
            (s.eng.flow_count() as u64) <= opened,
            "more flows ({}) than connections the peer opened ({opened})",
            s.eng.flow_count()
        );
    }
    // Ten minutes later, with the application gone, every timer has had
    // its say (the harness's own guard catches a timer loop).
    let _ = s.eng.abort(conn);
    s.at(now_ms + 600_000);
});
