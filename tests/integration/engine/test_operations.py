"""Every V-Proto operation through the Python SDK against a real TLS engine."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from velocity import VelocityPool
from vproto.errors import (
    InvalidArgumentError,
    KeyTooLargeError,
    NotIntegerError,
    OverflowError_,
    ValueTooLargeError,
    WrongTypeError,
)

from tests.support.engine_proc import EngineProcess

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def run(engine: EngineProcess, body: Callable[[VelocityPool], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with engine.pool() as vdb:
            return await body(vdb)

    return asyncio.run(go())


@pytest.fixture
def ns() -> str:
    """A fresh key prefix, so tests sharing one engine never see each other's keys."""
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.mark.parametrize(
    "value",
    [b"\x00\xffraw", "unicode ✓", 0, -42, I64_MAX, I64_MIN, {"active": True, "n": [1, 2.5, None]}, [1, "two"], ""],
    ids=["bytes", "str", "zero", "neg", "max", "min", "json-object", "json-list", "empty-str"],
)
def test_values_round_trip_with_their_type(shared_engine: EngineProcess, ns: str, value: Any) -> None:
    async def body(vdb: VelocityPool) -> Any:
        assert await vdb.set(ns + "k", value)
        return await vdb.get(ns + "k")

    got = run(shared_engine, body)
    assert got == value and type(got) is type(value)


