# meshguard: an admission webhook and CLI that guard Istio meshes at deploy time.
# `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# One build configuration for `make build`, `make image` and hack/image's own
# build (which TestImage runs): a static (CGO_ENABLED=0), -trimpath, stripped
# binary. Same environment and flags, same Go build cache entries, so the
# image reuses what `make build` compiled (only the link step differs).
BUILD_ENV := CGO_ENABLED=0
BUILD_FLAGS := -trimpath
LDFLAGS := -s -w -X github.com/meshguard/meshguard/cmd/meshguard/app.Version=$(VERSION)
GOARCH ?= $(shell $(GO) env GOARCH)
# The slow tier (about a minute on 2 cores): the image build, the demo (a
# second control plane), the certificate rotation, the load tool, and the
# rule compiler's differential test with all six variants. `make test-fast`
# skips the first five and runs the differential test with one variant
# (-short); `make test`, which CI runs, runs both tiers.
SLOW_TESTS := ^(TestImage|TestDemo|TestCertificateRotation|TestLoadSmoke|TestLoadPinned|TestAssertMatchesKyvernoJSON)$$
FAST_SKIP := ^(TestImage|TestDemo|TestCertificateRotation|TestLoadSmoke|TestLoadPinned)$$
SLOW_PKGS := ./test/image ./test/e2e ./test/load ./rules
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
docs: build ## Regenerate the README rule table from the catalog, the chart README's value table from values.yaml and the catalog README's facts tables from the typed facts.
	$(BIN)/meshguard rules list -o markdown > $(BIN)/rules-table.md
	python3 hack/replace-section.py README.md RULES-TABLE $(BIN)/rules-table.md
	$(BIN)/meshguard rules versions > $(BIN)/istio-versions.md
	python3 hack/replace-section.py README.md ISTIO-VERSIONS $(BIN)/istio-versions.md
	$(GO) run ./hack/chartdoc charts/meshguard > $(BIN)/chart-values.md
	python3 hack/replace-section.py charts/meshguard/README.md VALUES $(BIN)/chart-values.md
	$(GO) build -o $(BIN)/factsdoc ./hack/factsdoc
	for f in $(FACTS_TABLES); do \
		$(BIN)/factsdoc rules $${f#*:} > $(BIN)/facts.md && \
		python3 hack/replace-section.py rules/catalog/README.md $${f%%:*} $(BIN)/facts.md || exit 1; \
	done

# FACTS_TABLES are the sections of rules/catalog/README.md generated from typed
# facts (SECTION:RootType, see hack/factsdoc).
FACTS_TABLES = WORKLOAD-FACTS:WorkloadFacts NAMESPACE-FACTS:NamespaceFacts BINDING-FACTS:BindingFacts \
	SERVICE-FACTS:ServiceFacts ENDPOINTS-FACTS:EndpointsFacts GATEWAY-FACTS:GatewayFacts \
	PEERAUTHENTICATION-FACTS:PeerAuthenticationFacts NETWORKPOLICY-FACTS:NetworkPolicyFacts \
	AUTHORIZATIONPOLICY-FACTS:AuthorizationPolicyFacts REQUESTAUTHENTICATION-FACTS:RequestAuthenticationFacts \
	DESTINATIONRULE-FACTS:DestinationRuleFacts SERVICEENTRY-FACTS:ServiceEntryFacts ENVOYFILTER-FACTS:EnvoyFilterFacts \
	EXTENSION-FACTS:ExtensionFacts CONFIGMAP-FACTS:ConfigMapFacts

.PHONY: verify
verify: lint build ## Check formatting, vet, and that generated docs are current.
	$(BIN)/meshguard rules list -o markdown > $(BIN)/rules-table.md
	python3 hack/replace-section.py --check README.md RULES-TABLE $(BIN)/rules-table.md
	$(BIN)/meshguard rules versions > $(BIN)/istio-versions.md
	python3 hack/replace-section.py --check README.md ISTIO-VERSIONS $(BIN)/istio-versions.md
	$(GO) run ./hack/chartdoc charts/meshguard > $(BIN)/chart-values.md
	python3 hack/replace-section.py --check charts/meshguard/README.md VALUES $(BIN)/chart-values.md
	$(GO) build -o $(BIN)/factsdoc ./hack/factsdoc
	for f in $(FACTS_TABLES); do \
		$(BIN)/factsdoc rules $${f#*:} > $(BIN)/facts.md && \
		python3 hack/replace-section.py --check rules/catalog/README.md $${f%%:*} $(BIN)/facts.md || exit 1; \
	done

##@ Build

.PHONY: build
build: ## Build bin/meshguard (static; the image's build configuration).
	$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/meshguard ./cmd/meshguard

.PHONY: tools
tools: ## Build kube-apiserver, etcd, kubectl and helm from source into bin/ (cached per version outside the clone; the first build takes minutes).
	GO=$(GO) bash hack/tools.sh

.PHONY: chromium
chromium: ## Install Chromium from Debian's packages for the HTML report's browser test (hack/install-chromium.sh; does nothing when one is installed).
	bash hack/install-chromium.sh

.PHONY: image
image: ## Build the OCI image tarball dist/meshguard-image.tar (static non-root binary; no Docker engine needed; see Dockerfile).
	GOOS=linux GOARCH=$(GOARCH) $(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/meshguard-linux-$(GOARCH) ./cmd/meshguard
	$(GO) run ./hack/image -version $(VERSION) -goarch $(GOARCH) -binary $(BIN)/meshguard-linux-$(GOARCH) -o dist/meshguard-image.tar

##@ Test

.PHONY: test
test: verify tools test-fast test-slow ## Run every test (unit, catalog fixtures, CLI, e2e against a real API server, and the slow tier) after verify. CI runs this.

.PHONY: test-fast
test-fast: tools chromium ## Every test but the slow tier (image, demo, certificate rotation, load tool; the differential test with one variant): the one to run while working.
	MESHGUARD_E2E=required $(GO) test -count=1 -short -skip '$(FAST_SKIP)' ./...

.PHONY: test-slow
test-slow: tools ## Only the slow tier (see SLOW_TESTS); `make test` runs it after test-fast.
	MESHGUARD_E2E=required $(GO) test -count=1 -run '$(SLOW_TESTS)' $(SLOW_PKGS)

.PHONY: screenshots
screenshots: chromium ## Regenerate docs/images/ (the HTML audit report of examples/bookinfo and its graph, taken by headless Chromium).
	MESHGUARD_E2E=required MESHGUARD_SCREENSHOTS=$(CURDIR)/docs/images $(GO) test -count=1 -run '^TestHTMLReportBookinfo$$' ./test/html/

.PHONY: bench
bench: ## Run the evaluator benchmarks, the webhook load test over HTTPS, the hostile-load floods and the background audit at scale (see BENCHMARKS.md).
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./rules/ | tee bench.out
	$(GO) test -run '^$$' -bench BenchmarkGraph -benchmem -benchtime 3x -count 5 ./graph/ | tee bench-graph.out
	$(GO) test -run '^$$' -bench BenchmarkIntent -benchmem -benchtime 3x -count 5 ./webhook/netpol/ | tee bench-intent.out
	$(GO) run ./test/load | tee bench-load.out
	$(GO) run ./test/matchbench -rollouts 600 -rounds 3 | tee bench-matchconditions.out
	$(GO) run ./test/load -hostile | tee bench-hostile.out
	$(GO) run ./test/posturescale | tee bench-posture.out

##@ Demo

.PHONY: demo
demo: tools build ## Start a local control plane and meshguard serve, apply the Bookinfo examples with kubectl, show what is denied and why, then clean up.
	$(GO) run ./test/demo -bin $(BIN) -meshguard $(BIN)/meshguard

.PHONY: audit-example
audit-example: build ## Audit the bundled Bookinfo example offline (no cluster needed).
	$(BIN)/meshguard audit -f examples/bookinfo/insecure || test $$? -eq 1
