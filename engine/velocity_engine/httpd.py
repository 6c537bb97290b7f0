"""A small HTTP/1.1 listener for /metrics, /healthz and /readyz.

It runs on the engine's event loop, so /healthz answering proves the loop is
alive. Requests are tiny and few (probes, scrapes): one request per
connection, 8 KiB header limit, 5 s to send it.

Hostile input costs little (docs/security.md, "Metrics port"): anything that
is not a well-formed `METHOD PATH HTTP/1.x` request line gets 400 and at most
one short log line per LOG_INTERVAL_S (the rest are counted, never logged
with a traceback). A /metrics render reads counters only (nothing walks the
data) and renders are coalesced: a scrape arriving within RENDER_INTERVAL_S
of the last render waits for the next one (never an older body), so a flood
of scrapes costs the request path at most 1/RENDER_INTERVAL_S renders a
second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

MAX_HEADER = 8192
HEAD_TIMEOUT_S = 5.0
LOG_INTERVAL_S = 10.0
RENDER_INTERVAL_S = 0.05
_REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable",
}


class BadRequest(Exception):
    """The request line or headers are not HTTP/1.x; the message is the short reason logged."""


def parse_request_line(head: bytes) -> tuple[str, str]:
    """(method, path without the query) of a request head, or BadRequest."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3:
        raise BadRequest("request line is not 'METHOD PATH VERSION'")
    method, target, version = parts
    if not method.isalpha() or not method.isupper() or len(method) > 16:
        raise BadRequest("bad method")
    if not target.startswith(b"/") or any(c < 0x21 or c > 0x7E for c in target):
        raise BadRequest("bad request target")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise BadRequest("not HTTP/1.x")
    return method.decode("ascii"), target.split(b"?", 1)[0].decode("ascii")


class AdminHttp:
    def __init__(self, render: Callable[[], bytes], ready: Callable[[], tuple[bool, str]]) -> None:
        self.render = render
        self.ready = ready
        self.server: asyncio.Server | None = None
        self.bad_requests = 0  # counted always; logged at most once per LOG_INTERVAL_S
        self.renders = 0
        self._bad_logged_at = -LOG_INTERVAL_S
        self._bad_unlogged = 0
        self._last_render = -RENDER_INTERVAL_S
        self._next: asyncio.Future[bytes] | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEADER)
        sock = self.server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = "GET"
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                method, path = parse_request_line(head)
                status, ctype, body = await self._route(method, path)
            except BadRequest as exc:
                self._bad_request(str(exc))
                status, ctype, body = 400, "text/plain", b"bad request\n"
            except asyncio.LimitOverrunError:
                self._bad_request(f"request head over {MAX_HEADER} bytes")
                status, ctype, body = 400, "text/plain", b"bad request\n"
            except asyncio.IncompleteReadError:
                return  # closed before a whole head: nobody to answer
            except TimeoutError:
                self._bad_request(f"no complete request head within {HEAD_TIMEOUT_S:g}s")
                status, ctype, body = 400, "text/plain", b"bad request\n"
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (body if method != "HEAD" else b"")
            )
            await writer.drain()
        except ConnectionError:
            pass  # the peer went away
        except Exception as exc:  # never a traceback per request: one short, rate-limited line
            self._bad_request(f"handler error {type(exc).__name__}: {exc}", count=False)
        finally:
            writer.close()

    def _bad_request(self, why: str, count: bool = True) -> None:
        if count:
            self.bad_requests += 1
        now = time.monotonic()
        if now - self._bad_logged_at < LOG_INTERVAL_S:
            self._bad_unlogged += 1
            return
        more = f" (+{self._bad_unlogged} more since the last report)" if self._bad_unlogged else ""
        log.warning("metrics port: %s%s", ("bad request: " if count else "") + why[:100], more)
        self._bad_logged_at = now
        self._bad_unlogged = 0

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, await self._metrics()
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ok, why = self.ready()
            return (200 if ok else 503), "text/plain", (why + "\n").encode()
        return 404, "text/plain", b"not found\n"

    async def _metrics(self) -> bytes:
        """A body rendered after this request arrived; renders at most one per RENDER_INTERVAL_S."""
        loop = asyncio.get_running_loop()
        if self._next is None:
            wait = self._last_render + RENDER_INTERVAL_S - time.monotonic()
            if wait <= 0:
                return self._render_now()
            fut: asyncio.Future[bytes] = loop.create_future()
            self._next = fut
            loop.call_later(wait, self._render_shared, fut)
        return await asyncio.shield(self._next)

    def _render_shared(self, fut: asyncio.Future[bytes]) -> None:
        self._next = None
        try:
            fut.set_result(self._render_now())
        except Exception as exc:  # surfaces in every waiting handler's rate-limited line
            fut.set_exception(exc)

    def _render_now(self) -> bytes:
        self.renders += 1
        body = self.render() + (
            "# HELP velocity_metrics_renders_total Times /metrics was rendered (scrapes share renders).\n"
            "# TYPE velocity_metrics_renders_total counter\n"
            f"velocity_metrics_renders_total {float(self.renders)!r}\n"
            "# HELP velocity_http_bad_requests_total Malformed requests on the metrics port (answered 400).\n"
            "# TYPE velocity_http_bad_requests_total counter\n"
            f"velocity_http_bad_requests_total {float(self.bad_requests)!r}\n"
        ).encode()
        self._last_render = time.monotonic()
        return body
