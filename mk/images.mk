# Container images without a registry (docs/images.md). Included by the Makefile.

.PHONY: images image-smoke

images: ## Build the engine, operator, s3 and clients (SDK e2e) images offline (root); import them if the local cluster runs
	@set -euo pipefail; \
	archives="$$(bash hack/images/build.sh | tail -n 2)"; \
	echo "$$archives"; \
	if [[ -S $${VELOCITY_CLUSTER_DIR:-/var/lib/velocity-cluster}/containerd/containerd.sock ]]; then \
		bash hack/images/load.sh $$archives; \
	else \
		echo "local cluster not running: images not imported (make cluster-up, then make images or make e2e)"; \
	fi

# The engine image serves requests from the native core (velocity_engine._core, built into
# the project wheel): run it in a container of a private containerd, not the cluster's.
image-smoke: ## Build the engine image, run it with --data-plane native in a container, check PING/SET/GET/INFO (root)
	@set -euo pipefail; archive="$$(bash hack/images/build.sh engine | tail -n 1)"; \
	bash hack/images/smoke.sh "$$archive"
