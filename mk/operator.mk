# The Velocity operator (issue 6): CRD generation and its test tiers.
#
#   make crds            regenerate crds/*.yaml and manifests/crds.yaml from the pydantic models
#   make check-crds      fail if the committed CRD YAML drifted from the models
#   make test-operator   operator against a real kube-apiserver (tier 1 of the Kubernetes
#                        harness); builds the Kubernetes binaries first if they are missing
#                        (hack/k8s-build.sh is idempotent and caches in ~/.cache/velocity-k8s)
#   make run-operator    run the operator against the current kubeconfig
#   make deploy          images + CRDs + manifests/ into the cluster of $KUBECONFIG
#
# The unit tests (tests/unit/operator) run with `make test-unit`; test-operator is part of
# `make test` (its binaries are the same cache the harness's tier-1 tests build).

TEST_TARGETS += test-operator

.PHONY: crds check-crds test-operator operator-k8s-bins run-operator

crds: venv ## Regenerate the CRD YAML from the operator's pydantic models
	$(PY) -m velocity_operator.api.crdgen

check-crds: venv ## Fail if crds/ or manifests/crds.yaml drifted from the models
	$(PY) -m velocity_operator.api.crdgen --check

operator-k8s-bins:
	@nice -n 19 bash hack/k8s-build.sh >/dev/null

test-operator: install check-crds operator-k8s-bins ## Operator integration tests on a real kube-apiserver
	$(PY) -m pytest tests/operator $(PYTEST_ARGS)

run-operator: install ## Run the operator against the current kubeconfig
	$(VENV)/bin/velocity-operator

# Deploy into the cluster of $KUBECONFIG: build (and, on the local cluster, import) the
# images with `make images`, then apply the CRDs and the kustomization.
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo "$$(bash hack/k8s-build.sh --bin-dir)/kubectl")

.PHONY: deploy
deploy: install ## Build/load the images, apply crds/ and manifests/ to the current cluster
	$(MAKE) images
	$(KUBECTL) apply --server-side -f crds/
	$(KUBECTL) apply --server-side -k manifests/
	$(KUBECTL) -n velocity-system rollout status deployment/velocity-operator --timeout=180s
