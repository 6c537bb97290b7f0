from __future__ import annotations

import datetime as dt

import pytest
from velocity.connection import Endpoint
from velocity.durations import parse_ttl_ms


@pytest.mark.parametrize(
    ("ttl", "ms"),
    [(1, 1000), (0.25, 250), ("30s", 30_000), ("1500ms", 1500), ("2h", 7_200_000), ("1h30m", 5_400_000),
     ("1d", 86_400_000), (" 2H ", 7_200_000), ("10", 10_000), ("1.5s", 1500), (dt.timedelta(minutes=2), 120_000)],
)
def test_parse_ttl(ttl: object, ms: int) -> None:
    assert parse_ttl_ms(ttl) == ms  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, "0s", "", "soon", "1x", "s", "1h 30m", "30s1", True, None, [1]])
def test_parse_ttl_rejects_unclear_values(ttl: object) -> None:
    with pytest.raises(ValueError):
        parse_ttl_ms(ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [("vdb://127.0.0.1:2005", "127.0.0.1", 2005), ("vdb://db.example:7000", "db.example", 7000),
     ("localhost", "localhost", 2005), ("vdb://[::1]:2005", "::1", 2005)],
)
def test_endpoint_parse(url: str, host: str, port: int) -> None:
    assert Endpoint.parse(url) == Endpoint(host, port)


@pytest.mark.parametrize("url", ["http://x:1", "vdb://:2005", "vdb://host:port"])
def test_endpoint_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(url)