def test_get_missing_returns_default(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> tuple[Any, Any]:
        return await vdb.get(ns + "missing"), await vdb.get(ns + "missing", default="d")

    assert run(shared_engine, body) == (None, "d")


def test_set_conditions_nx_xx(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        k = ns + "c"
        return [
            await vdb.set(k, "x", xx=True),  # absent: not written
            await vdb.get(k),
            await vdb.set(k, "a", nx=True),  # absent: written
            await vdb.set(k, "b", nx=True),  # present: not written
            await vdb.get(k),
            await vdb.set(k, "c", xx=True),  # present: written
            await vdb.get(k),
        ]

    assert run(shared_engine, body) == [False, None, True, False, "a", True, "c"]


def test_delete_and_exists(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[bool]:
        k = ns + "d"
        await vdb.set(k, 1)
        return [await vdb.exists(k), await vdb.delete(k), await vdb.exists(k), await vdb.delete(k)]

    assert run(shared_engine, body) == [True, True, False, False]


def test_incr_family(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        k = ns + "n"
        return [await vdb.incr(k), await vdb.incrby(k, 10), await vdb.decr(k), await vdb.decr(k, 20), await vdb.get(k)]

    assert run(shared_engine, body) == [1, 11, 10, -10, -10]


def test_incr_keeps_ttl_and_counts_set_integers(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> tuple[int, float | None]:
        k = ns + "n"
        await vdb.set(k, 41, ttl="1h")
        return await vdb.incr(k), await vdb.ttl(k)

    n, ttl = run(shared_engine, body)
    assert n == 42 and ttl is not None and 3590 < ttl <= 3600


def test_incr_overflow_is_an_error_and_changes_nothing(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        k = ns + "big"
        await vdb.set(k, I64_MAX - 1)
        assert await vdb.incr(k) == I64_MAX
        with pytest.raises(OverflowError_):
            await vdb.incr(k)
        await vdb.set(ns + "small", I64_MIN)
        with pytest.raises(OverflowError_):
            await vdb.decr(ns + "small")
        return [await vdb.get(k), await vdb.get(ns + "small")]

    assert run(shared_engine, body) == [I64_MAX, I64_MIN]


def test_incr_on_wrong_values(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> None:
        await vdb.set(ns + "j", {"a": 1})
        with pytest.raises(WrongTypeError):
            await vdb.incr(ns + "j")
        await vdb.set(ns + "s", "12")  # numeric strings count, like Redis
        assert await vdb.incr(ns + "s") == 13
        await vdb.set(ns + "t", "twelve")
        with pytest.raises(NotIntegerError):
            await vdb.incr(ns + "t")
        assert await vdb.get(ns + "t") == "twelve"

    run(shared_engine, body)


def test_expire_persist_ttl(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        k = ns + "e"
        out: list[Any] = [await vdb.pttl(k), await vdb.expire(k, 10)]  # missing: -2, False
        await vdb.set(k, "v")
        out += [await vdb.pttl(k), await vdb.expire(k, "90s")]
        ms = await vdb.pttl(k)
        out += [89_000 < ms <= 90_000, await vdb.persist(k), await vdb.pttl(k), await vdb.persist(k)]
        return out

    assert run(shared_engine, body) == [-2, False, -1, True, True, True, -1, False]


def test_set_without_ttl_clears_an_existing_ttl(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> int:
        await vdb.set(ns + "k", 1, ttl=100)
        await vdb.set(ns + "k", 2)
        return await vdb.pttl(ns + "k")

    assert run(shared_engine, body) == -1


def test_cas(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        k = ns + "cas"
        return [
            await vdb.cas(k, None, "v1"),  # absent -> create
            await vdb.cas(k, None, "v2"),  # present: no
            await vdb.cas(k, "other", "v2"),
            await vdb.cas(k, "v1", "v2"),
            await vdb.get(k),
            await vdb.cas(k, b"v2", "v3"),  # the type is part of the comparison
            await vdb.get(k),
        ]

    assert run(shared_engine, body) == [True, False, False, True, "v2", False, "v2"]


def test_mget_mset(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        await vdb.mset({ns + "a": 1, ns + "b": "two", ns + "c": {"three": 3}}, ttl="1h")
        ttl = await vdb.ttl(ns + "b")
        assert ttl is not None and ttl > 3500
        return await vdb.mget([ns + "a", ns + "missing", ns + "b", ns + "c"], default="-")

    assert run(shared_engine, body) == [1, "-", "two", {"three": 3}]


def test_mset_is_all_or_nothing(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[Any]:
        too_big_key = "k" * (64 * 1024 + 1)
        with pytest.raises(KeyTooLargeError):
            await vdb.mset({ns + "ok1": 1, too_big_key: 2, ns + "ok2": 3})
        return await vdb.mget([ns + "ok1", ns + "ok2"])

    assert run(shared_engine, body) == [None, None]


def test_scan_prefix_in_key_order_across_pages(shared_engine: EngineProcess, ns: str) -> None:
    keys = [f"{ns}user:{i:04d}" for i in range(257)]

    async def body(vdb: VelocityPool) -> tuple[list[str], list[str]]:
        await vdb.mset({k: i for i, k in enumerate(reversed(keys))})
        await vdb.set(ns + "other", 1)
        await vdb.set(ns + "user", 1)  # equal to the prefix minus ':' -> not included
        paged = [k async for k in vdb.scan(ns + "user:", count=10)]
        return paged, [k async for k in vdb.scan(ns)]

    paged, everything = run(shared_engine, body)
    assert paged == sorted(keys)
    assert everything == sorted([*keys, ns + "other", ns + "user"])


def test_scan_skips_deleted_and_expired_keys(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> list[str]:
        await vdb.mset({ns + "a": 1, ns + "b": 2, ns + "c": 3})
        await vdb.delete(ns + "b")
        await vdb.set(ns + "d", 4, ttl="1ms")
        await asyncio.sleep(0.01)  # the TTL itself is what is being tested: let 1 ms pass
        return [k async for k in vdb.scan(ns)]

    assert run(shared_engine, body) == [ns + "a", ns + "c"]


def test_ping_and_info(shared_engine: EngineProcess) -> None:
    async def body(vdb: VelocityPool) -> tuple[bytes, dict[str, Any]]:
        return await vdb.ping(b"echo"), await vdb.info()

    pong, info = run(shared_engine, body)
    assert pong == b"echo"
    assert info["server"]["version"] and info["server"]["node_id"]
    assert info["server"]["tls"] is True and info["server"]["auth"] is True
    assert isinstance(info["keys"], int) and info["keys"] >= 0


def test_limits_are_enforced_with_typed_errors(shared_engine: EngineProcess, ns: str) -> None:
    async def body(vdb: VelocityPool) -> None:
        with pytest.raises(KeyTooLargeError):
            await vdb.set("k" * (64 * 1024 + 1), 1)
        with pytest.raises(ValueTooLargeError):
            await vdb.set(ns + "v", b"x" * (8 * 1024 * 1024 + 1))
        with pytest.raises(InvalidArgumentError):
            await vdb.set(b"", 1)
        with pytest.raises(ValueError, match="positive"):
            await vdb.expire(ns + "v", -5)  # refused by the SDK before it is sent
        assert await vdb.get(ns + "v") is None
        # The connection survived every one of those errors.
        assert await vdb.ping(b"still") == b"still"

    run(shared_engine, body)


def test_large_values_use_compression_and_round_trip(shared_engine: EngineProcess, ns: str) -> None:
    big = ("velocity " * 200_000).encode()  # ~1.8 MB, compressible

    async def body(vdb: VelocityPool) -> Any:
        await vdb.set(ns + "big", big)
        return await vdb.get(ns + "big")

    assert run(shared_engine, body) == big
