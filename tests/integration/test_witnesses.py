"""Issue 16: two witnesses cosign the ledger's checkpoints; one shown a forked log refuses it; a 2-of-2
policy (verify, the standalone auditor, Go's sumdb/note) fails on the fork and names it.

The story is told once (tests/integration/witnessing.py); each test checks one part of it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract import topics
from credit_ledger.cli import main
from credit_ledger.compose import build_ledger
from credit_ledger.config import Settings
from ledger.verification.checkpoints import KEY_FILE, CheckpointLog, parse_checkpoint
from ledger.verification.notes import COSIGNATURE_V1, Note, NoteSigner, parse_note
from ledger.verification.policy import WitnessPolicy
from ledger.verification.signed import Checkpoint, CheckpointSigner
from ledger.verification.witness import REFUSED_FILE, SIZE_TYPE, Witness, origin_hash
from streams.clients import publish, read_topic
from tests.conftest import Clock, example
from tests.integration.goverifier import GoVerifier, go_verifier
from tests.integration.serving import Served, wait_for
from tests.integration.witnessing import NOW, ORIGIN, SECRET, SEED, Story, ThreadedWitness, monitored, story
from tests.unit.querydesk import Desk
from tests.unit.webdesk import Web

__all__ = ["go_verifier", "story"]  # the fixtures (and the broker's: fresh_broker, from conftest)

AUDITOR = Path(__file__).resolve().parents[2] / "auditor" / "auditor.py"


def policy(story: Story) -> WitnessPolicy:
    return WitnessPolicy.of(story.witness_vkeys(), 2)


def test_both_witnesses_cosign_each_checkpoint_and_the_publisher_files_the_cosigned_note(
    story: Story,
) -> None:
    filed = CheckpointLog.in_dir(story.log).checkpoints()
    assert filed == [story.a, story.b]
    for cp in filed:
        assert cp.version == 3
        cosigners = policy(story).cosigners(cp)
        assert [w.name for w in cosigners.valid] == [w.name for w in story.keys]
        assert all(s.timestamp for s in cp.cosignatures)
    # Each witness serves monitors the latest checkpoint it cosigned: the log's B, with its own line.
    for url, key in ((story.w1.url, story.keys[0]), (story.w2.url, story.keys[1])):
        answer = monitored(url)
        assert (answer.status, answer.content_type) == (200, "text/plain; charset=utf-8")
        held = Checkpoint.from_note(answer.body)
        assert held == story.b
        assert [s.name for s in held.cosignatures] == [key.name]


def test_a_witness_shown_a_forked_log_refuses_it_with_409_and_its_size_then_422(story: Story) -> None:
    assert story.fork_latest.size > story.b.size
    # Sent from the size where the fork left the log, W2 says it holds B (tlog-witness: 409).
    assert story.probe == (409, SIZE_TYPE, f"{story.b.size}\n")
    # The fork's publisher asked again from B, with a proof from the fork's own tree: 422.
    assert story.w2_outcome.startswith("refused with 422: the proof does not show the tree extends")
    assert story.fork_latest.cosignatures == ()
    assert Checkpoint.from_note(monitored(story.w2.url).body) == story.b  # W2 held on to the log's B
    refused = [orjson.loads(line) for line in (story.w2.log.parent / REFUSED_FILE).read_bytes().splitlines()]
    assert {r["status"] for r in refused} == {409, 422}
    assert {Checkpoint.from_note(r["note"]) for r in refused} == {story.fork_latest}  # kept as evidence


def verify(
    story: Story, capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str
) -> tuple[int, list[Any], str]:
    capsys.readouterr()
    policy_args = [arg for vkey in story.witness_vkeys() for arg in ("--witness", vkey)]
    code = main(
        [
            "verify",
            "--data-dir", str(data_dir),
            "--log-origin", ORIGIN,
            "--public-key", story.signer.public_key_hex,
            *policy_args, "--min-witnesses", "2",
            *args,
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines()], err


@pytest.fixture
def subject_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_SUBJECT_SECRET", SECRET)
    monkeypatch.delenv("CREDIT_CHECKPOINT_KEY", raising=False)


@pytest.mark.usefixtures("subject_secret")
def test_verify_with_a_2_of_2_policy_passes_the_log_and_what_both_witnesses_hold(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    witnesses = ["--from-witness", story.w1.url, "--from-witness", story.w2.url]
    code, problems, err = verify(story, capsys, story.log, *witnesses)
    assert (code, problems) == (0, []), err
    assert (
        "2 checkpoints (at least 2 of 2 witnesses required)" in err
    )  # B from the file and both witnesses is one


@pytest.mark.usefixtures("subject_secret")
def test_verify_with_a_2_of_2_policy_fails_on_the_fork_and_names_both_views(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    # The log's auditor is shown the fork's checkpoints (their file), and reads both witnesses.
    args = ["--checkpoints", str(story.fork / "checkpoints.jsonl"), "--from-witness", story.w1.url]
    code, problems, err = verify(story, capsys, story.log, *args, "--from-witness", story.w2.url)
    assert code == 1, err
    by_kind: dict[str, list[Any]] = {}
    for problem in problems:
        by_kind.setdefault(problem["problem"], []).append(problem)
    (conflict,) = by_kind["checkpoint_conflict"]
    assert conflict["size"] == story.b.size
    assert sorted(tuple(c["sources"]) for c in conflict["checkpoints"]) == [
        ("checkpoints.jsonl:1",),  # the fork's B, as its file holds it
        (f"witness {story.w1.url}", f"witness {story.w2.url}"),  # the log's B, as both witnesses hold it
    ]
    unwitnessed = {(p["size"], tuple(p["sources"])) for p in by_kind["witness_policy"]}
    assert unwitnessed == {
        (story.b.size, ("checkpoints.jsonl:1",)),
        (story.fork_latest.size, ("checkpoints.jsonl:2",)),
    }
    (latest,) = [p for p in by_kind["witness_policy"] if p["size"] == story.fork_latest.size]
    assert (latest["cosigned_by"], latest["required"]) == ([], 2)
    assert (
        "is cosigned by 0 of the witnesses where the policy wants at least 2 of 2 witnesses"
        in latest["message"]
    )
    beyond = by_kind["checkpoint_beyond_tree"] + by_kind.get("checkpoint_root", [])
    assert {p["size"] for p in beyond} >= {story.fork_latest.size}

    # The fork's own auditor, reading the witnesses: the log's B does not match the fork's tree.
    code, problems, err = verify(
        story, capsys, story.fork, "--from-witness", story.w1.url, "--from-witness", story.w2.url
    )
    assert code == 1, err
    kinds = {p["problem"] for p in problems}
    assert {"checkpoint_conflict", "checkpoint_root", "witness_policy"} <= kinds
    (mismatch,) = [
        p
        for p in problems
        if p["problem"] == "checkpoint_root" and p["size"] == story.b.size and p["root"] == story.b.root
    ]
    assert mismatch["sources"] == [f"witness {story.w1.url}", f"witness {story.w2.url}"]


def auditor(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(AUDITOR), *args], capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout.strip()


def test_the_standalone_auditor_and_go_apply_the_same_2_of_2_policy(
    story: Story, go_verifier: GoVerifier, tmp_path: Path
) -> None:
    b = tmp_path / "b.note"
    b.write_text(story.b.note())
    fork = tmp_path / "fork.json"
    fork.write_bytes(orjson.dumps(story.fork_latest.to_dict()))
    policy_args = [arg for vkey in story.witness_vkeys() for arg in ("--witness", vkey)]
    w1, w2 = (w.name for w in story.keys)

    code, said = auditor("checkpoint", str(b), "--public-key", story.vkey, *policy_args)
    assert (code, said.split("; ")[-1]) == (
        0,
        f"cosigned by 2 of 2 witnesses ({w1}, {w2}), at least 2 required",
    )
    code, said = auditor("checkpoint", str(fork), "--public-key", story.signer.public_key_hex, *policy_args)
    assert (code, said) == (
        1,
        f"INVALID: {fork}: cosigned by 0 of 2 witnesses (none); the policy wants at least 2",
    )
    code, said = auditor(
        "checkpoint", str(fork), "--public-key", story.vkey
    )  # no policy: it is the operator's
    assert code == 0, said
    one = Note(story.b.body().text(), (story.b.operator_signature(), story.b.cosignatures[0]))
    only_w1 = tmp_path / "w1.note"
    only_w1.write_text(one.render())
    assert (
        auditor("checkpoint", str(only_w1), "--public-key", story.vkey, *policy_args, "--min-witnesses", "1")[
            0
        ]
        == 0
    )
    assert auditor("checkpoint", str(only_w1), "--public-key", story.vkey, *policy_args)[0] == 1

    code, said = go_verifier.run("checkpoint", "-vkey", story.vkey, *policy_args, str(b))
    assert (code, said.split("; ")[-1]) == (
        0,
        f"cosigned by {w1}, {w2} (2 of 2 witnesses, at least 2 required)",
    )
    code, said = go_verifier.run("checkpoint", "-vkey", story.vkey, *policy_args, str(fork))
    assert (code, said) == (
        1,
        f"INVALID: {fork}: cosigned by 0 of 2 witnesses (); the policy wants at least 2",
    )
    code, said = go_verifier.run("checkpoint", "-vkey", story.vkey, *policy_args, str(only_w1))
    assert code == 1, said
    forged = parse_note(story.b.note())
    bad = forged.signatures[-1]
    altered = Note(
        forged.text, (*forged.signatures[:-1], type(bad)(bad.name, bad.key_id, bad.signature[:8] + bytes(64)))
    )
    forged_file = tmp_path / "forged.note"
    forged_file.write_text(altered.render())
    code, said = go_verifier.run("checkpoint", "-vkey", story.vkey, *policy_args, str(forged_file))
    assert (code, said) == (
        1,
        f"INVALID: {forged_file}: note.Open: invalid signature for key {w2}+{story.keys[1].vkey.key_id:08x}",
    )
    code, said = auditor("checkpoint", str(forged_file), "--public-key", story.vkey, *policy_args)
    assert (code, said) == (
        1,
        f"INVALID: {forged_file}: the cosignature of witness {w2} does not verify: altered or forged",
    )


@contextmanager
def served_api(data_dir: Path) -> Iterator[str]:
    """The ledger in ``data_dir`` served by the HTTP API's route table, on a thread of its own."""
    ledger = build_ledger(Settings(data_dir=data_dir, subject_secret=SECRET))
    desk = Desk(ledger, data_dir / "read-for-test.sqlite", Clock(NOW))
    ready, held = threading.Event(), {}

    def run() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            async with Web(desk, data_dir, queries=False) as web:
                assert web.client is not None
                held.update(
                    url=str(web.client.make_url("")).rstrip("/"), stop=stop, loop=asyncio.get_running_loop()
                )
                ready.set()
                await stop.wait()

        asyncio.run(main())

    thread = threading.Thread(target=run, name="api", daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the API did not start"
        yield str(held["url"])
    finally:
        if "loop" in held:
            held["loop"].call_soon_threadsafe(held["stop"].set)
        thread.join(60)
        ledger.close()


@pytest.mark.usefixtures("subject_secret")
def test_verify_reads_a_ledgers_http_api_and_names_what_it_serves(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    with served_api(story.log) as url:
        # The fork's auditor reads the log's own API: the two views of size B, named by URL.
        code, problems, err = verify(story, capsys, story.fork, "--from-http", url)
    assert code == 1, err
    (conflict,) = [p for p in problems if p["problem"] == "checkpoint_conflict"]
    assert sorted(tuple(c["sources"]) for c in conflict["checkpoints"]) == [
        ("checkpoints.jsonl:1",),
        (f"{url}/checkpoint", f"{url}/v1/proofs/checkpoints#2"),  # one checkpoint, seen at both routes
    ]


def test_serve_s_relay_has_the_witnesses_of_credit_witnesses_cosign_and_publishes_the_cosigned_note(
    fresh_broker: str, tmp_path: Path
) -> None:
    # The whole path, as an operator runs it: CREDIT_WITNESSES -> serve's relay -> the witness's
    # add-checkpoint -> credit.digests, checkpoints.jsonl and GET /checkpoint, each with the cosignature.
    data = tmp_path / "data"
    data.mkdir()
    (data / KEY_FILE).write_text(SEED.hex())
    log_key = CheckpointSigner(SEED).vkey(ORIGIN)
    key = NoteSigner("witness.audit.example/w1", bytes([7]) * 32, COSIGNATURE_V1)
    witness = ThreadedWitness(Witness(key, [log_key], tmp_path / "w1")).start()
    env = {"CREDIT_LOG_ORIGIN": ORIGIN, "CREDIT_WITNESSES": f"{key.vkey} {witness.url}"}
    served = Served(data, bootstrap=fresh_broker, http=True, env=env).start()
    try:
        report = publish(fresh_broker, [orjson.dumps(example("file_record"))], topics.SUBMISSIONS)
        assert (report.sent, report.failed) == (1, 0)
        filed = wait_for(lambda: CheckpointLog.in_dir(data).last(), 120, served.describe)
        with urllib.request.urlopen(f"http://127.0.0.1:{served.http_port}/checkpoint", timeout=30) as answer:
            note = answer.read().decode()
        (record,) = read_topic(fresh_broker, topics.DIGESTS, idle=1.0)
    finally:
        served.stop()
        witness.stop()
    assert (filed.version, filed.origin) == (3, ORIGIN)
    assert filed.size > 0
    policy = WitnessPolicy.of([str(key.vkey)], 1)
    assert [w.name for w in policy.cosigners(filed).valid] == [key.name]
    assert parse_checkpoint(record.value, "credit.digests").checkpoint == filed
    assert orjson.loads(record.value)["note"] == filed.note() == note
    assert [s.name for s in parse_note(note).signatures] == [ORIGIN, key.name]
    held = Checkpoint.from_note(witness.witness.latest(origin_hash(ORIGIN)).body)
    assert (held, held.cosignatures) == (filed, filed.cosignatures)
