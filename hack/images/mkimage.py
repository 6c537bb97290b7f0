#!/usr/bin/env python3
"""Assemble a docker-archive image (what `docker save` writes) from layer tarballs.

    mkimage.py --out IMAGE.tar --tag velocity/engine:dev \\
        --layer base.tar --layer app.tar \\
        --entrypoint=/opt/velocity/bin/velocity-engine --cmd=--data-dir --cmd=/data \\
        --user 10001:10001 --env PATH=/usr/bin --workdir / --expose 2005/tcp \\
        --label org.opencontainers.image.source=velocity

The archive holds manifest.json (the tag and layer order), the image config (a JSON
file named after its sha256) and each layer as <diff_id>/layer.tar, uncompressed.
`ctr images import`, `docker load` and `kind load image-archive` all read it. Layers
are tarballs of a filesystem diff, made by the caller (GNU tar, deterministic flags);
this script neither reads nor rewrites their contents. Standard library only, so it
runs with any Python 3.8+.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import time

CHUNK = 1 << 20


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="archive to write")
    parser.add_argument("--tag", required=True, action="append", help="repo:tag (repeatable)")
    parser.add_argument("--layer", required=True, action="append", help="layer tarball, base first")
    parser.add_argument("--entrypoint", action="append", default=[], help="entrypoint word")
    parser.add_argument("--cmd", action="append", default=[], help="cmd word")
    parser.add_argument("--user", default="", help="uid[:gid] the process runs as")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--workdir", default="/", help="working directory")
    parser.add_argument("--expose", action="append", default=[], help="port/proto")
    parser.add_argument("--volume", action="append", default=[], help="volume path")
    parser.add_argument("--label", action="append", default=[], help="key=value")
    args = parser.parse_args()

    diff_ids = [sha256_file(layer) for layer in args.layer]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    container_config: dict[str, object] = {
        "User": args.user,
        "Env": args.env,
        "Entrypoint": args.entrypoint or None,
        "Cmd": args.cmd or None,
        "WorkingDir": args.workdir,
        "ExposedPorts": {p: {} for p in args.expose} or None,
        "Volumes": {v: {} for v in args.volume} or None,
        "Labels": dict(label.split("=", 1) for label in args.label) or None,
    }
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {k: v for k, v in container_config.items() if v is not None},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [
            {"created": created, "created_by": f"hack/images: {os.path.basename(layer)}"}
            for layer in args.layer
        ],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{
        "Config": config_name,
        "RepoTags": args.tag,
        "Layers": [f"{d}/layer.tar" for d in diff_ids],
    }]

    tmp = args.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as archive:
        add_bytes(archive, config_name, config_bytes)
        seen = set()
        for digest, layer in zip(diff_ids, args.layer, strict=True):
            if digest in seen:
                continue
            seen.add(digest)
            info = archive.gettarinfo(layer, arcname=f"{digest}/layer.tar")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(layer, "rb") as f:
                archive.addfile(info, f)
        add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    os.replace(tmp, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
