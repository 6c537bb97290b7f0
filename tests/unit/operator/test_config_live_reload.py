"""Live config keys change the ConfigMap only; restart-only keys change the pod template."""

from __future__ import annotations

import hashlib
import tomllib
from typing import Any

import pytest
from velocity_engine.config import LIVE_SETTINGS
from velocity_operator.builders import config
from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.meta import Owner

from .conftest import make_spec

BASE = {"logLevel": "INFO", "maxConnections": 100, "appendfsync": "everysec", "maxValueBytes": 1024}


def rendered(owner: Owner, **cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ConfigMap, pod template) as the cluster controller builds them."""
    spec = make_spec(config={**BASE, **cfg})
    cm = config.config_map(owner, spec)
    return cm, sts.statefulset(owner, spec, config_hash=config.config_hash(cm))["spec"]["template"]


@pytest.mark.parametrize("key,value", [("appendfsync", "always"), ("appendfsync", "no"),
                                       ("logLevel", "DEBUG"), ("maxConnections", 5)])
def test_a_live_key_changes_the_config_map_but_not_the_pod_template(owner: Owner, key: str, value: Any) -> None:
    cm0, template0 = rendered(owner)
    cm1, template1 = rendered(owner, **{key: value})
    assert cm1["data"] != cm0["data"], "the new value must reach the pods through the ConfigMap"
    assert template1 == template0
    assert config.config_hash(cm1) == config.config_hash(cm0)


def test_a_restart_only_key_changes_the_pod_template(owner: Owner) -> None:
    cm0, template0 = rendered(owner)
    cm1, template1 = rendered(owner, maxValueBytes=2048)
    assert config.config_hash(cm1) != config.config_hash(cm0)
    assert template1 != template0
    annotation = sts.CONFIG_HASH_ANNOTATION
    assert template1["metadata"]["annotations"][annotation] != template0["metadata"]["annotations"][annotation]
    # So do the restart-only keys the operator sets itself (TLS on/off).
    assert config.config_hash(config.config_map(owner, make_spec(tls={"enabled": False}))) != \
        config.config_hash(config.config_map(owner, make_spec()))


def test_hash_without_live_keys_is_the_hash_of_the_whole_file(owner: Owner) -> None:
    """Clusters that set no live key are not rolled by upgrading to this operator."""
    cm = config.config_map(owner, make_spec(config={"maxValueBytes": 1024}))
    assert config.config_hash(cm) == hashlib.sha256(cm["data"][config.CONFIG_KEY].encode()).hexdigest()[:16]
    assert not set(tomllib.loads(cm["data"][config.CONFIG_KEY])) & config.LIVE_KEYS


def test_operator_and_engine_agree_on_the_live_keys() -> None:
    assert config.LIVE_KEYS == LIVE_SETTINGS
