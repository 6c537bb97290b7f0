"""What the Lease agent (lease.py) and the switchover (switchover.py) need from the node.

Two implementations, so that the same election and switchover logic drives either
data plane: replication.manager.Replication (the Python plane, which owns its
feeds and state) and native_lease.NativeLeaseHost (the native plane: every call
goes to the core, velocity_engine._core). Nothing else of either is reachable
from lease.py or switchover.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from velocity_engine.replication.lease import LeaseAgent
    from velocity_engine.replication.switchover import SwitchoverReport


class ReplicaLink(NamedTuple):
    """A replica connected to this node, as the switchover sees it (a snapshot)."""

    key: int  # identifies the connection: a replica that reconnects gets a new key
    endpoint: str
    streaming: bool  # False during its full copy
    acked_seq: int  # the position it acknowledged (durably, by its own appendfsync policy)


class LeaseHost(Protocol):
    """A node that elects its primary with a Lease. Role changes are synchronous."""

    lease: LeaseAgent | None
    last_switchover: SwitchoverReport | None

    @property
    def handover(self) -> str:
        """The switchover target while writes are fenced for it ("": none)."""

    @handover.setter
    def handover(self, target: str) -> None: ...

    @property
    def endpoint(self) -> str:
        """vdb://HOST:PORT as the other nodes reach this one (the Lease's holderIdentity)."""

    @property
    def node_id(self) -> str: ...

    @property
    def seq(self) -> int:
        """The position of the last batch applied (published in the member Lease)."""

    @property
    def incomplete(self) -> bool:
        """A first full copy is being installed: this node cannot be elected."""

    @property
    def epoch(self) -> int:
        """The highest epoch this node has seen."""

    @property
    def current_primary(self) -> str:
        """The primary a replica follows ("": none known)."""

    @property
    def is_primary(self) -> bool: ...

    def promote_for_lease(self, min_epoch: int) -> None:
        """Become the primary of an epoch above min_epoch (the Lease is ours)."""

    def follow_lease_holder(self, holder: str, epoch: int) -> None:
        """Follow the node the Lease names."""

    def follow(self, primary: str, epoch: int, reason: str) -> None:
        """Follow `primary` in `epoch` (after a switchover)."""

    def fence_for_lease(self, reason: str, keep_feeds: bool = False) -> None:
        """A primary stops serving reads and writes now; keep_feeds: it still streams."""

    def lease_renewed(self, writes_until: float) -> None:
        """The agent renewed or acquired the Lease: reads and writes are allowed until
        the monotonic time `writes_until` unless it renews again."""

    def links(self) -> list[ReplicaLink]:
        """The replicas connected now."""

    async def wait_for_ack(self, timeout: float) -> None:
        """Return after a replica acknowledged something, or after `timeout` seconds."""

    def sync_pending(self) -> bool:
        """A sync-mode write waits for replicas' acknowledgements."""

    def cut_replica_streams(self) -> None:
        """Close every replica's stream now (shutdown: nothing is flushed)."""

    def redirects_sent(self) -> int:
        """REDIRECT errors answered so far (a hand-over lingers while clients get them)."""

    def admin_token(self) -> str | None:
        """The token this node presents to the others' admin opcodes (None: --insecure)."""

    def client_ssl(self) -> Any:
        """The TLS context for connections to other nodes (None with --insecure)."""
