# The Helm chart of the operator (charts/velocity-operator, docs/operator/install.md).
# Included by the Makefile.
#
#   make chart        regenerate the chart from manifests/ and crds/ (tools/chart.py), after
#                     regenerating the CRDs: edit manifests/, never the chart
#   make check-chart  fail if the chart differs from what the generator writes (part of
#                     `make check-generated`)
#   make helm         build helm from the Go module proxy (hack/helm/build.sh; version in
#                     hack/helm/go.mod) into ~/.cache/velocity-helm, never rebuilt when present.
#                     Measured on 2 shared cores: ~3-4.5 min cold, 0.01 s when cached.
#   make test-helm    helm lint --strict, helm template against `kubectl kustomize manifests/`
#                     and with every value set, then install/upgrade/uninstall on the tier-1
#                     API server with the operator run as the chart configures it (tests/helm)

HELM_BUILD := hack/helm/build.sh
HELM = $(shell bash $(HELM_BUILD) --path)
CHART := charts/velocity-operator

TEST_TARGETS += test-helm

.PHONY: helm chart check-chart test-helm

helm: ## Build helm from the Go module proxy if missing (cached in ~/.cache/velocity-helm)
	@nice -n 19 bash $(HELM_BUILD) >/dev/null

chart: crds ## Regenerate charts/velocity-operator from manifests/ and the generated CRDs
	$(PY) tools/chart.py

check-chart: venv ## Fail if charts/velocity-operator differs from manifests/ and crds/
	$(PY) tools/chart.py --check

check-generated: check-chart

test-helm: install helm k8s-bins check-chart ## Helm chart: lint, template vs kustomize, install on a real kube-apiserver
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --values tests/helm/values-all.yaml
	$(PY) -m pytest tests/helm $(PYTEST_ARGS)
