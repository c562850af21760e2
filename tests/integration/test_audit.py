"""Auditing a SQLite ledger: tampering is found and located, and proofs convince the standalone auditor.

One module of about 575 lines: every test audits the same kind of data dir (``DataDir``), which
writes, tampers with and serves a SQLite ledger for the sections below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from contract.topics import TopicSpec
from credit_ledger.cli import main
from credit_ledger.compose import build_ledger
from credit_ledger.config import Settings
from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import Catalogue
from ledger.domain.integrity import event_id
from ledger.domain.outcomes import RECEIPT_GENESIS, receipt_chain_hash
from ledger.verification.checkpoints import KEY_VARIABLE, CheckpointLog, checkpoint_json, configured_signer
from ledger.verification.merkle import Checkpoint, CheckpointSigner, checkpoint_hash, generate_seed, key_id
from streams.admin import ensure_topics
from streams.digests import CheckpointPublisher
from tests.integration.kafka import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]
AUDITOR = ROOT / "auditor" / "auditor.py"
SUBJECT_SECRET = "audit-test-secret-0123456789"
NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)


class DataDir:
    """A SQLite ledger in a data dir, with the credit-ledger command pointed at it."""

    def __init__(self, path: Path, catalogue: Catalogue, capsys: pytest.CaptureFixture[str]) -> None:
        self.path = path
        self.catalogue = catalogue
        self.capsys = capsys
        self.settings = Settings(data_dir=path, subject_secret=SUBJECT_SECRET)
        self.batches = 0

    @property
    def database(self) -> Path:
        return self.path / "ledger.sqlite"

    def submit(self, n: int) -> None:
        """Apply ``n`` generated submissions (over a few subjects, so streams get several events)."""
        self.batches += 1
        ledger = build_ledger(self.settings, clock=lambda: NOW)
        try:
            generator = SubmissionGenerator(
                self.catalogue.latest, subjects=6, seed=self.batches, prefix=f"b{self.batches}"
            )
            ledger.submit(generator.take(n))
        finally:
            ledger.close()

    def run(self, *args: str) -> tuple[int, list[dict[str, Any]], str]:
        """Run a credit-ledger command: its exit status, its JSON lines and its stderr."""
        self.capsys.readouterr()
        code = main([*args, "--data-dir", str(self.path)])
        out, err = self.capsys.readouterr()
        return code, [orjson.loads(line) for line in out.splitlines() if line.strip()], err

    def verify(self, *args: str) -> list[dict[str, Any]]:
        code, problems, err = self.run("verify", *args)
        assert code == (1 if problems else 0), err
        return problems

    def checkpoint(self) -> dict[str, Any]:
        """What `credit-ledger checkpoint` signed: its fields, and the line it filed ("record")."""
        code, (record,), _ = self.run("checkpoint")
        assert code == 0
        cp = Checkpoint.from_dict(record)
        assert cp.version == 3
        fields = ("size", "root", "time", "key_id", "receipts")
        return {"record": record, **{name: getattr(cp, name) for name in fields}}

    def public_key(self) -> str:
        _, (key,), _ = self.run("checkpoint-key")
        return str(key["public_key"])

    def rows(self, where: str = "1", *params: Any) -> list[tuple[int, str, int]]:
        """(position, stream as a UUID string, version) of the stored events that match."""
        with sqlite3.connect(self.database) as db:
            found = db.execute(
                f"SELECT rowid, originator_id, originator_version FROM stored_events WHERE {where} "
                "ORDER BY rowid",
                params,
            ).fetchall()
        return [(p, str(uuid.UUID(s)), v) for p, s, v in found]

    def chains(self) -> list[Any]:
        """The hash chains' own verdict (``CreditLedger.verify``), without the tree or checkpoints."""
        ledger = build_ledger(self.settings)
        try:
            return ledger.verify()
        finally:
            ledger.close()

    def sql(self, statement: str, *params: Any) -> None:
        with sqlite3.connect(self.database) as db:
            db.execute(statement, params)


