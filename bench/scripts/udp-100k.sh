#!/bin/bash
# 100,002 UDP sessions on one server socket from 6 generator processes (each under the
# 20,000-file limit), keepalives every 30 s; prints the server's RSS per session and the CPU
# its keepalives cost.
#   bench/scripts/udp-100k.sh BIN [PROCESSES] [SESSIONS_PER_PROCESS]
set -euo pipefail
B=$1; P=${2:-6}; N=${3:-16667}
export HONGYAN_LOG=warn
"$B" serve --tcp-addr off --http-addr off --udp-addr 127.0.0.1:17901 --udp-sense-mode MODE_30S \
    --max-udp-sessions 200000 --limits-exempt 127.0.0.0/8 >/dev/null 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null' EXIT
sleep 1
rss() { awk '/VmRSS/{print $2}' "/proc/$SP/status"; }
ticks() { awk '{print $14+$15}' "/proc/$SP/stat"; }
R0=$(rss)
dir=$(mktemp -d)
pids=()
for k in $(seq 0 $((P - 1))); do
    "$B" bench -q --json --udp 127.0.0.1:17901 -t udp --sense-mode MODE_30S --user-prefix "u$k" \
        --source-ip "127.0.$((k + 1)).1" idle -n "$N" --hold 60 >"$dir/$k.json" &
    pids+=($!)
done
sleep 30
C1=$(ticks)
sleep 20
R2=$(rss); C2=$(ticks)
wait "${pids[@]}"
for k in $(seq 0 $((P - 1))); do
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('generator', sys.argv[2], 'logged in', r['logged_in'], 'held', r['held'], '%.0f logins/s' % r['logins_per_s'], 'failures', r['failures'])" "$dir/$k.json" "$k"
done
echo "server RSS ${R0} kB before, ${R2} kB with $((P * N)) sessions: $(((R2 - R0) * 1024 / (P * N))) B per session"
echo "server CPU while holding (keepalives only): $((C2 - C1)) ticks (1/100 s) over 20 s"
