# Replication (docs/replication.md). The streaming, failover and partition tests
# run in `make test-integration` (tests/integration/replication); the Lease-based
# election needs a real kube-apiserver, so it is its own tier, after the
# Kubernetes binaries are built (k8s-bins, mk/k8s.mk).

TEST_TARGETS += test-replication-lease

.PHONY: test-replication-lease replication-figures

test-replication-lease: install k8s-bins ## Lease election against a real kube-apiserver (tier-1 harness)
	VELOCITY_LEASE_TESTS=1 $(PY) -m pytest tests/integration/replication/test_lease.py tests/integration/replication/test_lease_switchover.py \
		tests/integration/native/test_native_lease.py $(PYTEST_ARGS)

replication-figures: install ## Measure replication lag, sync-mode cost, failover and switchover times
	$(PY) -m tests.integration.replication.measure
