#!/usr/bin/env python3
"""Applications that end without closing their sockets (issue 12's tests).

The same program runs on Linux TCP and under `flextoe-run`, so the two
stacks can be compared line for line. Each role either listens
(`--listen PORT`, printing `listening` once it accepts connections) or
connects (`--connect HOST:PORT`).

  write --bytes N --end exit|kill|close [--linger0]
      sends N bytes (a fixed pseudo-random pattern), prints
      {"sent": N, "sha256": ...}, then ends:
        exit  os._exit(0) without closing (Linux: the rest, then FIN)
        kill  waits for SIGKILL (the test sends it)
        close closes first, then exits
      --linger0 sets SO_LINGER {1, 0} first: the end is a reset.
  unread
      accepts or connects, waits until data is readable, prints
      {"unread": true}, then os._exit(0) without reading it (Linux: RST).
  read [--send N]
      sends N bytes (from a thread; the connection stays open), reads until
      EOF or an error, prints {"bytes", "sha256", "end": "eof"|"reset"|...}.
"""

import argparse
import hashlib
import json
import os
import select
import socket
import struct
import sys
import time


def pattern(n):
    """n bytes of a repeatable pseudo-random pattern."""
    block = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(2048))
    return (block * (n // len(block) + 1))[:n]


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def open_conn(args):
    if args.listen is not None:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", args.listen))
        ls.listen(8)
        sys.stdout.write("listening\n")
        sys.stdout.flush()
        s, _ = ls.accept()
        return s
    host, port = args.connect.rsplit(":", 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection((host, int(port)), timeout=30)
        except ConnectionRefusedError:
            # The listener may not be up yet: try again until the deadline.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def write(args):
    s = open_conn(args)
    if args.linger0:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    data = pattern(args.bytes)
    s.sendall(data)
    say({"sent": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if args.end == "exit":
        os._exit(0)
    if args.end == "kill":
        while True:
            time.sleep(3600)
    s.close()
    os._exit(0)


def unread(args):
    s = open_conn(args)
    select.select([s], [], [], 30)
    say({"unread": True})
    os._exit(0)


def read(args):
    try:
        s = open_conn(args)
    except ConnectionResetError:
        # The peer can accept, write and reset (linger 0) before connect()
        # returns here: Linux then fails connect() with ECONNRESET. That is
        # the same end as a reset seen by recv().
        say({"bytes": 0, "sha256": hashlib.sha256().hexdigest(), "end": "reset"})
        return
    s.settimeout(60)
    sent_sha = None
    if args.send:
        # From another thread: an echo peer returns data while we send.
        import threading
        data = pattern(args.send)
        sent_sha = hashlib.sha256(data).hexdigest()
        threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
    h = hashlib.sha256()
    total = 0
    end = "eof"
    while True:
        try:
            b = s.recv(1 << 16)
        except ConnectionResetError:
            end = "reset"
            break
        except OSError as e:
            end = "error: %s" % e
            break
        if not b:
            break
        h.update(b)
        total += len(b)
    out = {"bytes": total, "sha256": h.hexdigest(), "end": end}
    if sent_sha is not None:
        out["sent_sha256"] = sent_sha
    say(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["write", "unread", "read"])
    p.add_argument("--listen", type=int)
    p.add_argument("--connect")
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--end", choices=["exit", "kill", "close"], default="exit")
    p.add_argument("--linger0", action="store_true")
    p.add_argument("--send", type=int, default=0)
    args = p.parse_args()
    if (args.listen is None) == (args.connect is None):
        p.error("give exactly one of --listen and --connect")
    {"write": write, "unread": unread, "read": read}[args.role](args)


if __name__ == "__main__":
    main()
