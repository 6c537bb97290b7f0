"""The Dockerfiles of images/ (for users with docker and kind; CI builds the images offline
with hack/images/build.sh instead) stay buildable as the Cargo workspace grows: a build that
copies the workspace's Cargo.toml must also copy every member (cargo loads every member's
manifest), and the .dockerignore must let those paths through."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _copied(dockerfile: Path) -> set[str]:
    sources: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"COPY\s+(?!--from)(.+)$", line.strip())
        if m:
            *srcs, _dest = m.group(1).split()
            sources.update(s.rstrip("/") for s in srcs)
    return sources


def _admitted(dockerfile: Path, path: str) -> bool:
    """Whether `path` reaches the build context through Dockerfile.dockerignore (last match wins)."""
    ignore = dockerfile.with_name("Dockerfile.dockerignore")
    if not ignore.exists():
        return True
    admitted = True
    for raw in ignore.read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.removeprefix("!")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/"):
            admitted = negate
    return admitted


def _rust_builds() -> list[Path]:
    """The Dockerfiles whose build context gets the Cargo workspace's manifest."""
    def gets_workspace(d: Path) -> bool:
        copied = _copied(d)
        return "Cargo.toml" in copied or ("." in copied and _admitted(d, "Cargo.toml"))

    return [d for d in sorted(REPO.glob("images/*/Dockerfile")) if gets_workspace(d)]


def test_the_clients_image_is_among_the_rust_builds() -> None:
    assert REPO / "images/clients/Dockerfile" in _rust_builds()


@pytest.mark.parametrize("dockerfile", _rust_builds(), ids=lambda p: p.parent.name)
def test_a_copied_cargo_workspace_is_complete(dockerfile: Path) -> None:
    copied = _copied(dockerfile)
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    missing = [m for m in members if m not in copied and "." not in copied]
    assert not missing, f"{dockerfile}: workspace members not copied (cargo will refuse): {missing}"
    hidden = [m for m in members if not _admitted(dockerfile, m + "/Cargo.toml")]
    assert not hidden, f"{dockerfile}.dockerignore keeps out workspace members: {hidden}"
