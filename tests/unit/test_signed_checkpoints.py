"""Version 2 checkpoints (issue 10 item 13): the register's anchor and the link to the previous
checkpoint are signed; version 1 checkpoints stay valid; the standalone auditor reads both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from ledger.domain.integrity import canonical_bytes
from ledger.verification.checkpoints import CheckpointLog
from ledger.verification.signed import (
    CHECKPOINT_DOMAIN,
    CHECKPOINT_DOMAIN_V2,
    NO_PREVIOUS,
    Checkpoint,
    CheckpointSigner,
    checkpoint_hash,
    verify_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = bytes(range(32))
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
TREE_ROOT = "ab" * 32
HEAD = "cd" * 32


def test_item_13_a_v2_checkpoint_signs_the_register_anchor_and_its_predecessor(tmp_path: Path) -> None:
    log = CheckpointLog(tmp_path / "checkpoints.jsonl")
    signer = CheckpointSigner(SEED, previous=log.last)
    first = signer.sign(5, TREE_ROOT, NOW, receipts=(7, HEAD))
    assert (first.version, first.prev, first.receipts, first.receipts_head) == (2, NO_PREVIOUS, 7, HEAD)
    log.append(first)
    second = signer.sign(9, TREE_ROOT, NOW, receipts=(8, HEAD))
    assert second.prev == checkpoint_hash(first)
    assert second.signed_bytes() == CHECKPOINT_DOMAIN_V2 + canonical_bytes(
        {"size": 9, "root": TREE_ROOT, "time": first.time, "key_id": signer.key_id}
        | {"receipts": 8, "receipts_head": HEAD, "prev": second.prev}
    )
    assert verify_checkpoint(second, signer.public_key_hex)
    assert Checkpoint.from_dict(second.to_dict()) == second
    assert second.to_dict()["v"] == 2
    for field, value in (("receipts", 9), ("receipts_head", "ee" * 32), ("prev", NO_PREVIOUS)):
        altered = Checkpoint.from_dict({**second.to_dict(), field: value})
        assert not verify_checkpoint(altered, signer.public_key_hex), field


def test_item_13_a_v1_checkpoint_is_still_valid_and_cannot_pass_for_a_v2(tmp_path: Path) -> None:
    signer = CheckpointSigner(SEED)
    v1 = signer.sign(5, TREE_ROOT, NOW)
    assert (v1.version, set(v1.to_dict())) == (1, {"size", "root", "time", "key_id", "signature"})
    assert v1.signed_bytes().startswith(CHECKPOINT_DOMAIN)
    assert verify_checkpoint(v1, signer.public_key_hex)
    dressed = Checkpoint.from_dict(
        {**v1.to_dict(), "v": 2, "receipts": 0, "receipts_head": HEAD, "prev": HEAD}
    )
    assert not verify_checkpoint(dressed, signer.public_key_hex)


@pytest.mark.parametrize(
    "data",
    [
        {"v": 3},
        {"v": True},
        {"receipts": 1},  # v2 fields without "v": 2
        {"v": 2, "receipts": -1, "receipts_head": HEAD, "prev": HEAD},
        {"v": 2, "receipts": 1, "receipts_head": "XY", "prev": HEAD},
    ],
)
def test_item_13_a_malformed_checkpoint_is_refused(data: dict[str, object]) -> None:
    base = CheckpointSigner(SEED).sign(5, TREE_ROOT, NOW).to_dict()
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint.from_dict({**base, **data})


def test_item_13_the_last_checkpoint_of_a_long_file_is_read_from_its_end(tmp_path: Path) -> None:
    log = CheckpointLog(tmp_path / "checkpoints.jsonl")
    signer = CheckpointSigner(SEED, previous=log.last)
    for size in range(1, 120):
        log.append(signer.sign(size, TREE_ROOT, NOW, receipts=(size, HEAD)))
    with log.path.open("ab") as f:
        f.write(b"not a checkpoint\n\n")
    last = log.last()
    assert last is not None
    assert last.size == 119
    assert log.checkpoints()[-1] == last


def test_item_13_the_standalone_auditor_verifies_a_v2_checkpoint_and_refuses_an_altered_anchor(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "auditor.py"
    shutil.copy(ROOT / "auditor" / "auditor.py", copy)
    signer = CheckpointSigner(SEED)
    cp = signer.sign(5, TREE_ROOT, NOW, receipts=(7, HEAD)).to_dict()
    good, bad = tmp_path / "cp.json", tmp_path / "bad.json"
    good.write_bytes(orjson.dumps(cp))
    bad.write_bytes(orjson.dumps({**cp, "receipts": 6}))

    def run(path: Path) -> tuple[int, str]:
        done = subprocess.run(  # noqa: PLW1510 - the exit code is what is being tested
            [sys.executable, "-I", str(copy), "checkpoint", str(path), "--public-key", signer.public_key_hex],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        return done.returncode, done.stdout + done.stderr

    assert run(good)[0] == 0
    code, out = run(bad)
    assert code == 1
    assert "bad signature" in out
