"""Handlers for auditors, answered by ``ProofService``: checkpoints and Merkle proofs under
/v1/proofs/, and the C2SP view of the same tree: ``/checkpoint`` (the latest checkpoint note) and
``/tile/<L>/<N>[.p/<W>]`` (hash tiles, c2sp.org/tlog-tiles)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ledger.application.service import CreditLedger
from ledger.domain.errors import error_body
from ledger.verification.checkpoints import CheckpointLog, KeyConfigError, configured_signer
from ledger.verification.tiles import TilePathError, parse_tile_path
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from ledger.verification.transparency import LedgerTree, ProofRangeError, StoreChanged, UnknownEvent
from streams.web.calls import Reply

T = TypeVar("T")
Answer = tuple[int, dict[str, Any]]

NOTE = "text/plain; charset=utf-8"
TILE = "application/octet-stream"
MUTABLE = {"Cache-Control": "public, max-age=5"}
"""The latest checkpoint changes: tlog-tiles asks that it not be cached beyond a few seconds."""
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
"""A tile never changes (a partial one is a prefix of the full one it becomes, under another path)."""
NO_ENTRIES = (
    "entry bundles are not served: each leaf names a subject key, so leaves are given one at a time "
    "with their inclusion proofs (GET /v1/proofs/inclusion)"
)


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
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise _BadQuery(name, f"{name} must be a non-negative integer, not {shown!r}")
    return int(raw)


class ProofService:
    """What the views answer, as (HTTP status, JSON body); the tree is built on first use.

    Every store read runs on a thread of its own, never on the ledger's intake thread: the first
    request reads the whole ledger into the tree, and each later one only what was recorded since.
    Proof bodies are exactly the files ``auditor/auditor.py`` reads.
    """

    def __init__(
        self,
        ledger: CreditLedger,
        data_dir: Path,
        *,
        executor: Executor | None = None,
        origin: str = DEFAULT_ORIGIN,
        key: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.data_dir = data_dir
        self.origin = origin
        self.key = key  # CREDIT_CHECKPOINT_KEY as the composition root read it (None: the seed file)
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
            return 400, error_body("invalid_query", exc.field, str(exc))
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
            return 400, error_body("invalid_query", exc.field, str(exc))
        eid = query.get("event_id") or None
        if (position is None) == (eid is None):
            return 400, error_body("invalid_query", "position", "give exactly one of position and event_id")

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
                    return 409, error_body("not_checkpointed", "size", message)
                at = latest.size
            return 200, tree.inclusion_proof_at(index, at)

        return await self._answer(prove)

    async def consistency(self, query: Mapping[str, str]) -> Answer:
        """The consistency proof between the trees of ``old`` and ``new`` events."""
        try:
            old, new = _required(query, "old"), _required(query, "new")
        except _BadQuery as exc:
            return 400, error_body("invalid_query", exc.field, str(exc))
        return await self._answer(lambda: (200, self._caught_up().consistency_proof(old, new)))

    async def public_key(self) -> Answer:
        """The operator's checkpoint public key (compare it with the one published out of band)."""
        try:
            signer = await self._run(lambda: configured_signer(self.data_dir, self.key))
        except KeyConfigError as exc:
            return 503, error_body("key_misconfigured", "", str(exc))  # the operator's to fix: not a 500
        if signer is None:
            return 404, error_body("no_key", "", "no checkpoint has been signed here yet")
        return 200, {
            "algorithm": "Ed25519",
            "public_key": signer.public_key_hex,
            "key_id": signer.key_id,
            "origin": self.origin,
            "vkey": str(signer.vkey(self.origin)),
        }

    async def checkpoint_note(self) -> Reply:
        """The data dir's latest checkpoint as its C2SP signed note, cosignatures included."""
        latest = await self._run(self.checkpoint_log.last)
        if latest is None or latest.version < 3:
            had = f"; the latest here is version {latest.version}" if latest is not None else ""
            message = f"no C2SP checkpoint (version 3) has been signed here yet{had}"
            return Reply(404, error_body("no_checkpoint", "", message))
        return Reply(200, latest.note().encode(), MUTABLE, NOTE)

    async def tile(self, level: str, index: str) -> Reply:
        """The hash tile at ``tile/<level>/<index>`` of the tree as it is (tlog-tiles)."""
        if level == "entries":
            return Reply(404, error_body("not_served", "level", NO_ENTRIES))
        try:
            tile = parse_tile_path(level, index)
        except TilePathError as exc:
            return Reply(400, error_body("invalid_tile", "path", str(exc)))
        try:
            data = await self._run(lambda: self._caught_up().tile(tile))
        except StoreChanged as exc:
            return Reply(409, error_body("store_changed", "", str(exc)))
        except LookupError as exc:
            return Reply(404, error_body("not_in_tree", "path", f"{exc}: ask again once it has grown"))
        return Reply(200, data, IMMUTABLE, TILE)

    async def _answer(self, fn: Callable[[], Answer]) -> Answer:
        try:
            return await self._run(fn)
        except UnknownEvent as exc:
            return 404, error_body("unknown_event", "", str(exc))
        except ProofRangeError as exc:
            return 422, error_body("size_out_of_range", "size", str(exc))
        except StoreChanged as exc:
            return 409, error_body("store_changed", "", str(exc))
