# meshguard: an admission webhook and CLI that guard Istio meshes at deploy time.
# `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/meshguard/meshguard/cmd/meshguard/app.Version=$(VERSION)
export GOFLAGS ?= -buildvcs=false

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Format the Go code.
	$(GO) fmt ./...

.PHONY: lint
lint: ## Run go vet and check formatting.
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: update-golden
update-golden: ## Regenerate golden files (expected findings, README rule table); review the diff.
	UPDATE_GOLDEN=1 $(GO) test ./...
	$(MAKE) docs

.PHONY: docs
docs: build ## Regenerate the README rule table from the catalog and the chart README's value table from values.yaml.
	$(BIN)/meshguard rules list -o markdown > $(BIN)/rules-table.md
	python3 hack/replace-section.py README.md RULES-TABLE $(BIN)/rules-table.md
	$(GO) run ./hack/chartdoc charts/meshguard > $(BIN)/chart-values.md
	python3 hack/replace-section.py charts/meshguard/README.md VALUES $(BIN)/chart-values.md

.PHONY: verify
verify: lint build ## Check formatting, vet, and that generated docs are current.
	$(BIN)/meshguard rules list -o markdown > $(BIN)/rules-table.md
	python3 hack/replace-section.py --check README.md RULES-TABLE $(BIN)/rules-table.md
	$(GO) run ./hack/chartdoc charts/meshguard > $(BIN)/chart-values.md
	python3 hack/replace-section.py --check charts/meshguard/README.md VALUES $(BIN)/chart-values.md

##@ Build

.PHONY: build
build: ## Build bin/meshguard.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/meshguard ./cmd/meshguard

.PHONY: tools
tools: ## Build kube-apiserver, etcd, kubectl and helm from source into bin/ (cached per version outside the clone; the first build takes minutes).
	GO=$(GO) bash hack/tools.sh

.PHONY: image
image: ## Build the OCI image tarball dist/meshguard-image.tar (static non-root binary; no Docker engine needed; see Dockerfile).
	$(GO) run ./hack/image -version $(VERSION) -ldflags "$(LDFLAGS)" -o dist/meshguard-image.tar

##@ Test

.PHONY: test
test: verify tools ## Run every test (unit, catalog fixtures, CLI, e2e against a real API server) after verify.
	MESHGUARD_E2E=required $(GO) test -count=1 ./...

.PHONY: bench
bench: ## Run the evaluator benchmarks, the webhook load test over HTTPS, and the hostile-load floods (see BENCHMARKS.md).
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./rules/ | tee bench.out
	$(GO) run ./test/load | tee bench-load.out
	$(GO) run ./test/load -hostile | tee bench-hostile.out

##@ Demo

.PHONY: demo
demo: tools build ## Start a local control plane and meshguard serve, apply the Bookinfo examples with kubectl, show what is denied and why, then clean up.
	$(GO) run ./test/demo -bin $(BIN) -meshguard $(BIN)/meshguard

.PHONY: audit-example
audit-example: build ## Audit the bundled Bookinfo example offline (no cluster needed).
	$(BIN)/meshguard audit -f examples/bookinfo/insecure || test $$? -eq 1
