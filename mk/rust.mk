# Rust workspace (Cargo.toml at the root): velocity-proto (proto/rust, the one
# Rust codec), the Rust SDK velocity-sdk (clients/rust), the native core and its
# storage engine (engine/core, engine/lsm). One target dir, the Makefile's CARGO_TARGET
# (CARGO_TARGET_DIR, else target/), shared by fmt, clippy, test and doc (dev profile)
# and the core's release build (mk/native.mk).
# The integration tests start real engines: VELOCITY_ENGINE names the binary.

CARGO ?= cargo
RUST_ENV := CARGO_TARGET_DIR=$(CARGO_TARGET) VELOCITY_ENGINE=$(CURDIR)/$(VENV)/bin/velocity-engine

TEST_TARGETS += test-rust

.PHONY: test-rust bench-rust

test-rust: install ## Rust: fmt --check, clippy -D warnings, unit/vector/engine tests, docs
	$(CARGO) fmt --check
	$(RUST_ENV) $(CARGO) clippy --locked --all-targets -- -D warnings
	$(RUST_ENV) $(CARGO) test --locked
	$(RUST_ENV) RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps

# The bench pins itself to CPU 1 and every server to CPU 0 (taskset), and runs
# bench/vbench against the same engine for each cell (bench-deps builds it).
bench-rust: install bench-deps ## Rust SDK vs vbench and redis-rs vs redis-server, pinned CPUs (writes docs/benchmarks-rust.md)
	$(RUST_ENV) VBENCH=$(CURDIR)/$(VBENCH_BIN) $(CARGO) run --locked -p velocity-bench-rust --bin bench-rust -- --out docs/benchmarks-rust.md