@pytest.fixture
def data(
    tmp_path: Path, catalogue: Catalogue, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> DataDir:
    for name in (KEY_VARIABLE, "CREDIT_DATABASE_URL", "CREDIT_KAFKA_BOOTSTRAP", "CREDIT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREDIT_SUBJECT_SECRET", SUBJECT_SECRET)
    return DataDir(tmp_path / "data", catalogue, capsys)


def a_stream_with_at_least(data: DataDir, versions: int) -> str:
    return data.rows("originator_version = ?", versions)[0][1]


def hex_id(stream: str) -> str:
    return stream.replace("-", "")


# --- Tampering ----------------------------------------------------------------------------------


def test_altering_one_byte_of_one_stored_event_is_reported_with_its_subject_version_and_position(
    data: DataDir,
) -> None:
    data.submit(60)
    data.checkpoint()
    assert data.verify() == []
    position, stream, _ = data.rows("originator_version = 2")[3]
    with sqlite3.connect(data.database) as db:
        (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchone()
        at = state.index(b"occurred_at") + len(b'occurred_at":"2')  # a digit of the year
        db.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (state[:at] + bytes([state[at] ^ 0x01]) + state[at + 1 :], position),
        )
    (problem,) = data.verify()  # the stored event_hash is unchanged, so the checkpoint still matches
    assert (problem["problem"], problem["stream"], problem["version"], problem["position"]) == (
        "chain",
        stream,
        2,
        position,
    )
    assert problem["message"].startswith(f"stream {stream} version 2 (position {position}): content altered")


def test_deleting_an_event_in_the_middle_of_a_stream_breaks_its_chain_there_and_the_checkpoint(
    data: DataDir,
) -> None:
    data.submit(60)
    cp = data.checkpoint()
    data.submit(10)
    stream = a_stream_with_at_least(data, 3)
    ((gone, _, _),) = data.rows("originator_id = ? AND originator_version = 2", hex_id(stream))
    ((next_position, _, _),) = data.rows("originator_id = ? AND originator_version = 3", hex_id(stream))
    data.sql("DELETE FROM stored_events WHERE rowid = ?", gone)

    chain, receipt, checkpoint = data.verify()
    assert receipt["problem"] == "receipt_events"  # the submission's receipt names the deleted event
    assert receipt["events_held"] == receipt["events_named"] - 1
    assert (chain["problem"], chain["stream"], chain["version"], chain["position"]) == (
        "chain",
        stream,
        2,
        next_position,
    )
    assert chain["detail"] == "missing: version 3 follows 1"
    assert (checkpoint["problem"], checkpoint["size"], checkpoint["time"]) == (
        "checkpoint_root",
        cp["size"],
        cp["time"],
    )
    assert checkpoint["missing_positions"] == [[gone, gone]]
    assert f"chain breaks there at positions {next_position}" in checkpoint["message"]


def test_deleting_the_last_event_of_a_stream_escapes_the_chain_but_not_the_checkpoint_made_before(
    data: DataDir,
) -> None:
    data.submit(60)
    early = data.checkpoint()
    data.submit(20)
    cp = data.checkpoint()
    last_of_each = data.rows(
        "rowid IN (SELECT max(rowid) FROM stored_events GROUP BY originator_id) AND rowid > ? "
        "AND rowid < (SELECT max(rowid) FROM stored_events)",
        early["size"],
    )
    gone, stream, version = last_of_each[0]
    data.sql("DELETE FROM stored_events WHERE rowid = ?", gone)

    receipt, problem = data.verify()
    assert (receipt["problem"], receipt["events_held"]) == ("receipt_events", receipt["events_named"] - 1)
    assert (problem["problem"], problem["size"], problem["time"]) == (
        "checkpoint_beyond_tree",
        cp["size"],
        cp["time"],
    )
    removed = f"signs {cp['size']} events, but the ledger holds only {cp['size'] - 1}: 1 event was removed"
    assert removed in problem["message"]
    assert problem["agrees_up_to_size"] == early["size"]
    assert problem["missing_positions"] == [[gone, gone]]
    still = f"the checkpoint of size {early['size']} at {early['time']} (checkpoints.jsonl:1) still matches"
    assert still in problem["message"]  # both checkpoints named, each with where it was read
    assert problem["agrees_with"]["sources"] == ["checkpoints.jsonl:1"]
    assert f"positions missing there: {gone}" in problem["message"]
    assert data.chains() == []  # the chains alone see nothing wrong
    assert not data.rows("originator_id = ? AND originator_version = ?", hex_id(stream), version)


def test_deleting_the_newest_event_leaves_the_ledger_shorter_than_its_checkpoint(data: DataDir) -> None:
    data.submit(20)
    cp = data.checkpoint()
    data.sql("DELETE FROM stored_events WHERE rowid = (SELECT max(rowid) FROM stored_events)")
    receipt, problem = data.verify()
    assert receipt["problem"] == "receipt_events"
    assert (problem["problem"], problem["size"], problem["tree_size"]) == (
        "checkpoint_beyond_tree",
        cp["size"],
        cp["size"] - 1,
    )
    assert f"signs {cp['size']} events, but the ledger holds only {cp['size'] - 1}" in problem["message"]


def test_swapping_the_stored_states_of_two_events_is_reported_at_both(data: DataDir) -> None:
    data.submit(40)
    cp = data.checkpoint()
    (a, stream_a, version_a), (b, stream_b, version_b) = data.rows("originator_version = 1")[2:4]
    with sqlite3.connect(data.database) as db:
        state_a, state_b = (
            db.execute("SELECT state FROM stored_events WHERE rowid = ?", (r,)).fetchone()[0] for r in (a, b)
        )
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state_b, a))
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state_a, b))
    first, second, *others, checkpoint = data.verify()
    sealed = [p for p in others if p["problem"] == "sealed"]  # the swap moved their ciphertexts too
    receipts = [p for p in others if p["problem"] != "sealed"]
    assert {(p["stream"], p["version"]) for p in sealed} == {(stream_a, version_a), (stream_b, version_b)}
    assert all("was sealed for stream" in p["detail"] for p in sealed)
    assert all(p["problem"] == "receipt_events" for p in receipts)  # events moved between submissions
    assert [(p["stream"], p["version"], p["position"]) for p in (first, second)] == [
        (stream_a, version_a, a),
        (stream_b, version_b, b),
    ]
    assert all("content altered" in p["detail"] for p in (first, second))
    assert (checkpoint["problem"], checkpoint["size"]) == ("checkpoint_root", cp["size"])
    assert f"chain breaks there at positions {a}, {b}" in checkpoint["message"]


