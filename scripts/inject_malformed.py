#!/usr/bin/env python3
"""Injects malformed frames onto a TAP interface (run inside the peer
namespace), addressed to the offload engine's MAC and IPv4 address.

Each kind is sent --count times; the engine must drop each one under the
drop reason named here (printed as JSON, so a test can compare counters):

  bad_checksum     TCP checksum wrong                    -> tcp_bad_checksum
  bad_data_offset  data offset 2 (below the minimum 5)    -> tcp_bad_data_offset
  data_offset_past data offset 15 past the segment's end  -> tcp_bad_data_offset
  truncated        IP says TCP, carries 8 bytes of it     -> tcp_truncated
  syn_fin          SYN and FIN together                   -> bad_flags
  overlong_option  MSS option with length 8 in 4 bytes    -> tcp_bad_options
  fragment         IPv4 first fragment (MF set)           -> ip_fragment
  fragment_tail    IPv4 later fragment (offset > 0)       -> ip_fragment

Needs scapy (scripts/setup.sh installs it).
"""

import argparse
import json
import sys

from scapy.all import IP, TCP, Ether, Raw, conf, get_if_hwaddr  # noqa: E402


def frames(a, src_mac):
    eth = Ether(src=src_mac, dst=a.dst_mac)
    ip = dict(src=a.src_ip, dst=a.dst_ip)
    sport, dport = 40000, a.port

    def tcp(**kw):
        return TCP(sport=sport, dport=dport, seq=1000, ack=1, flags="A", **kw)

    def raw(pkt):
        # Ethernet + IPv4 bytes with correct IP checksum, TCP bytes as built.
        return bytes(pkt)

    out = {}
    out["bad_checksum"] = ("tcp_bad_checksum", raw(eth / IP(**ip) / tcp(chksum=0xDEAD) / Raw(b"x" * 32)))
    out["bad_data_offset"] = ("tcp_bad_data_offset", raw(eth / IP(**ip) / tcp(dataofs=2) / Raw(b"y" * 32)))
    out["data_offset_past"] = ("tcp_bad_data_offset", raw(eth / IP(**ip) / tcp(dataofs=15) / Raw(b"z" * 8)))
    # 8 bytes of TCP header only: IP total length covers exactly those.
    trunc = IP(proto=6, **ip) / Raw(bytes(tcp())[:8])
    out["truncated"] = ("tcp_truncated", raw(eth / trunc))
    out["syn_fin"] = (
        "bad_flags",
        raw(eth / IP(**ip) / TCP(sport=sport, dport=dport, seq=5, flags="SF")),
    )
    # Data offset 6: 4 option bytes, an MSS option claiming 8 bytes.
    opt = TCP(sport=sport, dport=dport, seq=1000, ack=1, flags="A", dataofs=6) / Raw(b"\x02\x08\x05\xb4")
    out["overlong_option"] = ("tcp_bad_options", raw(eth / IP(**ip) / opt))
    out["fragment"] = ("ip_fragment", raw(eth / IP(flags="MF", frag=0, **ip) / tcp() / Raw(b"f" * 64)))
    out["fragment_tail"] = ("ip_fragment", raw(eth / IP(frag=8, proto=6, **ip) / Raw(b"g" * 64)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iface", required=True)
    p.add_argument("--dst-mac", default="02:00:c6:12:00:02")
    p.add_argument("--dst-ip", default="198.18.0.2")
    p.add_argument("--src-ip", default="198.18.0.1")
    p.add_argument("--port", type=int, default=7)
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--wait-stdin", action="store_true", help="print 'ready', send after a line on stdin")
    a = p.parse_args()
    src_mac = get_if_hwaddr(a.iface)
    expected = {}
    sent = {}
    kinds = frames(a, src_mac)
    # Raw bytes straight to the interface: scapy must not "fix" them.
    sock = conf.L2socket(iface=a.iface)
    if a.wait_stdin:
        # Scapy takes a while to load: the caller starts its transfer once
        # we are ready, then tells us to go.
        print("ready", flush=True)
        sys.stdin.readline()
    # Interleave the kinds, so they hit a running transfer throughout.
    for _ in range(a.count):
        for name, (reason, data) in kinds.items():
            sock.send(data)
            sent[name] = sent.get(name, 0) + 1
            expected[reason] = expected.get(reason, 0) + 1
    sock.close()
    print(json.dumps({"sent": sent, "expected_drops": expected, "ok": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
