"""Witnesses over HTTP (c2sp.org/tlog-witness): the server ``credit-ledger witness serve`` runs,
and the client the relay's checkpoint publisher asks for cosignatures.

The server answers ``POST /add-checkpoint`` and, for monitors, ``GET /<sha256(origin)>/checkpoint``
(the latest checkpoint it cosigned for that log); ``GET /`` says who it is. The protocol itself is
``ledger.verification.witness``.

The client sends each new checkpoint to every configured witness at once, with the consistency
proof from the size that witness last cosigned. It starts from size 0 (it keeps no state), so a
witness that knows the log answers 409 with its size, and the client asks once more with the
proof from there. A cosignature is kept only if it verifies under the witness's key; a witness
that refuses, fails or does not answer within the timeout is logged and left out: checkpoints
are published with whatever cosignatures were given (auditors' policies decide what is enough).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from ledger.verification.notes import NoteError, NoteSignature
from ledger.verification.policy import WitnessEndpoint
from ledger.verification.signed import Checkpoint
from ledger.verification.tlog_checkpoint import decimal
from ledger.verification.witness import MAX_REQUEST, SIZE_TYPE, AddCheckpoint, Witness

log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""Seconds a witness has to answer one request."""

Prove = Callable[[int, int], Awaitable[Sequence[bytes]]]
"""prove(old, new): the consistency proof between two sizes of the log being witnessed."""


# --- The server ---------------------------------------------------------------------------------


def witness_app(witness: Witness) -> web.Application:
    """The witness's HTTP endpoints on an aiohttp application."""

    async def add_checkpoint(request: web.Request) -> web.Response:
        body = await request.read()
        answer = await asyncio.get_running_loop().run_in_executor(None, witness.add_checkpoint, body)
        return _reply(answer.status, answer.body, answer.content_type)

    async def latest(request: web.Request) -> web.Response:
        answer = witness.latest(request.match_info["origin_hash"])
        return _reply(answer.status, answer.body, answer.content_type, cache="public, max-age=10")

    async def about(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": witness.signer.name,
                "vkey": str(witness.signer.vkey),
                "logs": [str(key) for key in witness.logs],
                "add_checkpoint": "POST /add-checkpoint",
                "checkpoint": "GET /<sha256 of the log's origin, hex>/checkpoint",
            }
        )

    app = web.Application(client_max_size=MAX_REQUEST)
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/{origin_hash:[0-9a-fA-F]{64}}/checkpoint", latest)
    app.router.add_get("/", about)
    return app


def _reply(status: int, body: bytes, content_type: str, cache: str = "no-store") -> web.Response:
    media, _, params = content_type.partition(";")
    charset = params.split("=", 1)[1].strip() if "charset=" in params else None
    return web.Response(
        status=status, body=body, content_type=media, charset=charset, headers={"Cache-Control": cache}
    )


async def serve_witness(
    witness: Witness,
    host: str,
    port: int,
    stop: asyncio.Event,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``witness`` on ``host:port`` (0: any free port) until ``stop`` is set; ``ready`` is
    told the port once it listens."""
    runner = web.AppRunner(witness_app(witness), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server: Any = site._server  # aiohttp keeps the listening sockets here, and only here
        bound = server.sockets[0].getsockname()[1] if server is not None else port
        if ready is not None:
            ready(int(bound))
        await stop.wait()
    finally:
        await runner.cleanup()


# --- The client ---------------------------------------------------------------------------------


class WitnessClient:
    """Asks ``endpoints`` to cosign checkpoints, all at once, each within ``timeout`` seconds."""

    def __init__(self, endpoints: Sequence[WitnessEndpoint], *, timeout: float = TIMEOUT) -> None:
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self.sizes: dict[str, int] = {}  # the size each witness last said it cosigned
        self.outcomes: dict[str, str] = {}  # each witness's last answer, for the log and for tests

    async def cosign(self, cp: Checkpoint, prove: Prove) -> list[NoteSignature]:
        """The verified cosignatures of ``cp`` from the witnesses that gave one."""
        if not self.endpoints:
            return []
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            found = await asyncio.gather(*(self._ask(session, w, cp, prove) for w in self.endpoints))
        return [signature for signature in found if signature is not None]

    async def _ask(
        self, session: aiohttp.ClientSession, witness: WitnessEndpoint, cp: Checkpoint, prove: Prove
    ) -> NoteSignature | None:
        name = witness.vkey.name
        old = self.sizes.get(witness.url, 0)
        try:
            for _ in range(2):  # a 409 tells the witness's size: ask once more from there
                if old > cp.size:
                    self._said(name, f"holds {old} leaves, more than this checkpoint's {cp.size}: a rollback")
                    return None
                proof = await prove(old, cp.size) if 0 < old < cp.size else ()
                body = AddCheckpoint(old, tuple(proof), cp.note()).body()
                async with session.post(witness.add_checkpoint_url, data=body) as response:
                    text = (await response.read()).decode("utf-8", "replace")
                    if response.status == 409 and response.content_type == SIZE_TYPE:
                        told = decimal(text.strip())
                        if told is None or told == old:
                            break
                        old = self.sizes[witness.url] = told
                        continue
                    if response.status != 200:
                        self._said(name, f"refused with {response.status}: {text.strip()[:200]}")
                        return None
                    return self._verified(witness, cp, text)
            self._said(name, f"refused with 409: it holds size {old}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._said(name, f"unreachable: {type(exc).__name__}: {exc}")
        return None

    def _verified(self, witness: WitnessEndpoint, cp: Checkpoint, text: str) -> NoteSignature | None:
        """The witness's own cosignature among the lines it answered, if one verifies."""
        text_signed = cp.body().text()
        for line in text.splitlines():
            try:
                signature = NoteSignature.parse_line(line)
            except NoteError:
                continue
            if witness.vkey.verify(text_signed, signature):
                self.sizes[witness.url] = cp.size
                self._said(witness.vkey.name, f"cosigned size {cp.size}")
                return signature
        self._said(witness.vkey.name, "answered 200 without a cosignature that verifies under its key")
        return None

    def _said(self, name: str, outcome: str) -> None:
        self.outcomes[name] = outcome
        if outcome.startswith("cosigned"):
            log.info("witness %s %s", name, outcome)
        else:
            log.warning("witness %s %s", name, outcome)
