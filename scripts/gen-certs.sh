#!/usr/bin/env bash
# Create a local CA, a server certificate and a client certificate for the
# README's production example (examples/certs/{ca,server,client}.pem + keys).
# Uses `wsgate certs` (pure Go, no openssl). Extra arguments go to it, e.g.
#   scripts/gen-certs.sh --host ws.internal --host 10.0.0.5 --force
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v wsgate >/dev/null 2>&1; then
	exec wsgate certs --dir examples/certs "$@"
fi
exec go run ./cmd/wsgate certs --dir examples/certs "$@"
