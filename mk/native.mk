# The native data plane (issue 13): engine/core (crate velocity-core) built as the
# extension module velocity_engine._core, i.e. next to engine/velocity_engine/__init__.py
# in the editable install, by setuptools-rust 1.13.0 (pyproject.toml pins it and declares
# the extension; docs/engine.md, "Building the core", says why).
#
#   make install        `pip install -e` builds the core with the venv; after that the
#                       rule below rebuilds it in place when a Rust source of the core or
#                       of a crate it uses changed, and costs nothing (no cargo run) when
#                       none did: the test tiers all depend on install and never rebuild it
#   make native         the same rebuild alone (kept for habit and scripts)
#   make test-native    clippy with the PyO3 binding and the integration tests of
#                       tests/integration/native (in make test; cargo tests run in test-rust)
#   make lint-native    fmt and clippy of engine/core alone, with and without the binding
#
# The cargo target directory is the Makefile's CARGO_TARGET (CARGO_TARGET_DIR honoured).

# Everything cargo reads to build the core: its crate, the crates it depends on in the
# workspace (velocity-proto, velocity-lsm) and the workspace manifest and lock file.
# (find, not wildcard: the sources have subdirectories.)
NATIVE_CRATES := engine/core engine/lsm proto/rust
NATIVE_SRCS := $(shell find $(NATIVE_CRATES) \( -name target -prune \) -o \( -path '*/src/*.rs' -o -name Cargo.toml -o -name build.rs \) -print 2>/dev/null) \
	Cargo.toml Cargo.lock
# The suffix of this interpreter's extension modules (.cpython-311-x86_64-linux-gnu.so).
# (Target names expand when make reads this file, possibly before .venv exists: then
# the interpreter the venv is made from answers, which is the same Python.)
NATIVE_EXT_SUFFIX = $(shell { $(PY) -c '$(NATIVE_SUFFIX_PY)' || $(PYTHON) -c '$(NATIVE_SUFFIX_PY)'; } 2>/dev/null)
NATIVE_SUFFIX_PY = import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))
NATIVE_SO := engine/velocity_engine/_core$(NATIVE_EXT_SUFFIX)
# PyO3 builds against the venv's interpreter and leaves libpython unlinked, as an
# extension module must (setuptools-rust sets the same). PYO3_PYTHON is spelled the same
# way in every build (pip would pass .venv/bin/python3, build_inplace.py .venv/bin/python):
# pyo3's build script reruns when it changes, and the core with it.
NATIVE_ENV = CARGO_TARGET_DIR=$(CARGO_TARGET) PYO3_PYTHON=$(CURDIR)/$(PY) PYO3_BUILD_EXTENSION_MODULE=1

.PHONY: native test-native lint-native

install: $(NATIVE_SO)

native: $(NATIVE_SO) ## Rebuild the native core (engine/core) in place if a Rust source changed (make install does it too)

# Order-only on the venv: its setuptools-rust runs the build, and pip's own build of the
# core (pyproject.toml changed) does not make this rule run again. On a fresh clone it
# does run once after pip (make looked for the library before pip made it): cargo finds
# everything fresh, about a second.
# build_inplace.py copies the library next to the package and renames it into place: a
# running engine keeps the file it loaded. The touch covers a cargo that found nothing to do.
$(NATIVE_SO): $(NATIVE_SRCS) | $(VENV)/.installed
	@echo "building velocity_engine._core (cargo --release in $(CARGO_TARGET))"
	$(NATIVE_ENV) $(PY) engine/core/build_inplace.py >$(VENV)/native-build.log 2>&1 || \
		{ tail -n 40 $(VENV)/native-build.log >&2; echo "error: building the native core failed (log: $(VENV)/native-build.log)" >&2; exit 1; }
	@touch $@

lint-native: venv ## cargo fmt --check and clippy -D warnings of engine/core (with and without the binding)
	$(CARGO) fmt --check -p velocity-core
	CARGO_TARGET_DIR=$(CARGO_TARGET) $(CARGO) clippy -p velocity-core --all-targets -- -D warnings
	$(NATIVE_ENV) $(CARGO) clippy -p velocity-core --all-targets --features python -- -D warnings

# In make test: the core's fmt, clippy, cargo tests and docs run in test-rust (a default
# member of the workspace); this tier adds the binding and the engine through it.
TEST_TARGETS += test-native

test-native: native ## clippy of the PyO3 binding, then the engine integration tests against the native core
	$(NATIVE_ENV) $(CARGO) clippy --locked -p velocity-core --all-targets --features python -- -D warnings
	$(PY) -m pytest tests/integration/native $(PYTEST_ARGS)

# The engine integration suites on the previous (Python) data plane, kept as a fallback for
# one release (--data-plane python): every engine a test starts without choosing a plane runs
# Python. About 10 minutes on 2 cores, so not in make test; make test-integration runs the
# same suites on the native plane, the default.
.PHONY: test-integration-python
test-integration-python: install ## The engine integration suites with every engine on the Python data plane (the fallback)
	VELOCITY_TEST_DATA_PLANE=python $(PY) -m pytest tests/integration/engine tests/integration/security \
		tests/integration/storage tests/integration/cli tests/integration/replication \
		tests/integration/linearizability $(PYTEST_ARGS)
