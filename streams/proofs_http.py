"""HTTP views for auditors: checkpoints and Merkle proofs under /v1/proofs/."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import faust
from faust.web import Request, Response, View

from ledger.application.service import CreditLedger
from ledger.verification.checkpoints import CheckpointLog, KeyConfigError, configured_signer
from ledger.verification.transparency import LedgerTree, ProofRangeError, StoreChanged, UnknownEvent

if TYPE_CHECKING:
    from streams.parts import WorkerParts

T = TypeVar("T")
Answer = tuple[int, dict[str, Any]]


def _problem(code: str, field: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "field": field, "message": message}}


class _BadQuery(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _required(query: Mapping[str, str], name: str) -> int:
    value = _size(query, name)
    if value is None:
        raise _BadQuery(name, f"{name} is required (a number of events)")
    return value


def _size(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(name, f"{name} must be a non-negative integer, not {raw!r}") from None
    if value < 0:
        raise _BadQuery(name, f"{name} must be a non-negative integer, not {raw!r}")
    return value


class ProofService:
    """What the views answer, as (HTTP status, JSON body); the tree is built on first use.

    Every store read runs on a thread of its own, never on the ledger's intake thread: the first
    request reads the whole ledger into the tree, and each later one only what was recorded since.
    Proof bodies are exactly the files ``auditor/auditor.py`` reads.
    """

    def __init__(self, ledger: CreditLedger, data_dir: Path, *, executor: Executor | None = None) -> None:
        self.ledger = ledger
        self.data_dir = data_dir
        self.checkpoint_log = CheckpointLog.in_dir(data_dir)
        self._tree: LedgerTree | None = None
        self._executor = executor

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proofs")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _caught_up(self) -> LedgerTree:
        if self._tree is None:
            self._tree = LedgerTree(self.ledger)
        self._tree.catch_up()
        return self._tree

    async def checkpoints(self, query: Mapping[str, str]) -> Answer:
        """Every checkpoint in the data dir's file, oldest first (``limit``: only the latest so many)."""
        try:
            limit = _size(query, "limit")
        except _BadQuery as exc:
            return 400, _problem("invalid_query", exc.field, str(exc))
        found = await self._run(self.checkpoint_log.checkpoints)
        if limit is not None:
            found = found[-limit:] if limit else []
        return 200, {"checkpoints": [cp.to_dict() for cp in found]}

    async def inclusion(self, query: Mapping[str, str]) -> Answer:
        """The inclusion proof of one event (``position`` or ``event_id``) in the tree of ``size``.

        Without ``size``, the proof is for the latest checkpoint, so it can be checked against a
        signed root; an event newer than that checkpoint gets 409 until the next one is published.
        """
        try:
            size = _size(query, "size")
            position = _size(query, "position")
        except _BadQuery as exc:
            return 400, _problem("invalid_query", exc.field, str(exc))
        eid = query.get("event_id") or None
        if (position is None) == (eid is None):
            return 400, _problem("invalid_query", "position", "give exactly one of position and event_id")

        def prove() -> Answer:
            tree = self._caught_up()
            index = tree.index_of(position) if position is not None else tree.index_of_event_id(eid or "")
            at = size
            if at is None:
                latest = self.checkpoint_log.latest()
                if latest is None or latest.size <= index:
                    newest = f"the latest is of size {latest.size}" if latest else "there is none yet"
                    message = (
                        f"the event (leaf {index}) is not yet covered by a checkpoint ({newest}); "
                        "ask again after the next one, or give size"
                    )
                    return 409, _problem("not_checkpointed", "size", message)
                at = latest.size
            return 200, tree.inclusion_proof_at(index, at)

        return await self._answer(prove)

    async def consistency(self, query: Mapping[str, str]) -> Answer:
        """The consistency proof between the trees of ``old`` and ``new`` events."""
        try:
            old, new = _required(query, "old"), _required(query, "new")
        except _BadQuery as exc:
            return 400, _problem("invalid_query", exc.field, str(exc))
        return await self._answer(lambda: (200, self._caught_up().consistency_proof(old, new)))

    async def public_key(self) -> Answer:
        """The operator's checkpoint public key (compare it with the one published out of band)."""
        try:
            signer = await self._run(lambda: configured_signer(self.data_dir))
        except KeyConfigError as exc:
            return 500, _problem("key_misconfigured", "", str(exc))
        if signer is None:
            return 404, _problem("no_key", "", "no checkpoint has been signed here yet")
        return 200, {"algorithm": "Ed25519", "public_key": signer.public_key_hex, "key_id": signer.key_id}

    async def _answer(self, fn: Callable[[], Answer]) -> Answer:
        try:
            return await self._run(fn)
        except UnknownEvent as exc:
            return 404, _problem("unknown_event", "", str(exc))
        except ProofRangeError as exc:
            return 422, _problem("size_out_of_range", "size", str(exc))
        except StoreChanged as exc:
            return 409, _problem("store_changed", "", str(exc))


def register_proof_views(app: faust.App, parts: WorkerParts) -> None:
    """Register the read-only /v1/proofs/ views: checkpoints, inclusion, consistency, public key."""
    service = ProofService(parts.ledger, parts.data_dir)

    def respond(view: View, answer: Answer) -> Response:
        status, body = answer
        return view.json(body, status=status)

    @app.page("/v1/proofs/checkpoints")
    class Checkpoints(View):
        """GET the signed checkpoints, oldest first (?limit=N for the latest N)."""

        async def get(self, request: Request) -> Response:
            return respond(self, await service.checkpoints(request.query))

    @app.page("/v1/proofs/inclusion")
    class Inclusion(View):
        """GET ?position=N or ?event_id=ID, and optionally &size=S: an inclusion proof."""

        async def get(self, request: Request) -> Response:
            return respond(self, await service.inclusion(request.query))

    @app.page("/v1/proofs/consistency")
    class Consistency(View):
        """GET ?old=M&new=N: a consistency proof between two tree sizes."""

        async def get(self, request: Request) -> Response:
            return respond(self, await service.consistency(request.query))

    @app.page("/v1/proofs/public-key")
    class PublicKey(View):
        """GET the operator's Ed25519 checkpoint key and its key id."""

        async def get(self, request: Request) -> Response:
            return respond(self, await service.public_key())
