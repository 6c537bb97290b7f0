"""`python -m velocity_dashboards [--check] [--root DIR]`: write or check the generated files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from velocity_dashboards.artifacts import artifacts
from velocity_dashboards.settings import DEFAULT_RUNBOOK_BASE_URL, runbook_base_url

REPO_ROOT = Path(__file__).resolve().parents[2]


def drifted(root: Path, runbook_base: str = DEFAULT_RUNBOOK_BASE_URL) -> list[Path]:
    """Generated files whose committed text differs from what the code produces."""
    return [rel for rel, text in artifacts(root, runbook_base).items()
            if not (root / rel).is_file() or (root / rel).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="velocity_dashboards", description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if a committed file differs; write nothing")
    ap.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    ap.add_argument("--runbook-base-url", default=None,
                    help=f"absolute URL of the published docs/runbooks.md (default {DEFAULT_RUNBOOK_BASE_URL})")
    args = ap.parse_args(argv)
    root: Path = args.root
    base = runbook_base_url(args.runbook_base_url)
    if args.check:
        stale = drifted(root, base)
        for rel in stale:
            print(f"stale: {rel} (run `make dashboards`)", file=sys.stderr)
        return 1 if stale else 0
    for rel, text in artifacts(root, base).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
