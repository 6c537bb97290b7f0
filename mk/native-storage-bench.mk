# Native storage measurements (docs/benchmarks.md, "Native storage (velocity-lsm)"):
# io_uring against write+fdatasync for the WAL (bench/wal, and through Db:
# engine/lsm/examples/wal_sync_ab.rs), restart and WAL replay with
# 1 GiB (engine/lsm/examples/restart_bench.rs), memory per key against Redis
# (bench/memory_per_key.py). Not part of `make test`; about 10 minutes and 3 GB of disk.
#
#   make bench-native-storage [NATIVE_STORAGE_DIR=/path/on/the/disk/to/measure]

NATIVE_STORAGE_DIR ?= $(CURDIR)/bench/.build/native-storage

.PHONY: bench-native-storage

bench-native-storage: native bench-deps ## io_uring vs write+fdatasync WAL, 1 GiB restart/replay, memory per key vs Redis
	CARGO_TARGET_DIR=$(NATIVE_TARGET_DIR) $(CARGO) build --release -p velocity-wal-bench
	CARGO_TARGET_DIR=$(NATIVE_TARGET_DIR) $(CARGO) build --release -p velocity-lsm --example restart_bench
	CARGO_TARGET_DIR=$(NATIVE_TARGET_DIR) $(CARGO) build --release -p velocity-lsm --features io-uring --example wal_sync_ab
	$(NATIVE_TARGET_DIR)/release/wal-bench --dir $(NATIVE_STORAGE_DIR)/wal --secs 2 --repeat 5
	$(NATIVE_TARGET_DIR)/release/examples/wal_sync_ab $(NATIVE_STORAGE_DIR)/sync 2 5
	for spec in "tables 1 1000" "tables 1 64" "replay 1 1000" "replay 1 64"; do \
		$(NATIVE_TARGET_DIR)/release/examples/restart_bench $(NATIVE_STORAGE_DIR)/store $$spec 3 || exit 1; \
	done
	$(PY) bench/memory_per_key.py
	rm -rf $(NATIVE_STORAGE_DIR)
