"""s3://BUCKET/KEY, the form backup locations take in VelocityBackup.status and on the
command lines of backup pods. Standard library only (snapshot_job parses it before it
knows whether it needs the SDK)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["S3Url"]


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Url:
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ValueError(f"an s3:// URL needs a bucket and a key: {url!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
