"""Issue 16: GET /checkpoint and GET /tile/... served in process: the tiles of every size from 1
to N are the tree's, with the content types and cache headers tlog-tiles asks for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.verification.checkpoints import CheckpointLog
from ledger.verification.merkle import leaf_hash, ledger_leaf, root_from_leaf_hashes
from ledger.verification.signed import Checkpoint, CheckpointSigner
from ledger.verification.tiles import TILE_WIDTH, tiles_of
from ledger.verification.transparency import LedgerTree
from tests.conftest import SECRET, Clock
from tests.unit.querydesk import Desk
from tests.unit.webdesk import Web

ORIGIN = "credit-ledger.shanxi/v1"
NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
SEED = bytes(range(32))


@pytest.fixture
def big(catalogue: Catalogue, tmp_path: Path) -> Iterator[Desk]:
    """A ledger of a little over 256 events (so a level-1 tile exists), with a desk to serve it."""
    ledger = CreditLedger(
        catalogue=catalogue,
        secret=SECRET,
        clock=lambda: NOW,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    )
    generator = SubmissionGenerator(catalogue.latest, subjects=40, seed=16, prefix="t")
    while ledger.reader.head() < TILE_WIDTH + 20:
        ledger.submit(generator.take(50))
    yield Desk(ledger, tmp_path / "read.sqlite", Clock(NOW))
    ledger.close()


def leaf_hashes(ledger: CreditLedger) -> list[bytes]:
    """Every event's leaf hash, from the stored rows, as an outside reader would compute it."""
    return [
        leaf_hash(
            ledger_leaf(n.id, str(n.originator_id), n.originator_version, orjson.loads(n.state)["event_hash"])
        )
        for n in ledger.recorder.select_notifications(1, 100_000)
    ]


def test_the_tiles_served_for_every_size_from_1_to_n_are_the_trees(big: Desk, tmp_path: Path) -> None:
    leaves = leaf_hashes(big.ledger)
    n = len(leaves)
    assert n > TILE_WIDTH

    async def scenario(web: Web) -> None:
        seen: dict[str, bytes] = {}
        for size in range(1, n + 1):
            for tile in tiles_of(size):
                if tile.path in seen:
                    continue
                status, body, headers = await web.exchange("GET", "/" + tile.path, as_bytes=True)
                assert (status, headers["Content-Type"]) == (200, "application/octet-stream"), tile.path
                assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
                span = TILE_WIDTH**tile.level
                expected = b"".join(
                    root_from_leaf_hashes(leaves[(tile.first + i) * span : (tile.first + i + 1) * span])
                    for i in range(tile.width)
                )
                assert body == expected, tile.path
                seen[tile.path] = body
        assert f"tile/1/000.p/{n // TILE_WIDTH}" in seen
        assert "tile/0/000" in seen
        status, body = await web.call("GET", f"/tile/0/001.p/{n - TILE_WIDTH + 1}")
        assert (status, body["error"]["code"]) == (404, "not_in_tree")
        status, body = await web.call("GET", "/tile/entries/000")
        assert (status, body["error"]["code"]) == (404, "not_served")
        status, body = await web.call("GET", "/tile/0/1")
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_tile", "path")

    asyncio.run(run(big, tmp_path, scenario))


def test_get_checkpoint_serves_the_latest_note_with_its_cosignatures_as_text(
    big: Desk, tmp_path: Path
) -> None:
    signer = CheckpointSigner(SEED)
    tree = LedgerTree(big.ledger)
    tree.catch_up()
    log = CheckpointLog.in_dir(tmp_path)
    log.append(tree.checkpoint(signer, NOW))  # a version 2 checkpoint first: not served here
    cp = tree.checkpoint(signer, NOW, origin=ORIGIN)

    async def scenario(web: Web) -> None:
        status, body = await web.call("GET", "/checkpoint")
        assert (status, body["error"]["code"]) == (404, "no_checkpoint")
        assert "the latest here is version 2" in body["error"]["message"]
        log.append(cp)
        status, note, headers = await web.exchange("GET", "/checkpoint", as_bytes=True)
        assert (status, headers["Content-Type"], headers["Cache-Control"]) == (
            200,
            "text/plain; charset=utf-8",
            "public, max-age=5",
        )
        assert Checkpoint.from_note(note) == cp
        assert note.decode() == cp.note()
        status, key = await web.call("GET", "/v1/proofs/public-key")
        assert (status, key["vkey"]) == (200, str(signer.vkey(key["origin"])))

    asyncio.run(run(big, tmp_path, scenario, with_key=signer))


async def run(
    desk: Desk,
    data_dir: Path,
    scenario: Callable[[Web], Awaitable[None]],
    with_key: CheckpointSigner | None = None,
) -> None:
    if with_key is not None:  # the worker's data dir holds the operator's key: the public-key view reads it
        (data_dir / "checkpoint-key.seed").write_text(SEED.hex())
    async with Web(desk, data_dir, queries=False) as web:
        await scenario(web)
