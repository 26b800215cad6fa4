#!/usr/bin/env bash
# Where a server's CPU goes per delivered C2C message: one `hongyan bench c2c` run against a
# fresh `hongyan serve` process, and, over 5 seconds of its sending interval, the server's
# user and system CPU (/proc/PID/stat), system calls and context switches (perf's
# raw_syscalls:sys_enter and context-switches software events, no hardware counters
# needed), each divided by the messages delivered meanwhile. With PERF_RECORD=FILE it also
# records a cpu-clock profile of the server there (perf report -i FILE).
#
#   bench/scripts/c2c-profile.sh BIN TRANSPORT [C2C-ARGS...]
#   bench/scripts/c2c-profile.sh target/release/hongyan udp --pairs 100 --window 16
#
# SERVER_ARGS adds arguments to `hongyan serve` (e.g. "--store off"); loopback is exempt from
# the abuse limits, as in every benchmark.
set -euo pipefail
bin=$1 transport=$2
shift 2
ports=(--tcp-addr 127.0.0.1:18901 --udp-addr 127.0.0.1:17901 --http-addr 127.0.0.1:13000)
addrs=(--tcp 127.0.0.1:18901 --udp 127.0.0.1:17901 --ws 127.0.0.1:13000)
# shellcheck disable=SC2086 # SERVER_ARGS is a list of words
HONGYAN_LOG=warn "$bin" serve "${ports[@]}" --limits-exempt 127.0.0.0/8 ${SERVER_ARGS:-} >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
report=$(mktemp)
HONGYAN_LOG=warn "$bin" bench -q --json "${addrs[@]}" --server-pid "$server" -t "$transport" \
    c2c --duration 12 "$@" >"$report" &
bench=$!
sleep 4
ticks() { awk '{ print $14, $15 }' "/proc/$server/stat"; }
read -r u0 s0 < <(ticks)
counts=$(mktemp)
if [ -n "${PERF_RECORD:-}" ]; then
    perf record -q -F 999 -g -p "$server" -o "$PERF_RECORD" -- sleep 5 >/dev/null 2>&1 &
fi
perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$server" -o "$counts" -- sleep 5
read -r u1 s1 < <(ticks)
wait "$bench"
python3 - "$report" "$counts" "$u0" "$s0" "$u1" "$s1" <<'PY'
import json, sys
report, counts = json.load(open(sys.argv[1])), {}
for line in open(sys.argv[2]):
    parts = line.strip().split(',')
    if len(parts) > 2 and parts[0].replace('.', '').isdigit():
        counts[parts[2]] = float(parts[0])
u0, s0, u1, s1 = map(int, sys.argv[3:7])
messages = report['delivered_per_s'] * 5
per = lambda x: x / messages
print(f"{report['run']['transport']}: {report['delivered_per_s']:.0f} msgs/s, "
      f"server CPU/10k {report['server_cpu_s_per_10k']:.3f} s, p99 {report['delivery_latency_ms']['p99']:.1f} ms, "
      f"lost {report['lost']}, dup {report['duplicates']} | per message: "
      f"user {per((u1 - u0) * 1e4):.2f} us, system {per((s1 - s0) * 1e4):.2f} us, "
      f"{per(counts.get('raw_syscalls:sys_enter', 0)):.2f} syscalls, "
      f"{per(counts.get('context-switches', 0)):.2f} context switches")
PY
