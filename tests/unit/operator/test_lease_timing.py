"""spec.replication.leaseDurationSeconds / leaseRenewIntervalMilliseconds (issue 17): the
engine flags they become, the defaults shared with the engine, the bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from velocity_engine.config import EngineSettings, load_settings
from velocity_operator.api import cluster as api
from velocity_operator.api.crd import custom_resource_definitions
from velocity_operator.builders import statefulset as sts
from velocity_operator.builders.meta import Owner

from .conftest import make_spec


def _args(owner: Owner, **replication: Any) -> list[str]:
    obj = sts.statefulset(owner, make_spec(replication=replication), config_hash="c")
    args: list[str] = obj["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def _flags(args: list[str]) -> dict[str, str]:
    return {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--lease-") and i + 1 < len(args)}


def test_operator_defaults_are_the_engine_defaults() -> None:
    """Flags are left out at the defaults: they must mean the same thing on both sides."""
    fields = EngineSettings.model_fields
    assert fields["lease_duration_s"].default == api.DEFAULT_LEASE_DURATION_SECONDS
    assert fields["lease_renew_s"].default * 1000 == api.DEFAULT_LEASE_RENEW_INTERVAL_MILLISECONDS
    spec = make_spec()
    assert spec.replication.lease_duration_seconds == 5
    assert spec.replication.lease_renew_interval_milliseconds == 1000


def test_defaults_add_no_flag(owner: Owner) -> None:
    """An operator upgrade (or writing the defaults out) must not change the pod template."""
    assert "--lease-duration-s" not in _args(owner) and "--lease-renew-s" not in _args(owner)
    assert _args(owner, leaseDurationSeconds=5, leaseRenewIntervalMilliseconds=1000) == _args(owner)


@pytest.mark.parametrize("replication, flags", [
    ({"leaseDurationSeconds": 3, "leaseRenewIntervalMilliseconds": 500},
     {"--lease-duration-s": "3", "--lease-renew-s": "0.5"}),
    ({"leaseDurationSeconds": 15}, {"--lease-duration-s": "15", "--lease-name": "alpha-primary"}),
    ({"leaseRenewIntervalMilliseconds": 250}, {"--lease-renew-s": "0.25", "--lease-name": "alpha-primary"}),
    ({"leaseDurationSeconds": 30, "leaseRenewIntervalMilliseconds": 2000},
     {"--lease-duration-s": "30", "--lease-renew-s": "2"}),
])
def test_changed_timing_becomes_engine_flags(owner: Owner, replication: dict[str, int],
                                             flags: dict[str, str], tmp_path: Path) -> None:
    got = _flags(_args(owner, **replication))
    assert {k: v for k, v in got.items() if k in flags} == flags
    # The engine accepts them (its own rule: duration > 2 x renew).
    settings = load_settings({"data_dir": tmp_path,
                              "lease_duration_s": float(got.get("--lease-duration-s", "5")),
                              "lease_renew_s": float(got.get("--lease-renew-s", "1"))})
    assert settings.lease_duration_s == replication.get("leaseDurationSeconds", 5)
    assert settings.lease_renew_s * 1000 == replication.get("leaseRenewIntervalMilliseconds", 1000)


def test_a_timing_change_changes_the_pod_template(owner: Owner) -> None:
    """Restart-only in the engine: the new args change the template, so the pods roll."""
    def template(**replication: int) -> dict[str, Any]:
        return sts.statefulset(owner, make_spec(replication=replication), config_hash="c")["spec"]["template"]
    assert template(leaseDurationSeconds=10) != template()
    assert template(leaseRenewIntervalMilliseconds=500) != template()


def test_schema_bounds_and_ratio_rule() -> None:
    crd = next(c for c in custom_resource_definitions() if c["spec"]["names"]["kind"] == "VelocityCluster")
    replication = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "replication"]
    props = replication["properties"]
    assert (props["leaseDurationSeconds"]["minimum"], props["leaseDurationSeconds"]["maximum"]) == (3, 300)
    assert (props["leaseRenewIntervalMilliseconds"]["minimum"],
            props["leaseRenewIntervalMilliseconds"]["maximum"]) == (250, 60_000)
    assert props["leaseDurationSeconds"]["default"] == 5
    [rule] = replication["x-kubernetes-validations"]
    assert "5 *" in rule["rule"] and "a fifth" in rule["message"]
    # Every combination the rule admits leaves the engine's fencing deadline (duration - 2 x
    # interval) at least three intervals: one failed renewal round does not fence the primary.
    for duration in (3, 5, 10, 300):
        for interval_ms in (250, 500, 600, 1000, 2000, 60_000):
            if duration * 1000 >= 5 * interval_ms:
                assert duration - 2 * interval_ms / 1000 >= 3 * interval_ms / 1000


def test_pydantic_bounds_match() -> None:
    with pytest.raises(ValidationError):
        make_spec(replication={"leaseDurationSeconds": 2})
    with pytest.raises(ValidationError):
        make_spec(replication={"leaseRenewIntervalMilliseconds": 100})
