"""The native data plane (engine/core, crate velocity-core; `make native` builds it).

The boundary between the Python shell and the core, documented in docs/engine.md
("The Python <-> core boundary"). No Python runs per request.
"""

from typing import Any

__version__: str

class StorageCorruption(Exception):
    """Recovery refused the storage directory; args: (path, offset, reason)."""

class Core:
    """A running data plane: listener, worker threads, keyspace."""

    @property
    def port(self) -> int:
        """The port the listener is bound to."""

    @property
    def threads(self) -> int:
        """Worker threads serving connections."""

    def stop(self, grace_s: float) -> int:
        """Drain, wait up to grace_s for connections, end the workers; returns those cut off."""

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics (see native.py for the keys)."""

    def set_live_settings(self, settings: dict[str, Any]) -> None:
        """Apply the live settings the core uses (max_connections, appendfsync)."""

    def set_info_sections(self, json: str) -> None:
        """The INFO sections the shell owns, as a JSON object (config, replication)."""

    def info(self, section: str = "") -> str:
        """The INFO document as JSON (one section when given)."""

    def promote(self, min_epoch: int) -> tuple[int, int]:
        """Become the primary of a new epoch above min_epoch: (epoch, seq); ValueError when refused."""

    def replica_of(self, primary: str, epoch: int) -> int:
        """Follow primary (vdb://HOST:PORT; empty: fence); epoch 0 when not given. The epoch after."""

    def replication_state(self) -> str:
        """INFO's replication section as JSON (role, epoch, seq, history, replicas, ...)."""

def check_dir(storage_dir: str, repair: bool = False) -> tuple[bool, list[str]]:
    """velocity-lsm's checker (WAL versions 1 and 2): (start-up would succeed, findings)."""

def restore_snapshot(snapshot: str, storage_dir: str) -> int | None:
    """--restore-from with velocity-lsm: entries restored, None when already restored from this file."""

def start(settings: dict[str, Any]) -> Core:
    """Open the storage, bind and serve.

    OSError when the port, the TLS files or the storage directory cannot be used;
    StorageCorruption when recovery refuses the data; ValueError for a bad setting.
    """
