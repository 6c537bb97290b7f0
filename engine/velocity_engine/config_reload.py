"""Live config reload: re-read the config file on SIGHUP and when it changes.

The file is read again with the same flags and environment as at start-up
(load_settings), so the documented precedence holds on reload too: a setting
given as a flag or VELOCITY_* variable keeps that value whatever the file says.

Outcome of one reload (label `result` of velocity_config_reloads_total):
- invalid: the file cannot be read or a value is invalid; nothing changes.
- unchanged: the effective settings are the same as before.
- applied: only live settings (config.LIVE_SETTINGS) changed; all applied.
- restart_required: some changed settings need a restart; the live ones are
  applied, the others are logged by name and stay as they were until the
  engine restarts (velocity_config_restart_required is 1 meanwhile).

Change detection polls os.stat of the file (following symlinks) and its
resolved path every POLL_S: kubelet updates a ConfigMap volume by swapping the
`..data` symlink to a new directory, which changes the inode and the resolved
path even when the size and mtime happen to match.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from velocity_engine.config import LIVE_SETTINGS, ConfigError, EngineSettings, load_settings
from velocity_engine.storage.wal_writer import Policy

log = logging.getLogger(__name__)

POLL_S = 1.0  # a stat() per second: cheap, and well below kubelet's own propagation delay

Result = Literal["invalid", "unchanged", "applied", "restart_required"]
RESULTS: tuple[Result, ...] = ("invalid", "unchanged", "applied", "restart_required")

Change = tuple[Any, Any]  # (old, new)


@dataclass(frozen=True)
class ReloadPlan:
    """What a reloaded config changes: `live` is applied now, `restart` is not."""

    live: dict[str, Change]
    restart: dict[str, Change]

    @property
    def result(self) -> Result:
        if self.restart:
            return "restart_required"
        return "applied" if self.live else "unchanged"


def plan_reload(current: EngineSettings, new: EngineSettings) -> ReloadPlan:
    """Compare effective settings field by field and split the changes by liveness."""
    live: dict[str, Change] = {}
    restart: dict[str, Change] = {}
    for name in EngineSettings.model_fields:
        old, now = getattr(current, name), getattr(new, name)
        if old != now:
            (live if name in LIVE_SETTINGS else restart)[name] = (old, now)
    return ReloadPlan(live, restart)


FileStamp = tuple[str, int, int, int, int]  # resolved path, device, inode, size, mtime_ns


def file_stamp(path: Path) -> FileStamp | None:
    """Identity and version of the file behind `path` (None if it cannot be stat'ed)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SupportsLiveSettings(Protocol):
    """The part of the server a reload changes (server.Server)."""

    settings: EngineSettings

    def set_appendfsync(self, policy: Policy) -> None: ...


class ConfigReloader:
    """Owns reloads for one server: counts outcomes, exports them, remembers pending restarts."""

    def __init__(
        self,
        server: SupportsLiveSettings,
        flags: dict[str, Any],
        config_file: Path | None,
        stamp: FileStamp | None = None,
        load: Callable[[dict[str, Any], Path | None], EngineSettings] = load_settings,
    ) -> None:
        self.server = server
        self.flags = dict(flags)
        self.config_file = config_file
        # Taken before the settings were first loaded, so a change in between is seen.
        self._stamp = stamp if stamp is not None or config_file is None else file_stamp(config_file)
        self._load = load
        self.counts: dict[Result, int] = dict.fromkeys(RESULTS, 0)
        self.restart_pending: tuple[str, ...] = ()
        self.last_error = ""

    def reload(self, reason: str) -> Result:
        """Read the file again and apply what can change live. Loop thread only."""
        try:
            new = self._load(self.flags, self.config_file)
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("config reload (%s) refused, settings unchanged: %s", reason, exc)
            return self._count("invalid")
        plan = plan_reload(self.server.settings, new)
        try:
            self._apply(plan.live)
        except ValueError as exc:
            self.last_error = str(exc)
            log.error("config reload (%s) could not be applied, settings unchanged: %s", reason, exc)
            return self._count("invalid")
        self.last_error = ""
        self.restart_pending = tuple(sorted(plan.restart))
        for name, (old, now) in sorted(plan.live.items()):
            log.warning("config reload (%s): %s %r -> %r applied", reason, name, old, now)
        if plan.restart:
            log.warning(
                "config reload (%s): %s changed in the file but need a restart; running with the old values",
                reason, ", ".join(f"{n} ({o!r} -> {v!r})" for n, (o, v) in sorted(plan.restart.items())),
            )
        elif not plan.live:
            log.info("config reload (%s): nothing changed", reason)
        return self._count(plan.result)

    def _apply(self, live: dict[str, Change]) -> None:
        # Storage first: if the WAL refuses the policy, the settings object is left as it was.
        if "appendfsync" in live:
            self.server.set_appendfsync(live["appendfsync"][1])
        if "log_level" in live:
            logging.getLogger().setLevel(live["log_level"][1])
        if live:
            self.server.settings = self.server.settings.model_copy(update={k: v[1] for k, v in live.items()})

    def _count(self, result: Result) -> Result:
        self.counts[result] += 1
        return result

    def poll(self) -> Result | None:
        """Reload if the file changed since the last look; None if it did not."""
        if self.config_file is None:
            return None
        stamp = file_stamp(self.config_file)
        if stamp == self._stamp or stamp is None:
            # A missing file mid-swap is not a change: the next poll sees the new one.
            return None
        self._stamp = stamp
        return self.reload("file changed")

    async def watch(self, interval: float = POLL_S) -> None:
        """Poll the file until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.poll()
            except Exception:
                # A bug must not end the watching for the rest of the process's life.
                log.exception("config reload failed unexpectedly; settings unchanged, still watching")
                self._count("invalid")

    def info(self) -> dict[str, Any]:
        s = self.server.settings
        return {
            "file": str(self.config_file) if self.config_file is not None else "",
            "log_level": s.log_level,
            "max_connections": s.max_connections,
            "appendfsync": s.appendfsync,
            "reloads": dict(self.counts),
            "restart_required": list(self.restart_pending),
            "last_error": self.last_error,
        }

    def metric_families(self) -> Iterator[Any]:
        reloads = CounterMetricFamily(
            "velocity_config_reloads", "Config file reloads, by outcome.", labels=["result"]
        )
        for result in RESULTS:
            reloads.add_metric([result], self.counts[result])
        yield reloads
        yield GaugeMetricFamily(
            "velocity_config_restart_required",
            "1 when the config file changes settings that only a restart applies.",
            value=1.0 if self.restart_pending else 0.0,
        )
