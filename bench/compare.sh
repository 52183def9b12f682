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

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/wsgate-compare}
DUR=${DUR:-10s}
ECHO_CONNS=${ECHO_CONNS:-100}
ECHO_REPS=${ECHO_REPS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5s}
FAN_SUBS=${FAN_SUBS:-1000}
FAN_RATE=${FAN_RATE:-20}
SECRET=bench-secret-bench-secret-bench-secret-0123456789 # also in bench/wsgate-bench.yaml
# Ports: wsgate's defaults to the one in bench/wsgate-bench.yaml; PORT_WSGATE
# overrides it, e.g. when another run holds it (not WSGATE_*: wsgate reads
# every WSGATE_* variable as configuration). The others are picked to stay
# clear of the usual development ports (another server there spoils a run).
PORT_WSGATE=${PORT_WSGATE:-9102} BARE_PORT=${BARE_PORT:-19101} NODE_PORT=${NODE_PORT:-19180} NBIO_PORT=${NBIO_PORT:-19102}
REPORT_ONLY=${REPORT_ONLY:-0} # 1: print the table from the JSON already in $OUT

mkdir -p "$OUT"
[ "$REPORT_ONLY" = 1 ] || rm -f "$OUT"/*.json
log() { echo "compare: $*" >&2; }

if [ "$REPORT_ONLY" != 1 ]; then
log "building wsgate and bareecho"
(cd "$ROOT" && go build -o "$OUT/wsgate" ./cmd/wsgate && go build -o "$OUT/bareecho" ./bench/bareecho)
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

PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; true; }
trap cleanup EXIT INT TERM

url() {
	case $1 in
	wsgate | base) echo "ws://127.0.0.1:$PORT_WSGATE/ws" ;;
	bare) echo "ws://127.0.0.1:$BARE_PORT/" ;;
	nbio) echo "ws://127.0.0.1:$NBIO_PORT/" ;;
	node) echo "ws://127.0.0.1:$NODE_PORT/" ;;
	esac
}

start() { # start SERVER: fresh process, PID set, waits for its port
	local port
	case $1 in wsgate | base) port=$PORT_WSGATE ;; bare) port=$BARE_PORT ;; nbio) port=$NBIO_PORT ;; node) port=$NODE_PORT ;; esac
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		log "port $port is already in use by another process: set BARE_PORT/NODE_PORT or free it"; exit 1
	fi
	case $1 in
	wsgate)
		"$OUT/wsgate" serve -c "$ROOT/bench/wsgate-bench.yaml" --listen "127.0.0.1:$PORT_WSGATE" >"$OUT/wsgate.log" 2>&1 &
		port=$PORT_WSGATE ;;
	base)
		"$BASE_WSGATE" serve -c "$ROOT/bench/wsgate-bench.yaml" --listen "127.0.0.1:$PORT_WSGATE" >"$OUT/base.log" 2>&1 &
		port=$PORT_WSGATE ;;
	bare)
		"$OUT/bareecho" -addr "127.0.0.1:$BARE_PORT" >"$OUT/bare.log" 2>&1 &
		port=$BARE_PORT ;;
	nbio)
		"$OUT/nbioecho" -addr "127.0.0.1:$NBIO_PORT" >"$OUT/nbio.log" 2>&1 &
		port=$NBIO_PORT ;;
	node)
		# The guide's server logs every connection to stdout: kept (it is part of
		# what it does), sent to /dev/null. Its two limits are lifted as its
		# README says for throughput runs.
		(cd "$OUT/peers/node-seed" && exec env JWT_SECRET="$SECRET" PORT=$NODE_PORT \
			MAX_CONNECTIONS_PER_IP=1000000000 MESSAGE_RATE_LIMIT=1000000000 node server.js >/dev/null 2>"$OUT/node.err") &
		port=$NODE_PORT ;;
	esac
	PID=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { sleep 0.3; return 0; }
		sleep 0.1
	done
	log "$1 did not start"; return 1
}

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; sleep 0.5; }

bench() { # bench NAME SERVER ARGS...: one run, JSON to $OUT/NAME.json
	local name=$1 srv=$2; shift 2
	log "$name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	cut -d' ' -f1 /proc/loadavg >"$OUT/$name.load"
	timeout 600 "$OUT/wsgate" bench "$(url "$srv")" --secret "$SECRET" --kid bench --pid "$PID" --json "$@" \
		>"$OUT/$name.json" 2>"$OUT/$name.err" || log "$name: exit $? (see $OUT/$name.err)"
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
med() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"} else if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
field() { # field SERVER JQ: median over the echo reps
	for f in "$OUT"/echo-"$1"-*.json; do [ -s "$f" ] && jq -r "$2" "$f"; done | med
}
name() { case $1 in wsgate) echo "wsgate (full pipeline)" ;; base) echo "wsgate baseline ($BASE_WSGATE)" ;; bare) echo "bareecho (gws, no checks)" ;; nbio) echo "nbioecho (nbio epoll, no checks)" ;; node) echo "guide's Node server (ws 8)" ;; esac; }
BARE_CPU=$(field bare '.server.cpu_us_per_op')
echo
echo "### Echo, $ECHO_CONNS connections, $DUR × $ECHO_REPS per server (medians)"
echo
echo "| server | round trips/s | server CPU µs per round trip | × bareecho | server cores busy | p50 | p99 | all runs (µs CPU per round trip) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for s in $SERVERS; do
	cpu=$(field "$s" '.server.cpu_us_per_op')
	runs=$(for f in "$OUT"/echo-"$s"-*.json; do [ -s "$f" ] && jq -r '.server.cpu_us_per_op*100|round/100' "$f"; done | paste -sd, -)
	printf '| %s | %.0f | %.2f | %.2f | %.2f | %.0f µs | %.0f µs | %s |\n' "$(name "$s")" \
		"$(field "$s" '.ops_per_sec')" "$cpu" "$(echo "$cpu / $BARE_CPU" | bc -l)" "$(field "$s" '.server.cpu_util')" \
		"$(field "$s" '.latency.p50_us')" "$(field "$s" '.latency.p99_us')" "$runs"
done
echo
echo "### Idle, $IDLE_CONNS authenticated connections"
echo
echo "| server | opened | server RSS before → after | KiB per idle connection |"
echo "|---|---:|---|---:|"
for s in $SERVERS; do
	f="$OUT/idle-$s.json"
	[ -s "$f" ] || { echo "| $(name "$s") | failed | | |"; continue; }
	jq -r --arg n "$(name "$s")" '"| \($n) | \(.opened_conns) | \(.server.rss_base_kib/1024*10|round/10) MiB → \(.server.rss_loaded_kib/1024*10|round/10) MiB | \(.server.rss_per_conn_kib*10|round/10) |"' "$f"
done
echo
echo "### Fan-out: $FAN_SUBS subscribers, one publisher at $FAN_RATE/s for $DUR"
echo
echo "| server | delivered / expected | deliveries/s | p50 | p99 | max | server CPU µs per delivery |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for s in wsgate node; do
	f="$OUT/fanout-$s.json"
	[ -s "$f" ] || continue
	jq -r --arg n "$(name "$s")" '"| \($n) | \(.ops) / \(.expected_deliveries) | \(.ops_per_sec|round) | \(.latency.p50_us|round) µs | \(.latency.p99_us|round) µs | \(.latency.max_us|round) µs | \(.server.cpu_us_per_op*100|round/100) |"' "$f"
done
echo
echo "Load average (1 min) when each run started, min/max: $(cat "$OUT"/*.load 2>/dev/null | sort -g | sed -n '1p;$p' | paste -sd/ -) (other work on the machine makes throughput and latency noisy; CPU per operation is steadier)."
echo "Raw results: $OUT/*.json (machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3), node $(node --version 2>/dev/null || echo n/a))"
