#!/usr/bin/env bash
# Protocol conformance of wsgate, two targets:
#   (a) the pure echo on wsgate's transport (bench/bareecho -pure)
#   (b) wsgate in gateway mode (route validation: raw, limits lifted) in front of it
#
# With the Autobahn|Testsuite fuzzing client installed (`wstest` on PATH, from
# the Python 2 package autobahntestsuite or the crossbario/autobahn-testsuite
# image wrapped as `wstest`), it runs every case against both and prints a
# per-group table from the JSON reports. Without it, it runs wsgate's own
# raw-frame table modelled on the Autobahn groups
# (bench/bareecho/conformance_test.go) and prints its table.
#
#   scripts/conformance.sh            # whichever is available
#   CASES='1.*,5.*' scripts/conformance.sh
#   OUT=/tmp/conformance scripts/conformance.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$(mktemp -d /tmp/wsgate-conformance.XXXXXX)}
CASES=${CASES:-*}
mkdir -p "$OUT"

if ! command -v wstest >/dev/null 2>&1; then
	echo "wstest (Autobahn|Testsuite) not found: running the Go raw-frame conformance table"
	CONFORMANCE_REPORT="$OUT/table.txt" timeout 600 go test -count=1 -run '^TestConformance$' ./bench/bareecho >"$OUT/go-test.log" 2>&1 || {
		cat "$OUT/go-test.log"
		[ -f "$OUT/table.txt" ] && cat "$OUT/table.txt"
		exit 1
	}
	cat "$OUT/table.txt"
	echo "report: $OUT/table.txt"
	exit 0
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

go build -o "$OUT/bareecho" ./bench/bareecho
go build -o "$OUT/wsgate" ./cmd/wsgate

ECHO_PORT=${ECHO_PORT:-9101}
GW_PORT=${GW_PORT:-9102}
SECRET='base64:Y29uZm9ybWFuY2UtY29uZm9ybWFuY2UtY29uZm9ybWFuY2UtMDEyMw=='

"$OUT/bareecho" -pure -addr "127.0.0.1:$ECHO_PORT" >"$OUT/bareecho.log" 2>&1 &
pids+=($!)

cat >"$OUT/wsgate.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
insecure_plaintext: true          # INSECURE: loopback conformance run only
log: {level: warn}
admin: {listen: ""}
auth:
  keys: [{id: conf, algorithms: [HS256], secret: "$SECRET"}]
  allow_query_token: true         # INSECURE: wstest cannot set headers per case
compression: {enabled: true}
limits:
  max_fragments: 100000
  handshake_rate: {rate: 100000, burst: 100000}
  connections: {per_ip: 10000, per_user: 10000}
  outbox: {max_bytes: 67108864}
rate:
  tiers:
    default:
      messages: {rate: 1000000000, burst: 1000000000}
      bytes: {rate: 1000000000, burst: 1000000000}
      user_messages: {rate: 1000000000, burst: 1000000000}
      user_bytes: {rate: 1000000000, burst: 1000000000}
      ip_messages: {rate: 1000000000, burst: 1000000000}
      ip_bytes: {rate: 1000000000, burst: 1000000000}
routes:
  - path: /gw
    upstream: ws://127.0.0.1:$ECHO_PORT/
    validation: raw
    allow_binary: true
    max_message_bytes: 16777216
YAML
"$OUT/wsgate" serve --config "$OUT/wsgate.yaml" >"$OUT/wsgate.log" 2>&1 &
pids+=($!)
TOKEN=$("$OUT/wsgate" token --secret "$SECRET" --sub autobahn --ttl 24h)

for port in "$ECHO_PORT" "$GW_PORT"; do
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
done

cat >"$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT/reports",
  "servers": [
    {"agent": "echo", "url": "ws://127.0.0.1:$ECHO_PORT/"},
    {"agent": "gateway", "url": "ws://127.0.0.1:$GW_PORT/gw?token=$TOKEN"}
  ],
  "cases": ["$(echo "$CASES" | sed 's/,/","/g')"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
timeout 3600 wstest -m fuzzingclient -s "$OUT/fuzzingclient.json" >"$OUT/wstest.log" 2>&1

# Per-group table from the reports (behavior of each case: OK, NON-STRICT,
# INFORMATIONAL, UNIMPLEMENTED, FAILED).
python3 - "$OUT/reports/index.json" <<'PY'
import json, sys, collections
idx = json.load(open(sys.argv[1]))
kinds = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
for agent, cases in sorted(idx.items()):
    groups = collections.defaultdict(collections.Counter)
    for case, r in cases.items():
        groups[int(case.split(".")[0])][r["behavior"]] += 1
    print(f"\n{agent}")
    print("group  " + "  ".join(f"{k:>13}" for k in kinds))
    tot = collections.Counter()
    for g in sorted(groups):
        tot.update(groups[g])
        print(f"{g:<6} " + "  ".join(f"{groups[g][k]:>13}" for k in kinds))
    print("total  " + "  ".join(f"{tot[k]:>13}" for k in kinds))
    for case, r in sorted(cases.items()):
        if r["behavior"] not in ("OK", "INFORMATIONAL"):
            print(f"  {r['behavior']}: {case}")
PY
echo "reports: $OUT/reports/index.html"
