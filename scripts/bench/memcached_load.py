#!/usr/bin/env python3
"""Load generator for scripts/bench/memcached_preload.sh: CONNS processes,
each one connection doing get/set (9:1) of 100-byte values on 1000 keys,
one request at a time, for SECONDS. Prints the total operations."""
import multiprocessing, socket, sys, time

def worker(host, port, seconds, q):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    val = b"v" * 100
    for k in range(1000):
        s.sendall(b"set k%d 0 0 100\r\n%s\r\n" % (k, val))
        assert s.recv(64) == b"STORED\r\n"
    ops, end, i = 0, time.time() + seconds, 0
    while time.time() < end:
        for _ in range(100):
            i += 1
            k = i % 1000
            if i % 10 == 0:
                s.sendall(b"set k%d 0 0 100\r\n%s\r\n" % (k, val))
                want = 8
            else:
                s.sendall(b"get k%d\r\n" % k)
                want = len(b"VALUE k%d 0 100\r\n" % k) + 102 + 5
            got = 0
            while got < want:
                got += len(s.recv(4096))
            ops += 1
    q.put(ops)

if __name__ == "__main__":
    host, port, conns, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(host, port, seconds, q)) for _ in range(conns)]
    for p in ps: p.start()
    total = sum(q.get() for _ in ps)
    for p in ps: p.join()
    print(total)
