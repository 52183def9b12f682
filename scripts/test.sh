#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, and every test with -race,
# including the ones against a real redis-server and real headless Chromium.
# Installs what the tests need when it is missing (Debian packages).
#
# It never hangs: every test binary runs under a per-package -timeout (a hang
# prints its goroutine dump within minutes), and the whole go test run is
# bounded again from outside. It ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

# Per-package bound for go test; CI's budget is 90 minutes for the whole run.
# The root e2e package takes 5-6 minutes on 2 busy cores under -race, so 10m
# leaves room for a loaded machine and still prints a hang's goroutine dump
# within minutes.
PKG_TIMEOUT=${WSGATETEST_PKG_TIMEOUT:-10m}

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The guide's Python server and the Python client run on Debian's python3.
/usr/bin/python3 -c 'import websockets, jwt, pytest, cryptography' >/dev/null 2>&1 ||
  need+=(python3 python3-websockets python3-jwt python3-pytest python3-cryptography)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Tests that need Redis or Chromium fail (instead of skipping) when this is set.
export WSGATETEST_REQUIRE_EXTERNAL=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt wants to change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race -timeout $PKG_TIMEOUT per package (fuzz seed corpora included)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
timeout --kill-after=30s 45m go test -race -count=1 -timeout "$PKG_TIMEOUT" ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# The JavaScript and Python clients, each against a real wsgate binary.
echo "== clients: JavaScript (node --test) and Python (pytest) against the wsgate binary"
bindir=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$bindir"' EXIT
WSGATETEST_BIN="$bindir/wsgate"; export WSGATETEST_BIN
clients_rc=0
if go build -o "$WSGATETEST_BIN" ./cmd/wsgate; then
  (cd clients/js && timeout 300 npm ci --no-audit --no-fund --loglevel=error && timeout 600 npm test) || clients_rc=1
  (cd clients/python && timeout 600 /usr/bin/python3 -m pytest -q -p no:cacheprovider) || clients_rc=1
else
  clients_rc=1
fi
set -e

ok=$(grep -cE '^ok[[:space:]]' "$log" || true)
failed=$(grep -cE '^FAIL[[:space:]]+[^[:space:]]+' "$log" || true)
notests=$(grep -cE '^\?[[:space:]]' "$log" || true)
elapsed=$(( $(date +%s) - start ))
printf '== summary: %d Go packages ok, %d failed, %d without tests (go test exit %d); clients %s; elapsed %dm%02ds\n' \
  "$ok" "$failed" "$notests" "$rc" "$([ "$clients_rc" -eq 0 ] && echo ok || echo FAILED)" $((elapsed / 60)) $((elapsed % 60))
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "== go test was stopped by the overall bound (45m): something hangs; see the goroutine dump above"
fi
[ "$rc" -ne 0 ] && exit "$rc"
exit "$clients_rc"
