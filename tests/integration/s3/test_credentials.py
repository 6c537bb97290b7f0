"""The credential forms backup pods use, against a real S3 server and a real STS.

versitygw runs with its standalone IAM service, whose STS implements
AssumeRoleWithWebIdentity as AWS does: it fetches the issuer's discovery document and
keys over https (tests/support/oidc.py serves them from a network namespace, since it
refuses loopback and private addresses), checks the token's signature, expiry, audience
and the role's trust policy, and hands out temporary credentials (an ASIA... key with a
session token) that the gateway then authenticates and authorizes by the role's policy.
The uploads run `velocity_operator.snapshot_job` as the backup Job does, in a process
whose environment holds exactly what the pod's would:

- a Secret's key pair (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): test_snapshot_upload.py;
- a Secret with a session token (plus AWS_SESSION_TOKEN): here, with temporary
  credentials from that STS;
- no Secret, IRSA's environment (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE): botocore's
  default chain exchanges the token itself. AWS_ENDPOINT_URL_STS points it at the test's
  STS; on EKS it talks to AWS STS;
- nothing at all, instance metadata off: a permanent S3AccessDenied, at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from velocity_operator.s3 import env as s3env
from velocity_operator.s3.client import Credentials

from tests.support.oidc import OidcIssuer, netns_available
from tests.support.s3_server import S3Server

SUBJECT = "system:serviceaccount:prod:velocity-backup"
AUDIENCE = "sts.amazonaws.com"
SNAPSHOT = os.urandom(200_000)

needs_netns = pytest.mark.skipif(not netns_available(), reason="needs root and iproute2 for the OIDC issuer's netns")


@pytest.fixture
def iam_s3(tmp_path: Path) -> Iterator[S3Server]:
    with S3Server(tmp_path / "s3", iam=True) as server:
        server.client().create_bucket("bkt")
        server.client().create_bucket("elsewhere")
        yield server


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[OidcIssuer]:
    with OidcIssuer(tmp_path) as oidc:
        yield oidc


def _role(s3: S3Server, issuer: OidcIssuer) -> str:
    """An OIDC provider for the issuer and role velocity-backup that trusts SUBJECT's
    tokens for AUDIENCE and may use bucket `bkt` only (as on AWS for IRSA)."""
    iam = s3.iam_client()
    provider = iam.create_open_id_connect_provider(Url=issuer.issuer, ClientIDList=[AUDIENCE],
                                                   ThumbprintList=[issuer.thumbprint])["OpenIDConnectProviderArn"]
    host = issuer.issuer.removeprefix("https://")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": SUBJECT, f"{host}:aud": AUDIENCE}}}]}
    arn = str(iam.create_role(RoleName="velocity-backup", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    iam.put_role_policy(RoleName="velocity-backup", PolicyName="backups", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                "Resource": ["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]}]}))
    return arn


def _pod_env(s3: S3Server, **extra: str) -> dict[str, str]:
    """The backup container's environment: no AWS_* from this machine, IMDS off (as
    builders/s3_env.py sets it), the endpoint, and EXTRA."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return environ | {s3env.ENDPOINT: s3.endpoint, s3env.REGION: s3.region, s3env.EC2_METADATA_DISABLED: "true",
                      **extra}


