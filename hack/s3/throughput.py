"""Upload and download throughput of velocity_operator.s3 against a local versitygw.

    .venv/bin/python hack/s3/throughput.py [MIB]      (default 256)

Starts the server of tests/support/s3_server.py in a temporary directory (loopback),
uploads MIB MiB of random bytes (multipart, 16 MiB parts; the time includes the
hashing pass) and downloads them again with checksum verification.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.s3_server import S3Server


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = base / "src"
        with src.open("wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(1 << 20))
        with S3Server(base) as s3:
            client = s3.client()
            client.create_bucket("bench")
            start = time.monotonic()
            up = client.put_file("bench", "object", src)
            upload = time.monotonic() - start
            start = time.monotonic()
            down = client.get_file("bench", "object", base / "out")
            download = time.monotonic() - start
    assert down.sha256 == up.sha256
    print(f"{mib} MiB: upload {upload:.2f}s ({mib / upload:.0f} MiB/s, {up.parts} parts), "
          f"download + verify {download:.2f}s ({mib / download:.0f} MiB/s)")


if __name__ == "__main__":
    main()
