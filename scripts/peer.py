#!/usr/bin/env python3
"""The Linux side of FlexTOE-rs interoperability tests, demos and benchmarks.

Runs inside the peer network namespace and talks to the offload engine (or
to another Linux host) with the kernel's TCP stack. Standard library only.
Every subcommand prints one JSON object on stdout and exits 0 on success,
1 on a failed check, so callers (tests/tests/*.rs, scripts/*.sh) can parse it.

Subcommands:
  echo        N bytes to an echo server, sent and received concurrently;
              SHA-256 of what came back must equal what was sent.
  concurrent  C connections at once, each echoing M bytes.
  sequential  N connect/send/recv/close in a row.
  halfclose   both half-close orders: we shut first (echo) and the server
              shuts first (source, port 19) while we keep sending.
  rst         start an echo transfer, then abort with RST (SO_LINGER 0).
  listen      an echo server (for the service's active-open probe).
  goodput     one connection, N bytes to a sink (discard), Mbit/s.
  rpc         64-byte request/response round trips, latency percentiles.
  server      sink (discard) and echo servers for the Linux-vs-Linux baseline.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time


def out(obj, ok=True):
    obj["ok"] = ok
    print(json.dumps(obj), flush=True)
    sys.exit(0 if ok else 1)


def connect(host, port, timeout):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def stream(seed, n, chunk=1 << 16):
    """A seeded pseudo-random byte stream of n bytes, in chunks."""
    block = hashlib.sha256(str(seed).encode()).digest() * (chunk // 32)
    sent = 0
    i = 0
    while sent < n:
        k = min(chunk, n - sent)
        # Vary each chunk cheaply so a misplaced chunk changes the hash.
        head = struct.pack("!QQ", seed, i)
        data = (head + block[16:])[:k]
        yield data
        sent += k
        i += 1


def echo_once(host, port, nbytes, seed, timeout, shutdown=True, start_after=None):
    """Sends nbytes and reads them back concurrently; returns a result dict.
    With start_after, the transfer starts once that file exists (the
    connection is open before)."""
    s = connect(host, port, timeout)
    s.settimeout(timeout)
    if start_after:
        print(json.dumps({"connected": s.getsockname()[1]}), flush=True)
        deadline = time.monotonic() + timeout
        while not os.path.exists(start_after):
            if time.monotonic() > deadline:
                out({"error": f"{start_after} never appeared"}, False)
            time.sleep(0.01)
    sent_hash = hashlib.sha256()
    errors = []

    def sender():
        try:
            for chunk in stream(seed, nbytes):
                sent_hash.update(chunk)
                s.sendall(chunk)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            errors.append(f"send: {e!r}")

    t0 = time.monotonic()
    th = threading.Thread(target=sender)
    th.start()
    recv_hash = hashlib.sha256()
    got = 0
    eof = False
    try:
        while True:
            data = s.recv(1 << 18)
            if not data:
                eof = True
                break
            recv_hash.update(data)
            got += len(data)
            if not shutdown and got >= nbytes:
                break
    except Exception as e:  # noqa: BLE001
        errors.append(f"recv: {e!r}")
    th.join()
    elapsed = time.monotonic() - t0
    s.close()
    return {
        "bytes": nbytes,
        "received": got,
        "eof": eof,
        "sha256_sent": sent_hash.hexdigest(),
        "sha256_received": recv_hash.hexdigest(),
        "match": got == nbytes and sent_hash.digest() == recv_hash.digest(),
        "seconds": round(elapsed, 3),
        "mbit_s": round(8 * 2 * nbytes / max(elapsed, 1e-9) / 1e6, 1),
        "errors": errors,
    }


def cmd_echo(a):
    r = echo_once(a.host, a.port, a.bytes, a.seed, a.timeout, start_after=a.start_after)
    out(r, r["match"] and not r["errors"] and r["eof"])


def cmd_concurrent(a):
    results = [None] * a.conns
    # All connect at once (a thread each), and no transfer starts before
    # every connect has finished, so they really are concurrent. A connect
    # that fails (refused, timed out) is that connection's failure.
    opened = threading.Barrier(a.conns)

    def one(i):
        try:
            s = connect(a.host, a.port, a.timeout)
            s.settimeout(a.timeout)
        except OSError as e:
            s = None
            results[i] = "connect: " + repr(e)
        try:
            opened.wait(timeout=a.timeout * 2)
        except threading.BrokenBarrierError:
            pass
        if s is None:
            return
        try:
            data = b"".join(stream(a.seed + i, a.bytes))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            buf = bytearray()
            while True:
                d = s.recv(1 << 16)
                if not d:
                    break
                buf += d
            results[i] = bytes(buf) == data
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)
        finally:
            s.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    good = sum(1 for r in results if r is True)
    bad = [r for r in results if r is not True][:5]
    out(
        {"conns": a.conns, "good": good, "failures": bad, "seconds": round(time.monotonic() - t0, 3)},
        good == a.conns,
    )


def cmd_sequential(a):
    t0 = time.monotonic()
    good = 0
    failures = []
    for i in range(a.count):
        msg = struct.pack("!I", i) * (a.bytes // 4)
        try:
            s = connect(a.host, a.port, a.timeout)
            s.settimeout(a.timeout)
            s.sendall(msg)
            s.shutdown(socket.SHUT_WR)
            buf = bytearray()
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            s.close()
            if bytes(buf) == msg:
                good += 1
            else:
                failures.append(f"#{i}: got {len(buf)} bytes")
        except Exception as e:  # noqa: BLE001
            failures.append(f"#{i}: {e!r}")
        if len(failures) > 10:
            break
    el = time.monotonic() - t0
    out(
        {"count": a.count, "good": good, "failures": failures[:10], "seconds": round(el, 3),
         "per_second": round(good / max(el, 1e-9), 1)},
        good == a.count,
    )


def cmd_halfclose(a):
    res = {}
    # 1. We half-close first: the echo server must still send everything back,
    #    then close its side.
    r = echo_once(a.host, 7, a.bytes, a.seed, a.timeout, shutdown=True)
    res["client_first"] = r
    ok1 = r["match"] and r["eof"]
    # 2. The server half-closes first: port 19 sends its bytes and FIN while
    #    we keep sending for a while after its FIN; then we close.
    s = connect(a.host, 19, a.timeout)
    s.settimeout(a.timeout)
    got = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    expected = bytes((i % 251) for i in range(len(got)))
    # Our direction is still open: send after the peer's FIN.
    after = b"x" * a.bytes
    err = None
    try:
        s.sendall(after)
        s.shutdown(socket.SHUT_WR)
        # The server closes once it has read our FIN: recv returns EOF again.
        tail = s.recv(1)
    except Exception as e:  # noqa: BLE001
        err = repr(e)
        tail = None
    s.close()
    res["server_first"] = {
        "received": len(got),
        "pattern_ok": bytes(got) == expected,
        "sent_after_fin": len(after),
        "error": err,
        "tail": None if tail is None else len(tail),
    }
    ok2 = len(got) == a.source_bytes and bytes(got) == expected and err is None
    out(res, ok1 and ok2)


def cmd_rst(a):
    """Aborts echo connections mid-transfer: data in flight both ways, some
    of the echo unread, then close() with SO_LINGER 0 (RST)."""
    import select

    aborted = 0
    chunk = b"r" * 65536
    for _ in range(a.count):
        s = connect(a.host, a.port, a.timeout)
        s.setblocking(False)
        sent = got = 0
        end = time.monotonic() + 0.5
        # Send (and read a little) until `bytes` went out or 0.5 s passed.
        while sent < a.bytes and time.monotonic() < end:
            r, w, _ = select.select([s], [s], [], 0.05)
            if w:
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    pass
            if r and got < sent // 2:
                try:
                    got += len(s.recv(65536))
                except BlockingIOError:
                    pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST, with echoed data unread and ours in flight
        aborted += 1
    # The service must still work afterwards.
    r = echo_once(a.host, a.port, 1 << 16, a.seed, a.timeout)
    out({"aborted": aborted, "after": r}, r["match"])


def cmd_listen(a):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, a.port))
    srv.listen(16)
    srv.settimeout(a.timeout)
    print(json.dumps({"listening": a.port}), flush=True)
    try:
        c, addr = srv.accept()
    except socket.timeout:
        out({"accepted": False}, False)
    c.settimeout(a.timeout)
    total = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
        total += len(d)
    c.close()
    out({"accepted": True, "peer": f"{addr[0]}:{addr[1]}", "echoed": total}, True)


def cmd_goodput(a):
    s = connect(a.host, a.port, a.timeout)
    s.settimeout(a.timeout)
    chunk = os.urandom(1 << 20)
    t0 = time.monotonic()
    sent = 0
    while sent < a.bytes:
        k = min(len(chunk), a.bytes - sent)
        s.sendall(chunk[:k] if k < len(chunk) else chunk)
        sent += k
    s.shutdown(socket.SHUT_WR)
    # The sink closes after reading everything: wait for its FIN, so all
    # bytes were received, not just buffered.
    s.recv(1)
    el = time.monotonic() - t0
    s.close()
    out({"bytes": sent, "seconds": round(el, 3), "mbit_s": round(8 * sent / el / 1e6, 1)}, True)


def cmd_download(a):
    """Read what a source server sends (port a.port) to EOF: the other
    direction of `goodput`."""
    s = connect(a.host, a.port, a.timeout)
    s.settimeout(a.timeout)
    t0 = time.monotonic()
    got = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
    el = max(time.monotonic() - t0, 1e-9)
    s.close()
    out({"bytes": got, "seconds": round(el, 3), "mbit_s": round(8 * got / el / 1e6, 1)}, True)


def cmd_rpc(a):
    s = connect(a.host, a.port, a.timeout)
    s.settimeout(a.timeout)
    msg = b"q" * a.size
    lat = []
    for i in range(a.count + a.warmup):
        t0 = time.perf_counter_ns()
        s.sendall(msg)
        got = 0
        while got < a.size:
            d = s.recv(a.size - got)
            if not d:
                out({"error": "eof"}, False)
            got += len(d)
        if i >= a.warmup:
            lat.append(time.perf_counter_ns() - t0)
    s.close()
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] / 1000, 1)

    out({"count": a.count, "size": a.size, "p50_us": pct(50), "p99_us": pct(99),
         "mean_us": round(sum(lat) / len(lat) / 1000, 1)}, True)


def cmd_server(a):
    """Discard on port a.sink_port, echo on a.echo_port and send
    a.source_bytes then close on a.source_port, until killed."""
    chunk = os.urandom(1 << 20)

    def source(c):
        left = a.source_bytes
        try:
            while left > 0:
                k = min(left, len(chunk))
                c.sendall(chunk[:k] if k < len(chunk) else chunk)
                left -= k
        except OSError:
            pass  # the client left early
        c.close()

    def serve(port, echo):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((a.host, port))
        srv.listen(64)
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if echo is None:
                threading.Thread(target=source, args=(c,), daemon=True).start()
                continue

            def handle(c=c):
                while True:
                    d = c.recv(1 << 18)
                    if not d:
                        break
                    if echo:
                        c.sendall(d)
                c.close()

            threading.Thread(target=handle, daemon=True).start()

    threading.Thread(target=serve, args=(a.sink_port, False), daemon=True).start()
    threading.Thread(target=serve, args=(a.echo_port, True), daemon=True).start()
    threading.Thread(target=serve, args=(a.source_port, None), daemon=True).start()
    print(json.dumps({"serving": [a.sink_port, a.echo_port, a.source_port]}), flush=True)
    while True:
        time.sleep(3600)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="198.18.0.2")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--port", type=int, default=7)
    e.add_argument("--bytes", type=int, default=1 << 20)
    e.add_argument("--start-after", help="connect, then wait for this file before sending")
    c = sub.add_parser("concurrent")
    c.add_argument("--port", type=int, default=7)
    c.add_argument("--conns", type=int, default=200)
    c.add_argument("--bytes", type=int, default=4096)
    q = sub.add_parser("sequential")
    q.add_argument("--port", type=int, default=7)
    q.add_argument("--count", type=int, default=5000)
    q.add_argument("--bytes", type=int, default=64)
    h = sub.add_parser("halfclose")
    h.add_argument("--bytes", type=int, default=1 << 20)
    h.add_argument("--source-bytes", type=int, default=1 << 20)
    r = sub.add_parser("rst")
    r.add_argument("--port", type=int, default=7)
    r.add_argument("--count", type=int, default=5)
    r.add_argument("--bytes", type=int, default=1 << 20)
    li = sub.add_parser("listen")
    li.add_argument("--port", type=int, default=7007)
    g = sub.add_parser("goodput")
    g.add_argument("--port", type=int, default=9)
    g.add_argument("--bytes", type=int, default=256 << 20)
    dl = sub.add_parser("download")
    dl.add_argument("--port", type=int, default=19)
    rp = sub.add_parser("rpc")
    rp.add_argument("--port", type=int, default=7)
    rp.add_argument("--count", type=int, default=10000)
    rp.add_argument("--warmup", type=int, default=200)
    rp.add_argument("--size", type=int, default=64)
    sv = sub.add_parser("server")
    sv.add_argument("--sink-port", type=int, default=9)
    sv.add_argument("--echo-port", type=int, default=7)
    sv.add_argument("--source-port", type=int, default=19)
    sv.add_argument("--source-bytes", type=int, default=256 << 20)
    a = p.parse_args()
    {
        "echo": cmd_echo,
        "concurrent": cmd_concurrent,
        "sequential": cmd_sequential,
        "halfclose": cmd_halfclose,
        "rst": cmd_rst,
        "listen": cmd_listen,
        "goodput": cmd_goodput,
        "download": cmd_download,
        "rpc": cmd_rpc,
        "server": cmd_server,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