def test_reordering_two_events_of_different_subjects_passes_every_chain_but_not_the_checkpoint(
    data: DataDir,
) -> None:
    data.submit(40)
    early = data.checkpoint()
    data.submit(40)
    cp = data.checkpoint()
    rows = data.rows("rowid > ?", early["size"] + 2)
    (a, _, _), (b, stream_b, version_b) = next((x, y) for x, y in pairwise(rows) if x[1] != y[1])
    columns = "originator_id, originator_version, topic, state"
    with sqlite3.connect(data.database) as db:  # exchange the two events' places in the ledger order
        row_a, row_b = (
            db.execute(f"SELECT {columns} FROM stored_events WHERE rowid = ?", (r,)).fetchone()
            for r in (a, b)
        )
        swap = "UPDATE stored_events SET (originator_id, originator_version, topic, state) = (?, ?, ?, ?) WHERE rowid = ?"
        db.execute(swap, ("moved", -1, "", b"", a))
        db.execute(swap, (*row_a, b))
        db.execute(swap, (*row_b, a))
    assert data.rows("rowid = ?", a) == [(a, stream_b, version_b)]

    (problem,) = data.verify()
    assert (problem["problem"], problem["size"], problem["agrees_up_to_size"]) == (
        "checkpoint_root",
        cp["size"],
        early["size"],
    )
    assert problem["first_position"] <= a < b <= problem["last_position"]


