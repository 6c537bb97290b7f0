# The native data plane (issue 13): engine/core (crate velocity-core) built as the
# extension module velocity_engine._core into the editable install, i.e. next to
# engine/velocity_engine/__init__.py, by setuptools-rust (pinned below; the build
# tool of record, docs/engine.md says why) running `build_rust --inplace --release`
# from engine/core/build_inplace.py. `make install` does not build it yet: the
# engine runs it only with `--data-plane native` (VELOCITY_DATA_PLANE=native).
#
#   make native         build (release) and install the extension; a no-op when up to date
#   make test-native    clippy with the PyO3 binding and the integration tests of
#                       tests/integration/native (in make test; cargo tests run in test-rust)
#   make lint-native    fmt and clippy of engine/core alone, with and without the binding
#
# CARGO_TARGET_DIR is honoured (agents sharing a machine build in their own dirs).

SETUPTOOLS_RUST_VERSION := 1.13.0
NATIVE_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
NATIVE_SRCS := $(wildcard engine/core/Cargo.toml engine/core/src/*.rs proto/rust/Cargo.toml proto/rust/src/*.rs \
	proto/rust/src/generated/*.rs) Cargo.toml Cargo.lock
# The suffix of this interpreter's extension modules (.cpython-311-x86_64-linux-gnu.so).
# (Target names expand when make reads this file, possibly before .venv exists: then
# the interpreter the venv is made from answers; `native` re-reads it in a sub-make.)
NATIVE_EXT_SUFFIX = $(shell { $(PY) -c '$(NATIVE_SUFFIX_PY)' || python3 -c '$(NATIVE_SUFFIX_PY)'; } 2>/dev/null)
NATIVE_SUFFIX_PY = import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))
NATIVE_SO = engine/velocity_engine/_core$(NATIVE_EXT_SUFFIX)
# For the clippy run with the binding: PyO3 builds against the venv's interpreter and
# leaves libpython unlinked, as an extension module must (setuptools-rust sets the same).
NATIVE_ENV = CARGO_TARGET_DIR=$(NATIVE_TARGET_DIR) PYO3_PYTHON=$(CURDIR)/$(PY) PYO3_BUILD_EXTENSION_MODULE=1

.PHONY: native test-native lint-native

native: install ## Build the native data plane (engine/core) into the editable install (velocity_engine._core)
	@$(PY) -c 'import setuptools_rust as s, sys; sys.exit(s.__version__ != "$(SETUPTOOLS_RUST_VERSION)")' 2>/dev/null || \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check setuptools-rust==$(SETUPTOOLS_RUST_VERSION)
	@$(MAKE) --no-print-directory $(NATIVE_SO)

# build_rust copies the library next to the package and renames it into place:
# a running engine keeps the file it loaded.
$(NATIVE_SO): $(NATIVE_SRCS)
	CARGO_TARGET_DIR=$(NATIVE_TARGET_DIR) $(PY) engine/core/build_inplace.py
	@touch $@

lint-native: install ## cargo fmt --check and clippy -D warnings of engine/core (with and without the binding)
	$(CARGO) fmt --check -p velocity-core
	CARGO_TARGET_DIR=$(NATIVE_TARGET_DIR) $(CARGO) clippy -p velocity-core --all-targets -- -D warnings
	$(NATIVE_ENV) $(CARGO) clippy -p velocity-core --all-targets --features python -- -D warnings

# In make test: the core's fmt, clippy, cargo tests and docs run in test-rust (a default
# member of the workspace); this tier adds the binding and the engine through it.
TEST_TARGETS += test-native

test-native: native ## clippy of the PyO3 binding, then the engine integration tests against the native core
	$(NATIVE_ENV) $(CARGO) clippy --locked -p velocity-core --all-targets --features python -- -D warnings
	$(PY) -m pytest tests/integration/native $(PYTEST_ARGS)
