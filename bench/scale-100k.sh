#!/usr/bin/env bash
# scale-100k.sh: 100,000 idle authenticated connections on ONE machine, where
# a process may hold at most 20,000 open files: six wsgate nodes sharing one
# Redis (bench/wsgate-scale.yaml, state: redis), each on its own port, loaded
# by six `wsgate bench` processes (--procs) whose connections go round robin
# over the nodes and whose source addresses are spread over 127.0.0.x (each
# process its own range: one source address has ~28,000 ephemeral ports).
# Every connection authenticates (HS256 token, its own subject), gets its
# welcome and subscribes to chat:bench. Then:
#   - RSS per connection per node: VmRSS of each node after the ramp (+SETTLE)
#     minus before, over the connections that node holds;
#   - ONE broadcast: a client publishes into chat:bench on one node; Redis
#     carries it to all six; delivery latency p50/p99 over all 100,000
#     subscribers (publisher's clock in the payload to receipt, same machine).
#
#   bench/scale-100k.sh                    # from the repository root; ~3-5 min
#   CONNS=6000 PROCS=2 bench/scale-100k.sh # quick check
#
# Bounded: the bench run has an outer timeout (BENCH_TIMEOUT, 420 s) and the
# whole script stays under 10 minutes; redis-server (temp dir, no
# persistence), the nodes and the bench processes are killed on exit, on
# failure and on interrupt. Memory: ~30 KiB per connection in the nodes plus
# the clients' share; the script refuses to start with less than MIN_FREE_GIB
# available.
set -euo pipefail
SCRIPT=scale-100k
. "$(dirname "$0")/lib.sh"
CONFIG=${CONFIG:-$ROOT/bench/wsgate-scale.yaml}
NODES=${NODES:-6}
CONNS=${CONNS:-100000}
PROCS=${PROCS:-6}
RAMP=${RAMP:-1000}         # new connections per second per bench process
SETTLE=${SETTLE:-5s}       # after the ramp, before RSS is read and the broadcast sent
BROADCASTS=${BROADCASTS:-1}
MIN_FREE_GIB=${MIN_FREE_GIB:-10}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-420}
START=$(date +%s)

if [ "$REPORT_ONLY" != 1 ]; then
	avail=$(awk '/MemAvailable/{print int($2/1048576)}' /proc/meminfo)
	if [ "$avail" -lt "$MIN_FREE_GIB" ]; then
		log "only $avail GiB available, want $MIN_FREE_GIB (MIN_FREE_GIB): not starting"; exit 1
	fi
	bench_init
	rm -f "$OUT"/*.json "$OUT"/*.load "$OUT"/mem.log
	start_redis
	# Every second: the machine's available memory (KiB) and TCP sockets in
	# use (both ends of every connection), to show what the run took and how
	# long the ramp was.
	(while :; do
		echo "$(date +%s) $(awk '/MemAvailable/{print $2}' /proc/meminfo) $(awk '/^TCP:/{print $3}' /proc/net/sockstat)"
		sleep 1
	done >"$OUT/mem.log") &
	STARTED+=("$!")
	PORTS=() PIDS=()
	port=19400
	for i in $(seq "$NODES"); do
		port=$(free_port "$port")
		start_wsgate "$port" "$OUT/node-$i.log" "WSGATE_STATE__REDIS__ADDRS=127.0.0.1:$REDIS_PORT"
		PORTS+=("$port") PIDS+=("$PID")
		port=$((port + 1))
	done
	log "redis on $REDIS_PORT, nodes on ${PORTS[*]} (pids ${PIDS[*]})"
	NODE_ARGS=()
	for p in "${PORTS[@]:1}"; do NODE_ARGS+=(--node "ws://127.0.0.1:$p/ws"); done
	run_bench scale "ws://127.0.0.1:${PORTS[0]}/ws" "${NODE_ARGS[@]}" --pid "$(IFS=,; echo "${PIDS[*]}")" \
		--mode fanout --conns "$CONNS" --procs "$PROCS" --ramp "$RAMP" --settle "$SETTLE" \
		--rate 1 --count "$BROADCASTS" --duration "$((BROADCASTS + 1))s" --timeout 30s
	redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory_human/{print $2}' | tr -d '\r' >"$OUT/redis-mem"
	bench_cleanup
	log "done in $(($(date +%s) - START)) s"
fi

f="$OUT/scale.json"
[ -s "$f" ] || { log "no result (see $OUT/scale.err)"; exit 1; }
echo
echo "### Scale: $(jq .requested_conns "$f") idle authenticated subscribers over $NODES nodes, $(jq .procs "$f") bench processes"
echo
jq -r '"Opened \(.opened_conns) of \(.requested_conns) (\(.failed_conns) failed\(if .errors then ": " + (.errors|tostring) else "" end)), \(.closed_by_server) closed by a server during the run."' "$f"
echo
echo "| node | connections | RSS before | RSS with connections | KiB per connection |"
echo "|---|---:|---:|---:|---:|"
jq -r '.nodes[] | "| \(.target) | \(.opened_conns) | \(.rss_base_kib/1024|round) MiB | \(.rss_loaded_kib/1024|round) MiB | \(.rss_per_conn_kib*10|round/10) |"' "$f"
jq -r '"| all | \(.opened_conns) | \(.server.rss_base_kib/1024|round) MiB | \(.server.rss_loaded_kib/1024|round) MiB | \(.server.rss_per_conn_kib*10|round/10) |"' "$f"
table "One broadcast to all of them" \
	"| published | delivered / expected | p50 | p90 | p99 | max | nodes' CPU for it (s) |" \
	"|---:|---:|---:|---:|---:|---:|---:|"
jq -r "$JQ_MS"'
	"| \(.published) | \(.ops) / \(.expected_deliveries) | \(.latency.p50_us|ms) | \(.latency.p90_us|ms) | \(.latency.p99_us|ms) | \(.latency.max_us|ms) | \(.server.cpu_seconds*100|round/100) |"' "$f"
echo
if [ -s "$OUT/mem.log" ]; then
	echo "Machine memory available: $(awk 'NR==1{a=$2} {if($2<m||m==0)m=$2} END{printf "%.1f GiB at start, %.1f GiB at the lowest", a/1048576, m/1048576}' "$OUT/mem.log"); Redis used $(cat "$OUT/redis-mem" 2>/dev/null || echo n/a)."
	# Ramp: from the first second with more than 1,000 new sockets to the first
	# with 95 % of the final count (2 sockets per loopback connection).
	awk -v want="$(jq '.opened_conns * 2 * 0.95' "$f")" 'NR==1{b=$3} !s && $3>b+1000{s=$1} s && !e && $3>=b+want{e=$1} END{if(s&&e) printf "Ramp: %d s from the first connections to 95 %% of them.\n", e-s+1}' "$OUT/mem.log"
fi
echo "Load average (1 min) at the start: $(loads). Machine: $(machine). Raw: $f"
