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

    def role(self) -> tuple[bool, str, int, int, bool, bool]:
        """(is_primary, primary followed, epoch, seq, incomplete, a sync write awaits acks)."""

    def replica_links(self) -> list[tuple[int, str, bool, int]]:
        """The connected replicas: (connection id, endpoint, streaming, acknowledged seq)."""

    def fence(self, reason: str, keep_feeds: bool) -> None:
        """A primary stops serving (keep_feeds: still streams); a fenced node closes kept feeds."""

    # Lease mode (start() with `lease_name`); RuntimeError otherwise.

    def admin_next(self, timeout_s: float) -> tuple[int, int, bytes] | None:
        """The next PROMOTE/REPLICA_OF a client sent: (id, opcode, body); None after timeout_s."""

    def admin_reply(self, id: int, body: bytes) -> bool:
        """Answer request id with a response body; False if nobody waits for it any more."""

    def admin_fail(self, id: int, code: int, message: str, primary: str = "", retry_after_ms: int = 0) -> bool:
        """Answer request id with an error (protocol code); False if nobody waits for it."""

    def lease_renewed(self, remaining_s: float) -> None:
        """The Lease is surely this node's for remaining_s more: it may read and write until then."""

    def set_handover(self, target: str) -> None:
        """Writes answer REDIRECT (retry in 20 ms) while a switchover to target runs; "" ends it."""

    def set_lease_info(self, json: str) -> None:
        """INFO replication fields only the shell knows: {"holder": ..., "switchover": ...}."""

def check_dir(storage_dir: str, repair: bool = False) -> tuple[bool, list[str]]:
    """velocity-lsm's checker (WAL versions 1 and 2): (start-up would succeed, findings)."""

def restore_snapshot(snapshot: str, storage_dir: str) -> int | None:
    """--restore-from with velocity-lsm: entries restored, None when already restored from this file."""

def start(settings: dict[str, Any]) -> Core:
    """Open the storage, bind and serve.

    OSError when the port, the TLS files or the storage directory cannot be used;
    StorageCorruption when recovery refuses the data; ValueError for a bad setting.
    """
