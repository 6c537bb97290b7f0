#!/usr/bin/env bash
# Run the e2e suite (e2e/) on the local cluster, as root.
#
# Usage: hack/e2e.sh [--fresh] [PYTEST_ARG...]
#
# Brings the local cluster up (or reuses the running one), builds the images (cached
# layers; only the app layer is rebuilt; velocity/clients:dev, the SDK clients' image,
# only when its inputs changed), imports them into the cluster's containerd
# and runs pytest on e2e/ with the cluster's kubeconfig, pulls disabled
# (VELOCITY_IMAGE_PULL_POLICY=Never). With --fresh (what `make test` uses) it first
# removes any cluster left on the machine, e.g. by a killed session, and always removes
# its own at the end; the component logs are copied to $VELOCITY_E2E_LOGS
# (default /tmp/velocity-e2e-logs) first, so a failure can be diagnosed afterwards.
# Any step that cannot run fails the whole command with its reason: nothing is skipped.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HACK}/.." && pwd)"
PY="${PY:-${REPO}/.venv/bin/python}"
STATE="${VELOCITY_CLUSTER_DIR:-/var/lib/velocity-cluster}"
LOG_COPY="${VELOCITY_E2E_LOGS:-/tmp/velocity-e2e-logs}"

[[ ${EUID} -eq 0 ]] || { echo "error: $0 must run as root (it runs the local cluster)" >&2; exit 1; }
[[ -x ${PY} ]] || { echo "error: ${PY} not found: run 'make install' first" >&2; exit 1; }

fresh=0
if [[ ${1:-} == --fresh ]]; then fresh=1; shift; fi

finish() {
	local status=$?
	if ((fresh)); then
		rm -rf "${LOG_COPY}"
		[[ -d ${STATE}/logs ]] && cp -r "${STATE}/logs" "${LOG_COPY}" && echo "e2e: cluster logs copied to ${LOG_COPY}" >&2
		bash "${HACK}/cluster/down.sh" || status=1
	fi
	exit "${status}"
}
if ((fresh)); then
	bash "${HACK}/cluster/down.sh"
	trap finish EXIT
fi

# Several developers may share one cluster: bring-up, image build and import are
# serialised so two runs never write the same image archive or import it at once.
exec {setup_lock}>"/run/velocity-e2e-setup.lock"
flock "${setup_lock}"
kubeconfig="$(bash "${HACK}/cluster/up.sh" | tail -n 1)"
mapfile -t archives < <(bash "${HACK}/images/build.sh" | tail -n 2)
bash "${HACK}/images/load.sh" "${archives[@]}"
flock --unlock "${setup_lock}"
# A second node, so the failover tests can lose one (idempotent: starts what is not
# running, brings its images up to date, leaves a node stopped by node.sh stopped).
bash "${HACK}/cluster/add-node.sh" velocity-node-2

cd "${REPO}"
# Test paths among the arguments (E2E_ARGS="e2e/test_failover.py -s") replace the
# default, the whole suite: pytest would otherwise run e2e/ and the file.
paths=(e2e)
for arg in "$@"; do [[ ${arg} == e2e/* ]] && { paths=(); break; }; done
VELOCITY_KUBECTL="$(bash "${HACK}/k8s-build.sh" --bin-dir)/kubectl" \
	VELOCITY_IMAGE_PULL_POLICY=Never \
	"${PY}" -m pytest "${paths[@]}" --kubeconfig "${kubeconfig}" --isolated-dns --timeout=900 \
	--node-control "${HACK}/cluster/node.sh" --container-signal "${HACK}/cluster/container.sh" "$@"
