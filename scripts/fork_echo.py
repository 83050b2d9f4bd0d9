#!/usr/bin/env python3
"""A forking echo server (socketserver.ForkingTCPServer: one process per
connection, the parent closes its copy at once) and concurrent clients that
check every byte. Used by tests/tests/preload_fork.rs on the kernel and under
flextoe-run; the clients print one line per client and a summary that does
not depend on timing, so the two runs can be compared.

  fork_echo.py server IP PORT
  fork_echo.py clients IP PORT COUNT BYTES
"""
import hashlib
import random
import socket
import socketserver
import sys
import threading


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 128
    # Children are reaped as they finish; 50 may run at once.
    max_children = 200


def serve(ip, port):
    with Server((ip, port), Echo) as s:
        s.serve_forever()


def client(ip, port, i, size, results):
    rng = random.Random(i)
    payload = rng.randbytes(size)
    try:
        with socket.create_connection((ip, port), timeout=60) as c:
            sender = threading.Thread(target=c.sendall, args=(payload,))
            sender.start()
            got = bytearray()
            while len(got) < size:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
            sender.join()
            c.shutdown(socket.SHUT_WR)
            rest = c.recv(1)
        ok = bytes(got) == payload and rest == b""
        results[i] = "ok" if ok else f"mismatch ({len(got)} of {size} bytes)"
    except OSError as e:
        results[i] = f"error {e.__class__.__name__}"


def clients(ip, port, count, size):
    results = [None] * count
    threads = [
        threading.Thread(target=client, args=(ip, port, i, size, results))
        for i in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        print(f"client {i}: {r}")
    good = sum(r == "ok" for r in results)
    digest = hashlib.sha256(b"".join(
        random.Random(i).randbytes(size) for i in range(count)
    )).hexdigest()[:16]
    print(f"{good} of {count} clients echoed {size} bytes each exactly (payloads {digest})")
    return 0 if good == count else 1


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        serve(sys.argv[2], int(sys.argv[3]))
    elif mode == "clients":
        sys.exit(clients(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(f"unknown mode {mode}")
