# chatgpt_reverse_proxy: run `make help` for the targets.
MODULE  := github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(MODULE)/core.Version=$(VERSION) -X $(MODULE)/core.Commit=$(COMMIT) -X $(MODULE)/core.Date=$(DATE)
GO      ?= go

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Run the proxy on 0.0.0.0:9000 (OXY_* settings from the environment)
	$(GO) run ./platforms/chatgpt_reverse_proxy

.PHONY: build
build: ## Build the server binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/chatgpt_reverse_proxy ./platforms/chatgpt_reverse_proxy

# The image: the static server binary for linux/$(DOCKER_ARCH) in a context of
# its own, laid out as goreleaser's dockers_v2 does, and build/Dockerfile
# (FROM scratch: nothing is pulled). DOCKER_BUILDKIT=0 uses the classic builder,
# which needs no buildx plugin.
IMAGE          ?= chatgpt_reverse_proxy:local
DOCKER         ?= docker
DOCKER_ARCH    ?= $(shell $(GO) env GOARCH)
IMAGE_CONTEXT ?= bin/docker
DOCKER_BUILDKIT ?= 0

.PHONY: docker
docker: ## Build the server image (FROM scratch, nothing pulled): make docker [IMAGE=chatgpt_reverse_proxy:local]
	rm -rf $(IMAGE_CONTEXT)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DOCKER_ARCH) $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
		-o $(IMAGE_CONTEXT)/linux/$(DOCKER_ARCH)/chatgpt_reverse_proxy ./platforms/chatgpt_reverse_proxy
	DOCKER_BUILDKIT=$(DOCKER_BUILDKIT) $(DOCKER) build -q -f build/Dockerfile -t $(IMAGE) \
		--build-arg TARGETPLATFORM=linux/$(DOCKER_ARCH) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		$(IMAGE_CONTEXT)

.PHONY: test
test: ## Run go vet and every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

.PHONY: bench
bench: ## Benchmark the server binary against direct, nginx, HAProxy and Caddy on 127.0.0.1 (about 12 min; BENCHFLAGS=-quick for a short run)
	@$(GO) run ./scripts/bench $(BENCHFLAGS)

.PHONY: fmt
fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')

.PHONY: dist
dist: ## Build the release archives of .goreleaser.yaml into dist/: make dist VERSION=x.y.z [DIST_TARGETS=linux/amd64,...]
	@test -n "$(filter command line environment,$(origin VERSION))" || { echo "usage: make dist VERSION=x.y.z" >&2; exit 2; }
	rm -rf dist
	VERSION=$(VERSION) DIST_DIR=dist $(GO) run ./scripts/dist

GORELEASER ?= $(shell $(GO) env GOPATH)/bin/goreleaser
# The snapshot skips the image, which needs docker buildx: RELEASE_SKIP=publish to build it too.
RELEASE_SKIP ?= publish,docker

.PHONY: release-check
release-check: ## Check .goreleaser.yaml and build a snapshot release into dist/ (installs goreleaser v2.15.1)
	test -x $(GORELEASER) || $(GO) install github.com/goreleaser/goreleaser/v2@v2.15.1
	$(GORELEASER) check
	$(GORELEASER) release --snapshot --clean --skip=$(RELEASE_SKIP)