def test_a_checkpoint_with_an_altered_root_or_signed_by_another_key_is_named_by_its_line_size_and_time(
    data: DataDir,
) -> None:
    data.submit(20)
    honest = data.checkpoint()
    log = CheckpointLog.in_dir(data.path)
    forged = dataclasses.replace(log.checkpoints()[0], root="ab" * 32)
    log.append(forged)
    impostor = CheckpointSigner(generate_seed())
    log.append(impostor.sign(honest["size"], bytes.fromhex(honest["root"]), NOW))

    altered, other_key = data.verify()
    assert (altered["problem"], altered["sources"], altered["size"], altered["time"]) == (
        "checkpoint_signature",
        ["checkpoints.jsonl:2"],
        honest["size"],
        honest["time"],
    )
    assert "altered or forged" in altered["message"]
    assert (other_key["problem"], other_key["sources"], other_key["key_id"]) == (
        "checkpoint_signature",
        ["checkpoints.jsonl:3"],
        impostor.key_id,
    )
    assert f"not by the operator's key {key_id(bytes.fromhex(data.public_key()))}" in other_key["message"]


# --- Item 13: the register and the checkpoint file ------------------------------------------------


def a_rejected_receipt(data: DataDir) -> tuple[int, str, str]:
    with sqlite3.connect(data.database) as db:
        found = db.execute(
            "SELECT position, department, submission_id FROM submission_receipts "
            "WHERE status = 'rejected' AND subject_key IS NOT NULL ORDER BY position LIMIT 1"
        ).fetchone()
    assert found is not None, "the generator makes some rejections"
    return int(found[0]), str(found[1]), str(found[2])


def recompute_the_chain(data: DataDir) -> None:
    """What someone with write access does after altering a receipt: link every receipt afresh."""
    ledger = build_ledger(data.settings)
    try:
        link, updates = RECEIPT_GENESIS, []
        for position, receipt in ledger.receipts_after(0, limit=100_000):
            link = receipt_chain_hash(link, position, receipt)
            updates.append((link, position))
    finally:
        ledger.close()
    with sqlite3.connect(data.database) as db:
        db.executemany("UPDATE submission_receipts SET chain_hash = ? WHERE position = ?", updates)


def test_item_13_a_receipt_flipped_from_rejected_to_accepted_is_named_by_verify(data: DataDir) -> None:
    data.submit(80)
    data.checkpoint()
    assert data.verify() == []
    position, department, submission_id = a_rejected_receipt(data)
    data.sql("UPDATE submission_receipts SET status = 'accepted' WHERE position = ?", position)

    problems = data.verify()
    kinds = {(p["problem"], p.get("position")) for p in problems}
    assert ("receipt_chain", position) in kinds  # its content no longer matches its link
    assert ("receipt_events", position) in kinds  # an acceptance that names no events
    (chain,) = [p for p in problems if p["problem"] == "receipt_chain"]
    assert (chain["department"], chain["submission_id"]) == (department, submission_id)
    assert f"receipt at position {position} ({department}/{submission_id}, accepted)" in chain["message"]


def test_item_13_a_flipped_receipt_with_its_chain_recomputed_is_caught_by_the_checkpoint(
    data: DataDir,
) -> None:
    data.submit(80)
    cp = data.checkpoint()
    position, _, _ = a_rejected_receipt(data)
    data.sql("UPDATE submission_receipts SET status = 'accepted' WHERE position = ?", position)
    recompute_the_chain(data)

    problems = data.verify()
    assert "receipt_chain" not in {p["problem"] for p in problems}  # the chain is consistent again
    (anchored,) = [p for p in problems if p["problem"] == "checkpoint_receipts"]
    assert (anchored["size"], anchored["receipts"]) == (cp["size"], cp["receipts"])
    assert f"a receipt at or before position {cp['receipts']} was altered" in anchored["message"]


def test_item_13_receipts_removed_from_the_end_of_the_register_are_caught_by_the_checkpoint(
    data: DataDir,
) -> None:
    data.submit(30)
    cp = data.checkpoint()
    data.sql("DELETE FROM submission_receipts WHERE position = ?", cp["receipts"])
    problems = data.verify()
    (anchored,) = [p for p in problems if p["problem"] == "checkpoint_receipts"]
    assert "receipts were removed" in anchored["message"]


