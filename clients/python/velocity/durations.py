"""TTL parsing: seconds as numbers, or strings like "2h", "30s", "1500ms", "1h30m"."""

from __future__ import annotations

import datetime as dt
import re

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

TtlLike = int | float | str | dt.timedelta


def parse_ttl_ms(ttl: TtlLike) -> int:
    """Milliseconds for a TTL; raises ValueError for anything unclear or not positive."""
    if isinstance(ttl, bool):
        raise ValueError("a TTL cannot be a bool")
    if isinstance(ttl, dt.timedelta):
        ms = round(ttl.total_seconds() * 1000)
    elif isinstance(ttl, int | float):
        ms = round(ttl * 1000)
    elif isinstance(ttl, str):
        text = ttl.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            ms = round(float(text) * 1000)
        else:
            pos, total = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                total += float(match.group(1)) * _UNITS_MS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(f"cannot read TTL {ttl!r}: use e.g. 30s, 1500ms, 2h, 1h30m or seconds")
            ms = round(total)
    else:
        raise ValueError(f"cannot read TTL of type {type(ttl).__name__}")
    if ms <= 0:
        raise ValueError(f"TTL must be positive, got {ttl!r}")
    return ms
