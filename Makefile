# kvflow. `make run` runs an example flow on the embedded default (SQLite +
# a local directory); `make test` runs the whole suite against a real
# PostgreSQL and MinIO that it installs when missing, starts and stops.
SHELL   := /bin/bash
GO      ?= go
BIN     := bin/kvflow
TESTSVC := $(GO) run ./internal/testsvc/cmd/testsvc
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target that
# found nothing when a -fuzztime duration runs out (golang/go#75804, fixed in 1.27).
FUZZTIME ?= 50000x
# Stamped into the binaries: kvflow --version prints them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Where `make terraform-provider` puts the provider for a dev_overrides block.
TF_PLUGIN_DIR ?= $(HOME)/.terraform.d/plugins-dev

.PHONY: build install terraform-provider run test test-deps services lint fuzz bench clean

build:
	@$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kvflow

# kvflow into $(go env GOPATH)/bin (or $GOBIN): have that folder on PATH.
install:
	@$(GO) install -ldflags "$(LDFLAGS)" ./cmd/kvflow

# The Terraform provider, where the README's dev_overrides block points.
terraform-provider:
	@mkdir -p $(TF_PLUGIN_DIR)
	@$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(TF_PLUGIN_DIR)/terraform-provider-kvflow ./cmd/terraform-provider-kvflow

run: build
	@$(BIN) run examples/counter.yaml

# The whole suite: lint, every package's tests with -race against real
# services, then a short run of every fuzz target.
test: test-deps lint
	$(TESTSVC) run -- $(GO) test -race -count=1 -timeout 60m ./...
	$(MAKE) fuzz

# PostgreSQL 15 and MinIO (testsvc install), Chromium for the UI tests, and
# a terraform CLI check for the provider's acceptance tests.
test-deps:
	$(TESTSVC) install
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is missing and could not be installed" >&2; exit 1; }
	@command -v terraform >/dev/null || { echo "terraform CLI is missing: the provider's acceptance tests need it (it is not in Debian's packages)" >&2; exit 1; }
	@command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

# Start PostgreSQL and MinIO for a shell: prints their URLs, stops on Ctrl-C.
services:
	$(TESTSVC) run -- bash -c 'env | grep ^KVFLOW_TEST_; echo "Ctrl-C to stop"; sleep infinity'

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fuzz:
	$(GO) test ./storage -run '^$$' -fuzz '^FuzzValidateNames$$' -fuzztime $(FUZZTIME)
	$(GO) test ./storage -run '^$$' -fuzz '^FuzzParseAs$$' -fuzztime $(FUZZTIME)
	$(GO) test ./storage -run '^$$' -fuzz '^FuzzIONRoundTrip$$' -fuzztime $(FUZZTIME)
	$(GO) test ./template -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME)

# Benchmarks recorded in BENCHMARKS.md, each beside its floor in the same run.
bench:
	$(TESTSVC) run -- $(GO) test ./storage -run '^$$' -bench '^Benchmark(Set|Get|List)$$' -benchtime 2000x -count 5
	$(TESTSVC) run -- $(GO) test ./storage -run '^$$' -bench 'SetConcurrent16' -benchtime 4000x -count 3
	$(TESTSVC) run -- $(GO) test ./internal/etcdbench -run '^$$' -bench . -benchtime 2000x -count 5
	$(TESTSVC) run -- $(GO) test ./storage -run '^$$' -bench 'List_1MKeys' -benchtime 500x -count 3 -timeout 30m
	$(TESTSVC) run -- $(GO) test ./storage -run '^$$' -bench 'Stream' -benchtime 1x -timeout 40m
	$(TESTSVC) run -- $(GO) test ./api -run '^$$' -bench . -benchtime 3000x -count 3
	$(TESTSVC) run -- $(GO) test ./engine -run '^$$' -bench . -count 3
	$(GO) test ./template -run '^$$' -bench . -benchtime 20000x -count 3
	$(GO) test ./cmd/kvflow -run '^$$' -bench RunProcess -benchtime 50x -count 3

clean:
	rm -rf bin
