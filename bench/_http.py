"""A lean HTTP/1.1 load client for the open-loop benchmarks: real POSTs over loopback TCP, keep-alive
connections, each answer read to its last byte and its status checked, for a fraction of aiohttp's
client CPU.

Why: on a 2-core machine the load generator competes with the server it measures. aiohttp's client
spent ~700-770 us of CPU per request in bench/checks.py (session 13, docs/benchmarks.md), as much as
the relay, most of it in per-request objects (response, timers, cookie and redirect handling) that a
benchmark never uses. This client writes each request's bytes (built once per body) to an idle
connection of its pool, or a new one, and parses the response's status line, ``Content-Length`` (or
chunked body) and body, so the server does exactly the work it does for any client.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


class HttpError(Exception):
    """The server closed the connection or sent something that is not an HTTP/1.1 response."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its response parsed as it arrives."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.began: float | None = None  # when the request in flight was due (None: idle)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def request(self, data: bytes, began: float) -> None:
        assert self.transport is not None
        assert self.began is None
        self.began = began
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.began is None:
            return
        try:
            status = self._response()
        except (HttpError, ValueError) as exc:
            self._fail(exc)
            return
        if status is not None:
            began, self.began = self.began, None
            self.load.answered(self, status, began)

    def _response(self) -> int | None:
        """The status of the complete response at the head of the buffer (consumed), or None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.1 response: {head[0]!r}")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body_end = self._chunked_end(start)
            if body_end is None:
                return None
        else:
            body_end = start + int(headers.get("content-length", "0"))
            if len(self.buffer) < body_end:
                return None
        del self.buffer[:body_end]
        if headers.get("connection", "").lower() == "close":
            self.closed = True
        return int(parts[1])

    def _chunked_end(self, at: int) -> int | None:
        """Where a chunked body starting at ``at`` ends (after its last chunk), or None if incomplete."""
        while True:
            line_end = self.buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(self.buffer[at:line_end]).split(b";")[0], 16)
            at = line_end + 2 + size + 2
            if len(self.buffer) < at:
                return None
            if size == 0:
                return at

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.began is not None:
            began, self.began = self.began, None
            self.load.failed(began, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection lost: {exc}"))
        self.load.lost(self)


class Load:
    """An open-loop load of POSTs to one URL: request ``i`` goes out at ``i / rate`` seconds on an
    idle keep-alive connection or a new one, whether or not the earlier ones have been answered."""

    def __init__(self, url: str, headers: dict[str, str], bodies: Sequence[bytes], limit: int = 256) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = parts.path or "/"
        self.requests = [_post_bytes(self.host, self.port, path, body, headers) for body in bodies]
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()
        self.limit = limit
        self.connecting = 0
        self.queued: collections.deque[tuple[bytes, float]] = collections.deque()
        self.latencies: list[float] = []
        self.errors = 0
        self.outstanding = 0
        self._finished: asyncio.Event | None = None
        self._all_sent = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, rate: float, seconds: float) -> tuple[list[float], int, float]:
        """Send ``rate * seconds`` requests on schedule; (latencies, answers other than 200, the
        seconds until the last answer)."""
        loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        total = int(rate * seconds)
        started = time.perf_counter()
        sent = 0
        while sent < total:
            now = time.perf_counter()
            due = min(total, int((now - started) * rate) + 1)
            while sent < due:
                began = started + sent / rate
                data = self.requests[sent % len(self.requests)]
                self.outstanding += 1
                sent += 1
                connection = self._idle()
                if connection is not None:
                    connection.request(data, began)
                elif len(self.open) + self.connecting < self.limit:
                    # The latency counts the connection's opening too, as aiohttp's did.
                    self.connecting += 1
                    task = loop.create_task(self._connect_and_send(data, began))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                else:  # every connection busy, as many as aiohttp's connector allowed: it waits
                    self.queued.append((data, began))
            if sent < total:
                await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
        self._all_sent = True
        if self.outstanding:
            await self._finished.wait()
        elapsed = time.perf_counter() - started
        for connection in list(self.open):
            if connection.transport is not None:
                connection.transport.close()
        return self.latencies, self.errors, elapsed

    def _idle(self) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect_and_send(self, data: bytes, began: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError as exc:
            self.failed(began, exc)
            return
        finally:
            self.connecting -= 1
        self.open.add(connection)
        connection.request(data, began)

    def answered(self, connection: _Connection, status: int, began: float) -> None:
        self.latencies.append(time.perf_counter() - began)
        if status != 200:
            self.errors += 1
        if connection.closed:
            self.open.discard(connection)
        elif self.queued:
            connection.request(*self.queued.popleft())
        else:
            self.idle.append(connection)
        self._done_one()

    def lost(self, connection: _Connection) -> None:
        """A closed connection leaves the pool; a waiting request takes its place on a new one."""
        self.open.discard(connection)
        if self.queued and len(self.open) + self.connecting < self.limit:
            self.connecting += 1
            task = asyncio.get_running_loop().create_task(self._connect_and_send(*self.queued.popleft()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def failed(self, began: float, exc: Exception) -> None:
        del exc  # counted as an error, as a failed aiohttp request was
        self.latencies.append(time.perf_counter() - began)
        self.errors += 1
        self._done_one()

    def _done_one(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and self._all_sent and self._finished is not None:
            self._finished.set()  # only once the last request has gone out and been answered


def _post_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST of ``body`` (built once, sent as often as asked)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
