"""The product-page example, end to end over TLS with the generated token."""

from __future__ import annotations

import asyncio

from velocity import VelocityPool

from tests.support.engine_proc import EngineProcess


def test_product_page_example(engine: EngineProcess) -> None:
    async def go() -> None:
        vdb = VelocityPool(node=engine.endpoint, auth=engine.token, ca=str(engine.ca))
        await vdb.connect()
        try:
            assert await vdb.set("session:0xF1", {"active": True}, ttl="2h")
            assert await vdb.get("session:0xF1") == {"active": True}
            assert await vdb.incr("counters:req_total", 1) == 1
            ttl = await vdb.ttl("session:0xF1")
            assert ttl is not None and 7190 < ttl <= 7200
        finally:
            await vdb.close()

    asyncio.run(go())


def test_velocityctl_round_trip(engine: EngineProcess) -> None:
    assert engine.ctl("set", "greeting", "hello").stdout == b"OK\n"
    assert engine.ctl("get", "greeting").stdout == b"hello\n"
    missing = engine.ctl("get", "nope")
    assert missing.returncode == 1 and missing.stdout == b""
    assert engine.ctl("incr", "n", "41").stdout == b"41\n"
    assert engine.ctl("incr", "n").stdout == b"42\n"
