import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=20)
f = s.makefile('rwb')
def cmd(line, data=None):
    f.write(line.encode() + b"\r\n")
    if data is not None:
        f.write(data + b"\r\n")
    f.flush()
def line():
    return f.readline().rstrip(b"\r\n")
ok = 0
for i in range(n):
    v = (f"value-{i}-" + "x" * (i % 200)).encode()
    cmd(f"set key{i} {i} 0 {len(v)}", v)
    assert line() == b"STORED", i
    ok += 1
for i in range(n):
    cmd(f"get key{i}")
    v = (f"value-{i}-" + "x" * (i % 200)).encode()
    hdr = line()
    assert hdr == f"VALUE key{i} {i} {len(v)}".encode(), hdr
    assert f.read(len(v) + 2) == v + b"\r\n"
    assert line() == b"END"
    ok += 1
for i in range(0, n, 2):
    cmd(f"delete key{i}")
    assert line() == b"DELETED"
    cmd(f"get key{i}")
    assert line() == b"END"
    ok += 2
cmd("set counter 0 0 1", b"5"); assert line() == b"STORED"
for k in range(100):
    cmd("incr counter 3")
    assert line() == str(5 + 3 * (k + 1)).encode()
    ok += 1
cmd("decr counter 1000"); assert line() == b"0"
big = b"B" * 500000
cmd(f"set big 0 0 {len(big)}", big); assert line() == b"STORED"
cmd("get big"); assert line() == f"VALUE big 0 {len(big)}".encode(); assert f.read(len(big) + 2) == big + b"\r\n"; assert line() == b"END"
print("memcached OK", ok + 2)
