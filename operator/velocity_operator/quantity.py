"""Kubernetes resource quantities (`1Gi`, `500M`, `2`) as exact numbers, for comparisons."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["QuantityError", "parse_quantity"]

_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}
_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: int | str) -> Decimal:
    """The value of a quantity in base units (bytes for storage)."""
    if isinstance(value, int):
        return Decimal(value)
    match = _RE.match(value.strip())
    if not match:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity such as 1Gi, 500M or 2")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity") from None
    return number * _SUFFIXES[match.group(2) or ""]
