# keygate — `make help` lists the targets.
GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s
GRPCURL_VERSION     := v1.9.4
STATICCHECK_VERSION := v0.8.2
export PATH := $(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help build run test bench bench-jwt bench-hmac load fuzz lint tools vet debian-packages envoy-check

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/keygate (static, -trimpath, version from git)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/keygate ./cmd/keygate
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kgbench ./cmd/kgbench

run: build ## build and start keygate with the embedded defaults (data in ./data)
	$(BIN)/keygate serve

tools: $(BIN)/grpcurl debian-packages ## install the tools the tests use (idempotent)

debian-packages: ## install the Debian packages the tests use (scripts/install-debian-packages.sh; idempotent)
	@scripts/install-debian-packages.sh

$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

test: tools ## every test, with the race detector (installs what the tests need)
	$(GO) test -race -count=1 -timeout 15m ./...
	cd k8s && $(GO) test -count=1 ./...

vet: ## go vet
	$(GO) vet ./...

.PHONY: k8s-check image release
k8s-check: ## build every kustomization in k8s/ and strictly decode each object (its own Go module)
	cd k8s && $(GO) test -count=1 ./...

DOCKER ?= docker
image: ## build the container image keygate:VERSION from the Dockerfile (needs Docker; DOCKER=podman works too)
	@command -v $(DOCKER) >/dev/null 2>&1 || { \
	  echo "make image: '$(DOCKER)' is not installed. Install Docker (or Podman and run make image DOCKER=podman)," >&2; \
	  echo "or run on a machine that has it: $(DOCKER) build --build-arg VERSION=$(VERSION) -t keygate:$(VERSION) ." >&2; \
	  exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { \
	  echo "make image: '$(DOCKER)' is installed but cannot reach its engine (is the daemon running?)." >&2; \
	  echo "Start it, or run on a machine that has one: $(DOCKER) build --build-arg VERSION=$(VERSION) -t keygate:$(VERSION) ." >&2; \
	  exit 1; }
	$(DOCKER) build --build-arg VERSION=$(VERSION) -t keygate:$(VERSION) .

RELEASE_PLATFORMS := linux/amd64 linux/arm64
release: ## static linux/amd64 and linux/arm64 binaries in dist/ (version from git) with dist/SHA256SUMS
	rm -rf dist && mkdir -p dist
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; out=dist/keygate-$(VERSION)-$$os-$$arch; \
	  echo "building $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/keygate; \
	done
	cd dist && sha256sum keygate-* > SHA256SUMS && cat SHA256SUMS

envoy-check: ## decode every Envoy config into go-control-plane's Bootstrap, Validate() it and lint it for unsafe settings
	$(GO) test -count=1 ./envoy/

bench: build ## in-process benchmarks, then the loopback load runs (API key, JWT, HMAC) against a no-op ext_authz server
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./credentials/ ./extauthz/ ./bolt/
	$(BIN)/kgbench --keygate $(BIN)/keygate
	@$(MAKE) --no-print-directory bench-jwt
	@$(MAKE) --no-print-directory bench-hmac

bench-hmac: build ## only the HMAC load runs: RFC 9421 and legacy timestamp.body, 1 KiB and 64 KiB bodies, every request freshly signed
	@set -e; for scheme in rfc9421 timestamp-body; do for body in 1024 65536; do \
	  $(BIN)/kgbench --keygate $(BIN)/keygate --mode hmac --scheme $$scheme --body $$body --rounds 4; \
	done; done

bench-jwt: build ## only the JWT load runs: each algorithm with the verified-token cache (repeat token) and without it
	@set -e; for alg in HS256 RS256 ES256 EdDSA; do \
	  $(BIN)/kgbench --keygate $(BIN)/keygate --mode jwt --alg $$alg --rounds 4; \
	  $(BIN)/kgbench --keygate $(BIN)/keygate --mode jwt --alg $$alg --uncached --rounds 2; \
	done

load: build ## only the loopback load run (keygate vs no-op server)
	$(BIN)/kgbench --keygate $(BIN)/keygate

fuzz: ## run every fuzz test for FUZZTIME (default 30s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; done

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...
	@test -x $(BIN)/staticcheck || GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(BIN)/staticcheck ./...
