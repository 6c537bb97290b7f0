"""The replica's side of the stream: connect to the primary, copy, follow, acknowledge.

One task per replica, reconnecting with backoff after any break. Each
session: TLS + HELLO with the cluster token, REPL_SYNC with the exact
position the data holds, then either a full copy (the primary no longer has
our next batch, or our log diverged from its history) or the batches that
follow our position. After applying what one read delivered, the replica
acknowledges its position once its own storage made it durable.

Every REPL_HEARTBEAT is echoed straight back (a REPL_HEARTBEAT carrying the
primary's `time_ms`): that is how the primary proves it may still answer
reads (read_proof.py). A follower that replaces another one (a new primary)
first waits until `not_before`: the promise that lets the old primary's
read lease run out before this node acknowledges anyone else's writes.

A primary from an older epoch than ours is refused: a replica never follows
(or acknowledges the writes of) a deposed primary. A node that is no longer
the primary answers REDIRECT naming the new one, and we follow that.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from vproto import messages as m
from vproto.errors import ErrorCode, VelocityError, error_from_wire
from vproto.frame import PROTOCOL_VERSION, RESPONSE_BIT, FrameDecoder, Opcode, encode_frame

from velocity_engine.replication.admin_call import split_endpoint
from velocity_engine.replication.batch_codec import decode_batches, decode_mutations
from velocity_engine.replication.errors import PrimaryRefused, ReplicationError, StreamFormatError
from velocity_engine.replication.position import EpochHistory
from velocity_engine.replication.replicated_storage import ReplicatedStorage, wall_ms
from velocity_engine.replication.wire_checks import check_epoch, check_seq
from velocity_engine.storage.base import StorageError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
SILENCE_TIMEOUT_S = 3.0  # the primary heartbeats every 0.5 s; this much silence means the link is dead
READ_BYTES = 256 * 1024
MAX_BACKOFF_S = 2.0


@dataclass(slots=True)
class FollowerConfig:
    node_id: str
    endpoint: str  # our own, advertised to the primary
    token: str | None  # the replication token
    ssl_context: ssl.SSLContext | None
    max_frame_bytes: int
    # The client token, presented instead when the primary refuses the replication token
    # (AUTH_FAILED): an engine from before roles knew one token for everything. Keeps a
    # rolling upgrade replicating while the primary is still the old version.
    legacy_token: str | None = None


class Follower:
    """Follows one primary until stopped. `on_*` callbacks reach the manager."""

    def __init__(
        self,
        primary: str,
        storage: ReplicatedStorage,
        config: FollowerConfig,
        current_epoch: Callable[[], int],
        adopt: Callable[[int, list[tuple[int, int]]], None],
        redirected: Callable[[str], None],
        not_before: float = 0.0,
    ) -> None:
        self.primary = primary
        self.storage = storage
        self.config = config
        self._legacy_auth = False  # presenting config.legacy_token (see FollowerConfig)
        self._current_epoch = current_epoch
        self._adopt = adopt
        self._redirected = redirected
        self.history = EpochHistory()
        self.link_up = False
        self.syncing = False  # a full copy is in progress
        self.last_contact = 0.0  # time.time() of the last frame from the primary
        self.last_contact_mono = 0.0  # the same on the monotonic clock (read_proof.py's promise)
        self.not_before = not_before  # monotonic: no REPL_SYNC before this
        self._echo = True  # echo heartbeats (off for a primary that does not know them)
        self.primary_seq = 0
        self.primary_time_ms = 0
        self.full_copies = 0
        self.last_error = ""
        self._writer: asyncio.StreamWriter | None = None
        self._acked = 0
        self._snapshot_seq = 0
        self._early: list[tuple[int, int, bytes]] = []

    # -- lag ------------------------------------------------------------------------

    def lag(self) -> tuple[int, float]:
        """(records, seconds) behind the primary, as far as this replica can tell."""
        records = max(0, self.primary_seq - self.storage.seq)
        if not self.link_up:
            since = time.time() - self.last_contact if self.last_contact else 0.0
            return records, since
        if records == 0 and not self.syncing:
            return 0, 0.0
        return records, max(0.0, (self.primary_time_ms - self.storage.last_write_ms) / 1000)

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        wait = self.not_before - time.monotonic()
        if wait > 0:
            log.info("following %s in %.2fs: the previous primary's read lease must run out first",
                     self.primary, wait)
            await asyncio.sleep(wait)
        backoff = 0.05
        while True:
            try:
                await self._session()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, VelocityError, ReplicationError, StorageError) as exc:
                if _auth_failed(exc) and self.config.legacy_token:
                    self._legacy_auth = not self._legacy_auth
                    if self._legacy_auth:
                        log.warning("%s refused the replication token; trying the client token (a primary "
                                    "from before token roles)", self.primary)
                self.last_error = str(exc)
                log.warning("replication from %s: %s; retrying in %.2fs", self.primary, exc, backoff)
            finally:
                self.link_up = False
                self.syncing = False
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _session(self) -> None:
        host, port = split_endpoint(self.primary)
        cfg = self.config
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=cfg.ssl_context, server_hostname=host if cfg.ssl_context else None,
                limit=READ_BYTES,
            ),
            CONNECT_TIMEOUT_S,
        )
        self._writer = writer
        decoder = FrameDecoder(cfg.max_frame_bytes)
        token = cfg.legacy_token if self._legacy_auth else cfg.token
        hello = m.HelloRequest(PROTOCOL_VERSION, token or "", f"replica {cfg.node_id}", 0)
        writer.write(encode_frame(Opcode.HELLO, 0, hello.encode()))
        await self._reply(reader, decoder, Opcode.HELLO)
        st = self.storage
        req = m.ReplSyncRequest(
            node_id=cfg.node_id, endpoint=cfg.endpoint, epoch=st.position.epoch, seq=st.position.seq,
            full=st.incomplete, node_epoch=self._current_epoch(),
        )
        writer.write(encode_frame(Opcode.REPL_SYNC, 0, req.encode()))
        try:
            body = await self._reply(reader, decoder, Opcode.REPL_SYNC)
        except VelocityError as exc:
            if exc.primary and exc.primary != self.primary and exc.primary != cfg.endpoint:
                log.info("%s redirects to %s: following it", self.primary, exc.primary)
                self.primary = exc.primary
                self._redirected(exc.primary)
            raise PrimaryRefused(f"{self.primary} refused REPL_SYNC: {exc}") from None
        resp = m.ReplSyncResponse.decode(body)
        try:
            check_epoch(resp.epoch, "the primary's epoch")
            check_seq(resp.seq, "the primary's seq")
            for e in resp.history:
                check_epoch(e.epoch, "an epoch in the primary's history")
                check_seq(e.start_seq, "a start seq in the primary's history")
        except VelocityError as exc:
            raise PrimaryRefused(f"{self.primary} sent an invalid REPL_SYNC reply: {exc}") from None
        if resp.epoch < self._current_epoch():
            raise PrimaryRefused(
                f"{self.primary} is in epoch {resp.epoch}, older than ours ({self._current_epoch()}): "
                "a deposed primary is never followed"
            )
        history = [(e.epoch, e.start_seq) for e in resp.history]
        self.history = EpochHistory(history)
        self._adopt(resp.epoch, history)
        self.link_up = True
        self.last_contact = time.time()
        self.last_contact_mono = time.monotonic()
        self.primary_seq = resp.seq
        if resp.full:
            log.info("full copy from %s at seq %d (ours was %s)", self.primary, resp.seq, st.position)
            self.syncing = True
            self.full_copies += 1
            self._snapshot_seq = resp.seq
            st.begin_full_copy()
        else:
            log.info("resuming from %s after seq %d", self.primary, resp.seq)
        self._acked = 0
        for opcode, _flags, fbody in self._early:
            self._frame(opcode, fbody)
        self._early = []
        self._ack()
        while True:
            data = await asyncio.wait_for(reader.read(READ_BYTES), SILENCE_TIMEOUT_S)
            if not data:
                raise ConnectionError(f"{self.primary} closed the replication stream")
            self.last_contact = time.time()
            self.last_contact_mono = time.monotonic()
            for opcode, _flags, fbody in decoder.feed(data):
                self._frame(opcode, fbody)
            self._ack()

    async def _reply(self, reader: asyncio.StreamReader, decoder: FrameDecoder, opcode: int) -> bytes:
        while True:
            data = await asyncio.wait_for(reader.read(READ_BYTES), CONNECT_TIMEOUT_S)
            if not data:
                raise ConnectionError(f"{self.primary} closed the connection during the handshake")
            frames = decoder.feed(data)
            if frames:
                rop, _, body = frames[0]
                if rop == Opcode.ERROR:
                    err = m.ErrorResponse.decode(body)
                    raise error_from_wire(err.code, err.message, err.primary, err.retry_after_ms)
                if rop != opcode | RESPONSE_BIT:
                    raise StreamFormatError(f"expected a reply to 0x{opcode:02x}, got opcode 0x{rop:02x}")
                # After the REPL_SYNC reply the stream may already follow in the same read.
                self._early = frames[1:]
                return body

    def _frame(self, opcode: int, body: bytes) -> None:
        st = self.storage
        if opcode == Opcode.REPL_BATCHES:
            if self.syncing:
                raise StreamFormatError("batches arrived before the full copy was complete")
            for batch in decode_batches(m.ReplBatches.decode(body).batches):
                if batch.epoch > self._current_epoch():
                    raise StreamFormatError(f"batch {batch.seq} is from epoch {batch.epoch}, ahead of the primary's")
                st.apply_replicated(batch)
            self.primary_seq = max(self.primary_seq, st.seq)
        elif opcode == Opcode.REPL_SNAPSHOT:
            if not self.syncing:
                raise StreamFormatError("snapshot chunk outside a full copy")
            chunk = m.ReplSnapshot.decode(body)
            st.load_chunk(decode_mutations(chunk.records))
            if chunk.last:
                seq = self._snapshot_seq
                st.finish_full_copy(self.history.epoch_of(seq), seq)
                self.syncing = False
                log.info("full copy complete at seq %d (%d keys)", seq, len(st))
        elif opcode == Opcode.REPL_HEARTBEAT:
            hb = m.ReplHeartbeat.decode(body)
            self.primary_seq = max(self.primary_seq, hb.seq)
            self.primary_time_ms = hb.time_ms
            if not self.syncing and st.seq >= hb.seq:
                st.last_write_ms = hb.time_ms  # caught up as of the primary's clock
            w = self._writer
            if self._echo and w is not None and not w.is_closing():  # at once: about contact, not durability
                echo = m.ReplHeartbeat(self._current_epoch(), st.seq, hb.time_ms)
                w.write(encode_frame(Opcode.REPL_HEARTBEAT, 0, echo.encode()))
        elif opcode == Opcode.ERROR:
            err = m.ErrorResponse.decode(body)
            if err.code == ErrorCode.UNKNOWN_OPCODE and self._echo:
                # A primary from before heartbeat echoes (a rolling upgrade): stop echoing to it.
                # It cannot prove reads that way, and it did not try to.
                self._echo = False
                log.warning("%s does not take heartbeat echoes (an older version): not sending them", self.primary)
                return
            raise error_from_wire(err.code, err.message, err.primary, err.retry_after_ms)
        else:
            raise StreamFormatError(f"unexpected opcode 0x{opcode:02x} on the replication stream")

    def _ack(self) -> None:
        """Acknowledge our position once the local storage made it durable."""
        st = self.storage
        if self.syncing or st.seq <= self._acked:
            return
        seq = st.seq
        self._acked = seq
        waiter = st.inner.sync_waiter()
        if waiter is None:
            self._send_ack(seq)
        else:
            writer = self._writer
            def durable(f: asyncio.Future[None]) -> None:
                if not f.cancelled() and f.exception() is None:
                    self._send_ack(seq, writer)

            waiter.add_done_callback(durable)

    def _send_ack(self, seq: int, writer: asyncio.StreamWriter | None = None) -> None:
        w = writer or self._writer
        if w is not None and not w.is_closing():
            w.write(encode_frame(Opcode.REPL_ACK, 0, m.ReplAck(seq).encode()))

    def info(self) -> dict[str, object]:
        lag_records, lag_seconds = self.lag()
        return {
            "primary": self.primary,
            "link_up": self.link_up,
            "full_copy_in_progress": self.syncing,
            "full_copies": self.full_copies,
            "last_contact_s_ago": round(time.time() - self.last_contact, 3) if self.last_contact else None,
            "lag_records": lag_records,
            "lag_seconds": round(lag_seconds, 3),
            "last_error": self.last_error,
            "now_ms": wall_ms(),
        }


def _auth_failed(exc: BaseException) -> bool:
    return isinstance(exc, VelocityError) and exc.code == ErrorCode.AUTH_FAILED
