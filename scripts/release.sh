#!/usr/bin/env bash
# Build versioned static release binaries and their SHA256SUMS.
#
#   scripts/release.sh v1.2.3            # -> dist/wsgate_v1.2.3_<os>_<arch>[.exe], dist/SHA256SUMS
#   PLATFORMS="linux/amd64" OUT=/tmp/rel scripts/release.sh v1.2.3
#
# Binaries are static (CGO_ENABLED=0), -trimpath, and stamped with the version
# (`wsgate version` prints it with the VCS revision and Go version).
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-}"
if [[ ! "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
	echo "usage: $0 vMAJOR.MINOR.PATCH (got '${version}')" >&2
	exit 2
fi
platforms="${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}"
out="${OUT:-dist}"   # OUT=/some/dir to build elsewhere
rm -rf "$out"
mkdir -p "$out"
for p in $platforms; do
	os="${p%/*}" arch="${p#*/}"
	ext=""
	[[ "$os" == windows ]] && ext=".exe"
	bin="$out/wsgate_${version}_${os}_${arch}${ext}"
	echo "building $bin" >&2
	CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath \
		-ldflags "-s -w -X main.version=${version}" -o "$bin" ./cmd/wsgate
done
(cd "$out" && sha256sum wsgate_* > SHA256SUMS)
echo "wrote $out/SHA256SUMS:" >&2
cat "$out/SHA256SUMS"
