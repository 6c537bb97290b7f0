# Benchmarks (docs/benchmarks.md): the Go load generator bench/vbench, its tests,
# and shortcuts around bench/compare.py. Included by the Makefile, whose own
# `bench` target runs the full comparison.

# The Go toolchain already on the machine; builds never touch go.mod/go.sum and keep
# their caches outside the repository (Go's defaults under ~/.cache and ~/go).
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VBENCH_ENV := CGO_ENABLED=0 GOFLAGS=-mod=readonly
VBENCH_BIN := bench/.build/vbench
VBENCH_SRCS := $(wildcard bench/vbench/*.go bench/vbench/go.mod)

# vbench must stay byte-compatible with proto/vectors: its tests are part of `make test`,
# as are the harness tests (parsers, /proc accounting, one run against a real engine).
TEST_TARGETS += test-vbench test-bench

.PHONY: vbench test-vbench test-bench bench-deps bench-quick bench-profile

$(VBENCH_BIN): $(VBENCH_SRCS)
	@mkdir -p $(@D)
	cd bench/vbench && $(VBENCH_ENV) $(GO) build -trimpath -o ../.build/vbench .

vbench: $(VBENCH_BIN) ## Build the V-Proto load generator into bench/.build/vbench

test-vbench: ## go vet + go test of bench/vbench (against proto/vectors and the Python codec's fixtures)
	cd bench/vbench && $(VBENCH_ENV) $(GO) vet ./... && $(VBENCH_ENV) $(GO) test -count=1 ./...

# bench-deps: the storage scripts' smoke test runs Redis beside the engine (apt-get only if missing).
test-bench: install $(VBENCH_BIN) bench-deps ## The benchmark harness (bench/velocity_bench) incl. one real engine run
	$(PY) -m pytest tests/bench $(PYTEST_ARGS)

bench-deps: install $(VBENCH_BIN) ## redis-server + redis-tools (apt-get, if missing) and vbench
	@command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || \
		(DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		 DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 redis-server redis-tools)

bench-quick: bench-deps ## Smoke run of bench/compare.py (small -n; numbers not for the record)
	$(PY) bench/compare.py --quick --no-doc --json-out bench/.build/quick.json

# py-spy sees Python frames only, so this profiles the Python data plane (the fallback);
# the native core's flame graph is bench/native_flame.sh (perf).
bench-profile: bench-deps ## py-spy the Python data plane under load (bench/results/profile.md + collapsed stacks)
	VELOCITY_DATA_PLANE=python $(PY) bench/compare.py --profile --scenarios velocity-tls --no-doc --json-out bench/.build/profile.json

# Storage benchmarks (issue 3; docs/benchmarks.md "Storage"). Long (minutes, ~2 GB of
# temporary data): NOT part of `make test`; tests/bench/test_storage_scripts.py runs
# both scripts in a tiny mode there so they cannot rot.
.PHONY: bench-storage bench-restart bench-table-reads

bench-restart: install ## Restart time with ~1 GiB of data: WAL replay, tables + WAL tail, tables only
	@mkdir -p bench/.build
	$(PY) bench/restart.py --json-out bench/.build/restart.json

bench-table-reads: bench-deps ## GET latency for keys in SSTables (bloom hit / miss), Redis beside it
	@mkdir -p bench/.build
	$(PY) bench/table_reads.py --json-out bench/.build/table_reads.json

bench-storage: bench-restart bench-table-reads ## Both storage benchmarks
