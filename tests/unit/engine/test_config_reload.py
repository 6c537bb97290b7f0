"""Config reload decisions (plan_reload, ConfigReloader) and the WAL's runtime policy switch."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from velocity_engine.config import LIVE_SETTINGS, EngineSettings, load_settings
from velocity_engine.config_reload import ConfigReloader, file_stamp, plan_reload
from velocity_engine.storage.base import Record
from velocity_engine.storage.file_ops import FileOps
from velocity_engine.storage.lsm import LsmOptions, LsmStorage
from velocity_engine.storage.wal_writer import Policy


def settings(tmp_path: Path, **kw: Any) -> EngineSettings:
    return EngineSettings(data_dir=tmp_path, **kw)


def test_plan_splits_live_and_restart_only_changes(tmp_path: Path) -> None:
    old = settings(tmp_path)
    assert plan_reload(old, settings(tmp_path)).result == "unchanged"
    plan = plan_reload(old, settings(tmp_path, appendfsync="always", log_level="DEBUG", max_connections=5))
    assert plan.live == {"appendfsync": ("everysec", "always"), "log_level": ("INFO", "DEBUG"),
                         "max_connections": (10_000, 5)}
    assert plan.restart == {} and plan.result == "applied"
    plan = plan_reload(old, settings(tmp_path, max_value_bytes=1024, port=7000, log_level="ERROR"))
    assert plan.live == {"log_level": ("INFO", "ERROR")}
    assert set(plan.restart) == {"max_value_bytes", "port"} and plan.result == "restart_required"


def test_live_settings_are_engine_fields_and_max_value_bytes_is_not_live() -> None:
    assert set(EngineSettings.model_fields) >= LIVE_SETTINGS
    assert "max_value_bytes" not in LIVE_SETTINGS


class FakeServer:
    def __init__(self, s: EngineSettings, refuse: bool = False) -> None:
        self.settings = s
        self.policies: list[Policy] = []
        self.refuse = refuse

    def set_appendfsync(self, policy: Policy) -> None:
        if self.refuse:
            raise ValueError("no event loop")
        self.policies.append(policy)


@pytest.fixture
def root_level() -> Iterator[None]:
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def test_reloader_applies_live_keys_keeps_flag_precedence_and_refuses_invalid_files(
    tmp_path: Path, root_level: None
) -> None:
    cfg = tmp_path / "velocity.toml"
    cfg.write_text('appendfsync = "everysec"\n')
    flags = {"data_dir": tmp_path, "max_connections": 50}
    server = FakeServer(load_settings(flags, cfg))
    r = ConfigReloader(server, flags, cfg)
    assert r.poll() is None, "an unchanged file is not reloaded"

    cfg.write_text('appendfsync = "always"\nlog_level = "DEBUG"\nmax_connections = 9\nmax_value_bytes = 1024\n')
    assert r.reload("test") == "restart_required"
    assert (server.settings.appendfsync, server.settings.log_level) == ("always", "DEBUG")
    assert server.policies == ["always"] and logging.getLogger().level == logging.DEBUG
    assert server.settings.max_connections == 50, "the flag wins over the file"
    assert server.settings.max_value_bytes == 8 * 1024 * 1024 and r.restart_pending == ("max_value_bytes",)

    cfg.write_text('appendfsync = "sometimes"\nlog_level = "ERROR"\n')
    assert r.reload("test") == "invalid"
    assert (server.settings.appendfsync, server.settings.log_level) == ("always", "DEBUG")
    assert "appendfsync" in r.last_error and r.restart_pending == ("max_value_bytes",)
    assert r.counts == {"invalid": 1, "unchanged": 0, "applied": 0, "restart_required": 1}
    families = {f.name: f for f in r.metric_families()}
    assert {s.labels["result"]: s.value for s in families["velocity_config_reloads"].samples} == r.counts
    assert families["velocity_config_restart_required"].samples[0].value == 1


def test_a_policy_the_storage_refuses_changes_nothing(tmp_path: Path, root_level: None) -> None:
    cfg = tmp_path / "velocity.toml"
    cfg.write_text("")
    server = FakeServer(settings(tmp_path), refuse=True)
    r = ConfigReloader(server, {"data_dir": tmp_path}, cfg)
    cfg.write_text('appendfsync = "always"\nlog_level = "ERROR"\n')
    assert r.reload("test") == "invalid"
    assert (server.settings.appendfsync, server.settings.log_level) == ("everysec", "INFO")


def test_file_stamp_sees_a_kubelet_symlink_swap_with_identical_size_and_mtime(tmp_path: Path) -> None:
    for v in ("..v1", "..v2"):
        (tmp_path / v).mkdir()
        (tmp_path / v / "velocity.toml").write_text('log_level = "INFO"\n')
        os.utime(tmp_path / v / "velocity.toml", ns=(0, 0))
    (tmp_path / "..data").symlink_to("..v1")
    path = tmp_path / "velocity.toml"
    path.symlink_to("..data/velocity.toml")
    before = file_stamp(path)
    tmp = tmp_path / "..tmp"
    tmp.symlink_to("..v2")
    os.replace(tmp, tmp_path / "..data")
    assert before is not None and file_stamp(path) not in (None, before)
    assert file_stamp(tmp_path / "missing") is None


def test_wal_policy_switch_never_acknowledges_before_the_sync(tmp_path: Path) -> None:
    """everysec -> always -> no -> everysec on a live storage, tracking what each sync covered."""
    synced_size: dict[int, int] = {}

    def fdatasync(fd: int) -> None:
        os.fdatasync(fd)
        synced_size[fd] = os.fstat(fd).st_size

    async def go() -> None:
        loop = asyncio.get_running_loop()
        st = LsmStorage(tmp_path, LsmOptions(appendfsync="everysec"), loop, FileOps(fdatasync=fdatasync))
        st.apply([(b"before", Record(0, b"x"))])
        assert st.sync_waiter() is None

        st.set_appendfsync("always")
        assert st.stats()["persistence"]["appendfsync"] == "always"
        for i in range(5):
            st.apply([(f"k{i}".encode(), Record(0, b"x"))])
            size = os.fstat(st.wal._fd).st_size
            w = st.sync_waiter()
            assert w is not None, "a write after the switch to always must wait for its sync"
            await asyncio.wait_for(w, 5)
            assert synced_size[st.wal._fd] >= size, "acknowledged before its bytes were synced"

        # A waiter handed out under `always` still completes after a switch away from it.
        st.apply([(b"pending", Record(0, b"x"))])
        size = os.fstat(st.wal._fd).st_size
        w = st.sync_waiter()
        assert w is not None
        st.set_appendfsync("no")
        await asyncio.wait_for(w, 5)
        assert synced_size[st.wal._fd] >= size

        st.apply([(b"unsynced", Record(0, b"x"))])
        assert st.sync_waiter() is None and st.wal.synced < st.wal.written

        # everysec's interval comes back without a restart: the unsynced write gets synced.
        # (the switch itself wakes the sync thread, so write once more after it).
        st.set_appendfsync("everysec")
        for key in (b"everysec-1", b"everysec-2"):
            st.apply([(key, Record(0, b"x"))])
            deadline = loop.time() + 5
            while st.wal.synced < st.wal.written:
                assert loop.time() < deadline, "everysec never synced after the switch back"
                await asyncio.sleep(0.05)
        st.close()

    asyncio.run(go())


def test_wal_refuses_always_without_an_event_loop(tmp_path: Path) -> None:
    st = LsmStorage(tmp_path, LsmOptions(appendfsync="no"))
    with pytest.raises(ValueError, match="event loop"):
        st.set_appendfsync("always")
    assert st.stats()["persistence"]["appendfsync"] == "no"
    st.close()


def test_everysec_after_starting_under_always_syncs_in_the_background(tmp_path: Path) -> None:
    """The sync thread started without an interval (always) must pick up everysec's."""

    async def go() -> None:
        loop = asyncio.get_running_loop()
        st = LsmStorage(tmp_path, LsmOptions(appendfsync="always"), loop)
        st.set_appendfsync("everysec")
        # The switch wakes the sync thread once (it may sync the first write); the
        # second write can only be synced by everysec's own interval.
        for key in (b"a", b"b"):
            st.apply([(key, Record(0, b"x"))])
            assert st.sync_waiter() is None
            deadline = loop.time() + 5
            while st.wal.synced < st.wal.written:
                assert loop.time() < deadline, "everysec never synced"
                await asyncio.sleep(0.05)
        st.close()

    asyncio.run(go())


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "velocity.toml"
    cfg.write_text("")
    server = FakeServer(settings(tmp_path))
    r = ConfigReloader(server, {"data_dir": tmp_path}, cfg)
    cfg.write_bytes(b'log_level = "\xff"\n')
    assert r.reload("test") == "invalid" and "UTF-8" in r.last_error
