"""The ledger's Merkle view: its tree, proofs, operator key, checkpoint file, audit, publisher and views.

One module of about 585 lines: the tree, the key, the checkpoint file, the audit and the
publisher are checked over the same ledger fixture and helpers (``add_submissions``, ``stored``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from credit_ledger.config import Settings
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.domain.integrity import event_id
from ledger.verification.audit import audit
from ledger.verification.checkpoints import (
    KEY_FILE,
    KEY_VARIABLE,
    CheckpointLog,
    KeyConfigError,
    SourcedCheckpoint,
    checkpoint_signer,
    configured_signer,
)
from ledger.verification.merkle import (
    Checkpoint,
    CheckpointSigner,
    generate_seed,
    leaf_hash,
    ledger_leaf,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from ledger.verification.transparency import LedgerTree, ProofRangeError, UnknownEvent
from streams.digests import CheckpointPublisher
from streams.web.proofs import ProofService
from tests.conftest import SECRET, example

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.fixture
def ledger(catalogue: Catalogue) -> Iterator[CreditLedger]:
    app = CreditLedger(
        catalogue=catalogue,
        secret=SECRET,
        clock=lambda: NOW,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    )
    yield app
    app.close()


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(generate_seed())


def add_submissions(ledger: CreditLedger, catalogue: Catalogue, n: int, seed: int = 7) -> None:
    generator = SubmissionGenerator(catalogue.latest, subjects=8, seed=seed, prefix=f"s{seed}")
    ledger.submit(generator.take(n))


def stored(ledger: CreditLedger) -> list[tuple[int, str, int, str]]:
    """(position, stream, version, stored event_hash) of every event, in ledger order."""
    return [
        (n.id, str(n.originator_id), n.originator_version, orjson.loads(n.state)["event_hash"])
        for n in ledger.recorder.select_notifications(1, 100_000)
    ]


def sourced(*checkpoints: Checkpoint) -> list[SourcedCheckpoint]:
    return [SourcedCheckpoint(f"test:{i}", cp) for i, cp in enumerate(checkpoints, 1)]


# --- The tree -----------------------------------------------------------------------------------


def test_the_tree_has_one_leaf_per_event_in_ledger_order_committing_to_its_stored_hash(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 30)
    tree = LedgerTree(ledger)
    assert tree.catch_up() == len(stored(ledger))
    leaves = [leaf_hash(ledger_leaf(*event)) for event in stored(ledger)]
    assert tree.root() == root_from_leaf_hashes(leaves)
    assert [tree.position_at(i) for i in range(tree.size)] == [e[0] for e in stored(ledger)]


def test_catching_up_appends_only_what_was_recorded_since_and_keeps_every_earlier_root(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 10)
    tree = LedgerTree(ledger, page=3)
    tree.catch_up()
    size, root = tree.size, tree.root()
    assert tree.catch_up() == 0
    add_submissions(ledger, catalogue, 10, seed=8)
    assert tree.catch_up(limit=4) == 4
    assert tree.catch_up() == len(stored(ledger)) - size - 4
    assert tree.root(size) == root
    assert tree.root() == root_from_leaf_hashes([leaf_hash(ledger_leaf(*e)) for e in stored(ledger)])


def test_an_event_is_found_by_position_by_event_id_and_by_subject_key_and_version(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 20)
    tree = LedgerTree(ledger)
    tree.catch_up()
    for index, (position, stream, version, _) in enumerate(stored(ledger)):
        assert tree.index_of(position) == index
        assert tree.index_of_event_id(event_id(stream, version)) == index
        assert tree.index_of_event(stream.replace("-", ""), version) == index
    add_submissions(ledger, catalogue, 5, seed=9)
    tree.catch_up()
    position, stream, version, _ = stored(ledger)[-1]
    assert tree.index_of_event(stream, version) == tree.index_of(position) == tree.size - 1


def test_an_unknown_position_event_id_or_stream_is_refused_by_name(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 5)
    tree = LedgerTree(ledger)
    tree.catch_up()
    with pytest.raises(UnknownEvent, match="no event at position 999"):
        tree.index_of(999)
    with pytest.raises(UnknownEvent, match="no event with id"):
        tree.index_of_event_id(event_id("00000000-0000-0000-0000-000000000000", 1))
    with pytest.raises(UnknownEvent, match="is not an event id"):
        tree.index_of_event_id("nope")
    with pytest.raises(UnknownEvent, match="is not a stream id"):
        tree.index_of_event("nope", 1)


def test_every_inclusion_proof_verifies_against_the_root_of_every_size_that_holds_the_event(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 25)
    tree = LedgerTree(ledger)
    tree.catch_up()
    for index, (position, stream, version, event_hash) in enumerate(stored(ledger)):
        for size in range(index + 1, tree.size + 1):
            proof = tree.inclusion_proof(position, size)
            assert proof["leaf"] == {
                "position": position,
                "stream": stream,
                "version": version,
                "event_hash": event_hash,
            }
            assert (proof["index"], proof["size"]) == (index, size)
            path = [bytes.fromhex(h) for h in proof["path"]]
            data = ledger_leaf(position, stream, version, event_hash)
            assert verify_inclusion(leaf_hash(data), index, size, path, tree.root(size))


def test_consistency_proofs_verify_between_every_pair_of_sizes(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 25)
    tree = LedgerTree(ledger)
    tree.catch_up()
    for new in range(tree.size + 1):
        for old in range(new + 1):
            proof = tree.consistency_proof(old, new)
            assert (proof["old_size"], proof["new_size"]) == (old, new)
            path = [bytes.fromhex(h) for h in proof["path"]]
            assert verify_consistency(old, new, tree.root(old), tree.root(new), path)


def test_a_proof_beyond_the_tree_or_for_a_tree_before_the_event_is_refused(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    add_submissions(ledger, catalogue, 5)
    tree = LedgerTree(ledger)
    tree.catch_up()
    last = tree.position_at(tree.size - 1)
    with pytest.raises(ProofRangeError, match="beyond the tree"):
        tree.inclusion_proof(last, tree.size + 1)
    with pytest.raises(ProofRangeError, match=f"is leaf {tree.size - 1}, so it is not in the tree"):
        tree.inclusion_proof(last, tree.size - 1)
    with pytest.raises(ProofRangeError, match="must satisfy"):
        tree.consistency_proof(3, 2)
    with pytest.raises(ProofRangeError, match="must satisfy"):
        tree.consistency_proof(1, tree.size + 1)


def test_a_checkpoint_signs_the_whole_tree_as_it_is(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    add_submissions(ledger, catalogue, 5)
    tree = LedgerTree(ledger)
    tree.catch_up()
    cp = tree.checkpoint(signer, NOW)
    assert (cp.size, cp.root, cp.time, cp.key_id) == (
        tree.size,
        tree.root().hex(),
        "2026-11-01T09:00:00Z",
        signer.key_id,
    )


# --- The operator's key -------------------------------------------------------------------------


def test_the_key_is_written_once_into_the_data_dir_readable_by_its_owner_only_and_reused(
    tmp_path: Path,
) -> None:
    assert configured_signer(tmp_path) is None
    first = checkpoint_signer(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    assert checkpoint_signer(tmp_path).public_key == first.public_key
    again = configured_signer(tmp_path)
    assert again is not None
    assert again.key_id == first.key_id
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_the_key_in_the_environment_wins_over_the_data_dir(tmp_path: Path) -> None:
    seed = generate_seed()
    key = Settings.from_env({KEY_VARIABLE: seed.hex()}).checkpoint_key  # the composition root reads it
    from_env = checkpoint_signer(tmp_path, key)
    assert from_env.public_key == CheckpointSigner(seed).public_key
    assert not (tmp_path / KEY_FILE).exists()


def test_a_malformed_key_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match=KEY_VARIABLE):
        checkpoint_signer(tmp_path, Settings.from_env({KEY_VARIABLE: "abc"}).checkpoint_key)
    (tmp_path / KEY_FILE).write_text("not hex")
    with pytest.raises(KeyConfigError, match=KEY_FILE):
        configured_signer(tmp_path)


# --- The checkpoint file ------------------------------------------------------------------------


def test_the_checkpoint_file_keeps_every_checkpoint_in_order_and_names_a_line_that_is_not_one(
    tmp_path: Path, signer: CheckpointSigner
) -> None:
    log = CheckpointLog.in_dir(tmp_path)
    assert log.read() == []
    assert log.latest() is None
    first, second = signer.sign(1, b"\x01" * 32, NOW), signer.sign(2, b"\x02" * 32, NOW)
    log.append(first)
    with open(log.path, "ab") as f:
        f.write(b'{"size": 1}\n\n')
    log.append(second)
    read = log.read()
    assert [s.source for s in read] == ["checkpoints.jsonl:1", "checkpoints.jsonl:2", "checkpoints.jsonl:4"]
    assert [s.checkpoint for s in read] == [first, None, second]
    assert "missing" in read[1].error
    assert log.latest() == second
    assert log.latest(key="0" * 16) is None
    assert log.find(1) == first


# --- The audit ----------------------------------------------------------------------------------


def test_an_untouched_ledger_with_its_checkpoints_verifies_and_later_checkpoints_are_proved_consistent(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    checkpoints = []
    tree = LedgerTree(ledger)
    for seed in (1, 2, 3):
        add_submissions(ledger, catalogue, 10, seed=seed)
        tree.catch_up()
        checkpoints.append(tree.checkpoint(signer, NOW + timedelta(minutes=seed)))
    report = audit(ledger, sourced(*checkpoints, checkpoints[0]), signer.public_key_hex)
    assert report.problems == []
    assert (report.events, report.checkpoints, report.consistency_checked) == (tree.size, 3, 2)
    assert report.tree.root() == tree.root()


def test_a_checkpoint_with_an_altered_root_is_reported_as_not_the_operators(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    add_submissions(ledger, catalogue, 10)
    tree = LedgerTree(ledger)
    tree.catch_up()
    cp = tree.checkpoint(signer, NOW)
    forged = dataclasses.replace(cp, root="0" * 64)
    (problem,) = audit(ledger, sourced(forged), signer.public_key_hex).problems
    assert problem.kind == "checkpoint_signature"
    assert problem.message == (
        f"checkpoint of size {cp.size} at 2026-11-01T09:00:00Z (test:1): "
        "its signature is not valid: the checkpoint was altered or forged"
    )


def test_a_checkpoint_signed_by_another_key_is_reported_with_both_key_ids(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    add_submissions(ledger, catalogue, 10)
    tree = LedgerTree(ledger)
    tree.catch_up()
    impostor = CheckpointSigner(generate_seed())
    (problem,) = audit(ledger, sourced(tree.checkpoint(impostor, NOW)), signer.public_key_hex).problems
    assert problem.kind == "checkpoint_signature"
    assert f"signed by key {impostor.key_id}, not by the operator's key {signer.key_id}" in problem.message


def test_two_signed_roots_for_one_size_are_reported_as_a_fork(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    add_submissions(ledger, catalogue, 10)
    tree = LedgerTree(ledger)
    tree.catch_up()
    honest = tree.checkpoint(signer, NOW)
    other = signer.sign(tree.size, b"\x07" * 32, NOW + timedelta(seconds=1))
    problems = audit(ledger, sourced(honest, other), signer.public_key_hex).problems
    assert [p.kind for p in problems] == ["checkpoint_conflict", "checkpoint_root"]
    assert f"the operator signed 2 different roots for size {tree.size}" in problems[0].message


def test_a_later_checkpoint_of_fewer_events_is_reported_as_a_rollback(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    add_submissions(ledger, catalogue, 10)
    tree = LedgerTree(ledger)
    tree.catch_up()
    big = tree.checkpoint(signer, NOW)
    small = signer.sign(3, tree.root(3), NOW + timedelta(hours=1))
    (problem,) = audit(ledger, sourced(big, small), signer.public_key_hex).problems
    assert problem.kind == "checkpoint_rollback"
    assert problem.message.startswith("checkpoint of size 3 at 2026-11-01T10:00:00Z (test:2) signs fewer")


def test_checkpoints_without_a_public_key_and_lines_that_are_not_checkpoints_are_problems(
    ledger: CreditLedger, catalogue: Catalogue, signer: CheckpointSigner
) -> None:
    add_submissions(ledger, catalogue, 3)
    tree = LedgerTree(ledger)
    tree.catch_up()
    garbled = SourcedCheckpoint("checkpoints.jsonl:2", None, "not JSON")
    problems = audit(ledger, [*sourced(tree.checkpoint(signer)), garbled], None).problems
    assert [p.kind for p in problems] == ["checkpoint_malformed", "no_public_key"]
    assert problems[0].message == "checkpoints.jsonl:2: not a checkpoint: not JSON"


# --- The publisher ------------------------------------------------------------------------------


class Clocks:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return NOW + timedelta(seconds=self.seconds)


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    async def __call__(self, topic: str, key: bytes, value: bytes) -> Any:
        self.records.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def publisher(
    ledger: CreditLedger, tmp_path: Path, signer: CheckpointSigner, sent: Sent, clocks: Clocks
) -> CheckpointPublisher:
    return CheckpointPublisher(
        ledger,
        sent,
        data_dir=tmp_path,
        signer=signer,
        every_events=20,
        every_seconds=60,
        poll_interval=0,
        chunk=1000,
        clock=clocks.wall,
        monotonic=clocks.monotonic,
    )


def test_the_publisher_signs_a_checkpoint_every_n_events_or_t_seconds_and_only_when_the_tree_grew(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path, signer: CheckpointSigner
) -> None:
    sent, clocks = Sent(), Clocks()
    digests = publisher(ledger, tmp_path, signer, sent, clocks)

    async def run() -> list[int]:
        counts = [await digests.maybe_publish()]  # an empty ledger: nothing to sign
        add_submissions(ledger, catalogue, 5, seed=1)
        counts.append(await digests.maybe_publish())  # the first checkpoint is due at once
        add_submissions(ledger, catalogue, 3, seed=2)
        counts.append(await digests.maybe_publish())  # grew, but neither 20 events nor 60 s
        clocks.seconds += 61
        counts.append(await digests.maybe_publish())  # 60 s passed and it grew
        clocks.seconds += 600
        counts.append(await digests.maybe_publish())  # time passed, but it did not grow
        add_submissions(ledger, catalogue, 25, seed=3)
        counts.append(await digests.maybe_publish())  # 20 events or more
        return counts

    assert asyncio.run(run()) == [0, 1, 0, 1, 0, 1]
    filed = CheckpointLog.in_dir(tmp_path).checkpoints()
    assert [(t, k, Checkpoint.from_dict(orjson.loads(v))) for t, k, v in sent.records] == [
        ("credit.digests", cp.key_id.encode(), cp) for cp in filed
    ]
    assert {cp.version for cp in filed} == {3}  # C2SP checkpoint notes, keyed by the note's key id
    assert filed[-1].size == len(stored(ledger))
    assert audit(ledger, sourced(*filed), signer.public_key_hex).problems == []


def test_a_restarted_publisher_waits_for_growth_after_the_last_checkpoint_in_the_file(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path, signer: CheckpointSigner
) -> None:
    sent, clocks = Sent(), Clocks()
    add_submissions(ledger, catalogue, 5)
    assert asyncio.run(publisher(ledger, tmp_path, signer, sent, clocks).maybe_publish()) == 1
    restarted = publisher(ledger, tmp_path, signer, sent, clocks)
    assert asyncio.run(restarted.maybe_publish()) == 0
    assert restarted.last == CheckpointLog.in_dir(tmp_path).latest()


def test_the_publisher_reads_a_backlog_in_chunks_and_signs_once_at_its_end(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path, signer: CheckpointSigner
) -> None:
    sent, clocks = Sent(), Clocks()
    add_submissions(ledger, catalogue, 30)
    digests = publisher(ledger, tmp_path, signer, sent, clocks)
    digests.chunk = 10

    async def run() -> list[int]:
        return [await digests.maybe_publish() for _ in range(6)]

    counts = asyncio.run(run())
    assert sum(counts) == 1
    assert CheckpointLog.in_dir(tmp_path).checkpoints()[0].size == len(stored(ledger))


# --- The HTTP views' answers --------------------------------------------------------------------


def test_the_proof_views_answer_with_the_auditors_files_and_refuse_what_they_cannot_prove(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path
) -> None:
    service = ProofService(ledger, tmp_path)
    add_submissions(ledger, catalogue, 10)

    async def ask(view: str, **query: str) -> tuple[int, dict[str, Any]]:
        if view == "public_key":
            return await service.public_key()
        answer: tuple[int, dict[str, Any]] = await getattr(service, view)(query)
        return answer

    async def run() -> None:
        assert (await ask("public_key"))[0] == 404
        status, body = await ask("inclusion", position="1")
        assert (status, body["error"]["code"]) == (409, "not_checkpointed")
        signer = checkpoint_signer(tmp_path)
        tree = LedgerTree(ledger)
        tree.catch_up()
        cp = tree.checkpoint(signer, NOW)
        CheckpointLog.in_dir(tmp_path).append(cp)
        add_submissions(ledger, catalogue, 5, seed=8)

        assert await ask("public_key") == (
            200,
            {
                "algorithm": "Ed25519",
                "public_key": signer.public_key_hex,
                "key_id": signer.key_id,
                "origin": DEFAULT_ORIGIN,
                "vkey": str(signer.vkey(DEFAULT_ORIGIN)),
            },
        )
        assert await ask("checkpoints") == (200, {"checkpoints": [cp.to_dict()]})
        assert await ask("checkpoints", limit="0") == (200, {"checkpoints": []})
        status, proof = await ask("inclusion", position="1")
        assert (status, proof["size"], proof["index"]) == (200, cp.size, 0)
        assert set(proof) == {"leaf", "index", "size", "path"}
        last = stored(ledger)[-1]
        status, proof = await ask(
            "inclusion", event_id=event_id(last[1], last[2]), size=str(len(stored(ledger)))
        )
        assert (status, proof["leaf"]["position"]) == (200, last[0])
        status, body = await ask("inclusion", event_id=event_id(last[1], last[2]))
        assert (status, body["error"]["code"]) == (409, "not_checkpointed")
        assert await ask("consistency", old="3", new=str(cp.size)) == (
            200,
            LedgerTree.consistency_proof(tree, 3, cp.size),
        )
        assert (await ask("inclusion", position="99999"))[0] == 404
        assert (await ask("inclusion", position="1", size="99999"))[0] == 422
        assert (await ask("inclusion"))[0] == 400
        assert (await ask("inclusion", position="1", event_id="x"))[0] == 400
        assert (await ask("consistency", old="a", new="2"))[1]["error"]["field"] == "old"
        assert (await ask("consistency", old="1"))[1]["error"]["field"] == "new"

    asyncio.run(run())


def test_the_proof_views_are_served_under_v1_proofs_from_the_workers_data_dir(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path
) -> None:
    import faust  # noqa: PLC0415 - only this test needs the web layer

    from streams.http import register_views  # noqa: PLC0415
    from streams.web.routes import ROUTES  # noqa: PLC0415

    app = faust.App("proofs-test", broker="kafka://localhost:1", datadir=str(tmp_path / "faust"))
    proofs = [r for r in ROUTES if r.path.startswith("/v1/proofs/")]
    parts = SimpleNamespace(
        ledger=ledger, data_dir=tmp_path, queries=None, log_origin=DEFAULT_ORIGIN, checkpoint_key=None
    )
    register_views(app, parts, proofs)  # type: ignore[arg-type]
    add_submissions(ledger, catalogue, 5)
    signer = checkpoint_signer(tmp_path)
    tree = LedgerTree(ledger)
    tree.catch_up()
    CheckpointLog.in_dir(tmp_path).append(tree.checkpoint(signer, NOW))
    views = app.web.views
    assert sorted(views) == [
        "/v1/proofs/checkpoints",
        "/v1/proofs/consistency",
        "/v1/proofs/inclusion",
        "/v1/proofs/public-key",
    ]

    async def get(path: str, **query: str) -> tuple[int, Any]:
        response = await views[path].get(SimpleNamespace(query=query))
        return response.status, orjson.loads(response.body)

    async def run() -> None:
        assert await get("/v1/proofs/public-key") == (
            200,
            {
                "algorithm": "Ed25519",
                "public_key": signer.public_key_hex,
                "key_id": signer.key_id,
                "origin": DEFAULT_ORIGIN,
                "vkey": str(signer.vkey(DEFAULT_ORIGIN)),
            },
        )
        assert await get("/v1/proofs/inclusion", position="2") == (200, tree.inclusion_proof(2))
        assert await get("/v1/proofs/consistency", old="1", new="2") == (200, tree.consistency_proof(1, 2))
        status, body = await get("/v1/proofs/checkpoints")
        assert (status, len(body["checkpoints"])) == (200, 1)

    asyncio.run(run())


def test_a_ledger_written_while_it_is_verified_shows_no_problem_for_the_receipts_added_meanwhile(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scheduler kept filing while an auditor's verify ran (the fault suite's broker kill):
    # receipts committed after the events were read named events the read had not reached.
    ledger.submit([example("file_record")])
    import ledger.verification.audit as audit_module  # noqa: PLC0415 - the walk to wrap

    walk = audit_module.walk_register

    def write_then_walk(*args: Any, **kwargs: Any) -> Any:
        filed = example("file_record")
        another = {
            **filed,
            "submission_id": "WRITTEN-DURING-VERIFY",
            "record": {**filed["record"], "record_id": "SW-2026-0999"},
        }
        (outcome,) = ledger.submit([another])
        assert outcome.status == "accepted", outcome.reason
        return walk(*args, **kwargs)

    monkeypatch.setattr(audit_module, "walk_register", write_then_walk)
    report = audit(ledger, parallel=False)
    assert report.problems == []
    assert report.receipts == 2  # the new one is walked and its link checked
