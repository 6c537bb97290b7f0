#!/usr/bin/env bash
# Build the Velocity images without a registry or docker; print the archives.
#
# Usage: hack/images/build.sh [engine] [operator] [s3] [clients]
#        (default: all four; s3 and clients listed first, engine and operator last)
#
# Each image is three layers, cached under $VELOCITY_IMAGE_CACHE
# (default ~/.cache/velocity-images) so a code change rebuilds only the last one:
#   1. rootfs  debootstrap --variant=minbase of Debian bookworm + python3 (no docs,
#              no apt lists), a "velocity" user (uid/gid 10001) and /data owned by it.
#              Keyed by this script's package list: built once (~minutes).
#   2. deps    a virtualenv at /opt/velocity with the project's pinned runtime
#              dependencies (pyproject [project].dependencies, plus the "operator"
#              extra for the operator image), from wheels `pip wheel` fetched on the
#              host. Keyed by the requirement list.
#   3. app     the project's own wheel installed into that virtualenv (--no-deps),
#              native core (velocity_engine._core) included: `pip wheel` runs cargo
#              through setuptools-rust in the same target directory as `make install`
#              (CARGO_TARGET_DIR, else the repository's target/), so it finds the core
#              already built there. Rebuilt every time (seconds when the core is built).
# Layers 2 and 3 are made by running pip inside a chroot on an overlay mount whose
# upper directory becomes the layer (no whiteouts are expected; the build fails if
# any appear). hack/images/mkimage.py writes the docker archive:
#   $VELOCITY_IMAGE_CACHE/engine.tar    -> velocity/engine:dev
#   $VELOCITY_IMAGE_CACHE/operator.tar  -> velocity/operator:dev
#   $VELOCITY_IMAGE_CACHE/s3.tar        -> velocity/s3:dev (test S3 server, see build_s3)
#   $VELOCITY_IMAGE_CACHE/clients.tar   -> velocity/clients:dev (the SDK clients of the
#                                          e2e suite, see build_clients)
# images/engine/Dockerfile and images/operator/Dockerfile describe the same images for docker users;
# images/s3/Dockerfile the S3 server image, images/clients/Dockerfile the clients image.
# Debian packages that debootstrap downloads are kept in $VELOCITY_IMAGE_CACHE/debs, so a
# second root filesystem (the clients image's) fetches only what the first lacked.
set -euo pipefail
[[ ${EUID} -eq 0 ]] || { echo "error: $0 must run as root (debootstrap, chroot, mount)" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
CACHE="${VELOCITY_IMAGE_CACHE:-${HOME}/.cache/velocity-images}"
[[ ${CACHE} == /* ]] || CACHE="${PWD}/${CACHE}" # debootstrap --cache-dir wants an absolute path
SUITE=bookworm
PACKAGES="python3,python3-venv"
UID_GID=10001
# pip on the host fetches the wheels: the project's venv has it (make install); the
# system python3 may not.
PYTHON="${VELOCITY_HOST_PYTHON:-}"
if [[ -z ${PYTHON} ]]; then
	if [[ -x ${REPO}/.venv/bin/python ]]; then PYTHON="${REPO}/.venv/bin/python"; else PYTHON=python3; fi
fi
TAR=(tar --sort=name --mtime=@0 --numeric-owner --one-file-system)

log() { printf '%s images: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

# debootstrap is the one tool a fresh machine may lack: install it (idempotent).
if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap (apt-get)"
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }; } ||
		die "apt-get install debootstrap failed"
fi
for cmd in debootstrap chroot mount tar "${PYTHON}"; do
	command -v "${cmd}" >/dev/null || die "${cmd} is missing (python3 >= 3.11 with pip: set VELOCITY_HOST_PYTHON)"
done
"${PYTHON}" -m pip --version >/dev/null 2>&1 || die "${PYTHON} has no pip (set VELOCITY_HOST_PYTHON)"

MOUNTS=()
cleanup() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
	MOUNTS=()
}
trap cleanup EXIT

mirror() {
	if [[ -n ${VELOCITY_DEBIAN_MIRROR:-} ]]; then echo "${VELOCITY_DEBIAN_MIRROR}"; return; fi
	local uri
	uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
	[[ -n ${uri} ]] || uri="$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
	echo "${uri:-http://deb.debian.org/debian}"
}

key() { sha256sum | cut -c1-12; }

# ------------------------------------------------------------------ layer 1: rootfs
build_rootfs() {
	local k
	k="$(printf '%s\n' "${SUITE}" "${PACKAGES}" "${UID_GID}" "rootfs-v1" | key)"
	debootstrap_layer "${CACHE}/rootfs-${SUITE}-${k}" "${PACKAGES}"
}

# debootstrap_layer DIR PACKAGES -> ROOTFS, ROOTFS_LAYER: minbase + PACKAGES in DIR/rootfs,
# trimmed, with the velocity user; its layer DIR/layer.tar. Built once per DIR.
debootstrap_layer() {
	local dir="$1" packages="$2"
	ROOTFS="${dir}/rootfs"; ROOTFS_LAYER="${dir}/layer.tar"
	[[ -s ${ROOTFS_LAYER} ]] && return 0
	log "debootstrap ${SUITE} (minbase + ${packages}) into ${dir}; once per package list"
	rm -rf "${dir}"; mkdir -p "${dir}" "${CACHE}/debs"
	local start=${SECONDS}
	if ! debootstrap --variant=minbase --include="${packages}" --cache-dir="${CACHE}/debs" \
		"${SUITE}" "${ROOTFS}" "$(mirror)" >"${dir}/debootstrap.log" 2>&1; then
		for m in proc sys dev/pts dev; do umount "${ROOTFS}/${m}" 2>/dev/null || true; done
		tail -n 20 "${dir}/debootstrap.log" >&2
		die "debootstrap failed; log: ${dir}/debootstrap.log"
	fi
	rm -rf "${ROOTFS}"/var/cache/apt/* "${ROOTFS}"/var/lib/apt/lists/* "${ROOTFS}"/usr/share/doc/* \
		"${ROOTFS}"/usr/share/man/* "${ROOTFS}"/usr/share/info/* "${ROOTFS}"/var/log/* \
		"${ROOTFS}"/var/cache/debconf/*-old "${ROOTFS}"/var/lib/dpkg/*-old
	find "${ROOTFS}/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
	: >"${ROOTFS}/etc/resolv.conf"
	echo "velocity:x:${UID_GID}:${UID_GID}:velocity:/tmp:/usr/sbin/nologin" >>"${ROOTFS}/etc/passwd"
	echo "velocity:x:${UID_GID}:" >>"${ROOTFS}/etc/group"
	echo "velocity:!:1::::::" >>"${ROOTFS}/etc/shadow"
	install -d -m 0750 -o "${UID_GID}" -g "${UID_GID}" "${ROOTFS}/data"
	# /dev stays in the directory (chrooted pip needs /dev/null) but not in the image:
	# the runtime mounts its own /dev.
	"${TAR[@]}" --exclude=./dev/* -C "${ROOTFS}" -cf "${ROOTFS_LAYER}.tmp" . && mv "${ROOTFS_LAYER}.tmp" "${ROOTFS_LAYER}"
	log "rootfs layer built in $((SECONDS - start))s ($(du -h "${ROOTFS_LAYER}" | cut -f1))"
}

# overlay_run UPPER LOWERS MNT_SRC COMMAND...: run COMMAND chrooted in LOWERS+UPPER,
# with MNT_SRC bind-mounted read-only at /mnt; UPPER collects what COMMAND writes.
overlay_run() {
	local upper="$1" lowers="$2" src="$3"; shift 3
	local work="${upper}.work" merged="${upper}.merged"
	mkdir -p "${upper}" "${work}" "${merged}"
	mount -t overlay overlay -o "lowerdir=${lowers},upperdir=${upper},workdir=${work}" "${merged}"
	MOUNTS+=("${merged}")
	mount --bind "${src}" "${merged}/mnt"; mount -o remount,bind,ro "${merged}/mnt"
	MOUNTS+=("${merged}/mnt")
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8 PIP_NO_CACHE_DIR=1 \
		PIP_DISABLE_PIP_VERSION_CHECK=1 chroot "${merged}" "$@"
	cleanup
	rm -rf "${work}" "${merged}"
	if [[ -n "$(find "${upper}" -type c -print -quit)" ]]; then
		die "layer ${upper} contains overlay whiteouts; this builder does not convert them"
	fi
	rm -rf "${upper}/tmp" "${upper}/root/.cache" 2>/dev/null || true
}

requirements() { # IMAGE: pinned requirement lines from pyproject.toml
	"${PYTHON}" - "${REPO}/pyproject.toml" "$1" <<-'EOF'
		import sys, tomllib
		project = tomllib.load(open(sys.argv[1], "rb"))["project"]
		reqs = list(project.get("dependencies", []))
		if sys.argv[2] == "operator":
		    reqs += project.get("optional-dependencies", {}).get("operator", [])
		print("\n".join(sorted(set(reqs))))
	EOF
}

# ------------------------------------------------------------------ layer 2: deps
build_deps() { # IMAGE -> DEPS_UPPER, DEPS_LAYER
	local image="$1" reqs k dir
	reqs="$(requirements "${image}")"
	k="$(printf '%s\n' "${ROOTFS_LAYER}" "${reqs}" "deps-v1" | key)"
	dir="${CACHE}/deps-${image}-${k}"
	DEPS_UPPER="${dir}/upper"; DEPS_LAYER="${dir}/layer.tar"
	[[ -s ${DEPS_LAYER} ]] && return 0
	# The wheels come from the host's pip, so they must be for the image's Python.
	local host_py image_py
	host_py="$("${PYTHON}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
	image_py="$(chroot "${ROOTFS}" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
	[[ ${host_py} == "${image_py}" ]] ||
		die "host Python ${host_py} differs from the image's ${image_py}: set VELOCITY_HOST_PYTHON to a python${image_py} with pip"
	log "${image}: dependency layer ($(echo "${reqs}" | wc -l) requirements)"
	rm -rf "${dir}"; mkdir -p "${dir}/wheels"
	echo "${reqs}" >"${dir}/wheels/requirements.txt"
	"${PYTHON}" -m pip wheel --quiet --only-binary=:all: -w "${dir}/wheels" -r "${dir}/wheels/requirements.txt" \
		>"${dir}/pip-wheel.log" 2>&1 || { tail -n 20 "${dir}/pip-wheel.log" >&2; die "pip wheel failed; log ${dir}/pip-wheel.log"; }
	overlay_run "${DEPS_UPPER}" "${ROOTFS}" "${dir}/wheels" /bin/sh -euc '
		python3 -m venv --without-pip /opt/velocity
		pip=$(ls /usr/share/python-wheels/pip-*.whl | head -n 1)
		/opt/velocity/bin/python "$pip/pip" install --quiet --no-index --find-links /mnt -r /mnt/requirements.txt'
	"${TAR[@]}" -C "${DEPS_UPPER}" -cf "${DEPS_LAYER}.tmp" . && mv "${DEPS_LAYER}.tmp" "${DEPS_LAYER}"
	log "${image}: dependency layer $(du -h "${DEPS_LAYER}" | cut -f1)"
}

# ------------------------------------------------------------------ layer 3: app
# The wheel holds the native core, an extension module built on this host: it runs in
# the image because the host is Debian bookworm too (same glibc; checked by importing it
# in the image, build_app) and Python has the image's minor version (build_deps checks,
# build_app compares the extension suffix).
build_wheel() { # -> WHEEL
	local dir="${CACHE}/wheel" cargo python_path
	rm -rf "${dir}"; mkdir -p "${dir}"
	cargo="$(command -v cargo || echo "${HOME}/.cargo/bin/cargo")"
	[[ -x ${cargo} ]] || die "cargo is missing (the project wheel holds the native core, engine/core)"
	python_path="$(command -v "${PYTHON}")"
	# PYO3_PYTHON and CARGO_TARGET_DIR as the Makefile passes them (CARGO: cargo may not be
	# on root's PATH): cargo then reuses the release build of `make install`.
	(cd "${REPO}" && CARGO="${cargo}" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${REPO}/target}" PYO3_PYTHON="${python_path}" \
		"${PYTHON}" -m pip wheel --no-deps -w "${dir}" "${REPO}") >"${CACHE}/pip-wheel-app.log" 2>&1 ||
		{ tail -n 30 "${CACHE}/pip-wheel-app.log" >&2; die "building the project wheel (and its native core) failed; log ${CACHE}/pip-wheel-app.log"; }
	WHEEL="$(ls "${dir}"/*.whl)"
	cp "${HERE}/check_core.py" "${dir}/"
}

build_app() { # IMAGE -> APP_LAYER
	local image="$1" dir="${CACHE}/app-$1"
	rm -rf "${dir}"; mkdir -p "${dir}"
	# The native core must load with the image's Python and libc: check_core.py imports it
	# there (-B: no __pycache__ in the layer).
	overlay_run "${dir}/upper" "${DEPS_UPPER}:${ROOTFS}" "$(dirname "${WHEEL}")" /bin/sh -euc '
		pip=$(ls /usr/share/python-wheels/pip-*.whl | head -n 1)
		/opt/velocity/bin/python "$pip/pip" install --quiet --no-deps --no-index /mnt/*.whl
		/opt/velocity/bin/python -B /mnt/check_core.py'
	APP_LAYER="${dir}/layer.tar"
	"${TAR[@]}" -C "${dir}/upper" -cf "${APP_LAYER}" .
}

assemble() { # IMAGE
	local image="$1" args=()
	case "${image}" in
	engine) args=(--entrypoint=/opt/velocity/bin/velocity-engine --cmd=--data-dir --cmd=/data
		--cmd=--host --cmd=0.0.0.0 --cmd=--metrics-host --cmd=0.0.0.0 --expose 2005/tcp --expose 9105/tcp --volume /data) ;;
	operator) args=(--entrypoint=/opt/velocity/bin/velocity-operator) ;;
	esac
	"${PYTHON}" "${HERE}/mkimage.py" --out "${CACHE}/${image}.tar" --tag "velocity/${image}:dev" \
		--layer "${ROOTFS_LAYER}" --layer "${DEPS_LAYER}" --layer "${APP_LAYER}" \
		--user "${UID_GID}:${UID_GID}" --workdir /data \
		--env PATH=/opt/velocity/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 --env HOME=/tmp \
		--label org.opencontainers.image.title="velocity-${image}" "${args[@]}" >/dev/null
}

# ------------------------------------------------------------------ s3 (test server)
# velocity/s3:dev: the S3-compatible server the backup e2e tests run in their namespace
# (versitygw, built by hack/s3/build.sh from the Go module proxy). One layer: the static
# binary, /data owned by the velocity user (10001) and a sticky /tmp. Keyed by version.
build_s3() {
	local bin version dir
	bin="$(bash "${REPO}/hack/s3/build.sh" | tail -n 1)"
	version="$(basename "$(dirname "${bin}")")"
	dir="${CACHE}/s3-${version}"
	if [[ ! -s ${dir}/layer.tar ]]; then
		rm -rf "${dir}"; mkdir -p "${dir}/root/usr/local/bin" "${dir}/root/tmp"
		install -m 0755 "${bin}" "${dir}/root/usr/local/bin/versitygw"
		install -d -m 0750 -o "${UID_GID}" -g "${UID_GID}" "${dir}/root/data"
		chmod 1777 "${dir}/root/tmp"
		"${TAR[@]}" -C "${dir}/root" -cf "${dir}/layer.tar.tmp" . && mv "${dir}/layer.tar.tmp" "${dir}/layer.tar"
	fi
	"${PYTHON}" "${HERE}/mkimage.py" --out "${CACHE}/s3.tar" --tag velocity/s3:dev --layer "${dir}/layer.tar" \
		--user "${UID_GID}:${UID_GID}" --workdir /data --entrypoint=/usr/local/bin/versitygw \
		--cmd=--port --cmd=:7070 --cmd=--health --cmd=/health --cmd=posix --cmd=/data \
		--env HOME=/tmp --expose 7070/tcp --volume /data \
		--label org.opencontainers.image.title=velocity-s3 >/dev/null
}

# ------------------------------------------------------------------ clients (e2e)
# velocity/clients:dev: the SDK clients the e2e suite runs in pods (e2e/test_sdk_clients.py),
# one image for both (they share the root filesystem; docs/images.md). Two layers:
#   1. rootfs  debootstrap --variant=minbase of bookworm + Debian's nodejs (no npm), the
#              velocity user. Keyed by the package list: built once (~1-2 min).
#   2. sdk     /opt/velocity-clients, keyed by its content (rebuilt only when that changes):
#              bin/velocity-e2e-client  clients/rust/examples/e2e_client.rs, built on the
#                  host by `cargo build --release` with glibc linked statically
#                  (+crt-static: runs on any Linux, needs no library from the rootfs)
#              node/  the `npm pack` tarball of clients/node installed with
#                  `npm install --offline` (node_modules/@velocity/core), and
#                  e2e-writer.js compiled by tsc from clients/node/examples/e2e-writer.ts
# The archive is reassembled only when a layer changed, so an unchanged image keeps its id.
CLIENTS_PACKAGES="nodejs"
CLIENTS_HOME=/opt/velocity-clients
RUST_TARGET=x86_64-unknown-linux-gnu

build_rust_client() { # -> RUST_CLIENT
	local cargo target_dir
	cargo="$(command -v cargo || echo "${HOME}/.cargo/bin/cargo")"
	[[ -x ${cargo} ]] || die "cargo is missing (the clients image holds the Rust SDK's e2e client)"
	target_dir="${VELOCITY_CARGO_TARGET_DIR:-${CARGO_TARGET_DIR:-${REPO}/target}}"
	# --target: RUSTFLAGS then apply to the program only, not to build scripts and proc
	# macros (which cannot be linked statically).
	(cd "${REPO}" && CARGO_TARGET_DIR="${target_dir}" RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" \
		"${cargo}" build --locked --release --target "${RUST_TARGET}" -p velocity-sdk --example e2e_client) \
		>"${CACHE}/cargo-clients.log" 2>&1 ||
		{ tail -n 30 "${CACHE}/cargo-clients.log" >&2; die "cargo build of the Rust e2e client failed; log ${CACHE}/cargo-clients.log"; }
	RUST_CLIENT="${target_dir}/${RUST_TARGET}/release/examples/e2e_client"
	[[ -x ${RUST_CLIENT} ]] || die "cargo left no ${RUST_CLIENT}"
}

build_node_client() { # -> NODE_TGZ, NODE_WRITER
	local sdk="${REPO}/clients/node" out="${CACHE}/clients-node" npm_log="${CACHE}/npm-clients.log" k
	command -v npm >/dev/null || die "npm is missing (the clients image holds the packed Node.js SDK)"
	# Skipped (npm pack and tsc take ~15 s) when no input of the package changed.
	k="$(cd "${sdk}" && find src examples package.json package-lock.json README.md tsconfig*.json \
		-type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | key)"
	NODE_WRITER="${out}/examples/e2e-writer.js"
	if [[ "$(cat "${out}/key" 2>/dev/null)" == "${k}" && -s ${NODE_WRITER} ]]; then
		NODE_TGZ="$(ls "${out}"/velocity-core-*.tgz)"
		return 0
	fi
	rm -rf "${out}"; mkdir -p "${out}/examples"
	: >"${npm_log}"
	# The dev tools (typescript) as mk/node.mk installs them, when package-lock.json is newer.
	if [[ ! ${sdk}/node_modules/.package-lock.json -nt ${sdk}/package-lock.json ]]; then
		(cd "${sdk}" && npm ci --no-audit --no-fund --prefer-offline) >>"${npm_log}" 2>&1 ||
			{ tail -n 20 "${npm_log}" >&2; die "npm ci in clients/node failed; log ${npm_log}"; }
	fi
	# npm pack runs the package's prepack (tsc: dist/), then tsc emits the examples.
	(cd "${sdk}" && npm pack --silent --pack-destination "${out}" &&
		npx --no-install tsc -p tsconfig.examples.json --noEmit false --outDir "${out}/examples") >>"${npm_log}" 2>&1 ||
		{ tail -n 20 "${npm_log}" >&2; die "npm pack / tsc of clients/node failed; log ${npm_log}"; }
	NODE_TGZ="$(ls "${out}"/velocity-core-*.tgz)"
	[[ -s ${NODE_WRITER} ]] || die "tsc emitted no ${NODE_WRITER}"
	echo "${k}" >"${out}/key"
}

build_clients() {
	local k dir root rootfs_layer
	k="$(printf '%s\n' "${SUITE}" "${CLIENTS_PACKAGES}" "${UID_GID}" "clients-rootfs-v1" | key)"
	debootstrap_layer "${CACHE}/rootfs-clients-${SUITE}-${k}" "${CLIENTS_PACKAGES}"
	rootfs_layer="${ROOTFS_LAYER}"
	log "clients: Rust e2e client (cargo build --release, static) and Node.js SDK (npm pack)"
	build_rust_client
	build_node_client
	k="$(cat "${RUST_CLIENT}" "${NODE_TGZ}" "${NODE_WRITER}" <(echo "${CLIENTS_HOME} clients-sdk-v1") | key)"
	dir="${CACHE}/clients-sdk-${k}"
	if [[ ! -s ${dir}/layer.tar ]]; then
		rm -rf "${CACHE}"/clients-sdk-*; mkdir -p "${dir}"
		root="${dir}/root${CLIENTS_HOME}"
		install -D -m 0755 "${RUST_CLIENT}" "${root}/bin/velocity-e2e-client"
		install -D -m 0644 "${NODE_TGZ}" "${root}/node/$(basename "${NODE_TGZ}")"
		printf '{"name": "velocity-e2e-clients", "private": true, "type": "module"}\n' >"${root}/node/package.json"
		(cd "${root}/node" && npm install --offline --no-audit --no-fund --ignore-scripts "./$(basename "${NODE_TGZ}")") \
			>>"${CACHE}/npm-clients.log" 2>&1 || die "npm install of $(basename "${NODE_TGZ}") failed; log ${CACHE}/npm-clients.log"
		install -m 0644 "${NODE_WRITER}" "${root}/node/e2e-writer.js"
		chmod -R a+rX,go-w "${dir}/root"
		"${TAR[@]}" --owner=0 --group=0 -C "${dir}/root" -cf "${dir}/layer.tar.tmp" . && mv "${dir}/layer.tar.tmp" "${dir}/layer.tar"
	fi
	# Reassemble only when a layer changed: the archive's config (and so the image id)
	# carries a creation time.
	k="$(printf '%s\n' "${rootfs_layer}" "${dir}/layer.tar" "clients-image-v1" | key)"
	if [[ ! -s ${CACHE}/clients.tar || "$(cat "${CACHE}/clients.key" 2>/dev/null)" != "${k}" ]]; then
		"${PYTHON}" "${HERE}/mkimage.py" --out "${CACHE}/clients.tar" --tag velocity/clients:dev \
			--layer "${rootfs_layer}" --layer "${dir}/layer.tar" \
			--user "${UID_GID}:${UID_GID}" --workdir /tmp \
			--env PATH=${CLIENTS_HOME}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env HOME=/tmp \
			--label org.opencontainers.image.title=velocity-clients >/dev/null
		echo "${k}" >"${CACHE}/clients.key"
	fi
}

main() {
	local images=("$@") python_images=() s3=0 clients=0 start=${SECONDS}
	# No arguments: also the test S3 server and the clients images, listed FIRST so that
	# callers taking the last two lines (hack/e2e.sh, make images) still get engine and
	# operator; load.sh imports the s3.tar and clients.tar built beside the engine archive.
	((${#images[@]})) || images=(s3 clients engine operator)
	for image in "${images[@]}"; do
		case "${image}" in
		engine | operator) python_images+=("${image}") ;;
		s3) s3=1 ;;
		clients) clients=1 ;;
		*) die "unknown image ${image} (engine, operator, s3, clients)" ;;
		esac
	done
	mkdir -p "${CACHE}"
	if ((s3)); then
		build_s3
		log "velocity/s3:dev -> ${CACHE}/s3.tar ($(du -h "${CACHE}/s3.tar" | cut -f1))"
	fi
	if ((clients)); then
		local t=${SECONDS}
		build_clients
		log "velocity/clients:dev -> ${CACHE}/clients.tar ($(du -h "${CACHE}/clients.tar" | cut -f1), $((SECONDS - t))s)"
	fi
	if ((${#python_images[@]})); then
		build_rootfs
		build_wheel
	fi
	for image in "${python_images[@]}"; do
		build_deps "${image}"
		build_app "${image}"
		assemble "${image}"
		log "velocity/${image}:dev -> ${CACHE}/${image}.tar ($(du -h "${CACHE}/${image}.tar" | cut -f1))"
	done
	log "done in $((SECONDS - start))s"
	for image in "${images[@]}"; do echo "${CACHE}/${image}.tar"; done
}

main "$@"
