"""Issue 16: Go's golang.org/x/mod/sumdb/note and sumdb/tlog verify what the ledger produces.

The ledger signs C2SP checkpoint notes and makes RFC 9162 proofs; the Go program
(tests/go/verifier) checks them with note.Open, tlog.CheckRecord and tlog.CheckTree, and rebuilds
proofs from the served tiles alone (tlog.TileHashReader, ProveRecord, ProveTree). Each check is
made both ways: what the ledger made passes, and a forged checkpoint or a wrong proof fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.verification.checkpoints import KEY_FILE, CheckpointLog
from ledger.verification.signed import Checkpoint, CheckpointSigner
from ledger.verification.transparency import LedgerTree
from streams.web.calls import Reply
from streams.web.proofs import ProofService
from tests.conftest import Clock
from tests.integration.goverifier import GoVerifier, go_verifier
from tests.unit.querydesk import Desk
from tests.unit.test_transparency import NOW, ledger
from tests.unit.webdesk import Web

__all__ = ["go_verifier", "ledger"]  # the fixtures (the ledger's clock says NOW)

ORIGIN = "credit-ledger.shanxi/v1"
SEED = bytes(range(32))


def grow_to(ledger: CreditLedger, catalogue: Catalogue, events: int, seed: int) -> None:
    generator = SubmissionGenerator(catalogue.latest, subjects=30, seed=seed, prefix=f"g{seed}")
    while ledger.reader.head() < events:
        ledger.submit(generator.take(25))


def write(path: Path, data: Any) -> str:
    path.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data))
    return str(path)


def checkpoints(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> tuple[LedgerTree, Checkpoint, Checkpoint]:
    """The ledger at two sizes, a signed checkpoint of each (the second crosses a full tile)."""
    tree = LedgerTree(ledger)
    grow_to(ledger, catalogue, 70, seed=1)
    tree.catch_up()
    old = tree.checkpoint(signer, NOW, origin=ORIGIN)
    grow_to(ledger, catalogue, 300, seed=2)
    tree.catch_up()
    return tree, old, tree.checkpoint(signer, NOW + timedelta(minutes=1), origin=ORIGIN)


def test_go_sumdb_accepts_the_ledgers_checkpoint_and_proofs_and_refuses_forged_ones(
    go_verifier: GoVerifier, ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path
) -> None:
    signer = CheckpointSigner(SEED)
    vkey = str(signer.vkey(ORIGIN))
    named = f"{ORIGIN}+{vkey.split('+')[1]}"  # the key's name and id, as Go's note names it
    tree, old, new = checkpoints(ledger, catalogue, signer)
    old_file = write(tmp_path / "old.json", old.to_dict())  # the JSON line, as filed
    new_file = write(tmp_path / "new.note", new.note().encode())  # the note, as GET /checkpoint serves it
    indexes = sorted({0, 1, old.size - 1, old.size, new.size // 2, new.size - 1})
    proofs = {i: tree.inclusion_proof_at(i, new.size) for i in indexes}
    files = {i: write(tmp_path / f"inclusion-{i}.json", p) for i, p in proofs.items()}
    consistency = write(tmp_path / "consistency.json", tree.consistency_proof(old.size, new.size))

    assert go_verifier.run("checkpoint", "-vkey", vkey, new_file) == (
        0,
        f"VALID: checkpoint of {ORIGIN} signed by {named}: size {new.size}, "
        f"root {new.body().text().splitlines()[2]}",
    )
    assert go_verifier.run("checkpoint", "-vkey", vkey, old_file)[0] == 0
    for i, file in files.items():
        verdict = go_verifier.run("inclusion", "-vkey", vkey, "-checkpoint", new_file, file)
        position = proofs[i]["leaf"]["position"]
        assert verdict == (0, f"VALID: leaf {i} (position {position}) is in the signed tree of {new.size}")
    consistent = go_verifier.run(
        "consistency", "-vkey", vkey, "-old", old_file, "-new", new_file, consistency
    )
    assert consistent == (0, f"VALID: the tree of {new.size} extends the tree of {old.size}")

    # A forged checkpoint: a line altered under the operator's signature, or another key's.
    altered = write(
        tmp_path / "altered.note", new.note().replace(f"\n{new.size}\n", f"\n{new.size + 1}\n").encode()
    )
    code, said = go_verifier.run("checkpoint", "-vkey", vkey, altered)
    assert (code, said) == (
        1,
        f"INVALID: {altered}: note.Open: invalid signature for key {named}",
    )
    impostor = CheckpointSigner(bytes(32)).sign(
        new.size, new.root, NOW, receipts=(1, "00" * 32), origin=ORIGIN
    )
    other = write(tmp_path / "impostor.note", impostor.note().encode())
    code, said = go_verifier.run("checkpoint", "-vkey", vkey, other)
    assert (code, said) == (1, f"INVALID: {other}: note.Open: note has no verifiable signatures")
    code, said = go_verifier.run("inclusion", "-vkey", vkey, "-checkpoint", other, files[0])
    assert code == 1

    # A wrong proof: an element altered, another leaf, another index, the wrong tree.
    some = proofs[old.size]
    flipped = {
        **some,
        "path": [("0" if some["path"][0][0] != "0" else "1") + some["path"][0][1:], *some["path"][1:]],
    }
    for wrong in (
        flipped,
        {**some, "leaf": {**some["leaf"], "event_hash": "ab" * 32}},
        {**some, "index": some["index"] + 1},
        {**some, "path": some["path"][:-1]},
    ):
        code, said = go_verifier.run(
            "inclusion", "-vkey", vkey, "-checkpoint", new_file, write(tmp_path / "wrong.json", wrong)
        )
        assert (code, said.split(": ")[0]) == (1, "INVALID"), wrong
    code, said = go_verifier.run("inclusion", "-vkey", vkey, "-checkpoint", old_file, files[0])
    assert (code, said) == (
        1,
        f"INVALID: the proof is for a tree of {new.size}, the checkpoint signs {old.size}",
    )
    cons = orjson.loads(Path(consistency).read_bytes())
    backwards = write(tmp_path / "backwards.json", {**cons, "path": cons["path"][::-1]})
    code, said = go_verifier.run("consistency", "-vkey", vkey, "-old", old_file, "-new", new_file, backwards)
    assert (code, said) == (1, "INVALID: tlog.CheckTree: invalid transparency proof")


def test_go_sumdb_rebuilds_proofs_from_the_served_tiles_alone_and_refuses_a_tampered_tile(
    go_verifier: GoVerifier,
    ledger: CreditLedger,
    catalogue: Catalogue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = CheckpointSigner(SEED)
    vkey = str(signer.vkey(ORIGIN))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / KEY_FILE).write_text(SEED.hex())
    tree, old, new = checkpoints(ledger, catalogue, signer)
    log = CheckpointLog.in_dir(data_dir)
    log.append(old)
    log.append(new)
    old_file = write(tmp_path / "old.json", old.to_dict())
    proofs = [
        write(tmp_path / f"p{i}.json", tree.inclusion_proof_at(i, new.size))
        for i in (0, old.size, new.size - 1)
    ]
    consistency = write(tmp_path / "cons.json", tree.consistency_proof(old.size, new.size))
    desk = Desk(ledger, tmp_path / "read.sqlite", Clock(NOW))

    async def verify(web: Web, *extra: str) -> tuple[int, str]:
        base = str(web.client.make_url("")).rstrip("/") if web.client else ""
        args = ["tiles", "-vkey", vkey, "-url", base, *extra]
        process = await asyncio.create_subprocess_exec(
            str(go_verifier.path), *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        return process.returncode or 0, out.decode().strip()

    async def scenario() -> list[tuple[int, str]]:
        async with Web(desk, data_dir, queries=False) as web:
            every = [arg for p in proofs for arg in ("-proof", p)]
            good = await verify(web, "-old", old_file, *every, "-consistency", consistency, "-every")
            wrong_proof = orjson.loads(Path(proofs[1]).read_bytes())
            wrong_proof["path"][0] = "00" * 32
            wrong = await verify(web, "-proof", write(tmp_path / "wrong.json", wrong_proof))
            original = ProofService.tile

            async def tampered(self: ProofService, level: str, index: str) -> Reply:
                reply = await original(self, level, index)
                if reply.status != 200 or level != "0":
                    return reply
                return dataclasses.replace(reply, body=bytes([reply.body[0] ^ 1]) + reply.body[1:])

            with monkeypatch.context() as patch:
                patch.setattr(ProofService, "tile", tampered)
                forged_tile = await verify(web)
            return [good, wrong, forged_tile]

    good, wrong, forged_tile = asyncio.run(scenario())
    assert good[0] == 0, good
    assert good[1].startswith(
        f"VALID: the tiles hash to the signed root of {new.size}; 3 inclusion proofs rebuilt from tiles and checked; "
        f"every leaf's inclusion proved from tiles ({new.size}); "
        f"the tree of {new.size} extends the tree of {old.size} (proof from tiles)"
    )
    assert wrong[0] == 1
    assert wrong[1].endswith("the ledger's path is not the one the tiles give")
    assert forged_tile == (1, "INVALID: tlog.TreeHash from tiles: downloaded inconsistent tile")
