"""Issue 16: a witness's add-checkpoint answers every case of C2SP tlog-witness as it says."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import orjson
import pytest

from credit_ledger.config import Settings
from ledger.verification.merkle import EMPTY_ROOT, MerkleLog
from ledger.verification.notes import COSIGNATURE_V1, Note, NoteSigner, VerifierKey, parse_note
from ledger.verification.tlog_checkpoint import CheckpointBody
from ledger.verification.witness import (
    KEY_FILE,
    NOTE_TYPE,
    SIZE_TYPE,
    AddCheckpoint,
    Witness,
    origin_hash,
    witness_signer,
)

ORIGIN = "log.example/v1"
LOG = NoteSigner(ORIGIN, bytes(range(32)))
STAMP = 1_790_000_000


class Log:
    """A log of numbered leaves and its signed checkpoints (any C2SP log: the witness is generic)."""

    def __init__(self, signer: NoteSigner = LOG) -> None:
        self.tree = MerkleLog()
        self.signer = signer

    def grow(self, n: int, tag: str = "") -> Log:
        for _ in range(n):
            self.tree.append(f"leaf {self.tree.size}{tag}".encode())
        return self

    def note(self, size: int | None = None, root: bytes | None = None) -> str:
        size = self.tree.size if size is None else size
        text = CheckpointBody(self.signer.name, size, self.tree.root(size) if root is None else root).text()
        return Note(text, (self.signer.sign(text),)).render()

    def request(self, old: int, size: int | None = None, **kwargs: bytes) -> bytes:
        size = self.tree.size if size is None else size
        proof = tuple(self.tree.consistency_proof(old, size)) if 0 < old < size else ()
        return AddCheckpoint(old, proof, self.note(size, **kwargs)).body()


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    signer = NoteSigner("witness.example/w1", bytes([9]) * 32, COSIGNATURE_V1)
    return Witness(signer, [LOG.vkey], tmp_path, clock=lambda: STAMP)


def test_a_first_checkpoint_is_cosigned_recorded_and_served_to_monitors(witness: Witness) -> None:
    log = Log().grow(5)
    answer = witness.add_checkpoint(log.request(0))
    assert answer.status == 200
    (line,) = answer.body.decode().splitlines()
    cosignature = parse_note(log.note() + line + "\n").signatures[-1]
    assert cosignature.timestamp == STAMP
    assert witness.signer.vkey.verify(CheckpointBody.parse(parse_note(log.note()).text).text(), cosignature)
    held = witness.latest(origin_hash(ORIGIN))
    assert (held.status, held.content_type) == (200, NOTE_TYPE)
    assert parse_note(held.body).signatures == (*parse_note(log.note()).signatures, cosignature)
    assert witness.latest("00" * 32).status == 404


def test_a_checkpoint_that_extends_the_one_held_is_cosigned_with_its_proof(witness: Witness) -> None:
    log = Log().grow(5)
    assert witness.add_checkpoint(log.request(0)).status == 200
    log.grow(300)
    assert witness.add_checkpoint(log.request(5)).status == 200
    assert witness.add_checkpoint(log.request(log.tree.size)).status == 200  # the same again: cosigned anew


def test_an_old_size_that_is_not_the_one_held_is_409_with_the_size_held(witness: Witness) -> None:
    log = Log().grow(5)
    assert witness.add_checkpoint(log.request(0)).status == 200
    log.grow(10)
    for old in (0, 3, 6):
        answer = witness.add_checkpoint(log.request(old))
        assert (answer.status, answer.content_type, answer.body) == (409, SIZE_TYPE, b"5\n")


def test_a_checkpoint_that_does_not_extend_the_one_held_is_422_and_kept_as_evidence(witness: Witness) -> None:
    log, fork = Log().grow(5), Log().grow(3).grow(9, tag="fork")
    assert witness.add_checkpoint(log.request(0)).status == 200
    proof = tuple(fork.tree.consistency_proof(5, fork.tree.size))
    answer = witness.add_checkpoint(AddCheckpoint(5, proof, fork.note()).body())
    assert (answer.status, answer.body) == (
        422,
        b"the proof does not show the tree extends the one of size 5\n",
    )
    # tlog-witness: "If the old size matches the checkpoint size, the witness MUST check that the root
    # hashes are also identical. If they don't match, the witness MUST respond with a 409 Conflict".
    same_size = witness.add_checkpoint(AddCheckpoint(5, (), fork.note(5)).body())
    assert (same_size.status, same_size.content_type, same_size.body) == (409, SIZE_TYPE, b"5\n")
    with_a_proof = witness.add_checkpoint(AddCheckpoint(5, (EMPTY_ROOT,), log.note()).body())
    assert (with_a_proof.status, with_a_proof.body) == (
        422,
        b"from size 5 to itself the consistency proof is empty\n",
    )
    refused = [orjson.loads(line) for line in witness.refused_path.read_bytes().splitlines()]
    assert [r["status"] for r in refused] == [422, 409, 422]
    assert parse_note(witness.latest(origin_hash(ORIGIN)).body).text == parse_note(log.note()).text


@pytest.mark.parametrize(
    ("request_body", "status"),
    [
        (b"old 0\n\nnot a checkpoint\n", 400),
        (b"old 01\n\n" + Log().grow(2).note().encode(), 400),
        (Log().grow(2).request(0).replace(b"old 0", b"old 3"), 400),  # old beyond the checkpoint
        (Log(NoteSigner("other.example/v1", bytes(32))).grow(2).request(0), 404),  # an unknown log
        (Log(NoteSigner(ORIGIN, bytes(32))).grow(2).request(0), 403),  # the log's name, another key
        (AddCheckpoint(0, (), Log().grow(2).note(root=b"\x01" * 32)).body(), 200),  # the witness cannot tell
        (AddCheckpoint(0, (), Log().note(0, root=b"\x01" * 32)).body(), 409),  # size 0, not the empty root
        (AddCheckpoint(0, (EMPTY_ROOT,), Log().grow(2).note()).body(), 422),  # a proof from 0
    ],
)
def test_each_refusal_has_the_status_the_protocol_gives_it(
    witness: Witness, request_body: bytes, status: int
) -> None:
    assert witness.add_checkpoint(request_body).status == status


def test_a_tampered_log_signature_is_403(witness: Witness) -> None:
    note = parse_note(Log().grow(2).note())
    text = note.text.replace("\n2\n", "\n3\n")
    forged = Note(text, note.signatures).render()
    answer = witness.add_checkpoint(AddCheckpoint(0, (), forged).body())
    assert (answer.status, answer.body) == (
        403,
        b"not a checkpoint of log.example/v1: a signature by its key does not verify\n",
    )


def test_requests_racing_from_one_size_leave_one_cosigned_and_the_other_told_the_new_size(
    witness: Witness,
) -> None:
    log = Log().grow(5)
    assert witness.add_checkpoint(log.request(0)).status == 200
    log.grow(5)
    first = log.request(5)
    log.grow(5)
    second = log.request(5)
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda b=body: answers.append(witness.add_checkpoint(b).status))
        for body in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200, 409]  # the second to take the lock sees the first's size


def test_the_witness_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    signer = witness_signer("witness.example/w1", tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert witness_signer("witness.example/w1", tmp_path).vkey == signer.vkey
    assert signer.vkey.signature_type == COSIGNATURE_V1
    key = Settings.from_env({"CREDIT_WITNESS_KEY": "11" * 32}).witness_key  # the composition root reads it
    given = witness_signer("witness.example/w1", tmp_path, key)
    assert given.vkey == VerifierKey.of(
        "witness.example/w1", COSIGNATURE_V1, NoteSigner("x", bytes([0x11]) * 32).vkey.public_key
    )
