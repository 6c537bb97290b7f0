"""The S3 settings of a pod that talks to object storage (backup, cleanup, restore).

Values velocity_operator.s3.env names and the pod reads back: endpoint settings as plain
values; the key pair, the session token and the CA bundle by reference to the user's
Secrets (secretKeyRef), so they are never copied into a Job or StatefulSet spec and
never logged. Without a credentials Secret nothing is set for credentials and the AWS
SDK's default chain in the pod finds them (for IRSA, the environment the EKS webhook
injects); the instance metadata service stays off unless the destination allows it.

`destination_from_env` is the inverse, for the operator to read a StatefulSet's restore
source back from its init container (builders/restore_download.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from ..api.destination import S3Credentials, S3Destination, S3Encryption, SecretKeyRef
from ..s3 import env as s3env

__all__ = ["destination_from_env", "s3_env"]


def _secret_ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def s3_env(destination: S3Destination) -> list[dict[str, Any]]:
    """The container env velocity_operator.s3.env and botocore read."""
    env: list[dict[str, Any]] = [
        {"name": s3env.ENDPOINT, "value": destination.endpoint},
        {"name": s3env.REGION, "value": destination.region},
        {"name": s3env.PATH_STYLE, "value": "true" if destination.force_path_style else "false"},
        {"name": s3env.EC2_METADATA_DISABLED, "value": "false" if destination.use_instance_metadata else "true"},
    ]
    if (secret := destination.credentials_secret) is not None:
        env += [{"name": s3env.ACCESS_KEY_ID, "valueFrom": _secret_ref(secret.name, secret.access_key_id_key)},
                {"name": s3env.SECRET_ACCESS_KEY, "valueFrom": _secret_ref(secret.name, secret.secret_access_key_key)}]
        if secret.session_token_key:
            env.append({"name": s3env.SESSION_TOKEN, "valueFrom": _secret_ref(secret.name, secret.session_token_key)})
    if (ca := destination.ca_secret) is not None:
        env.append({"name": s3env.CA_BUNDLE, "valueFrom": _secret_ref(ca.name, ca.key)})
    if (sse := destination.server_side_encryption) is not None:
        env.append({"name": s3env.SSE, "value": sse.algorithm})
        if sse.kms_key_id:
            env.append({"name": s3env.SSE_KMS_KEY_ID, "value": sse.kms_key_id})
    return env


def destination_from_env(env: list[dict[str, Any]], bucket: str) -> S3Destination:
    """The destination `s3_env` was built from (prefix and serviceAccountName aside: the
    env does not carry them). KeyError or ValueError when `env` is not s3_env's."""
    by_name: Mapping[str, dict[str, Any]] = {e["name"]: e for e in env}

    def value(name: str) -> str | None:
        return str(by_name[name]["value"]) if name in by_name else None

    def ref(name: str) -> dict[str, str] | None:
        return dict(by_name[name]["valueFrom"]["secretKeyRef"]) if name in by_name else None

    credentials = None
    if (key_id := ref(s3env.ACCESS_KEY_ID)) is not None:
        secret = ref(s3env.SECRET_ACCESS_KEY)
        token = ref(s3env.SESSION_TOKEN)
        if secret is None:
            raise KeyError(s3env.SECRET_ACCESS_KEY)
        credentials = S3Credentials(name=key_id["name"], access_key_id_key=key_id["key"],
                                    secret_access_key_key=secret["key"],
                                    session_token_key=token["key"] if token else None)
    ca = ref(s3env.CA_BUNDLE)
    sse = value(s3env.SSE)
    return S3Destination(
        endpoint=str(value(s3env.ENDPOINT) or ""), bucket=bucket, region=value(s3env.REGION) or "us-east-1",
        force_path_style=value(s3env.PATH_STYLE) != "false",
        # Absent in pods made before the setting existed: those never asked IMDS either way.
        use_instance_metadata=value(s3env.EC2_METADATA_DISABLED) == "false",
        credentials_secret=credentials,
        ca_secret=SecretKeyRef(name=ca["name"], key=ca["key"]) if ca else None,
        server_side_encryption=S3Encryption(algorithm=cast(Literal["AES256", "aws:kms"], sse),
                                            kms_key_id=value(s3env.SSE_KMS_KEY_ID)) if sse else None,
    )
