"""bench/_http.py, the benchmarks' lean load client: real POSTs a real aiohttp server answers, every
one counted, a status other than 200 an error, a chunked or closed answer read right."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

BENCH = Path(__file__).resolve().parents[2] / "bench"


def lean_client() -> Any:
    spec = importlib.util.spec_from_file_location("_bench_http", BENCH / "_http.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_lean_client_sends_every_post_on_schedule_and_counts_what_was_not_200() -> None:
    received: list[tuple[str | None, str | None, bytes]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received.append((request.headers.get("Authorization"), request.headers.get("Content-Type"), body))
        if body == b'{"n": 1}':
            return web.json_response({"error": "no"}, status=401)
        if body == b'{"n": 2}':  # chunked, and the connection closed after it
            response = web.StreamResponse(headers={"Connection": "close"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b'{"part": 1,')
            await response.write(b' "part": 2}')
            await response.write_eof()
            return response
        return web.json_response({"ok": True, "echo": body.decode()})

    async def scenario() -> tuple[list[float], int, float]:
        app = web.Application()
        app.router.add_post("/v1/checks", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            load = lean_client().Load(
                f"http://127.0.0.1:{port}/v1/checks",
                {"Authorization": "Bearer k", "Content-Type": "application/json"},
                [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'],
            )
            return await load.run(200, 0.5)  # type: ignore[no-any-return]
        finally:
            await runner.cleanup()

    latencies, errors, elapsed = asyncio.run(scenario())
    assert len(latencies) == len(received) == 100
    assert errors == 25, "every 401 is an error; the chunked answers are 200s"
    assert [body for _, _, body in received].count(b'{"n": 2}') == 25
    assert {(auth, kind) for auth, kind, _ in received} == {("Bearer k", "application/json")}
    assert elapsed >= 0.495  # the last request left on its schedule, not before
    assert all(latency > 0 for latency in latencies)