def _backup(tmp_path: Path, url: str, environ: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """Run the backup Job's container (velocityctl played by a script)."""
    cli = tmp_path / "velocityctl"
    (tmp_path / "payload").write_bytes(SNAPSHOT)
    cli.write_text(f'#!/bin/sh\ntest "$1" = snapshot && cp "{tmp_path / "payload"}" "$2"\n')
    cli.chmod(0o755)
    log = tmp_path / "termination-log"
    done = subprocess.run([sys.executable, "-m", "velocity_operator.snapshot_job", "--file",
                           str(tmp_path / "scratch" / "b1.vsnap"), "--velocityctl", str(cli), "--termination-log",
                           str(log), "--s3-url", url], env=environ, capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, json.loads(log.read_text()), done.stderr


def _download(url: str, out: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The restore init container's command."""
    return subprocess.run([sys.executable, "-m", "velocity_operator.s3", "get", url, str(out)], env=environ,
                          capture_output=True, text=True, timeout=120, check=False)


@needs_netns
def test_session_token_credentials(iam_s3: S3Server, issuer: OidcIssuer, tmp_path: Path) -> None:
    """Temporary credentials in a Secret (credentialsSecret.sessionTokenKey): the token is
    sent and checked; without it, or with another, the key is refused."""
    arn = _role(iam_s3, issuer)
    granted = iam_s3.sts_client().assume_role_with_web_identity(
        RoleArn=arn, RoleSessionName="operator-test", WebIdentityToken=issuer.token(sub=SUBJECT, aud=AUDIENCE))
    keys = granted["Credentials"]
    assert keys["AccessKeyId"].startswith("ASIA")
    secret_env = {s3env.ACCESS_KEY_ID: keys["AccessKeyId"], s3env.SECRET_ACCESS_KEY: keys["SecretAccessKey"],
                  s3env.SESSION_TOKEN: keys["SessionToken"]}
    code, report, stderr = _backup(tmp_path, "s3://bkt/velocity/alpha/b1.vsnap", _pod_env(iam_s3, **secret_env))
    assert code == 0, stderr
    assert report["sizeBytes"] == len(SNAPSHOT)
    assert iam_s3.client().head_object("bkt", "velocity/alpha/b1.vsnap").size == len(SNAPSHOT)
    done = _download("s3://bkt/velocity/alpha/b1.vsnap", tmp_path / "restored", _pod_env(iam_s3, **secret_env))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "restored").read_bytes() == SNAPSHOT

    wrong = {**secret_env, s3env.SESSION_TOKEN: "not-the-session-token"}
    code, report, _ = _backup(tmp_path, "s3://bkt/velocity/alpha/b2.vsnap", _pod_env(iam_s3, **wrong))
    assert (code, report["reason"]) == (3, "S3AccessDenied")
    assert "InvalidToken" in report["error"] and "not-the-session-token" not in report["error"]
    without = {k: v for k, v in secret_env.items() if k != s3env.SESSION_TOKEN}
    code, report, _ = _backup(tmp_path, "s3://bkt/velocity/alpha/b3.vsnap", _pod_env(iam_s3, **without))
    assert (code, report["reason"]) == (3, "S3AccessDenied")
    # The same keys through the adapter directly, for the error type.
    client = iam_s3.client(Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"]))
    assert [o.key for o in client.list_objects("bkt")] == ["velocity/alpha/b1.vsnap"]


@needs_netns
def test_web_identity_through_the_default_chain(iam_s3: S3Server, issuer: OidcIssuer, tmp_path: Path) -> None:
    """No Secret: what IRSA injects (role ARN, token file) is all the pod has; botocore
    exchanges the token at STS and signs with the role's temporary keys."""
    arn = _role(iam_s3, issuer)
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token(sub=SUBJECT, aud=AUDIENCE))
    irsa = {"AWS_ROLE_ARN": arn, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "AWS_ENDPOINT_URL_STS": iam_s3.iam_endpoint}
    code, report, stderr = _backup(tmp_path, "s3://bkt/velocity/alpha/b1.vsnap", _pod_env(iam_s3, **irsa))
    assert code == 0, stderr
    assert report["location"] == "s3://bkt/velocity/alpha/b1.vsnap"
    done = _download("s3://bkt/velocity/alpha/b1.vsnap", tmp_path / "restored", _pod_env(iam_s3, **irsa))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "restored").read_bytes() == SNAPSHOT
    # It really is the role: its policy covers bucket bkt only.
    code, report, _ = _backup(tmp_path, "s3://elsewhere/velocity/alpha/b1.vsnap", _pod_env(iam_s3, **irsa))
    assert (code, report["reason"]) == (3, "S3AccessDenied")
    assert "AccessDenied" in report["error"]


@needs_netns
def test_web_identity_token_of_another_service_account_is_refused(iam_s3: S3Server, issuer: OidcIssuer,
                                                                  tmp_path: Path) -> None:
    arn = _role(iam_s3, issuer)
    token_file = tmp_path / "token"
    token_file.write_text(issuer.token(sub="system:serviceaccount:prod:default", aud=AUDIENCE))
    irsa = {"AWS_ROLE_ARN": arn, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "AWS_ENDPOINT_URL_STS": iam_s3.iam_endpoint}
    code, report, _ = _backup(tmp_path, "s3://bkt/velocity/alpha/b1.vsnap", _pod_env(iam_s3, **irsa))
    assert (code, report["reason"]) == (3, "S3AccessDenied")
    assert "getting credentials (AssumeRoleWithWebIdentity)" in report["error"]
    assert "InvalidIdentityToken" in report["error"]
    assert iam_s3.client().list_objects("bkt") == []


def test_no_credentials_anywhere_fails_at_once(tmp_path: Path) -> None:
    """Neither a Secret nor an identity, instance metadata off: nothing to retry, and no
    request leaves for 169.254.169.254."""
    with S3Server(tmp_path / "s3") as s3:
        s3.client().create_bucket("bkt")
        start = time.monotonic()
        code, report, _ = _backup(tmp_path, "s3://bkt/velocity/alpha/b1.vsnap", _pod_env(s3))
        assert (code, report["reason"]) == (3, "S3AccessDenied")
        assert "NoCredentials" in report["error"]
        assert time.monotonic() - start < 30
