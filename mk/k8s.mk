# Kubernetes harness (docs/kubernetes.md): binaries, tier 1 (API server), the local
# cluster (tier 2) and the e2e suite. Included by the Makefile.

K8S_BUILD := hack/k8s-build.sh
E2E_ARGS ?=
KIND ?= kind
KIND_CLUSTER ?= velocity-e2e
KIND_KUBECONFIG ?= $(CURDIR)/.velocity/kind.kubeconfig

# Tier 1 (etcd + kube-apiserver + kube-controller-manager as host processes) is part of
# `make test`: its cold build fits CI's budget (numbers in docs/kubernetes.md).
TEST_TARGETS += test-kube

.PHONY: k8s-bins test-kube cluster-up cluster-down e2e e2e-kind

k8s-bins: ## Build the Kubernetes binaries missing from ~/.cache/velocity-k8s (never rebuilds)
	@bash $(K8S_BUILD)

test-kube: install k8s-bins ## Tier 1: real etcd + kube-apiserver + controller-manager tests
	$(PY) -m pytest tests/kube $(PYTEST_ARGS)

cluster-up: k8s-bins ## Start the single-node local cluster (root); last line: its kubeconfig
	@bash hack/cluster/up.sh

cluster-down: ## Stop the local cluster and remove all its state, network state included
	@bash hack/cluster/down.sh

# The e2e suite on the local cluster: brings it up if needed, builds and imports the
# images, then runs e2e/ against its kubeconfig. Fails loudly if any step cannot run.
e2e: install k8s-bins ## Run the e2e suite on the local cluster (bringing it up, loading images)
	@set -euo pipefail; \
	kubeconfig="$$(bash hack/cluster/up.sh | tail -n 1)"; \
	bash hack/images/load.sh $$(bash hack/images/build.sh | tail -n 2); \
	VELOCITY_KUBECTL="$$(bash $(K8S_BUILD) --bin-dir)/kubectl" \
	VELOCITY_IMAGE_PULL_POLICY=Never \
	$(PY) -m pytest e2e --kubeconfig "$$kubeconfig" --timeout=900 $(E2E_ARGS)

# For users with docker and kind (cannot run on machines without a registry).
e2e-kind: install ## Create a kind cluster (e2e/kind-config.yaml), load the images, run e2e/
	@command -v $(KIND) >/dev/null || { echo "error: kind is not installed (https://kind.sigs.k8s.io)" >&2; exit 1; }
	@command -v docker >/dev/null || { echo "error: docker is not installed" >&2; exit 1; }
	docker build -f images/engine/Dockerfile -t velocity/engine:dev .
	docker build -f images/operator/Dockerfile -t velocity/operator:dev .
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) get clusters | grep -x $(KIND_CLUSTER) >/dev/null || \
		$(KIND) create cluster --name $(KIND_CLUSTER) --config e2e/kind-config.yaml --kubeconfig $(KIND_KUBECONFIG) --wait 120s
	$(KIND) get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG)
	$(KIND) load docker-image --name $(KIND_CLUSTER) velocity/engine:dev velocity/operator:dev
	VELOCITY_IMAGE_PULL_POLICY=Never $(PY) -m pytest e2e --kubeconfig $(KIND_KUBECONFIG) --timeout=900 $(E2E_ARGS)
