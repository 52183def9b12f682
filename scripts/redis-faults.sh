#!/usr/bin/env bash
# redis-faults.sh: the longer run of the Redis fault trial (issue 16).
#
# Runs TestClusterFaultsAckedMeansDeliveredOrReported (e2e/e2e_faults_test.go): three
# wsgate nodes on one real redis-server, two publishers and six subscribers, while
# Redis restarts empty and from an older RDB snapshot ROUNDS times per run, then a
# node stops and its subscribers recover on another node. It asserts that every
# acked publication reached every subscriber once, in order, at its acked
# position, or that the subscriber got recovery_failed covering it. Each run
# also SIGKILLs a wsgate process mid-traffic (TestClusterNodeKilledAckedMeansDeliveredOrReported,
# e2e/e2e_node_kill_test.go): same assertion, plus its quota leases lapsing
# within lease_ttl and its strikes and bans kept.
#
# Then the broker-level trials of internal/state/redis (guarantee_test.go):
# three nodes, six publishers and a subscriber per node on one real
# redis-server, ROUNDS times: Redis restarted empty, from an older RDB
# snapshot, from an AOF (appendfsync always) with a burst larger than history
# before the nodes resubscribe, pub/sub connections cut, DEBUG SLEEP and CLIENT
# PAUSE stalls; and a node killed mid-publish whose subscriber recovers on
# another node. Same assertion, on what each node's broker delivered.
#
#   ROUNDS=5 RUNS=3 scripts/redis-faults.sh     (defaults)
#
# Needs redis-server on PATH. Every run is bounded (timeout); the test owns and
# stops every process it starts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-3}
command -v redis-server >/dev/null || { echo "redis-faults: redis-server not found" >&2; exit 1; }
cd "$ROOT"
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
WSGATETEST_REQUIRE_EXTERNAL=1 WSGATETEST_FAULT_ROUNDS="$ROUNDS" \
	timeout $((RUNS * ROUNDS * 60 + 300)) \
	go test -race -count="$RUNS" -timeout $((RUNS * ROUNDS * 60 + 240))s \
	-run '^(TestClusterFaultsAckedMeansDeliveredOrReported|TestClusterNodeKilledAckedMeansDeliveredOrReported)$' -v ./e2e >"$log" 2>&1 || status=$?
WSGATETEST_REQUIRE_EXTERNAL=1 WSGATETEST_FAULT_ROUNDS="$ROUNDS" \
	timeout $((RUNS * ROUNDS * 60 + 300)) \
	go test -race -count="$RUNS" -timeout $((RUNS * ROUNDS * 60 + 240))s \
	-run '^(TestBrokerAckedMeansDeliveredOrReported|TestBrokerNodeKilledAckedMeansDeliveredOrReported)$' -v \
	./internal/state/redis/ >>"$log" 2>&1 || status=$?
# The nodes' JSON logs are noise here; the test's own lines and warnings are not.
grep -E '^(=== RUN|--- |\s+(e2e_faults|e2e_node_kill|guarantee)_test.go|PASS|FAIL|ok|panic)|WARN' "$log" || true
echo "redis-faults: ${RUNS} runs x ${ROUNDS} rounds, exit ${status}, $(( $(date +%s) - start )) s"
exit "$status"
