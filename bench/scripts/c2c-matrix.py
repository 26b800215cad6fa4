#!/usr/bin/env python3
"""Repeated `hongyan bench c2c` runs per transport, each against a fresh `hongyan serve`
process, with medians: the numbers in docs/PERFORMANCE.md.

    bench/scripts/c2c-matrix.py BIN REPS NAME -- C2C-ARGS...
    bench/scripts/c2c-matrix.py target/release/hongyan 3 w16 -- --pairs 100 --window 16 --duration 8

TRANSPORTS (default "tcp udp ws") picks transports; SERVER_WORKERS sets the server's worker
threads (`hongyan serve --workers`, default: one per core); SERVER_ARGS adds arguments to
`hongyan serve` (e.g. "--store off" against the default SQLite store); every run's JSON report is
appended to $OUT_DIR/raw-NAME.jsonl (default /tmp) with the load average seen before it.
"""
import json, os, statistics, subprocess, sys, time

B, reps, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
extra = sys.argv[sys.argv.index('--') + 1:]
transports = os.environ.get('TRANSPORTS', 'tcp udp ws').split()
env = dict(os.environ, HONGYAN_LOG='warn')
workers = ['--workers', os.environ['SERVER_WORKERS']] if os.environ.get('SERVER_WORKERS') else []
workers += os.environ.get('SERVER_ARGS', '').split()
raw = open(os.path.join(os.environ.get('OUT_DIR', '/tmp'), f'raw-{name}.jsonl'), 'a')
addrs = ['--tcp', '127.0.0.1:18901', '--udp', '127.0.0.1:17901', '--ws', '127.0.0.1:13000']
for t in transports:
    rows = []
    for _ in range(reps):
        srv = subprocess.Popen([B, 'serve', '--tcp-addr', '127.0.0.1:18901', '--udp-addr', '127.0.0.1:17901',
                                '--http-addr', '127.0.0.1:13000', '--limits-exempt', '127.0.0.0/8', *workers],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            load = os.getloadavg()[0]
            out = subprocess.run([B, 'bench', '-q', '--json', *addrs, '--server-pid', str(srv.pid), '-t', t, 'c2c', *extra],
                                 env=env, capture_output=True, text=True, timeout=300, check=True)
        finally:
            srv.terminate()
            srv.wait()
        rep = json.loads(out.stdout)
        rep['loadavg_before'] = load
        raw.write(json.dumps(rep) + '\n')
        raw.flush()
        rows.append(rep)
    med = lambda f: statistics.median(f(x) for x in rows)
    lat = lambda k, q: med(lambda x: x[k][q])
    print(f"{name} {t}: n={reps} msg/s {med(lambda x: x['delivered_per_s']):.0f}"
          f" | server CPU/10k {med(lambda x: x['server_cpu_s_per_10k']):.3f}"
          f" | generator CPU/10k {med(lambda x: x['generator_cpu_s_per_10k']):.3f}"
          f" | delivery p50 {lat('delivery_latency_ms', 'p50'):.1f} p90 {lat('delivery_latency_ms', 'p90'):.1f}"
          f" p99 {lat('delivery_latency_ms', 'p99'):.1f} max {lat('delivery_latency_ms', 'max'):.1f} ms"
          f" | ack p99 {lat('ack_latency_ms', 'p99'):.1f}"
          f" | lost {[x['lost'] for x in rows]} dup {[x['duplicates'] for x in rows]}"
          f" | load {[round(x['loadavg_before'], 1) for x in rows]}", flush=True)
