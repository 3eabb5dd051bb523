# keygate's container image: a static binary on distroless (no shell, no
# package manager), running as the unprivileged user 65532.
#
#   make image                      # docker build --build-arg VERSION=<git describe> -t keygate:<version> .
#   docker run --rm -p 9191:9191 -p 9192:9192 keygate:<version>
#
# The admin API listens on 127.0.0.1:9193 inside the container, so `-p`
# cannot publish it: in Kubernetes use `kubectl port-forward`; with plain
# Docker add `--admin-addr 0.0.0.0:9193` and publish it on the host's loopback
# only (-p 127.0.0.1:9193:9193). /var/lib/keygate holds the store: mount a
# volume there (k8s/ mounts an emptyDir), and give the admin token and master
# key as files (--admin-token-file, --master-key-file; docs/configuration.md).
#
# Plain `docker build` features only (no BuildKit cache mounts), so the legacy
# builder works too. For other platforms: docker buildx build --platform
# linux/arm64 (the builder stage then runs under emulation) or `make release`
# for plain binaries. cmd/keygate/release_test.go keeps the Go version below
# in step with go.mod.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keygate ./cmd/keygate \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keygate /keygate
# An empty, writable data directory for when no volume is mounted.
COPY --from=build --chown=65532:65532 /out/data /var/lib/keygate
USER 65532:65532
# gRPC (ext_authz Check, health) and HTTP (/readyz, /metrics, HTTP check mode).
EXPOSE 9191 9192
ENTRYPOINT ["/keygate"]
CMD ["serve", "--data-dir", "/var/lib/keygate"]
