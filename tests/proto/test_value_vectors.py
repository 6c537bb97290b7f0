"""The Python SDK agrees with the shared value vectors (proto/vectors/values.json).

Every SDK reads the same file: a value must be stored as exactly this kind and
payload, and the payload must decode back to the same value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from vproto.values import ValueKind, decode_value, encode_value

VALUES = Path(__file__).resolve().parents[2] / "proto" / "vectors" / "values.json"
CASES: list[dict[str, Any]] = json.loads(VALUES.read_text())["cases"]


def _value(case: dict[str, Any]) -> Any:
    typ, shown = case["type"], case["value"]
    if typ == "bytes":
        return bytes.fromhex(shown)
    if typ == "int":
        return int(shown)
    return shown


def test_every_kind_is_covered() -> None:
    assert {c["kind"] for c in CASES} == {k.value for k in ValueKind}
    assert any(c["type"] == "int" and abs(int(c["value"])) > 2**53 for c in CASES)
    assert any(c["type"] == "int" and int(c["value"]) < 0 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_encode_matches_vector(case: dict[str, Any]) -> None:
    kind, payload = encode_value(_value(case))
    assert (int(kind), payload.hex()) == (case["kind"], case["payload_hex"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decode_matches_vector(case: dict[str, Any]) -> None:
    value = decode_value(case["kind"], bytes.fromhex(case["payload_hex"]))
    expected = _value(case)
    assert value == expected
    assert type(value) is type(expected)
