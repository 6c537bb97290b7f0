# Storage engine (docs/storage.md). Its unit and integration tests are part of
# `make test` already (tests/unit/storage, tests/integration/storage); these
# targets run them alone, and a longer crash soak that is not part of `make test`.

CRASH_ROUNDS ?= 500

.PHONY: test-storage test-storage-soak check-data

test-storage: install ## Storage tests only: WAL, tables, compaction, snapshots, crash rounds (50), full disk
	$(PY) -m pytest tests/unit/storage tests/integration/storage $(PYTEST_ARGS)

test-storage-soak: install ## SIGKILL crash soak: CRASH_ROUNDS (500) rounds under appendfsync=always
	VELOCITY_CRASH_ROUNDS=$(CRASH_ROUNDS) $(PY) -m pytest tests/integration/storage/test_crash.py \
		-p no:timeout $(PYTEST_ARGS)

check-data: install ## Check a stopped engine's data dir (DATA_DIR): WAL, manifest, every table block
	$(VENV)/bin/velocity-engine check --data-dir $(DATA_DIR)
