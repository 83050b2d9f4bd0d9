#!/usr/bin/env python3
"""Keepalive conformance client: the same program on Linux and under
flextoe-run. Connects, turns keepalive on (idle, interval and count from the
command line), says "connected", then blocks in recv until the connection
fails. Prints the options as read back and how recv ended, in the same words
on both stacks (the caller compares them)."""
import errno
import socket
import sys
import time

host, port, idle, intvl, cnt = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
s = socket.create_connection((host, port), timeout=5)
s.settimeout(None)
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)
print("options:",
      s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
      s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
      s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
      s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT), flush=True)
print("connected", flush=True)
try:
    data = s.recv(1)
    print("recv returned", len(data), flush=True)
except OSError as e:
    print("recv failed:", errno.errorcode.get(e.errno, e.errno), flush=True)
