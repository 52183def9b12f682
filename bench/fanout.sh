#!/usr/bin/env bash
# fanout.sh: channel fan-out on one wsgate node (state: memory) in its own
# process: SUBS (10,000) subscribers of chat:bench and one publisher at each
# rate of RATES (10, then 1 and 100 publications per second) for DUR (30 s):
# delivery latency p50/p99 (publisher's clock in the payload to the
# subscriber's receipt, same machine), deliveries per second, server CPU per
# delivery and RSS per subscribed connection. A fresh server per rate.
#
#   bench/fanout.sh                         # from the repository root; ~2.5 min
#   SUBS=1000 RATES=10 DUR=5s bench/fanout.sh   # quick check
#
# Configuration: bench/wsgate-bench.yaml (the full pipeline; per-IP quota
# 19,000, handshake rate 100,000/s, max_subscribers 20,000), on its own port.
# The issue's aim: p99 under 50 ms at 10 publications per second.
set -euo pipefail
SCRIPT=fanout
. "$(dirname "$0")/lib.sh"
CONFIG=${CONFIG:-$ROOT/bench/wsgate-bench.yaml}
SUBS=${SUBS:-10000}
RATES=${RATES:-10 1 100}
DUR=${DUR:-30s}
PROCS=${PROCS:-1}

if [ "$REPORT_ONLY" != 1 ]; then
	bench_init
	rm -f "$OUT"/fanout-*.json "$OUT"/*.load
	PORT=$(free_port 19310)
	for rate in $RATES; do
		start_wsgate "$PORT" "$OUT/wsgate-$rate.log"
		run_bench "fanout-$rate" "ws://127.0.0.1:$PORT/ws" --mode fanout --conns "$SUBS" --rate "$rate" \
			--duration "$DUR" --procs "$PROCS" --timeout 10s --pid "$PID"
		stop_pid "$PID"
		sleep 1
	done
fi

table "Fan-out: $SUBS subscribers of one channel, one publisher, $DUR per rate" \
	"| publications/s | delivered / expected | deliveries/s | p50 | p90 | p99 | max | server CPU µs per delivery | server cores busy | KiB per subscriber | closed by server |" \
	"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rate in $RATES; do
	report_row "$OUT/fanout-$rate.json" "| $rate | failed (see $OUT/fanout-$rate.err) |||||||||| " --arg r "$rate" "$JQ_MS"'
		"| \($r) | \(.ops) / \(.expected_deliveries) | \(.ops_per_sec|round) | \(.latency.p50_us|ms) | \(.latency.p90_us|ms) | \(.latency.p99_us|ms) | \(.latency.max_us|ms) | \(.server.cpu_us_per_op*100|round/100) | \(.server.cpu_util*100|round/100) | \(.server.rss_per_conn_kib*10|round/10) | \(.closed_by_server) |"'
done
echo
echo "Load average (1 min) when the runs started, min/max: $(loads). Machine: $(machine). Raw: $OUT/*.json"
