"""Check, inside an image, that the native core installed there loads (hack/images/build.sh).

Run with the image's /opt/velocity/bin/python -B after the project wheel is installed.
The core is an extension module built on the build host: it loads only if the wheel
carries it under the suffix this Python looks for (same minor version and ABI) and the
image's libc provides every symbol it links against. Either failure is a build error,
not a CrashLoopBackOff in the cluster.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path


def main() -> int:
    spec = importlib.util.find_spec("velocity_engine")
    if spec is None or spec.origin is None:
        print("check_core: velocity_engine is not installed", file=sys.stderr)
        return 1
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    found = sorted(p.name for p in Path(spec.origin).parent.glob("_core.*"))
    if f"_core{suffix}" not in found:
        print(f"check_core: no velocity_engine/_core{suffix} for this Python; the wheel has {found}", file=sys.stderr)
        return 1
    try:
        import velocity_engine._core  # noqa: F401
    except ImportError as e:
        print(f"check_core: velocity_engine._core does not load here: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
