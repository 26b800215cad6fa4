#!/usr/bin/env bash
# Cross-node C2C against a local cluster (scripts/cluster): senders on node 1, receivers on
# node 2, and the same load with both parties on node 1; for each run the messages/s, p99,
# lost and duplicates, and the CPU of every node plus nats-server per 10,000 delivered
# messages (from /proc), and PostgreSQL's beside it. Stops the cluster when done.
#
#   bench/scripts/cluster-c2c.sh target/release/hongyan [DURATION_S]
set -euo pipefail
bin=$(realpath "$1")
duration=${2:-8}
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
HONGYAN_BIN=$bin scripts/cluster --limits-exempt 127.0.0.0/8 >"$out/cluster.log" 2>&1 &
cluster=$!
# TERM, not INT: a non-interactive shell starts its background jobs with SIGINT ignored, and
# a signal ignored on entry cannot be trapped, so the cluster would never hear it.
trap 'kill -TERM $cluster 2>/dev/null || true; wait $cluster 2>/dev/null || true; rm -rf "$out"' EXIT

# Until every node answers /readyz (bounded: two minutes, the first run builds nothing).
for _ in $(seq 1 240); do
    ready=0
    for port in 3011 3012 3013; do
        curl -sf "127.0.0.1:$port/readyz" >/dev/null && ready=$((ready + 1))
    done
    [ "$ready" = 3 ] && break
    sleep 0.5
done
[ "$ready" = 3 ] || { echo "the cluster did not start: $out/cluster.log" >&2; exit 1; }

# CPU ticks of the given processes (utime + stime).
ticks_of() {
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
# The nodes and nats-server, then PostgreSQL (the shared store, where a cluster numbers and
# writes history): two figures, "nodes + NATS" and PostgreSQL's. PostgreSQL's is its live
# processes' plus what its postmaster collected from the backends that have exited.
cpu_ticks() {
    local postmaster exited=0
    postmaster=$(pgrep -o -x postgres || true)
    [ -z "$postmaster" ] || exited=$(awk '{print $16 + $17}' "/proc/$postmaster/stat")
    echo "$(ticks_of $(pgrep -f "$bin serve") $(pgrep -x nats-server)) $(($(ticks_of $(pgrep -x postgres)) + exited))"
}

run() {
    local name=$1
    shift
    local before after
    before=$(cpu_ticks)
    "$bin" bench -q --json "$@" >"$out/$name.json"
    after=$(cpu_ticks)
    python3 - "$name" "$before" "$after" "$out/$name.json" <<'PY'
import json, os, sys
name, before, after, path = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
r = json.load(open(path))
tck = os.sysconf("SC_CLK_TCK")
cpu, pg = ((int(a) - int(b)) / tck for a, b in zip(after, before))
d = r["delivered"]
print(f"{name}: {r['delivered_per_s']:.0f} msgs/s, p99 {r['delivery_latency_ms']['p99']} ms, "
      f"lost {r['lost']}, duplicates {r['duplicates']}, nodes + NATS {cpu:.2f} CPU-s "
      f"= {cpu / d * 1e4:.4f} s per 10k, PostgreSQL {pg / d * 1e4:.4f} s per 10k")
PY
}

run tcp-across c2c -t tcp --tcp 127.0.0.1:8911 --receive-at 127.0.0.1:8912 -p 100 -w 16 -d "$duration"
run tcp-same-node c2c -t tcp --tcp 127.0.0.1:8911 -p 100 -w 16 -d "$duration"
run ws-across c2c -t ws --ws 127.0.0.1:3011 --receive-at 127.0.0.1:3012 -p 100 -w 16 -d "$duration"
run udp-across c2c -t udp --udp 127.0.0.1:7911 --receive-at 127.0.0.1:7912 -p 100 -w 16 -d "$duration"
