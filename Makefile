# kubectl-dev: see README.md. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

VERSION ?= $(shell git describe --tags --match 'v*' 2>/dev/null || echo v0.0.0-dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG     := github.com/kubectl-dev/kubectl-dev/pkg/version
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(DATE)
export KDEV_VERSION := $(VERSION)
export CGO_ENABLED := 0
# The e2e tests use the cluster in KUBECONFIG when one is given, else the local one.
E2E_FLAGS ?= -count=1 -v -timeout 60m

BINS := kubectl-devpatch kubectl-devssh kubectl-devsync devagent

.PHONY: build
build: ## Build the plugins, the agent and the test-bed tool into bin/
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINS))
	go build -trimpath -o bin/ ./hack/kdev

.PHONY: test
test: lint unit krew-validate e2e e2e-teardown ## Every test: lint, unit, the krew manifests, then e2e on a real cluster

.PHONY: unit
unit: ## Fast tests of pure logic, with the race detector (which needs cgo)
	go vet ./...
	CGO_ENABLED=1 go test -race -count=1 ./cmd/... ./pkg/... ./hack/...

# golangci-lint is built once per machine into the tools cache, per version.
KDEV_CACHE_DIR        ?= /var/cache/kubectl-dev
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := $(KDEV_CACHE_DIR)/tools/$(GOLANGCI_LINT_VERSION)/golangci-lint
# krew's platforms: every one must at least compile, tests included.
LINT_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

# Built into a temporary directory and moved into place: an interrupted
# build leaves no binary behind that make would take as up to date. GOBIN
# must be absolute; GOFLAGS and GOOS/GOARCH of the caller must not apply.
$(GOLANGCI_LINT):
	@set -e; dir=$(abspath $(dir $@)); mkdir -p "$$dir"; tmp=$$(mktemp -d "$$dir/.install.XXXXXX"); \
	 trap 'rm -rf "$$tmp"' EXIT; \
	 echo "go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) (into $$dir)"; \
	 GOBIN="$$tmp" GOFLAGS= GOOS= GOARCH= go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	 mv -f "$$tmp/golangci-lint" $(abspath $@)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## gofmt, go mod tidy, go vet on every krew platform, golangci-lint (.golangci.yml)
	@files=$$(gofmt -l $$(git ls-files '*.go')); \
	 if [ -n "$$files" ]; then echo "gofmt -l: not formatted:"; echo "$$files"; exit 1; fi
	go mod tidy -diff
	@set -e; for p in $(LINT_PLATFORMS); do \
	  echo "GOOS=$${p%/*} GOARCH=$${p#*/} go vet ./..."; GOOS=$${p%/*} GOARCH=$${p#*/} go vet ./...; done
	$(GOLANGCI_LINT) run ./...

.PHONY: e2e
e2e: build ## End-to-end tests on a real cluster (starts the local one when KUBECONFIG is unset)
	go test $(E2E_FLAGS) ./test/e2e/

.PHONY: e2e-teardown
e2e-teardown: build ## Stop the local cluster and check that nothing is left
	@if [ -z "$$KUBECONFIG" ]; then KDEV_E2E_TEARDOWN=1 go test -count=1 -v ./test/e2e/teardown/; \
	 else echo "KUBECONFIG is set: not stopping that cluster"; fi

.PHONY: cluster-up cluster-down cluster-status
cluster-up: build ## Start the local cluster and registry (builds them once per machine)
	bin/kdev cluster up
cluster-down: build ## Stop the local cluster and remove what it left
	bin/kdev cluster down
cluster-status: build ## Show each component of the local cluster
	bin/kdev cluster status

.PHONY: images
images: build ## Build and push the test images to the local registry
	bin/kdev images build --version $(VERSION)

.PHONY: demo
demo: cluster-up images ## The main job end to end on the local cluster
	bin/kdev demo

# PROFILE: loopback (the local cluster as it is) or an emulated link (lan,
# wan, far; hack/link); empty runs all four, each rewriting its own section.
PROFILE ?=
BENCH_PROFILES := $(if $(PROFILE),$(PROFILE),loopback lan wan far)

.PHONY: bench
bench: build ## devsync and devssh benchmarks against kubectl cp, tar | kubectl exec, kubectl exec, per link profile (PROFILE=wan for one); writes docs/benchmarks.md
	@set -e; images=true; for p in $(BENCH_PROFILES); do \
	  echo "go run ./test/bench --profile $$p --images=$$images --out docs/benchmarks.md"; \
	  go run ./test/bench --profile $$p --images=$$images --out docs/benchmarks.md; images=false; done

# A release: see docs/release.md. VERSION must be semver with a v (krew's rule).
DIST       ?= dist
IMAGE_REPO ?=

.PHONY: release
release: ## Cross-compile the plugins, pack dist/, render and validate the krew manifests (VERSION=v0.1.0)
	go run ./hack/release --version $(VERSION) --out $(DIST) --validate

.PHONY: release-image
release-image: ## Build the devagent image index (linux/amd64+arm64) and push it (IMAGE_REPO, default the local registry)
	go run ./hack/release --version $(VERSION) --out $(DIST) --image-only --push-image $(if $(IMAGE_REPO),--image-repo $(IMAGE_REPO))

.PHONY: krew-validate
krew-validate: release ## Render the krew manifests from a local release build and check them with krew's validate-krew-manifest

.PHONY: krew-e2e
krew-e2e: build ## e2e: krew installs each plugin from the rendered manifest; the agent image index runs on the cluster
	go test $(E2E_FLAGS) -run 'TestKrewInstallsThePlugins|TestAgentImageIndex' ./test/e2e/

.PHONY: clean
clean:
	rm -rf bin/

.PHONY: help
help:
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'
