#!/usr/bin/env python3
"""A one-connection TCP proxy for the splicing test and benchmark.

Accepts one client on --listen, connects to --to, and prints one JSON line
with both connections' addresses. Then, in --copy mode, relays the bytes
both ways in user space until both sides closed (the baseline); otherwise
it keeps both sockets open without touching them until stdin closes, while
the service's splice program (dpu-datapath/xdp/examples/splice.c) moves
the bytes. Last, its own CPU time as {"cpu_s": ...}. Standard library only; run under flextoe-run to offload it.
"""
import argparse
import json
import resource
import socket
import sys
import threading


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def relay(src, dst, counts, i):
    while True:
        data = src.recv(1 << 18)
        if not data:
            break
        dst.sendall(data)
        counts[i] += len(data)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True, type=addr)
    p.add_argument("--to", required=True, type=addr)
    p.add_argument("--copy", action="store_true")
    a = p.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(a.listen)
    srv.listen(1)
    print(json.dumps({"listening": a.listen[1]}), flush=True)
    c1, peer = srv.accept()
    c2 = socket.create_connection(a.to, timeout=10)
    c2.settimeout(None)
    print(json.dumps({
        "c1": {"local": "%s:%d" % c1.getsockname(), "remote": "%s:%d" % peer},
        "c2": {"local": "%s:%d" % c2.getsockname(), "remote": "%s:%d" % a.to},
    }), flush=True)
    if a.copy:
        counts = [0, 0]
        t = threading.Thread(target=relay, args=(c2, c1, counts, 1))
        t.start()
        relay(c1, c2, counts, 0)
        t.join()
        print(json.dumps({"copied": counts}), flush=True)
    else:
        sys.stdin.read()
    c1.close()
    c2.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime}), flush=True)


if __name__ == "__main__":
    main()
