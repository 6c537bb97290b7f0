"""Live config reload through a real engine process: the file changes, INFO follows.

The config directory is laid out the way kubelet mounts a ConfigMap (velocity.toml ->
..data/velocity.toml, ..data -> ..vN) and updated the way kubelet does it: a new
directory, then an atomic swap of the `..data` symlink.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.engine_proc import EngineProcess, wait_until

WRITES = 20


class KubeletConfigDir:
    """A ConfigMap volume as kubelet writes it, with kubelet's atomic update."""

    def __init__(self, root: Path, text: str) -> None:
        self.root = root
        self.version = 0
        root.mkdir(parents=True)
        self.update(text)
        (root / "velocity.toml").symlink_to("..data/velocity.toml")

    @property
    def path(self) -> Path:
        return self.root / "velocity.toml"

    def update(self, text: str) -> None:
        self.version += 1
        version_dir = self.root / f"..v{self.version}"
        version_dir.mkdir()
        (version_dir / "velocity.toml").write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version_dir.name)
        os.replace(tmp, self.root / "..data")


def toml(**values: Any) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def info(eng: EngineProcess) -> dict[str, Any]:
    r = eng.ctl("info", "--json", check=True)
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def reloads(eng: EngineProcess, result: str) -> float:
    for fam in text_string_to_metric_families(eng.metrics()):
        for s in fam.samples:
            if s.name == "velocity_config_reloads_total" and s.labels.get("result") == result:
                return s.value
    raise AssertionError("velocity_config_reloads_total is not exported")


def metric(eng: EngineProcess, name: str) -> float:
    for fam in text_string_to_metric_families(eng.metrics()):
        for s in fam.samples:
            if s.name == name:
                return s.value
    raise AssertionError(f"{name} is not exported")


def wait_info(eng: EngineProcess, what: str, check: Any) -> dict[str, Any]:
    result: dict[str, Any] = wait_until(lambda: (d := info(eng)) and check(d) and d, timeout=15,
                                        interval=0.2, what=what)
    return result


def sequential_writes(eng: EngineProcess, prefix: str) -> list[str]:
    keys = [f"{prefix}:{i}" for i in range(WRITES)]

    async def go() -> None:
        async with eng.pool() as vdb:
            for k in keys:
                await vdb.set(k, k)  # one at a time: each is acknowledged before the next is sent

    asyncio.run(go())
    return keys


def test_appendfsync_and_log_level_follow_the_file_and_always_is_durable(tmp_path: Path) -> None:
    conf = KubeletConfigDir(tmp_path / "config", toml(appendfsync="everysec", log_level="INFO"))
    eng = EngineProcess(tmp_path / "engine", extra_args=["--config", str(conf.path)])
    with eng:
        d = info(eng)
        assert d["persistence"]["appendfsync"] == "everysec" and d["config"]["log_level"] == "INFO"

        conf.update(toml(appendfsync="always", log_level="DEBUG"))
        d = wait_info(eng, "appendfsync always and log_level DEBUG in INFO",
                      lambda d: d["persistence"]["appendfsync"] == "always" and d["config"]["log_level"] == "DEBUG")
        assert d["config"]["appendfsync"] == "always"
        assert reloads(eng, "applied") == 1 and reloads(eng, "invalid") == 0
        assert "log_level 'INFO' -> 'DEBUG' applied" in eng.log()

        # Under `always` each acknowledged write waited for its own fdatasync; under
        # everysec these 20 writes (well under a second) would share one or two.
        before = info(eng)["persistence"]["fsyncs"]
        keys = sequential_writes(eng, "always")
        assert info(eng)["persistence"]["fsyncs"] - before >= WRITES
        eng.kill()
        eng.start()

        async def read_back() -> list[Any]:
            async with eng.pool() as vdb:
                return [await vdb.get(k) for k in keys]

        assert asyncio.run(read_back()) == keys, "an acknowledged write was lost across SIGKILL"
        assert info(eng)["persistence"]["appendfsync"] == "always", "the restarted engine reads the new file"

        conf.update(toml(appendfsync="no", log_level="INFO"))
        wait_info(eng, "appendfsync no in INFO", lambda d: d["persistence"]["appendfsync"] == "no")
        before = info(eng)["persistence"]["fsyncs"]
        sequential_writes(eng, "no")
        assert info(eng)["persistence"]["fsyncs"] - before < WRITES // 2, "writes still synced one by one"

        conf.update(toml(appendfsync="everysec", log_level="INFO"))
        wait_info(eng, "appendfsync everysec in INFO", lambda d: d["persistence"]["appendfsync"] == "everysec")
        sequential_writes(eng, "everysec")
        wait_info(eng, "everysec to sync in the background", lambda d: d["persistence"]["fsync_lag_s"] == 0)


