# Kubernetes harness (docs/kubernetes.md): binaries, tier 1 (API server), the local
# cluster (tier 2) and the e2e suite. Included by the Makefile.

K8S_BUILD := hack/k8s-build.sh
E2E_ARGS ?=
KIND ?= kind
KIND_CLUSTER ?= velocity-e2e
KIND_KUBECONFIG ?= $(CURDIR)/.velocity/kind.kubeconfig

# Both tiers are part of `make test`: tier 1 (etcd + kube-apiserver +
# kube-controller-manager as host processes) and the e2e suite on a fresh local
# cluster. Measured cold (empty caches, 2 shared cores): binaries 23-25 min, images
# 2.5-6.5 min, cluster + e2e 2 min: ~31 min of CI's 90 (docs/kubernetes.md).
TEST_TARGETS += test-kube test-e2e

.PHONY: k8s-bins test-kube test-e2e cluster-up cluster-down e2e e2e-kind

k8s-bins: ## Build the Kubernetes binaries missing from ~/.cache/velocity-k8s (never rebuilds)
	@bash $(K8S_BUILD)

test-kube: install k8s-bins ## Tier 1: real etcd + kube-apiserver + controller-manager tests
	$(PY) -m pytest tests/kube $(PYTEST_ARGS)

cluster-up: k8s-bins ## Start the single-node local cluster (root); last line: its kubeconfig
	@bash hack/cluster/up.sh

cluster-down: ## Stop the local cluster and remove all its state, network state included
	@bash hack/cluster/down.sh

# The e2e suite on the local cluster (hack/e2e.sh): `e2e` brings the cluster up if
# needed and leaves it running (the development loop); `test-e2e` (part of `make test`)
# starts from a clean machine state and removes the cluster afterwards. Both build and
# import the images first and fail loudly if any step cannot run.
e2e: install k8s-bins ## Run the e2e suite on the local cluster (bringing it up, loading images)
	PY=$(PY) bash hack/e2e.sh $(E2E_ARGS)

test-e2e: install k8s-bins ## e2e on a fresh local cluster, removed afterwards (what make test runs)
	PY=$(PY) bash hack/e2e.sh --fresh $(E2E_ARGS)

# For users with docker and kind (cannot run on machines without a registry).
e2e-kind: install ## Create a kind cluster (e2e/kind-config.yaml), load the images, run e2e/
	@command -v $(KIND) >/dev/null || { echo "error: kind is not installed (https://kind.sigs.k8s.io)" >&2; exit 1; }
	@command -v docker >/dev/null || { echo "error: docker is not installed" >&2; exit 1; }
	docker build -f images/engine/Dockerfile -t velocity/engine:dev .
	docker build -f images/operator/Dockerfile -t velocity/operator:dev .
	docker build -f images/s3/Dockerfile -t velocity/s3:dev .
	docker build -f images/clients/Dockerfile -t velocity/clients:dev .
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) get clusters | grep -x $(KIND_CLUSTER) >/dev/null || \
		$(KIND) create cluster --name $(KIND_CLUSTER) --config e2e/kind-config.yaml --kubeconfig $(KIND_KUBECONFIG) --wait 120s
	$(KIND) get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG)
	$(KIND) load docker-image --name $(KIND_CLUSTER) velocity/engine:dev velocity/operator:dev velocity/s3:dev velocity/clients:dev
	VELOCITY_IMAGE_PULL_POLICY=Never $(PY) -m pytest e2e --kubeconfig $(KIND_KUBECONFIG) --timeout=900 $(E2E_ARGS)
