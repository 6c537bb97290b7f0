"""The shared test vectors (proto/vectors/frames.json), as every SDK must pass them.

Valid vectors: the frame decodes to the listed fields, and the fields encode back
to exactly `body_hex` and `frame_hex`. Invalid vectors: the frame decoder plus the
body decoder (the server's path) reject the frame with the listed error code.
"""

from __future__ import annotations

import json
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Any

import pytest
from vproto import messages as m
from vproto.errors import ErrorCode, VelocityError
from vproto.frame import FrameDecoder, decompress_body, encode_frame, flag_compression, validate_flags

VECTORS = Path(__file__).resolve().parents[2] / "proto" / "vectors" / "frames.json"
DOC = json.loads(VECTORS.read_text())
VALID: list[dict[str, Any]] = DOC["valid"]
INVALID: list[dict[str, Any]] = DOC["invalid"]
MESSAGES = {cls.FB_NAME: cls for cls in vars(m).values() if isinstance(cls, type) and issubclass(cls, m.Message)
            and cls is not m.Message}


def _from_fields(cls: type[m.Message], data: dict[str, Any]) -> m.Message:
    """Build a message from a vector's JSON fields (hex bytes, 64-bit ints as strings)."""
    kwargs: dict[str, Any] = {}
    spec = {s[0]: s[2] for s in cls.SPEC}
    for name, value in data.items():
        typ = spec[name]
        if isinstance(typ, type):
            kwargs[name] = [_from_fields(typ, v) for v in value]
        elif typ == "bytes":
            kwargs[name] = bytes.fromhex(value)
        elif typ == "str" or typ == "bool":
            kwargs[name] = value
        else:
            kwargs[name] = int(value)
    return cls(**kwargs)


def _server_decode(data: bytes) -> list[m.Message]:
    """What the engine does with bytes off the wire, minus the command itself."""
    out = []
    for opcode, flags, body in FrameDecoder().feed(data):
        validate_flags(flags)
        if flag_compression(flags):
            body = decompress_body(body, 16 * 1024 * 1024)
        out.append(m.decode_body(opcode, body))
    return out


def test_vectors_are_not_trivially_empty() -> None:
    assert DOC["protocol_version"] == 1
    assert len(VALID) >= 30 and len(INVALID) >= 5
    covered = {v["opcode"] & 0x7F for v in VALID if v["opcode"] != 0xFF}
    assert covered == {int(op) for op in m.BODIES}, "every opcode has at least one valid vector"


@pytest.mark.parametrize("vec", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector(vec: dict[str, Any]) -> None:
    frame = bytes.fromhex(vec["frame_hex"])
    body = bytes.fromhex(vec["body_hex"])
    [(opcode, flags, got_body)] = FrameDecoder().feed(frame)
    assert (opcode, flags, got_body) == (vec["opcode"], vec["flags"], body)
    cls = m.body_type(opcode)
    assert vec["message"] == cls.FB_NAME
    decoded = m.decode_body(opcode, body)
    expected = _from_fields(MESSAGES[vec["message"]], vec["fields"])
    assert decoded == expected
    # Every field is listed, so the vector pins the whole message.
    assert set(vec["fields"]) == {f.name for f in dc_fields(expected)}  # type: ignore[arg-type]
    assert expected.encode() == body
    assert encode_frame(opcode, flags, expected.encode()) == frame


@pytest.mark.parametrize("vec", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_vector(vec: dict[str, Any]) -> None:
    with pytest.raises(VelocityError) as info:
        _server_decode(bytes.fromhex(vec["frame_hex"]))
    assert info.value.code == ErrorCode[vec["error"]]
