#!/bin/bash
# One `hongyan bench idle` run against a fresh `hongyan serve` process; prints one summary line.
#   bench/scripts/idle.sh BIN TRANSPORT N [idle args...]
#   bench/scripts/idle.sh target/release/hongyan tcp 19000 --hold 20 --per-source-ip 4000
set -euo pipefail
B=$1; T=$2; N=$3; shift 3
export HONGYAN_LOG=warn
"$B" serve --tcp-addr 127.0.0.1:18901 --udp-addr 127.0.0.1:17901 --http-addr 127.0.0.1:13000 \
    --max-connections 60000 --limits-exempt 127.0.0.0/8 >/dev/null 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null' EXIT
sleep 1
out=$(mktemp)
"$B" bench -q --json --tcp 127.0.0.1:18901 --udp 127.0.0.1:17901 --ws 127.0.0.1:13000 \
    --server-pid "$SP" -t "$T" idle -n "$N" "$@" >"$out"
python3 - "$out" "$T" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, n = sys.argv[2], int(sys.argv[3])
lc, hc = r['login_cpu'], r['hold_cpu']
print(f"{t} {n}: logged in {r['logged_in']}, held {r['held']}, {r['logins_per_s']:.0f} logins/s "
      f"(p99 {r['login_latency_ms']['p99']:.0f} ms), RSS/conn {r['rss_per_connection']} B, "
      f"login CPU server {lc['server_s']:.2f} s generator {lc['generator_s']:.2f} s, "
      f"hold CPU server {hc['server_s']:.2f} s over {hc['wall_s']:.0f} s, failures {r['failures']}")
PY
