"""The HTTP API in process: the route table on a Faust app, served by aiohttp's test server.

No broker: what the doors record goes to the ledger's inbox (``Web.sent`` reads it back), and
credit.submissions is a stand-in that keeps anything sent to it directly. The ledger, read models
and query service are a ``Desk``'s, so tests see every record written.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

import faust
import orjson
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from contract.messages import messages_from_store
from streams.http import register_views
from streams.parts import WorkerParts
from streams.web.api import Api
from streams.web.calls import Route
from streams.web.routes import ROUTES
from tests.unit.querydesk import Desk

NO_BODY = object()
_apps = itertools.count()


class Topic:
    """credit.submissions as the views use it: ``send`` keeps each message and answers its offset."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[Any]:
        self.sent.append((key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(partition=0, offset=len(self.sent) - 1))
        return future


class Web:
    """``async with Web(desk, tmp_path) as web: status, body = await web.call("GET", "/v1/")``."""

    def __init__(
        self, desk: Desk, tmp_path: Path, routes: Iterable[Route] = ROUTES, *, queries: bool = True
    ) -> None:
        self.desk = desk
        self.topic = Topic()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        intake = SimpleNamespace(
            stats=SimpleNamespace(batches=0, submissions=0, applying_seconds=0.0, dead_letters=0),
            consumer=None,
        )
        self.parts = WorkerParts(
            desk.ledger,
            intake,  # type: ignore[arg-type]  # health reads only its stats and consumer
            self.executor,
            self.topic,
            tmp_path,
            read_store=desk.store if queries else None,
            queries=desk.service if queries else None,
        )
        self.app = faust.App(
            f"http-test-{next(_apps)}", broker="kafka://localhost:1", datadir=str(tmp_path / "faust")
        )
        self.api: Api = register_views(self.app, self.parts, routes)
        self.client: TestClient[Any, Any] | None = None

    async def __aenter__(self) -> Web:
        webserver: Any = self.app.web
        webserver.init_server()  # as the worker does when its web server starts: blueprints applied
        self.client = TestClient(TestServer(webserver.web_app))
        await self.client.start_server()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.client is not None
        await self.client.close()
        self.executor.shutdown()

    @property
    def sent(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of everything the routes recorded for the intake, in order: the inbox's rows
        (what the relay publishes to credit.submissions), then anything sent to the topic directly."""
        rows = self.desk.ledger.inbox_page(0, 1_000_000)
        return [(e.item.key, e.item.value) for e in rows] + self.topic.sent

    async def call(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        """(status, decoded JSON body); every answer of this API is JSON, so a plain text one fails
        (but with ``as_bytes=True`` an answer that is not JSON comes as its bytes)."""
        status, body, _ = await self.exchange(method, path, **options)
        return status, body

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = NO_BODY,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        as_bytes: bool = False,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        assert self.client is not None
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if json is not NO_BODY:
            data = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(method, path, data=data, headers=sent) as response:
            raw = await response.read()
            answered = CIMultiDict(response.headers)
            if method == "HEAD":
                return response.status, None, answered
            if as_bytes and response.content_type != "application/json":
                return response.status, raw, answered
            assert response.content_type == "application/json", (method, path, response.status, raw[:300])
            return response.status, orjson.loads(raw), answered


def records(desk: Desk) -> list[dict[str, Any]]:
    """Every query record in the ledger, oldest first."""
    return [
        m["body"]["record"] for m in messages_from_store(desk.ledger.reader) if m["type"] == "QueryRecorded"
    ]


def serve(desk: Desk, tmp_path: Path, scenario: Callable[[Web], Awaitable[None]]) -> None:
    """Run ``scenario`` against the API served in process, in an event loop of its own."""

    async def run() -> None:
        async with Web(desk, tmp_path) as web:
            await scenario(web)

    asyncio.run(run())
