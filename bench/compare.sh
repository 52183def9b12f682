#!/usr/bin/env bash
# compare.sh: wsgate (full security pipeline), bench/bareecho (the floor: same
# WebSocket library, no checks) and the guide's Node server, side by side in
# ONE run, with the same client (`wsgate bench`) on this machine.
#
#   bench/compare.sh                 # from the repository root; about 4-5 minutes
#   ECHO_REPS=1 DUR=5s bench/compare.sh   # quicker, noisier
#
# Measures, each server in a fresh process of its own:
#   echo    ECHO_CONNS (100) connections, closed-loop ping -> pong for DUR (10s),
#           ECHO_REPS (3) times per server, interleaved: round trips/s, latency,
#           and SERVER CPU per round trip (utime+stime from /proc/PID/stat).
#   idle    IDLE_CONNS (10,000) authenticated connections held open: server
#           VmRSS growth per connection (after the welcome, SETTLE 2s later).
#   fanout  wsgate: FAN_SUBS (1,000) subscribers on chat:bench, one publisher at
#           FAN_RATE (20/s): delivery latency. Node: the same over its
#           broadcast-to-everyone relay (it has no channels). bareecho: none.
# BASE_WSGATE=/path/to/wsgate adds a fourth server, "base": that binary with the
# same configuration, interleaved with the others (a same-run baseline for a
# change to wsgate). NBIO=1 adds bench/nbioecho (bareecho on lesismal/nbio's
# epoll loop, a module of its own) to the echo and idle runs. SKIP_FANOUT=1
# skips the fan-out runs.
# Prints a markdown table; raw JSON results stay in $OUT.
# Bounded: every bench run has --duration and an outer `timeout`; servers are
# killed on exit. Nothing is pinned (2 shared cores): client and server compete.
set -euo pipefail
SCRIPT=compare
. "$(dirname "$0")/lib.sh"
CONFIG=${CONFIG:-$ROOT/bench/wsgate-bench.yaml}
DUR=${DUR:-10s}
ECHO_CONNS=${ECHO_CONNS:-100}
ECHO_REPS=${ECHO_REPS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5s}
FAN_SUBS=${FAN_SUBS:-1000}
FAN_RATE=${FAN_RATE:-20}
# Ports: wsgate's defaults to the one in bench/wsgate-bench.yaml; PORT_WSGATE
# overrides it, e.g. when another run holds it (not WSGATE_*: wsgate reads
# every WSGATE_* variable as configuration). The others are picked to stay
# clear of the usual development ports (another server there spoils a run).
PORT_WSGATE=${PORT_WSGATE:-9102} BARE_PORT=${BARE_PORT:-19101} NODE_PORT=${NODE_PORT:-19180} NBIO_PORT=${NBIO_PORT:-19102}

mkdir -p "$OUT"

