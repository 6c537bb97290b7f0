"""`python -m velocity_operator.s3`: the S3 calls backup pods make, as a command line.

    get s3://BUCKET/KEY FILE [--sha256 HEX]     download, verify, then rename into place
    rm s3://BUCKET/KEY                          delete one object (retention)
    ls s3://BUCKET/PREFIX                       list keys with size
    mb BUCKET                                   create a bucket
    uploads s3://BUCKET/PREFIX                  list unfinished multipart uploads
    abort-uploads s3://BUCKET/PREFIX --older-than SECONDS
                                                abort unfinished multipart uploads

Settings come from the environment (velocity_operator.s3.env), credentials from
botocore's default chain. Exit status: 0 done, 1 an error worth retrying (network, 5xx),
3 an error that repeating cannot fix (wrong or missing credentials, missing bucket or
object, checksum mismatch): Jobs fail at once on 3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from .client import S3Client, S3Url, client_from_env
from .env import MissingSettingError
from .errors import ChecksumMismatchError, S3ConnectionError, S3Error

__all__ = ["EXIT_PERMANENT", "EXIT_RETRY", "main"]

EXIT_RETRY = 1
EXIT_PERMANENT = 3


def _prefix(url: str) -> tuple[str, str]:
    """s3://BUCKET[/PREFIX] -> (BUCKET, PREFIX)."""
    if not url.startswith("s3://"):
        raise argparse.ArgumentTypeError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def _run(client: S3Client, args: argparse.Namespace) -> None:
    if args.command == "get":
        done = client.get_file(args.url.bucket, args.url.key, args.file, expected_sha256=args.sha256)
        print(f"downloaded {args.url} to {args.file}: {done.size} bytes, sha256 {done.sha256} verified")
    elif args.command == "rm":
        client.delete_object(args.url.bucket, args.url.key)
        print(f"deleted {args.url}")
    elif args.command == "ls":
        bucket, prefix = args.url
        for item in client.list_objects(bucket, prefix):
            print(f"{item.size:>14} {item.last_modified} s3://{bucket}/{item.key}")
    elif args.command == "uploads":
        bucket, prefix = args.url
        for upload in client.list_uploads(bucket, prefix):
            print(f"{upload.initiated.isoformat()} s3://{bucket}/{upload.key} {upload.upload_id}")
    elif args.command == "abort-uploads":
        bucket, prefix = args.url
        aborted = client.abort_stale_uploads(bucket, prefix, older_than=dt.timedelta(seconds=args.older_than))
        for upload in aborted:
            print(f"aborted s3://{bucket}/{upload.key} {upload.upload_id} (started {upload.initiated.isoformat()})")
        print(f"aborted {len(aborted)} multipart upload(s) under s3://{bucket}/{prefix}")
    else:
        client.create_bucket(args.bucket)
        print(f"created bucket {args.bucket}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m velocity_operator.s3",
                                     description="The S3 calls Velocity backup pods make.")
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help="download an object to a file, verifying its SHA-256")
    get.add_argument("url", type=S3Url.parse)
    get.add_argument("file", type=Path)
    get.add_argument("--sha256", help="expected hex SHA-256 (default: the object's sha256 metadata)")
    commands.add_parser("rm", help="delete an object").add_argument("url", type=S3Url.parse)
    commands.add_parser("ls", help="list objects under a prefix").add_argument("url", type=_prefix)
    commands.add_parser("mb", help="create a bucket").add_argument("bucket")
    commands.add_parser("uploads", help="list unfinished multipart uploads under a prefix").add_argument(
        "url", type=_prefix)
    abort = commands.add_parser("abort-uploads", help="abort unfinished multipart uploads under a prefix")
    abort.add_argument("url", type=_prefix)
    abort.add_argument("--older-than", type=float, required=True, metavar="SECONDS",
                       help="only uploads started at least this long ago (0: all of them)")
    args = parser.parse_args(argv)
    try:
        with client_from_env() as client:
            _run(client, args)
    except (S3Error, ChecksumMismatchError, MissingSettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PERMANENT if not isinstance(exc, S3Error) or exc.permanent else EXIT_RETRY
    except S3ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RETRY
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
