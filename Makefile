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
# Every cargo build of the workspace shares one target directory: CARGO_TARGET_DIR when
# set (cargo's own rule), else ./target (gitignored). `make install` builds the native
# core there once; the test tiers, the image build and `make native` reuse it.
CARGO_TARGET := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
CARGO ?= cargo

# Test tiers; mk/*.mk files append their own (TEST_TARGETS += test-foo).
TEST_TARGETS := test-unit test-integration

# Extra workflows (Kubernetes harness, images, dashboards, ...) live in mk/.
-include mk/*.mk

.DEFAULT_GOAL := help
.PHONY: help venv install run test test-unit test-integration lint typecheck generate check-generated vectors bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

# install: the venv and the native core (velocity_engine._core), which mk/native.mk adds as
# a prerequisite: rebuilt only when a Rust source changed, so a no-op costs no cargo run.
install: $(VENV)/.installed ## Create .venv with the engine (native core included), SDK, CLI and dev tools

# venv: the same without the core's rebuild after a Rust change, for the targets that
# run no engine (lint, generators, drift checks). On a fresh clone pip builds the core
# anyway: pyproject.toml declares it.
venv: $(VENV)/.installed ## The venv alone: no rebuild of the core after a Rust change (lint, generators)

# The editable install builds the core too (setuptools-rust, pyproject.toml): ~2 min of
# cargo on a cold target directory. PYO3_PYTHON as mk/native.mk sets it, so the later
# in-place rebuilds and the image's wheel find cargo's artifacts fresh.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	@command -v $(CARGO) >/dev/null || { echo "error: $(CARGO) is missing: make install builds the native core (engine/core, Rust >= 1.85; https://rustup.rs)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@echo "pip install -e '.[dev]' builds the native core (cargo --release; minutes on an empty $(CARGO_TARGET))"
	CARGO_TARGET_DIR=$(CARGO_TARGET) PYO3_PYTHON=$(CURDIR)/$(PY) \
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

lint: venv ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

generate: venv ## Regenerate FlatBuffers code and the test vectors
	$(PY) tools/generate.py fbs
	$(PY) tools/generate.py vectors

check-generated: venv ## Fail if generated code or vectors differ from what the generators produce
	$(PY) tools/generate.py fbs --check
	$(PY) tools/generate.py vectors --check

bench: install ## Velocity against Redis on this machine (writes docs/benchmarks.md)
	$(PY) bench/compare.py

clean: ## Remove the venv, the built core and local data (not cargo's target directory)
	rm -rf $(VENV) .velocity .pytest_cache .mypy_cache .ruff_cache build engine/velocity_engine/_core*.so