def test_invalid_file_is_refused_and_restart_only_keys_are_reported(tmp_path: Path) -> None:
    conf = KubeletConfigDir(tmp_path / "config", toml(appendfsync="everysec", max_connections=100))
    with EngineProcess(tmp_path / "engine", extra_args=["--config", str(conf.path)]) as eng:
        conf.update(toml(appendfsync="sometimes", max_connections=5))
        wait_until(lambda: reloads(eng, "invalid") == 1, timeout=15, interval=0.2, what="an invalid reload")
        d = info(eng)
        assert d["persistence"]["appendfsync"] == "everysec"
        assert d["limits"]["max_connections"] == 100, "an invalid file changes nothing, not even its valid keys"
        assert "appendfsync" in d["config"]["last_error"]
        assert "config reload (file changed) refused" in eng.log()

        conf.update("appendfsync = \n")  # not TOML at all
        wait_until(lambda: reloads(eng, "invalid") == 2, timeout=15, interval=0.2, what="a second invalid reload")
        assert info(eng)["persistence"]["appendfsync"] == "everysec"

        # A restart-only key next to a live one: the live one applies, the other is named.
        conf.update(toml(appendfsync="everysec", max_connections=7, max_value_bytes=1024))
        d = wait_info(eng, "max_connections 7", lambda d: d["limits"]["max_connections"] == 7)
        assert d["limits"]["max_value_bytes"] == 8 * 1024 * 1024
        assert d["config"]["restart_required"] == ["max_value_bytes"] and d["config"]["last_error"] == ""
        assert reloads(eng, "restart_required") == 1
        assert metric(eng, "velocity_config_restart_required") == 1
        assert "max_value_bytes (8388608 -> 1024) changed in the file but need a restart" in eng.log()


def test_sighup_reloads_and_flags_and_env_keep_precedence(tmp_path: Path) -> None:
    config = tmp_path / "velocity.toml"
    config.write_text(toml(max_connections=100, appendfsync="always", log_level="DEBUG"))
    eng = EngineProcess(tmp_path / "engine", extra_args=["--config", str(config), "--max-connections", "50"],
                        env={"VELOCITY_APPENDFSYNC": "no"})
    with eng:
        d = info(eng)
        assert (d["limits"]["max_connections"], d["persistence"]["appendfsync"]) == (50, "no")
        # Rewrite in place with the same size and mtime: the watcher cannot see this
        # change, so only SIGHUP can make the engine pick it up.
        st = config.stat()
        config.write_text(toml(max_connections=200, appendfsync="always", log_level="ERROR"))
        os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert config.stat().st_size == st.st_size
        assert eng.proc is not None
        eng.proc.send_signal(signal.SIGHUP)
        d = wait_info(eng, "log_level ERROR after SIGHUP", lambda d: d["config"]["log_level"] == "ERROR")
        assert d["limits"]["max_connections"] == 50, "the flag wins over the file"
        assert d["persistence"]["appendfsync"] == "no", "the environment wins over the file"
        assert reloads(eng, "applied") == 1
        assert eng.proc.poll() is None
