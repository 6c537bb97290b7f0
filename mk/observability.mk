# Observability (issue 7, docs/observability.md): Grafana dashboards and Prometheus alert
# rules built as code, and the tier that proves them against promtool, a live engine and a
# real Prometheus. Included by the Makefile.

TEST_TARGETS += test-dashboards

# RUNBOOK_BASE_URL: where alerts' runbook_url and the dashboards' Runbooks link point
# (default in dashboards/velocity_dashboards/settings.py; docs/observability.md).
RUNBOOK_BASE_URL ?=
DASHBOARDS_GEN := PYTHONPATH=dashboards $(PY) -m velocity_dashboards $(if $(RUNBOOK_BASE_URL),--runbook-base-url '$(RUNBOOK_BASE_URL)')

.PHONY: dashboards check-dashboards prometheus-tools test-dashboards

dashboards: venv ## Regenerate dashboards/*.json and manifests/monitoring/{velocity.rules.yml,prometheusrule,grafana-dashboards}.yaml
	$(DASHBOARDS_GEN)

check-dashboards: venv ## Fail if the committed dashboards or monitoring manifests differ from the generator
	$(DASHBOARDS_GEN) --check

# Debian's prometheus package brings both `prometheus` and `promtool`; installed only when
# one is missing, so reruns cost nothing.
prometheus-tools: ## Install Debian's prometheus + promtool if missing (needs root/apt)
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
		echo "installing Debian's prometheus (prometheus + promtool)"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@promtool --version | head -n 1

# The Kubernetes test binaries (hack/k8s-build.sh, cached in ~/.cache/velocity-k8s and
# never rebuilt): the operator's metrics are scraped from a real operator on the tier-1
# API server, and their kubectl builds the kustomize overlay.
test-dashboards: install prometheus-tools ## Dashboards/alerts: drift, promtool, live engine/operator metrics, real Prometheus
	@nice -n 19 bash hack/k8s-build.sh >/dev/null
	$(PY) -m pytest tests/dashboards $(PYTEST_ARGS)
