#!/usr/bin/env bash
# Import docker-archive images into the local cluster's containerd (namespace k8s.io),
# where kubelet finds them by tag without pulling.
#
# Usage: hack/images/load.sh ARCHIVE.tar...   (engine.tar brings s3.tar and clients.tar
#                                              from its directory along)
# Fails when the local cluster's containerd is not running (make cluster-up first).
# For kind, the equivalent is `kind load image-archive ARCHIVE.tar` (docs/images.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cluster/common.sh"
require_root
(($#)) || die "usage: $0 ARCHIVE.tar..."
pid_alive containerd && [[ -S ${CONTAINERD_SOCK} ]] ||
	die "the local cluster's containerd is not running (${CONTAINERD_SOCK}); run 'make cluster-up' first"
archives=("$@")
# The test S3 server and the SDK clients images travel with the engine image: a caller
# passing engine.tar (hack/e2e.sh, make images) also gets the s3.tar and clients.tar that
# hack/images/build.sh left beside it.
for archive in "$@"; do
	[[ $(basename "${archive}") == engine.tar ]] || continue
	for companion in "$(dirname "${archive}")"/{s3,clients}.tar; do
		if [[ -s ${companion} && " $* " != *" ${companion} "* ]]; then
			archives+=("${companion}")
		fi
	done
done
# Worker nodes (hack/cluster/add-node.sh) whose containerd runs get the images too; a
# stopped one catches up when `node.sh start` syncs it from the first node.
sockets=("${CONTAINERD_SOCK}")
for sock in "${WORKERS_DIR}"/*/containerd/containerd.sock; do
	[[ -S ${sock} ]] && timeout 10 ctr --address "${sock}" version >/dev/null 2>&1 && sockets+=("${sock}")
done
for archive in "${archives[@]}"; do
	[[ -s ${archive} ]] || die "no image archive at ${archive} (run 'make images')"
	# --no-unpack=false: unpack into the overlayfs snapshotter now, not at first use.
	for sock in "${sockets[@]}"; do
		ctr --address "${sock}" -n k8s.io images import --no-unpack=false "${archive}" >/dev/null
	done
	tag="$(python3 -c 'import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    print(" ".join(json.load(t.extractfile("manifest.json"))[0]["RepoTags"]))' "${archive}")"
	log "imported ${tag} into the local cluster"
done
