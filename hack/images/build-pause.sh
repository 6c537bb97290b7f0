#!/usr/bin/env bash
# Build the sandbox ("pause") image docker.io/velocity/pause:dev from the static
# velocity-pause binary; print the docker-archive path last.
#
# Usage: hack/images/build-pause.sh PATH/TO/velocity-pause
# The image holds one file, /pause, run as uid 65535 (what upstream's pause uses).
set -euo pipefail
binary="${1:?usage: $0 PATH/TO/velocity-pause}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${VELOCITY_IMAGE_CACHE:-${HOME}/.cache/velocity-images}/pause"
mkdir -p "${out}/rootfs"
install -m 0755 "${binary}" "${out}/rootfs/pause"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "${out}/rootfs" -cf "${out}/layer.tar" .
python3 "${here}/mkimage.py" --out "${out}/pause.tar" --tag velocity/pause:dev \
	--layer "${out}/layer.tar" --entrypoint /pause --user 65535:65535 >/dev/null
echo "${out}/pause.tar"
