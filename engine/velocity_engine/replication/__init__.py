"""Replication and failover above the storage seam (docs/replication.md).

`Replication` (manager.py) is what the server holds; everything else is
one concept per module: the stream format (batch_codec), positions and
epoch histories (position, position_record), the backlog, the sync-mode
quorum, the primary's per-replica feed, the replica's follower, and the
node state file.
"""

from velocity_engine.replication.manager import Replication
from velocity_engine.replication.replicated_storage import ReplicatedStorage

__all__ = ["ReplicatedStorage", "Replication"]
