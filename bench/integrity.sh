#!/usr/bin/env bash
# integrity.sh: end-to-end echo with message integrity off vs hmac, in ONE run,
# same server configuration otherwise (bench/wsgate-integrity.yaml), same
# client. "hmac": every ping is a signed envelope (client package: HMAC-SHA256
# with the per-user key from POST /v1/tickets, seq, ts, 16-byte nonce, bound
# to the connection id); the server verifies the MAC, the time window, the
# nonce in the replay cache and the seq before the pipeline sees the body.
# "off": plain pings.
#
#   bench/integrity.sh              # from the repository root; ~1.5 min
#   REPS=1 DUR=5s bench/integrity.sh
#
# ECHO_CONNS (100) connections, closed loop, DUR (10 s), REPS (3) interleaved
# runs per mode, each on a fresh server: round trips/s (bounded by the
# client, which also seals, on the same 2 cores) and the server's CPU per
# round trip (the stable figure).
set -euo pipefail
SCRIPT=integrity
. "$(dirname "$0")/lib.sh"
CONFIG=${CONFIG:-$ROOT/bench/wsgate-integrity.yaml}
DUR=${DUR:-10s}
ECHO_CONNS=${ECHO_CONNS:-100}
REPS=${REPS:-3}
MODES="off hmac"

if [ "$REPORT_ONLY" != 1 ]; then
	bench_init
	rm -f "$OUT"/*.json "$OUT"/*.load
	PORT=$(free_port 19330)
	for rep in $(seq "$REPS"); do
		for m in $MODES; do
			start_wsgate "$PORT" "$OUT/wsgate-$m.log" "WSGATE_INTEGRITY__MODE=$m"
			sign=()
			[ "$m" = off ] || sign=(--sign "$m")
			run_bench "echo-$m-$rep" "ws://127.0.0.1:$PORT/ws" --pid "$PID" --mode echo --conns "$ECHO_CONNS" --duration "$DUR" "${sign[@]}"
			stop_pid "$PID"
			sleep 0.5
		done
	done
fi

OFF_OPS=$(field off .ops_per_sec) OFF_CPU=$(field off .server.cpu_us_per_op)
table "Integrity: echo, $ECHO_CONNS connections, closed loop, $DUR × $REPS per mode (medians)" \
	"| integrity | round trips/s | × off | server CPU µs per round trip | + µs vs off | p50 | p99 | error replies | all runs (µs CPU per round trip) |" \
	"|---|---:|---:|---:|---:|---:|---:|---:|---|"
for m in $MODES; do
	ops=$(field "$m" .ops_per_sec) cpu=$(field "$m" .server.cpu_us_per_op)
	errs=$(rep_values "$m" '.reply_errors + .timeouts' | paste -sd+ - | bc)
	printf '| %s | %.0f | %.2f | %.2f | %+.2f | %.0f µs | %.0f µs | %s | %s |\n' "$m" "$ops" "$(ratio "$ops" "$OFF_OPS")" \
		"$cpu" "$(echo "$cpu - $OFF_CPU" | bc -l)" "$(field "$m" .latency.p50_us)" "$(field "$m" .latency.p99_us)" "$errs" \
		"$(runs "$m" '.server.cpu_us_per_op*100|round/100')"
done
echo
echo "Load average (1 min) when the runs started, min/max: $(loads). Machine: $(machine). Raw: $OUT/*.json"