def test_item_13_a_line_deleted_from_the_checkpoint_file_is_named_by_verify(data: DataDir) -> None:
    for _ in range(3):
        data.submit(10)
        data.checkpoint()
    log = CheckpointLog.in_dir(data.path)
    lines = log.path.read_bytes().splitlines(keepends=True)
    gone = Checkpoint.from_dict(orjson.loads(lines[1]))
    log.path.write_bytes(lines[0] + lines[2])

    (problem,) = data.verify()
    after = Checkpoint.from_dict(orjson.loads(lines[2]))
    assert (problem["problem"], problem["sources"], problem["size"]) == (
        "checkpoint_missing",
        ["checkpoints.jsonl:2"],
        after.size,
    )
    assert problem["prev"] == checkpoint_hash(gone)
    assert "a checkpoint was deleted" in problem["message"]


def test_item_13_a_checkpoint_file_begun_with_version_1_lines_chains_on_in_version_3(data: DataDir) -> None:
    data.submit(10)
    signer = configured_signer(data.path)
    assert signer is None  # the first checkpoint makes the key
    data.checkpoint()
    signer = configured_signer(data.path)
    assert signer is not None
    log = CheckpointLog.in_dir(data.path)
    first = log.checkpoints()[0]
    v1 = signer.sign(first.size, first.root, first.time)  # as the previous version signed
    log.path.write_bytes(checkpoint_json(v1) + b"\n")
    data.submit(10)
    data.checkpoint()
    (v1_read, v3_read) = log.checkpoints()
    assert (v1_read.version, v3_read.version) == (1, 3)
    assert v3_read.prev == checkpoint_hash(v1_read)
    assert data.verify() == []


# --- Proofs and the standalone auditor ----------------------------------------------------------


def auditor(*runs: list[str]) -> list[str]:
    """Run auditor/auditor.py once per argument list, in parallel; return each verdict line."""
    processes = [
        subprocess.Popen([sys.executable, str(AUDITOR), *args], stdout=subprocess.PIPE, text=True)
        for args in runs
    ]
    verdicts = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        verdicts.append(f"{process.returncode} {out.strip()}")
    return verdicts


def test_the_inclusion_proof_of_every_event_convinces_the_standalone_auditor(data: DataDir) -> None:
    data.submit(12)
    key = data.public_key()
    cp = data.checkpoint()
    rows = data.rows()
    assert len(rows) == cp["size"]
    runs = []
    for position, _, _ in rows:
        proof = data.path / f"inclusion-{position}.json"
        code, _, _ = data.run(
            "proof", "inclusion", "--position", str(position), "--out", str(proof),
            "--checkpoint-out", str(data.path / "cp.json"),
        )  # fmt: skip
        assert code == 0
        runs.append(
            ["inclusion", str(proof), "--checkpoint", str(data.path / "cp.json"), "--public-key", key]
        )
    verdicts = auditor(*runs)
    assert verdicts == [
        f"0 VALID: stream {stream} version {version} (position {position}) is leaf {index} "
        f"of the signed tree of {cp['size']}"
        for index, (position, stream, version) in enumerate(rows)
    ]
    position, stream, version = rows[-1]
    _, (by_id,), _ = data.run("proof", "inclusion", "--event-id", event_id(stream, version))
    _, (by_stream,), _ = data.run("proof", "inclusion", "--stream", stream, "--version", str(version))
    assert by_id == by_stream == orjson.loads((data.path / f"inclusion-{position}.json").read_bytes())


