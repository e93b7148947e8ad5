# shoal — run `make help` for the targets.
.DEFAULT_GOAL := help
GO ?= go
PKG := ./...

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build
build: ## Build the shoal binary into bin/shoal (stripped, with the git version)
	$(GO) build -trimpath -ldflags "-s -w -X github.com/shoal-sh/shoal/internal/cli.Version=$(VERSION)" -o bin/shoal ./cmd/shoal

.PHONY: install
install: ## Install shoal into $(go env GOBIN), else $(go env GOPATH)/bin, with the git version
	$(GO) install -ldflags "-X github.com/shoal-sh/shoal/internal/cli.Version=$(VERSION)" ./cmd/shoal
	@bin=$$($(GO) env GOBIN); echo "installed $${bin:-$$($(GO) env GOPATH | cut -d: -f1)/bin}/shoal"

.PHONY: test
test: ## Run every test (services skip when down unless SHOAL_TEST_SERVICES=required)
	$(GO) test -race -timeout 20m $(PKG)

.PHONY: short
short: ## Run the tests without the race detector, quickly
	$(GO) test -timeout 10m $(PKG)

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, and golangci-lint when installed
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKG)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKG)
	@if command -v golangci-lint >/dev/null; then golangci-lint run; else echo "golangci-lint not installed; skipped"; fi

.PHONY: generate
generate: ## Regenerate generated files (config/schema.json and every golden file)
	$(GO) generate ./config
	$(GO) test ./config -run TestLoad_Invalid -update
	$(GO) test ./deploy -run 'TestGenerate_Golden' -update
	$(GO) test ./telemetry -run 'TestAlertRules$$|TestGrafanaDashboard$$' -update

.PHONY: verify
verify: ## Fail when generated files are stale
	$(GO) test ./config -run 'TestSchema_UpToDate|TestLoad_Invalid'
	$(GO) test ./deploy -run 'TestGenerate_Golden'
	$(GO) test ./telemetry -run 'TestAlertRules$$|TestGrafanaDashboard$$'

.PHONY: fuzz
fuzz: ## Fuzz the config loader for 5 minutes (FUZZ=FuzzX PKG=./proxy for another target)
	$(GO) test $(or $(PKG),./config) -run '^$$' -fuzz $(or $(FUZZ),FuzzParse) -fuzztime $(or $(FUZZTIME),5m)

.PHONY: bench
bench: ## Run the Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem $(PKG)
