# Velocity: every workflow starts here. `make run` and `make test` set up
# everything they need on a fresh machine (see README.md).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(CURDIR)/.velocity/data
PORT ?= 2005
METRICS_PORT ?= 9105
PYTEST_ARGS ?=

# Test tiers; mk/*.mk files append their own (TEST_TARGETS += test-foo).
TEST_TARGETS := test-unit test-integration

# Extra workflows (Kubernetes harness, images, dashboards, ...) live in mk/.
-include mk/*.mk

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration lint typecheck generate check-generated vectors bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv with the engine, SDK, CLI and dev tools

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

run: install ## Start the engine on 127.0.0.1:$(PORT) with data, TLS material and token under .velocity/
	@mkdir -p $(DATA_DIR)
	$(VENV)/bin/velocity-engine --data-dir $(DATA_DIR) --port $(PORT) --metrics-port $(METRICS_PORT)

test: install check-generated lint $(TEST_TARGETS) ## Everything: lint, types, unit and integration tests

test-unit: install ## Unit tests (no processes, no network)
	$(PY) -m pytest tests/proto tests/unit $(PYTEST_ARGS)

# tests/integration/native runs in test-native (mk/native.mk), which builds the core first.
test-integration: install ## Real engine processes over real TLS sockets
	$(PY) -m pytest tests/integration --ignore=tests/integration/native $(PYTEST_ARGS)

lint: install ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

generate: install ## Regenerate FlatBuffers code and the test vectors
	$(PY) tools/generate.py fbs
	$(PY) tools/generate.py vectors

check-generated: install ## Fail if generated code or vectors differ from what the generators produce
	$(PY) tools/generate.py fbs --check
	$(PY) tools/generate.py vectors --check

bench: install ## Velocity against Redis on this machine (writes docs/benchmarks.md)
	$(PY) bench/compare.py

clean: ## Remove the venv and local data
	rm -rf $(VENV) .velocity .pytest_cache .mypy_cache .ruff_cache
