"""Upload and download throughput of velocity_operator.s3 against a local versitygw, and
the uploader's peak memory.

    .venv/bin/python hack/s3/throughput.py [MIB] [CONCURRENCY]      (default 256, 4)

Starts the server of tests/support/s3_server.py in a temporary directory (loopback),
uploads MIB MiB of random bytes (multipart, 16 MiB parts, CONCURRENCY parts in flight;
the time includes the hashing pass) and downloads them again with checksum
verification. Peak RSS is this process's VmHWM (the server is another process).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.s3_server import S3Server


def _peak_mib() -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = base / "src"
        with src.open("wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(1 << 20))
        with S3Server(base) as s3:
            client = s3.client(concurrency=concurrency)
            client.create_bucket("bench")
            before = _peak_mib()
            start = time.monotonic()
            up = client.put_file("bench", "object", src)
            upload = time.monotonic() - start
            after_upload = _peak_mib()
            start = time.monotonic()
            down = client.get_file("bench", "object", base / "out")
            download = time.monotonic() - start
    assert down.sha256 == up.sha256
    print(f"{mib} MiB: upload {upload:.2f}s ({mib / upload:.0f} MiB/s, {up.parts} parts, concurrency "
          f"{concurrency}), download + verify {download:.2f}s ({mib / download:.0f} MiB/s); "
          f"peak RSS {before:.0f} MiB before the upload, {after_upload:.0f} MiB after it")


if __name__ == "__main__":
    main()
