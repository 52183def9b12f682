# lib.sh: helpers shared by the bench scripts (compare.sh, fanout.sh,
# redis-vs-memory.sh, scale-100k.sh, integrity.sh). Source it after setting
# SCRIPT (the script's name); it is not a script of its own.
#
# Every process a script starts is recorded (STARTED) and killed by its pid on
# exit, failure or interrupt (trap in bench_init); redis-server runs in a temp
# dir without persistence. Nothing here touches processes it did not start.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-/tmp/wsgate-$SCRIPT} # binaries, logs and raw JSON results
REPORT_ONLY=${REPORT_ONLY:-0}   # 1: print the tables from the JSON already in $OUT
SECRET=bench-secret-bench-secret-bench-secret-0123456789 # also in bench/*.yaml
STARTED=()  # pids of everything we started
TMPDIRS=()  # removed at exit
REDIS_PID="" REDIS_PORT=""

log() { echo "${SCRIPT:-bench}: $*" >&2; }

bench_cleanup() {
	local p i
	# Newest first: bench, then the nodes, then the redis-server they use.
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		p=${STARTED[$i]}
		kill "$p" 2>/dev/null || true
		for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	for p in "${STARTED[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	STARTED=()
	for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done
	TMPDIRS=()
}

# bench_init: output dir, trap, build wsgate into $OUT.
bench_init() {
	mkdir -p "$OUT"
	trap bench_cleanup EXIT
	trap 'log "interrupted"; exit 130' INT TERM
	if [ "${NO_BUILD:-0}" != 1 ] || [ ! -x "$OUT/wsgate" ]; then
		log "building wsgate"
		(cd "$ROOT" && go build -o "$OUT/wsgate" ./cmd/wsgate)
		# What was built: HEAD, and whether the working tree differed from it.
		echo "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- '*.go' || echo "+uncommitted")" >"$OUT/commit"
	fi
}

# port_free PORT: nothing listens there.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port FROM: first free port at or above FROM (below the ephemeral range,
# so that a client's source port never takes it).
free_port() {
	local p=$1
	while ! port_free "$p"; do p=$((p + 1)); done
	echo "$p"
}

# wait_port PORT PID: until something accepts on PORT (10 s), or PID died.
wait_port() {
	for _ in $(seq 100); do
		port_free "$1" || return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# await_start PID PORT LOG: PID, a server just started in the background, is
# recorded (PID, STARTED) and waited for until it accepts on PORT; when it does
# not, LOG's tail says why.
await_start() {
	PID=$1
	STARTED+=("$PID")
	if ! wait_port "$2" "$PID"; then
		log "the server for port $2 did not start; its log:"; tail -5 "$3" >&2; return 1
	fi
	sleep 0.3
}

# start_wsgate PORT LOG [ENV=VALUE...]: wsgate serve -c $CONFIG on 127.0.0.1:PORT
# (admin listener off unless ADMIN_PORT is set); sets PID. SERVE_BIN names
# another wsgate binary than the one built (a baseline).
start_wsgate() {
	local port=$1 logf=$2; shift 2
	local admin=""
	[ -n "${ADMIN_PORT:-}" ] && admin="127.0.0.1:$ADMIN_PORT"
	env "$@" "${SERVE_BIN:-$OUT/wsgate}" serve -c "$CONFIG" --listen "127.0.0.1:$port" --admin-listen "$admin" >"$logf" 2>&1 &
	await_start "$!" "$port" "$logf"
}

# stop_pid PID: end one process we started, wait for it.
stop_pid() {
	kill "$1" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	STARTED=("${keep[@]}")
}

# start_redis: redis-server on a free loopback port, temp dir, no persistence;
# sets REDIS_PID and REDIS_PORT.
start_redis() {
	command -v redis-server >/dev/null || { log "redis-server not found (apt-get install redis-server)"; return 1; }
	local dir
	dir=$(mktemp -d /tmp/wsgate-bench-redis.XXXXXX)
	TMPDIRS+=("$dir")
	REDIS_PORT=$(free_port "${REDIS_PORT_FROM:-16379}")
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
		--maxclients 10000 --loglevel warning >"$dir/redis.log" 2>&1 &
	REDIS_PID=$!
	STARTED+=("$REDIS_PID")
	for _ in $(seq 100); do
		redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
		kill -0 "$REDIS_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "redis-server did not start:"; cat "$dir/redis.log" >&2; return 1
}

# cpu_seconds PID: utime+stime of a process (10 ms resolution).
cpu_seconds() { awk '{sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / 100}' "/proc/$1/stat"; }

# run_bench NAME URL ARGS...: one bounded `wsgate bench` run, JSON in
# $OUT/NAME.json. It runs under timeout(1), which signals its whole process
# group (the bench and its --procs children) when the time is up or when the
# cleanup kills it.
run_bench() {
	local name=$1 url=$2 rc=0; shift 2
	log "$name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	cut -d' ' -f1 /proc/loadavg >"$OUT/$name.load"
	timeout "${BENCH_TIMEOUT:-600}" "$OUT/wsgate" bench "$url" --secret "$SECRET" --kid bench --json "$@" \
		>"$OUT/$name.json" 2>"$OUT/$name.err" &
	local bp=$!
	STARTED+=("$bp")
	wait "$bp" || rc=$?
	stop_pid "$bp"
	[ "$rc" = 0 ] || log "$name: exit $rc (see $OUT/$name.err)"
}

# machine: one line for the report.
machine() {
	echo "$(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3), $(redis-server --version 2>/dev/null | awk '{print "redis " substr($3, 3)}'), built from $(cat "$OUT/commit" 2>/dev/null || echo "unknown commit")"
}

# loads: min/max 1-minute load average when the runs started.
loads() { cat "$OUT"/*.load 2>/dev/null | sort -g | sed -n '1p;$p' | paste -sd/ -; }

# med: median of numbers on stdin.
med() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"} else if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# rep_values NAME JQ: JQ's value in each non-empty $OUT/echo-NAME-*.json (one
# file per repetition), a line each.
rep_values() {
	local f
	for f in "$OUT"/echo-"$1"-*.json; do
		[ -s "$f" ] && jq -r "$2" "$f"
	done
	return 0
}

# field NAME JQ: the median of JQ over NAME's echo repetitions.
field() { rep_values "$1" "$2" | med; }

# table TITLE HEADER RULE: a markdown section TITLE and the head of its table.
table() { printf '\n### %s\n\n%s\n%s\n' "$1" "$2" "$3"; }

# runs NAME JQ: JQ over NAME's echo repetitions, comma-separated.
runs() { rep_values "$1" "$2" | paste -sd, -; }

# ratio A B: A / B.
ratio() { echo "$1 / $2" | bc -l; }

# report_row FILE FAILED JQ_ARGS...: jq -r JQ_ARGS on FILE, a table row; the
# row FAILED instead when the run left no result.
report_row() {
	local f=$1 failed=$2; shift 2
	if [ -s "$f" ]; then jq -r "$@" "$f"; else echo "$failed"; fi
}

# JQ_MS defines the jq filter ms: microseconds as "N µs", or "N.N ms" from a
# millisecond on ("n/a" for a missing value). Use: jq -r "$JQ_MS"' ...|ms ...'.
JQ_MS='def ms: if . == null then "n/a" elif . >= 1000 then "\(./100|round/10) ms" else "\(.|round) µs" end;'
