#!/usr/bin/env python3
"""A VLAN peer made of raw frames, for kernels without 802.1Q support.

Sends 802.1Q-tagged frames on an interface with an AF_PACKET socket and
reads the answers' tags from PACKET_AUXDATA (the kernel moves a received
tag out of the frame into the packet's metadata):
  1. a tagged ARP request for --target: the reply must carry --vid;
  2. --pings tagged ICMP echo requests: each reply must carry --vid and
     the request's payload;
  3. an ICMP echo request on --other-vid: it must get no answer.
Prints one JSON object; exits 0 when every check passed. Standard library
only.
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tagged(dst, src, vid, ethertype, payload):
    return dst + src + struct.pack("!HHH", 0x8100, vid & 0x0FFF, ethertype) + payload


def arp_request(mac, ip, target):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip, b"\0" * 6, target)


def icmp_echo(src, dst, ident, seq, data):
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + icmp


def receive(sock, until, want):
    """Frames until `want(frame, vid)` is true or the deadline; (frame, vid)."""
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return None, None
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(32))
        vid = None
        for level, kind, raw in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(raw) >= 20:
                status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", raw[:20])
                if status & TP_STATUS_VLAN_VALID:
                    vid = tci & 0x0FFF
        # A tag left in the frame (no offload on this path) counts too.
        if vid is None and len(data) >= 18 and data[12:14] == b"\x81\x00":
            vid = struct.unpack("!H", data[14:16])[0] & 0x0FFF
            data = data[:12] + data[16:]
        if want(data, vid):
            return data, vid


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--vid", type=int, default=100)
    p.add_argument("--other-vid", type=int, default=200)
    p.add_argument("--ip", default="198.18.0.1")
    p.add_argument("--target", default="198.18.0.2")
    p.add_argument("--pings", type=int, default=20)
    a = p.parse_args()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.bind((a.iface, 0))
    mac = bytes.fromhex("02c612000001")
    me, target = socket.inet_aton(a.ip), socket.inet_aton(a.target)
    result = {"arp_vid": None, "replies": 0, "reply_vids": [], "other_vid_answered": False}
    bcast = b"\xff" * 6

    sock.send(tagged(bcast, mac, a.vid, 0x0806, arp_request(mac, me, target)))
    frame, vid = receive(
        sock,
        time.monotonic() + 3,
        lambda f, v: f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02" and f[28:32] == target,
    )
    if frame is None:
        result["error"] = "no ARP reply"
        print(json.dumps(result))
        sys.exit(1)
    result["arp_vid"] = vid
    engine_mac = frame[6:12]

    ident = os.getpid() & 0xFFFF
    for seq in range(1, a.pings + 1):
        data = struct.pack("!Q", seq) * 4
        sock.send(tagged(engine_mac, mac, a.vid, 0x0800, icmp_echo(me, target, ident, seq, data)))
        frame, vid = receive(
            sock,
            time.monotonic() + 2,
            lambda f, v, s=seq: f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 0
            and struct.unpack("!HH", f[38:42]) == (ident, s),
        )
        if frame is not None and frame[42:42 + len(data)] == data:
            result["replies"] += 1
            result["reply_vids"].append(vid)

    data = b"other vlan"
    sock.send(tagged(engine_mac, mac, a.other_vid, 0x0800, icmp_echo(me, target, ident, 999, data)))
    frame, _ = receive(
        sock,
        time.monotonic() + 1,
        lambda f, v: f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 0
        and struct.unpack("!H", f[40:42])[0] == 999,
    )
    result["other_vid_answered"] = frame is not None
    ok = (
        result["arp_vid"] == a.vid
        and result["replies"] == a.pings
        and all(v == a.vid for v in result["reply_vids"])
        and not result["other_vid_answered"]
    )
    result["ok"] = ok
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
