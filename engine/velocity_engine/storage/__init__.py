"""The storage seam: everything below the command layer.

`base.Storage` is the contract; `memory.MemoryStorage` keeps data in RAM.
The LSM engine (write-ahead log, SSTables, compaction, snapshots) implements
the same contract.
"""

from velocity_engine.storage.base import Mutation, Record, Storage, StorageError
from velocity_engine.storage.memory import MemoryStorage

__all__ = ["MemoryStorage", "Mutation", "Record", "Storage", "StorageError"]