def test_consistency_proofs_between_every_pair_of_checkpoints_convince_the_standalone_auditor(
    data: DataDir,
) -> None:
    key = data.public_key()
    checkpoints = []
    for n in (5, 1, 9, 16):
        data.submit(n)
        checkpoints.append(data.checkpoint())
    for i, cp in enumerate(checkpoints):
        (data.path / f"cp{i}.json").write_bytes(orjson.dumps(cp["record"]))
    runs = []
    for i, j in combinations(range(len(checkpoints)), 2):
        proof = data.path / f"consistency-{i}-{j}.json"
        code, _, _ = data.run(
            "proof", "consistency", "--old", str(checkpoints[i]["size"]), "--new", str(checkpoints[j]["size"]),
            "--out", str(proof),
        )  # fmt: skip
        assert code == 0
        old, new = data.path / f"cp{i}.json", data.path / f"cp{j}.json"
        runs.append(["consistency", str(old), str(new), str(proof), "--public-key", key])
    assert all(verdict.startswith("0 VALID: ") for verdict in auditor(*runs))
    code, _, err = data.run("verify")
    assert code == 0
    assert "4 checkpoints, 3 consistency proofs;" in err


def test_checkpoint_note_prints_the_note_it_filed_under_the_origin_checkpoint_key_names(
    data: DataDir,
) -> None:
    data.submit(6)
    origin = ["--log-origin", "credit-ledger.shanxi/v1"]
    data.capsys.readouterr()
    assert main(["checkpoint", "--note", *origin, "--data-dir", str(data.path)]) == 0
    note, err = data.capsys.readouterr()
    filed = CheckpointLog.in_dir(data.path).last()
    assert filed is not None
    assert Checkpoint.from_note(note) == filed
    assert note == filed.note()
    assert f"of credit-ledger.shanxi/v1 signed by key {filed.key_id}" in err
    _, (key,), _ = data.run("checkpoint-key", *origin)
    assert (key["origin"], key["vkey"].split("+")[:2]) == (
        "credit-ledger.shanxi/v1",
        ["credit-ledger.shanxi/v1", filed.key_id],
    )


def test_a_proof_for_an_event_no_checkpoint_covers_yet_is_refused_with_the_remedy(data: DataDir) -> None:
    data.submit(3)
    code, out, err = data.run("proof", "inclusion", "--position", "1")
    assert (code, out) == (1, [])
    assert "not yet covered by a checkpoint (there is none): run 'credit-ledger checkpoint'" in err


# --- Checkpoints on credit.digests --------------------------------------------------------------


def test_verify_from_kafka_checks_the_checkpoints_the_publisher_sent_and_names_a_forged_one(
    data: DataDir, broker_under_test: BrokerUnderTest
) -> None:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    bootstrap = broker_under_test.bootstrap
    topic = f"test.digests.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(topic, 1, {}, "checkpoints for this test", broker_under_test.replication_factor)
    ensure_topics(bootstrap, specs=[spec])
    data.submit(10)

    async def publish_twice() -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()

        async def send(topic: str, key: bytes, value: bytes) -> Any:
            return await producer.send(topic, value=value, key=key)

        ledger = build_ledger(data.settings)
        digests = CheckpointPublisher(ledger, send, data_dir=data.path, topic=topic, poll_interval=0)
        try:
            first = await digests.maybe_publish()
            ledger.submit(SubmissionGenerator(data.catalogue.latest, subjects=3, seed=99, prefix="k").take(5))
            await digests.publish()
            return [first, digests.published]
        finally:
            ledger.close()
            await producer.stop()

    assert asyncio.run(publish_twice()) == [1, 2]
    forged = dataclasses.replace(CheckpointLog.in_dir(data.path).checkpoints()[0], size=3)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topic, key=forged.key_id.encode(), value=checkpoint_json(forged)).get(timeout=30)
    producer.close()

    args = ["--from-kafka", "--topic", topic, "--idle", "0.5", "--kafka-bootstrap", bootstrap]
    code, problems, err = data.run("verify", *args)
    (problem,) = problems
    assert (code, problem["problem"], problem["sources"], problem["size"]) == (
        1,
        "checkpoint_signature",
        [f"{topic}/0@2"],
        3,
    )
    assert "3 checkpoints, 1 consistency proof;" in err  # two in both the file and the topic, one forged
    code, problems, _ = data.run("verify", "--no-file", *args)
    assert (code, [p["problem"] for p in problems]) == (1, ["checkpoint_signature"])
