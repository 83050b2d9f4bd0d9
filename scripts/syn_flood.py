#!/usr/bin/env python3
"""A bounded SYN flood from spoofed sources (run inside the peer namespace).

Sends --count SYNs to the engine's MAC, IPv4 address and --port, each from
a different source address in --src-net (default 198.19.0.0/16, inside the
benchmarking range, never routed: nobody answers the SYN-ACKs) and a
random source port, as fast as one raw socket goes, for at most
--max-seconds. With --min-seconds it cycles through those SYNs until that
long has passed (a sustained flood from --count sources). Prints
{"sent": N, "secs": T, "pps": R} as JSON.

Needs scapy (scripts/setup.sh installs it) to build the frames.
"""

import argparse
import ipaddress
import json
import random
import sys
import time

from scapy.all import IP, TCP, Ether, conf, get_if_hwaddr  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iface", required=True)
    p.add_argument("--dst-mac", default="02:00:c6:12:00:02")
    p.add_argument("--dst-ip", default="198.18.0.2")
    p.add_argument("--port", type=int, default=7)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--src-net", default="198.19.0.0/16")
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    net = ipaddress.ip_network(a.src_net)
    if not net.subnet_of(ipaddress.ip_network("198.18.0.0/15")):
        p.error("--src-net must stay inside 198.18.0.0/15")
    rng = random.Random(a.seed)
    src_mac = get_if_hwaddr(a.iface)
    eth = Ether(src=src_mac, dst=a.dst_mac)
    # Frames built first: the send loop is then only system calls.
    frames = []
    hosts = net.num_addresses - 2
    for _ in range(a.count):
        src = str(net.network_address + 1 + rng.randrange(hosts))
        syn = TCP(sport=rng.randrange(1024, 65535), dport=a.port, seq=rng.randrange(1 << 32), flags="S", window=64240,
                  options=[("MSS", 1460)])
        frames.append(bytes(eth / IP(src=src, dst=a.dst_ip) / syn))
    sock = conf.L2socket(iface=a.iface)
    t0 = time.monotonic()
    sent = 0
    done = False
    while not done:
        for f in frames:
            sock.send(f)
            sent += 1
            if sent % 256 == 0 and time.monotonic() - t0 > a.max_seconds:
                done = True
                break
        done = done or time.monotonic() - t0 >= a.min_seconds
    secs = time.monotonic() - t0
    sock.close()
    print(json.dumps({"sent": sent, "secs": secs, "pps": sent / max(secs, 1e-9), "ok": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
