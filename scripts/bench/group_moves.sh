#!/usr/bin/env bash
# What moving flow groups costs the connections in them (issue 14): the
# loopback service with one replica of two owners, host applications on
# libtoe (echo_server, rpc_client at a fixed offered rate over 16
# connections), measured in one run twice: quiet, then while a mover moves
# one group to the other owner every INTERVAL_MS (round robin over the
# groups, through the control socket as `flextoe-dpu move-group` does).
# Prints the RPC latency of both and the moves' own time as the service
# reports it (hold, fence, export, import, land; the caller's view).
#
# Usage: scripts/bench/group_moves.sh [RATE] [SECONDS] [INTERVAL_MS]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-8000}
SECS=${2:-5}
INTERVAL_MS=${3:-20}
NGROUPS=8
cargo build --release -q -p dpu-datapath --bin flextoe-dpu -p host-shim --examples
BIN=target/release
EX=$BIN/examples
SERVICE_TWEAK="
t = c['topology']
t.update(replicas=1, flow_groups=$NGROUPS, proto_workers=2, run_to_completion=False, auto=False)
"
source scripts/bench/loopback_service.sh

$EX/echo_server --listen 0.0.0.0:7400 >"$dir/echo.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$dir/echo.log" && break; sleep 0.1; done
CONNS=16
REQUESTS=$((RATE * SECS / CONNS))
rpc() {
  $EX/rpc_client --connect "$IP:7400" --conns $CONNS --requests "$REQUESTS" --size 64 --rate "$RATE"
}
rpc >/dev/null # warm-up

quiet=$(rpc)

# The mover: one group per INTERVAL_MS until told to stop; one JSON line.
python3 - "$FLEXTOE_CONTROL" "$NGROUPS" "$INTERVAL_MS" >"$dir/moves.json" <<'EOF' &
import json, signal, socket, struct, sys, time
path, groups, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000
stop = False
def done(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, done)
def ask(req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    body = json.dumps(req).encode()
    s.sendall(struct.pack("<I", len(body)) + body)
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    n = struct.unpack("<I", head)[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    s.close()
    r = json.loads(data)
    if not r["ok"]:
        raise SystemExit(r["error"])
    return r["reply"]
owners = ask({"op": "groups"})["owner_of"]
micros, carried, g = [], 0, 0
while not stop:
    to = 1 - owners[g]
    r = ask({"op": "move_group", "group": g, "to": to})
    owners[g] = to
    micros.append(r["micros"])
    carried += r["connections"]
    g = (g + 1) % groups
    time.sleep(interval)
micros.sort()
pick = lambda q: micros[min(len(micros) - 1, int(q * len(micros)))] if micros else 0
print(json.dumps({"moves": len(micros), "connections": carried,
                  "move_p50_us": pick(0.5), "move_p99_us": pick(0.99)}))
EOF
mover=$!
pids+=($mover)
sleep 0.2
moving=$(rpc)
kill -TERM $mover
wait $mover || true
moves=$(cat "$dir/moves.json")

python3 - "$quiet" "$moving" "$moves" "$RATE" "$INTERVAL_MS" <<'EOF'
import json, sys
q, m, mv = (json.loads(a) for a in sys.argv[1:4])
rate, interval = sys.argv[4], sys.argv[5]
print(f"== 64 B RPC at {rate}/s offered, 16 connections, 8 groups on 2 owners; "
      f"a move every {interval} ms in the second run")
print(f"| run | requests/s | p50 µs | p99 µs |")
print(f"| --- | --- | --- | --- |")
for name, r in (("quiet", q), ("moving", m)):
    print(f"| {name} | {r['rps']:.0f} | {r['p50_us']:.1f} | {r['p99_us']:.1f} |")
print(f"moving / quiet: p50 {m['p50_us'] / q['p50_us']:.2f}x, p99 {m['p99_us'] / q['p99_us']:.2f}x")
print(f"moves: {mv['moves']} carrying {mv['connections']} connections; "
      f"a move takes {mv['move_p50_us']} µs median, {mv['move_p99_us']} µs p99 "
      f"(as the control socket's caller sees it)")
EOF
