# wsgate container image: a static binary on distroless, running as non-root.
#
#   docker build -t wsgate .
#   docker build --build-arg VERSION=v1.2.3 -t wsgate:v1.2.3 .
#   docker run --rm -p 8443:8443 \
#     -v "$PWD/wsgate.yaml:/etc/wsgate/wsgate.yaml:ro" -v "$PWD/examples/certs:/etc/wsgate/certs:ro" wsgate
#
# The build needs no network beyond the Go module proxy (GOPROXY, default
# proxy.golang.org), or none at all with a vendor directory or a warm module cache.
# See docs/deploy.md.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
# Static (no cgo), reproducible paths, version stamped for `wsgate version`.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wsgate ./cmd/wsgate \
 && /out/wsgate version

# distroless/static: CA certificates and tzdata, no shell, no package manager;
# the :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wsgate /usr/local/bin/wsgate
# Inside a container the listeners must not be loopback-only; the admin listener
# stays on loopback unless you publish it deliberately (see docs/deploy.md).
ENV WSGATE_LISTEN=0.0.0.0:8443
EXPOSE 8443
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/wsgate"]
CMD ["serve", "--config", "/etc/wsgate/wsgate.yaml"]