if [ "$REPORT_ONLY" != 1 ]; then
bench_init
rm -f "$OUT"/*.json "$OUT"/*.load
log "building bareecho"
(cd "$ROOT" && go build -o "$OUT/bareecho" ./bench/bareecho)
if [ "${NBIO:-0}" = 1 ]; then (cd "$ROOT/bench/nbioecho" && go build -o "$OUT/nbioecho" .); fi

NODE_OK=0
if command -v node >/dev/null && command -v npm >/dev/null; then
	rm -rf "$OUT/peers" && cp -r "$ROOT/../shared/peers" "$OUT/peers" 2>/dev/null || cp -r /work/shared/peers "$OUT/peers"
	chmod -R u+w "$OUT/peers"
	if (cd "$OUT/peers/node-seed" && timeout 300 npm install --no-audit --no-fund >"$OUT/npm.log" 2>&1); then
		NODE_OK=1
	else
		log "npm install failed (see $OUT/npm.log): the Node server is skipped"
	fi
else
	log "node/npm not found: the Node server is skipped"
fi
fi
[ "$REPORT_ONLY" = 1 ] && ls "$OUT"/echo-node-*.json >/dev/null 2>&1 && NODE_OK=1
SERVERS="wsgate bare"
BASE_WSGATE=${BASE_WSGATE:-}
if [ -n "$BASE_WSGATE" ]; then SERVERS="wsgate base bare"; fi
if [ "${NBIO:-0}" = 1 ]; then SERVERS="$SERVERS nbio"; fi
if [ "$NODE_OK" = 1 ]; then SERVERS="$SERVERS node"; fi

port_of() { case $1 in wsgate | base) echo "$PORT_WSGATE" ;; bare) echo "$BARE_PORT" ;; nbio) echo "$NBIO_PORT" ;; node) echo "$NODE_PORT" ;; esac; }

url() { case $1 in wsgate | base) echo "ws://127.0.0.1:$PORT_WSGATE/ws" ;; *) echo "ws://127.0.0.1:$(port_of "$1")/" ;; esac; }

start() { # start SERVER: fresh process, PID set, waits for its port
	local port logf=$OUT/$1.log
	port=$(port_of "$1")
	if ! port_free "$port"; then
		log "port $port is already in use by another process: set PORT_WSGATE/BARE_PORT/NBIO_PORT/NODE_PORT or free it"; exit 1
	fi
	case $1 in
	wsgate) start_wsgate "$port" "$logf"; return ;;
	base) SERVE_BIN=$BASE_WSGATE start_wsgate "$port" "$logf"; return ;;
	bare | nbio) "$OUT/${1}echo" -addr "127.0.0.1:$port" >"$logf" 2>&1 & ;;
	node)
		logf=$OUT/node.err
		# The guide's server logs every connection to stdout: kept (it is part of
		# what it does), sent to /dev/null. Its two limits are lifted as its
		# README says for throughput runs.
		(cd "$OUT/peers/node-seed" && exec env JWT_SECRET="$SECRET" PORT="$port" \
			MAX_CONNECTIONS_PER_IP=1000000000 MESSAGE_RATE_LIMIT=1000000000 node server.js >/dev/null 2>"$logf") & ;;
	esac
	await_start "$!" "$port" "$logf"
}

stop() { stop_pid "$PID"; sleep 0.5; }

bench() { # bench NAME SERVER ARGS...: one run, JSON to $OUT/NAME.json
	local name=$1 srv=$2; shift 2
	run_bench "$name" "$(url "$srv")" --pid "$PID" "$@"
}

if [ "$REPORT_ONLY" != 1 ]; then
for rep in $(seq "$ECHO_REPS"); do
	for s in $SERVERS; do
		start "$s"
		bench "echo-$s-$rep" "$s" --mode echo --conns "$ECHO_CONNS" --duration "$DUR"
		stop
	done
done
for s in $SERVERS; do
	start "$s"
	bench "idle-$s" "$s" --mode idle --conns "$IDLE_CONNS" --duration "$IDLE_HOLD" --procs 1
	stop
done
if [ "${SKIP_FANOUT:-0}" != 1 ]; then
start wsgate
bench fanout-wsgate wsgate --mode fanout --conns "$FAN_SUBS" --rate "$FAN_RATE" --duration "$DUR"
stop
if [ "$NODE_OK" = 1 ]; then
	start node
	bench fanout-node node --mode fanout --broadcast --conns "$FAN_SUBS" --rate "$FAN_RATE" --duration "$DUR"
	stop
fi
fi
fi

# --- report ---
name() { case $1 in wsgate) echo "wsgate (full pipeline)" ;; base) echo "wsgate baseline ($BASE_WSGATE)" ;; bare) echo "bareecho (gws, no checks)" ;; nbio) echo "nbioecho (nbio epoll, no checks)" ;; node) echo "guide's Node server (ws 8)" ;; esac; }
BARE_CPU=$(field bare '.server.cpu_us_per_op')
table "Echo, $ECHO_CONNS connections, $DUR × $ECHO_REPS per server (medians)" \
	"| server | round trips/s | server CPU µs per round trip | × bareecho | server cores busy | p50 | p99 | all runs (µs CPU per round trip) |" \
	"|---|---:|---:|---:|---:|---:|---:|---|"
for s in $SERVERS; do
	cpu=$(field "$s" '.server.cpu_us_per_op')
	printf '| %s | %.0f | %.2f | %.2f | %.2f | %.0f µs | %.0f µs | %s |\n' "$(name "$s")" \
		"$(field "$s" '.ops_per_sec')" "$cpu" "$(ratio "$cpu" "$BARE_CPU")" "$(field "$s" '.server.cpu_util')" \
		"$(field "$s" '.latency.p50_us')" "$(field "$s" '.latency.p99_us')" "$(runs "$s" '.server.cpu_us_per_op*100|round/100')"
done
table "Idle, $IDLE_CONNS authenticated connections" \
	"| server | opened | server RSS before → after | KiB per idle connection |" \
	"|---|---:|---|---:|"
for s in $SERVERS; do
	report_row "$OUT/idle-$s.json" "| $(name "$s") | failed | | |" --arg n "$(name "$s")" \
		'"| \($n) | \(.opened_conns) | \(.server.rss_base_kib/1024*10|round/10) MiB → \(.server.rss_loaded_kib/1024*10|round/10) MiB | \(.server.rss_per_conn_kib*10|round/10) |"'
done
table "Fan-out: $FAN_SUBS subscribers, one publisher at $FAN_RATE/s for $DUR" \
	"| server | delivered / expected | deliveries/s | p50 | p99 | max | server CPU µs per delivery |" \
	"|---|---:|---:|---:|---:|---:|---:|"
for s in wsgate node; do
	f="$OUT/fanout-$s.json"
	[ -s "$f" ] || continue
	jq -r --arg n "$(name "$s")" '"| \($n) | \(.ops) / \(.expected_deliveries) | \(.ops_per_sec|round) | \(.latency.p50_us|round) µs | \(.latency.p99_us|round) µs | \(.latency.max_us|round) µs | \(.server.cpu_us_per_op*100|round/100) |"' "$f"
done
echo
echo "Load average (1 min) when each run started, min/max: $(loads) (other work on the machine makes throughput and latency noisy; CPU per operation is steadier)."
echo "Raw results: $OUT/*.json (machine: $(machine), node $(node --version 2>/dev/null || echo n/a))"
