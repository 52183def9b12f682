#!/usr/bin/env bash
# redis-vs-memory.sh: one wsgate node with state: memory vs state: redis, in
# ONE run, same configuration otherwise (bench/wsgate-bench.yaml; redis via
# WSGATE_STATE__BACKEND / WSGATE_STATE__REDIS__ADDRS), same client.
#
#   bench/redis-vs-memory.sh                 # from the repository root; ~3 min
#   ECHO_REPS=1 DUR=5s bench/redis-vs-memory.sh
#
# Starts its own redis-server on a free loopback port (temp dir, no
# persistence) and stops it at the end. Measures, each on a fresh wsgate:
#   echo    ECHO_CONNS (100) connections, closed loop, DUR (10 s), ECHO_REPS (3)
#           times per backend, interleaved: round trips/s, wsgate CPU per round
#           trip, and redis-server CPU per round trip (from /proc, whole run
#           including the ramp, so an upper bound).
#   fanout  FAN_SUBS (1,000) subscribers, one publisher at FAN_RATE (20/s) for
#           DUR: delivery latency (with redis every publication goes through
#           the publish script and pub/sub back to the node).
#   publish PUB_SUBS (10) subscribers, one publisher at each of PUB_RATES
#           (5,000, 10,000 and 20,000/s) for DUR: the publish path itself (with
#           redis one script round trip per publication): latency (it grows
#           without bound once the server falls behind the offered rate) and
#           server CPU per publication.
# The issue's aim: redis >= 0.7x memory throughput.
set -euo pipefail
SCRIPT=redis-vs-memory
. "$(dirname "$0")/lib.sh"
CONFIG=${CONFIG:-$ROOT/bench/wsgate-bench.yaml}
DUR=${DUR:-10s}
ECHO_CONNS=${ECHO_CONNS:-100}
ECHO_REPS=${ECHO_REPS:-3}
FAN_SUBS=${FAN_SUBS:-1000}
FAN_RATE=${FAN_RATE:-20}
PUB_SUBS=${PUB_SUBS:-10}
PUB_RATES=${PUB_RATES:-5000 10000 20000}
BACKENDS="memory redis"

# start BACKEND: a fresh wsgate with that state backend (PID set).
start() {
	if [ "$1" = redis ]; then
		redis-cli -p "$REDIS_PORT" flushall >/dev/null
		start_wsgate "$PORT" "$OUT/wsgate-$1.log" WSGATE_STATE__BACKEND=redis "WSGATE_STATE__REDIS__ADDRS=127.0.0.1:$REDIS_PORT"
	else
		start_wsgate "$PORT" "$OUT/wsgate-$1.log" WSGATE_STATE__BACKEND=memory
	fi
}

# measure NAME BACKEND ARGS...: one bench run; records redis-server CPU.
measure() {
	local name=$1 be=$2 r0 r1; shift 2
	start "$be"
	r0=$(cpu_seconds "$REDIS_PID")
	run_bench "$name" "ws://127.0.0.1:$PORT/ws" --pid "$PID" "$@"
	r1=$(cpu_seconds "$REDIS_PID")
	echo "$r1 - $r0" | bc -l >"$OUT/$name.redis-cpu"
	stop_pid "$PID"
	sleep 0.5
}

if [ "$REPORT_ONLY" != 1 ]; then
	bench_init
	rm -f "$OUT"/*.json "$OUT"/*.load "$OUT"/*.redis-cpu
	start_redis
	PORT=$(free_port 19320)
	for rep in $(seq "$ECHO_REPS"); do
		for be in $BACKENDS; do
			measure "echo-$be-$rep" "$be" --mode echo --conns "$ECHO_CONNS" --duration "$DUR"
		done
	done
	for be in $BACKENDS; do
		measure "fanout-$be" "$be" --mode fanout --conns "$FAN_SUBS" --rate "$FAN_RATE" --duration "$DUR"
	done
	for rate in $PUB_RATES; do
		for be in $BACKENDS; do
			measure "publish-$be-$rate" "$be" --mode fanout --conns "$PUB_SUBS" --rate "$rate" --duration "$DUR"
		done
	done
fi

redis_cpu() { # µs of redis-server CPU per round trip, median over reps
	for f in "$OUT"/echo-"$1"-*.json; do
		[ -s "$f" ] || continue
		echo "$(cat "${f%.json}.redis-cpu") * 1000000 / $(jq -r .ops "$f")" | bc -l
	done | med
}
MEM_OPS=$(field memory .ops_per_sec)
MEM_CPU=$(field memory .server.cpu_us_per_op)
table "Echo: $ECHO_CONNS connections, closed loop, $DUR × $ECHO_REPS per backend (medians)" \
	"| state | round trips/s | × memory | wsgate CPU µs per round trip | × memory | redis-server CPU µs per round trip | p50 | p99 | all runs (round trips/s) |" \
	"|---|---:|---:|---:|---:|---:|---:|---:|---|"
for be in $BACKENDS; do
	ops=$(field "$be" .ops_per_sec) cpu=$(field "$be" .server.cpu_us_per_op)
	printf '| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f µs | %.0f µs | %s |\n' "$be" "$ops" "$(ratio "$ops" "$MEM_OPS")" \
		"$cpu" "$(ratio "$cpu" "$MEM_CPU")" "$(redis_cpu "$be")" \
		"$(field "$be" .latency.p50_us)" "$(field "$be" .latency.p99_us)" "$(runs "$be" '.ops_per_sec|round')"
done
table "Fan-out: $FAN_SUBS subscribers, one publisher at $FAN_RATE/s for $DUR" \
	"| state | delivered / expected | deliveries/s | p50 | p99 | max | wsgate CPU µs per delivery | redis-server CPU (s) |" \
	"|---|---:|---:|---:|---:|---:|---:|---:|"
for be in $BACKENDS; do
	report_row "$OUT/fanout-$be.json" "| $be | failed |||||||" --arg b "$be" --arg rc "$(cat "$OUT/fanout-$be.redis-cpu" 2>/dev/null)" "$JQ_MS"'
		"| \($b) | \(.ops) / \(.expected_deliveries) | \(.ops_per_sec|round) | \(.latency.p50_us|ms) | \(.latency.p99_us|ms) | \(.latency.max_us|ms) | \(.server.cpu_us_per_op*100|round/100) | \($rc) |"'
done
table "Publish path: $PUB_SUBS subscribers, one publisher (open loop) for $DUR" \
	"| state | offered publications/s | published | delivered / expected | error replies | p50 | p99 | max | wsgate CPU µs per publication | redis-server CPU µs per publication |" \
	"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rate in $PUB_RATES; do
	for be in $BACKENDS; do
		report_row "$OUT/publish-$be-$rate.json" "| $be | $rate | failed ||||||||" --arg b "$be" --arg r "$rate" --arg rc "$(cat "$OUT/publish-$be-$rate.redis-cpu" 2>/dev/null)" "$JQ_MS"'
			"| \($b) | \($r) | \(.published) | \(.ops) / \(.expected_deliveries) | \(.reply_errors) | \(.latency.p50_us|ms) | \(.latency.p99_us|ms) | \(.latency.max_us|ms) | \(.server.cpu_seconds*1e6/.published*100|round/100) | \(($rc|tonumber)*1e6/.published*100|round/100) |"'
	done
done
echo
echo "Load average (1 min) when the runs started, min/max: $(loads). Machine: $(machine). Raw: $OUT/*.json"
