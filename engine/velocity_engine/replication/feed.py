"""One replica's stream, on the primary: a full copy if needed, then batches.

The replica's connection stops being request/response once REPL_SYNC is
answered: this feed writes REPL_SNAPSHOT, REPL_BATCHES and REPL_HEARTBEAT
frames straight to the transport (bypassing the connection's reply hold,
which in sync mode waits for exactly these frames to be acknowledged), and
the replica sends REPL_ACK frames back, which get no reply, and echoes
every REPL_HEARTBEAT: the echo of a heartbeat sent at time t proves the
replica still followed this primary after t (`contact`, read_proof.py).

Flow control: the feed never queues more than `high_water` bytes in the
transport; past that it waits for the transport to drain. A replica that
falls so far behind that the backlog no longer holds its next batch is
disconnected; it comes back and asks for a full copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vproto import messages as m
from vproto.frame import Opcode, encode_frame

from velocity_engine.replication.batch_codec import encode_mutations
from velocity_engine.replication.replicated_storage import wall_ms
from velocity_engine.replication.stream_codec import encode_repl_batches
from velocity_engine.storage.base import Mutation

if TYPE_CHECKING:
    from velocity_engine.replication.replicated_storage import ReplicatedStorage

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5
CHUNK_BYTES = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
HEARTBEATS_KEPT = 64  # sent heartbeats awaiting their echo (32 s of them)


class ReplicaFeed:
    def __init__(
        self,
        conn: Any,  # velocity_engine.connection.Connection (import cycle)
        storage: ReplicatedStorage,
        node_id: str,
        endpoint: str,
        start_seq: int,
        snapshot: list[Mutation] | None,
        on_ack: Callable[[], None],
    ) -> None:
        self.conn = conn
        self.storage = storage
        self.node_id = node_id
        self.endpoint = endpoint
        self.next_seq = start_seq
        self.acked_seq = start_seq - 1 if snapshot is None else 0
        self.snapshot = snapshot
        self.streaming = snapshot is None
        self.connected_at = time.time()
        self.last_ack = time.monotonic()
        self.contact = 0.0  # monotonic send time of the newest heartbeat the replica echoed
        self._sent: deque[tuple[int, float]] = deque(maxlen=HEARTBEATS_KEPT)  # (time_ms, monotonic)
        self._on_ack = on_ack
        self._wake = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    # -- called by the manager and the connection -------------------------------

    def wake(self) -> None:
        self._wake.set()

    def writable(self) -> None:
        self._writable.set()

    def ack(self, seq: int) -> None:
        self.last_ack = time.monotonic()
        if seq > self.acked_seq:
            self.acked_seq = seq
            self._on_ack()

    def echo(self, time_ms: int) -> bool:
        """The replica echoed the heartbeat stamped `time_ms`; True if it proves a newer contact."""
        sent = self._sent
        while sent:
            stamp, at = sent.popleft()
            if stamp == time_ms:
                if at > self.contact:
                    self.contact = at
                    return True
                return False
        return False  # not one we sent (or too old): proves nothing

    def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
        t = self.conn.transport
        if t is not None and not t.is_closing():
            t.close()

    @property
    def lag_records(self) -> int:
        return max(0, self.storage.seq - self.acked_seq)

    # -- the stream ----------------------------------------------------------------

    def _write(self, opcode: int, body: bytes) -> None:
        t = self.conn.transport
        if t is None or t.is_closing():
            raise ConnectionError("replica connection closed")
        data = encode_frame(opcode, 0, body)
        self.conn.stats.bytes_out += len(data)
        t.write(data)

    async def _drain(self) -> None:
        t = self.conn.transport
        while t is not None and not t.is_closing() and t.get_write_buffer_size() > HIGH_WATER:
            self._writable.clear()
            await self._writable.wait()

    async def run(self) -> None:
        try:
            if self.snapshot is not None:
                await self._send_snapshot(self.snapshot)
                self.snapshot = None
                self.streaming = True
            await self._stream()
        except (ConnectionError, OSError) as exc:
            log.info("replica %s (%s) stream ended: %s", self.node_id, self.endpoint, exc)
        except LookupError as exc:
            log.warning("replica %s fell behind the backlog (%s); it will need a full copy", self.node_id, exc)
        finally:
            if not self.closed:
                self.close()

    async def _send_snapshot(self, records: list[Mutation]) -> None:
        start = time.monotonic()
        out: list[bytes] = []
        size = 0
        sent = 0
        for key, rec in records:
            encode_mutations(((key, rec),), out)
            size += len(key) + (len(rec.value) if rec is not None else 0) + 18
            if size >= CHUNK_BYTES:
                self._write(Opcode.REPL_SNAPSHOT, m.ReplSnapshot(b"".join(out)).encode())
                sent += size
                out, size = [], 0
                await self._drain()
                await asyncio.sleep(0)  # chunk the sending: let clients be served between chunks
        self._write(Opcode.REPL_SNAPSHOT, m.ReplSnapshot(b"".join(out), True).encode())
        log.info(
            "full copy of %d keys (%d bytes) sent to replica %s in %.3fs",
            len(records), sent + size, self.node_id, time.monotonic() - start,
        )

    async def _stream(self) -> None:
        storage = self.storage
        last_heartbeat = -HEARTBEAT_S  # the first one at once: it starts the contact (read_proof.py)
        while not self.closed:
            if self.next_seq <= storage.seq:
                last, entries = storage.backlog.read(self.next_seq, CHUNK_BYTES)
                if not entries:
                    raise LookupError(f"batch {self.next_seq} is not in the backlog")
                self._write(Opcode.REPL_BATCHES, encode_repl_batches(b"".join(entries)))
                self.next_seq = last + 1
                await self._drain()
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), HEARTBEAT_S)
            # Heartbeats go out under load too: they carry the primary's clock for lag.
            now = time.monotonic()
            if now - last_heartbeat >= HEARTBEAT_S:
                last_heartbeat = now
                stamp = wall_ms()
                if self._sent and stamp <= self._sent[-1][0]:
                    stamp = self._sent[-1][0] + 1  # unique and increasing: the echo names one heartbeat
                self._sent.append((stamp, now))
                self._write(Opcode.REPL_HEARTBEAT, m.ReplHeartbeat(storage.epoch, storage.seq, stamp).encode())
