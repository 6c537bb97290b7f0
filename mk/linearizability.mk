# Linearizability (docs/replication.md, "Linearizability"): histories of 8 clients
# against 3 real engines in sync mode under faults, checked with porcupine by the Go
# program in tests/linearizability/checker (a module of its own; go.sum pins porcupine).
#
# The short version (tens of thousands of operations per scenario, ~3-4 min) runs in
# `make test-integration` (tests/integration/linearizability); the checker's own Go
# tests run here. The long version stretches every load phase.

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
LIN_CHECKER := tests/linearizability/checker
LIN_GO_ENV := CGO_ENABLED=0 GOFLAGS=-mod=readonly
LINEARIZABILITY_SCALE ?= 8

TEST_TARGETS += test-linearizability-checker

.PHONY: test-linearizability-checker test-linearizability

test-linearizability-checker: ## go vet + go test of the porcupine checker (model, unknown outcomes, bad input)
	cd $(LIN_CHECKER) && $(LIN_GO_ENV) $(GO) vet ./... && $(LIN_GO_ENV) $(GO) test -count=1 ./...

test-linearizability: install test-linearizability-checker ## Long linearizability run (LINEARIZABILITY_SCALE=8: ~250-400k ops per scenario)
	LINEARIZABILITY_SCALE=$(LINEARIZABILITY_SCALE) LINEARIZABILITY_RESULTS=$(CURDIR)/.velocity/linearizability.jsonl \
		$(PY) -m pytest tests/integration/linearizability tests/integration/replication/test_issue12.py -s --timeout 1800 $(PYTEST_ARGS)
