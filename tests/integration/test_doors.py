"""The ways in, each held to its guarantee on the embedded broker, which keeps topics in memory.

- Issue 12: an HTTP 202 is never lost. ``serve`` is killed with SIGKILL after the relay had
  drained the inbox to credit.submissions and before the intake applied it; the broker dies with
  it. After the restart every 202'd item has exactly one first outcome, none doubled.
- Issue 12: ``publish --until-outcome`` across a broker restart: every submission answered (the
  ones lost with the topic re-sent), none doubled, and the summary says so.
- Issue 10, item 5: ``publish`` refuses a line over the ledger's limit locally, naming its line
  and the limit, sends the lines after it, and always ends with its summary.
- Issue 10, item 17: publishers with different partitioners (kafka-python's murmur2, as the Java
  client; librdkafka's default ``consistent_random``, CRC32, as confluent-kafka uses unless told
  otherwise; and a random one) send submissions about the same subjects to two intake workers:
  every submission has exactly one first outcome and every chain verifies. The HTTP door's relay
  puts each subject where kafka-python's default (``publish``'s) does.

The intake is slowed down (``--batch-size 1``) where a test needs the broker to hold submissions
the ledger has not applied yet, so the moment of the kill is the test's, not the scheduler's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.partitioner import Partitioner
from kafka.partitioner.default import murmur2

from contract import topics
from contract.messages import submission_key
from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import load_catalogue
from ledger.domain.inbox import INBOX_HEADER
from ledger.store.inbox import _SQLITE_PAGE
from streams import admin
from streams.broker import EmbeddedBroker, free_port
from streams.clients import read_topic
from tests.integration.serving import SUBJECT_SECRET, Served, is_scheduler_command, records, wait_for


def generated(prefix: str, count: int, *, subjects: int = 200, seed: int = 12) -> list[dict[str, Any]]:
    generator = SubmissionGenerator(load_catalogue().latest, subjects=subjects, seed=seed, prefix=prefix)
    return generator.take(count)


def database(served: Served) -> sqlite3.Connection:
    """The served ledger, read only (WAL: reading never blocks the writers)."""
    return sqlite3.connect(f"file:{served.data_dir / 'ledger.sqlite'}?mode=ro", uri=True)


def inbox_state(served: Served) -> tuple[int, list[int], list[int]]:
    """(the drain's saved position, the rows decided, the rows not decided yet)."""
    with database(served) as db:
        found = db.execute("SELECT position FROM relay_positions WHERE name='inbox'").fetchone()
        rows = db.execute(_SQLITE_PAGE, (0, 1_000_000)).fetchall()
    return (found[0] if found else 0, [r[0] for r in rows if r[-1]], [r[0] for r in rows if not r[-1]])


def receipts(served: Served) -> int:
    with database(served) as db:
        return int(db.execute("SELECT count(*) FROM submission_receipts").fetchone()[0])


def post(served: Served, submissions: list[dict[str, Any]]) -> dict[str, Any]:
    body = b"\n".join(orjson.dumps(s) for s in submissions)
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/v1/submissions",
        data=body,
        headers={"Content-Type": "application/x-ndjson"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def firsts_by_source(bootstrap: str) -> tuple[Counter[str], Counter[str]]:
    """The outcomes on credit.outcomes (copies of a re-sent tail counted once, by position): how
    many first outcomes and how many duplicates name each source."""
    by_position = {
        o["position"]: o for o in records(bootstrap, topics.OUTCOMES) if not is_scheduler_command(o)
    }
    firsts = Counter(o["source"] for o in by_position.values() if not o["duplicate"])
    duplicates = Counter(o["source"] for o in by_position.values() if o["duplicate"])
    return firsts, duplicates


def assert_verifies(served: Served) -> None:
    """``credit-ledger verify`` on the served data dir finds every chain intact."""
    env = {**os.environ, "CREDIT_DATA_DIR": str(served.data_dir), "CREDIT_SUBJECT_SECRET": SUBJECT_SECRET}
    checked = subprocess.run(
        [sys.executable, "-m", "credit_ledger.cli", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]


def test_issue_12_every_http_202_has_one_outcome_after_serve_is_killed_before_applying_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    served = Served(data, http=True, extra_args=("--batch-size", "1")).start()
    try:
        wait_for(lambda: _health(served), 30, served.describe)
        first = post(served, generated("early", 30, seed=1))
        wait_for(lambda: receipts(served) >= first["queued"], 60, served.describe)
        late = post(served, generated("late", 3000, seed=2))

        def drained_ahead_of_the_intake() -> bool:
            cursor, decided, _ = inbox_state(served)
            last = late["receipts"][-1]["inbox_position"]
            return cursor == last and max(decided, default=0) < last

        # The relay drains pages of 1,000 while the intake applies one submission per transaction.
        wait_for(drained_ahead_of_the_intake, 60, served.describe)
    finally:
        served.kill()  # SIGKILL: the embedded broker, and credit.submissions with it, die too
    cursor, _, undecided = inbox_state(served)
    on_the_lost_topic = [p for p in undecided if p <= cursor]
    assert on_the_lost_topic, "some 202'd items were on the broker only, not in the ledger"
    answered = [r for r in first["receipts"] + late["receipts"] if r["status"] == "queued"]
    assert len(answered) == 3030

    again = Served(data, http=True).start()
    try:
        sources = {r["source"] for r in answered}

        def every_row_decided() -> bool:
            return not inbox_state(again)[2]

        wait_for(every_row_decided, 120, again.describe)
        wait_for(lambda: sources <= set(firsts_by_source(again.bootstrap or "")[0]), 120, again.describe)
        firsts, duplicates = firsts_by_source(again.bootstrap or "")
        ours = {s: n for s, n in firsts.items() if s in sources}
        assert set(ours) == sources, "every 202'd item has a first outcome"
        assert set(ours.values()) == {1}, "exactly one"
        assert not (set(duplicates) & sources), "and no second one: a row drained twice is one message"
        assert "credit.submissions was empty: the relay drains the inbox again" in again.log.read_text()
    finally:
        assert again.stop() == 0
    assert_verifies(again)


def test_issue_12_publish_until_outcome_answers_every_submission_across_a_broker_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    first_broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log")
    second_broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-2.log")
    bootstrap = first_broker.start()
    data = tmp_path / "data"
    submissions = generated("restart", 2000, seed=3)
    file = tmp_path / "today.jsonl"
    file.write_bytes(b"\n".join(orjson.dumps(s) for s in submissions) + b"\n")
    served = Served(data, bootstrap=bootstrap, extra_args=("--batch-size", "1")).start()
    restarted: Served | None = None
    publisher = subprocess.Popen(
        [
            *(sys.executable, "-m", "credit_ledger.cli", "publish", str(file), "--until-outcome"),
            *("--wait", "60", "--resend-after", "5", "--kafka-bootstrap", bootstrap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Once the broker holds every submission and the ledger has applied only some of them,
        # serve and the broker die: what the broker held is gone, the ledger keeps what it decided.
        wait_for(
            lambda: sum(1 for _ in read_topic(bootstrap, topics.SUBMISSIONS, idle=0.3)) >= len(submissions),
            60,
            served.describe,
        )
        wait_for(lambda: receipts(served) >= 100, 60, served.describe)  # some answered before the crash
        assert receipts(served) < len(submissions)
        # The department's client sleeps through the restart: Tansu creates any topic a client asks
        # about (it ignores allow_auto_topic_creation), and a credit.submissions it made with its own
        # partition count would stop serve. It wakes to a broker at the same address with new topics.
        publisher.send_signal(signal.SIGSTOP)
        served.kill()
        first_broker.stop()
        assert second_broker.start() == bootstrap  # the same address, no topics
        restarted = Served(data, bootstrap=bootstrap).start()
        publisher.send_signal(signal.SIGCONT)
        out, err = publisher.communicate(timeout=240)
        assert publisher.returncode == 0, (out + err).decode()[-3000:]
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["sent"] == len(submissions)
        assert summary["unanswered"] == summary["failed"] == summary["refused"] == 0
        assert summary["accepted"] + summary["rejected"] == len(submissions)
        assert summary["duplicate"] == 0, "nothing was decided before this run"
        assert summary["resent"] > 0, "what the broker lost was sent again"

        ids = {s["submission_id"] for s in submissions}
        by_position = {o["position"]: o for o in records(bootstrap, topics.OUTCOMES)}
        firsts = Counter(o["submission_id"] for o in by_position.values() if not o["duplicate"])
        assert {i: firsts[i] for i in ids} == dict.fromkeys(ids, 1), "exactly one first outcome each"
        assert restarted.stop() == 0
        assert_verifies(restarted)
    finally:
        if publisher.poll() is None:
            publisher.send_signal(signal.SIGCONT)
            publisher.kill()
            publisher.communicate(timeout=10)
        for server in (served, restarted):
            if server is not None and server.process is not None and server.process.poll() is None:
                server.kill()
        first_broker.stop()
        second_broker.stop()


def test_issue_10_item_17_two_partitioners_and_two_intake_workers_give_one_outcome_each(
    tmp_path: Path,
) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        data = tmp_path / "data"
        served = Served(data, bootstrap=broker.bootstrap, http=True, extra_args=("--workers", "2")).start()
        try:
            child_log = data / "intake-2.log"
            wait_for(
                lambda: child_log.exists() and "is serving" in child_log.read_text(), 30, served.describe
            )
            wait_for(lambda: 0 < len(_held(served)) < topics.DEFAULT_PARTITIONS, 30, served.describe)
            # One set of subjects, three departments' clients: kafka-python's default murmur2 (as
            # the Java client), librdkafka's default CRC32 and a random partitioner, so a subject's
            # submissions reach two or more partitions, and both workers.
            everything = generated("part", 1200, subjects=40, seed=4)
            halves = {"murmur2": everything[0::3], "crc32": everything[1::3], "random": everything[2::3]}
            acknowledged: dict[str, int] = {}
            partitioners: dict[str, Any] = {"crc32": LibrdkafkaDefault(), "random": Randomly()}
            assert any(
                _murmur2_partition(submission_key(s)) != partitioners["crc32"].choose(submission_key(s))
                for s in everything
            ), "the two hashes disagree on some subjects: the test would show nothing otherwise"

            def send(name: str) -> None:
                options: dict[str, Any] = {"partitioner": partitioners[name]} if name in partitioners else {}
                producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **options)
                try:
                    futures = [
                        producer.send(topics.SUBMISSIONS, key=submission_key(s), value=orjson.dumps(s))
                        for s in halves[name]
                    ]
                    acknowledged[name] = sum(1 for f in futures if f.get(timeout=60))
                finally:
                    producer.close()

            threads = [threading.Thread(target=send, args=(name,)) for name in halves]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert acknowledged == {name: len(half) for name, half in halves.items()}
            # The HTTP door, about the same subjects: its relay (aiokafka) partitions as kafka-python
            # and the Java client do, so a subject's HTTP and Kafka submissions share a partition.
            door = generated("door", 60, subjects=40, seed=4)
            assert post(served, door)["queued"] == len(door)
            ids = {s["submission_id"] for s in everything + door}

            def all_decided() -> dict[int, dict[str, Any]] | None:
                found = {o["position"]: o for o in records(broker.bootstrap, topics.OUTCOMES)}
                return found if ids <= {o["submission_id"] for o in found.values()} else None

            # Two intake workers join one group while this loads: a rebalance may wait for a member
            # up to the rebalance timeout (aiokafka's max_poll_interval_ms, 300 s). In a fresh-clone
            # run beside the cluster's fault tests the intake waited 58 s in one (17:59:23 to
            # 18:00:21 UTC) and this gave up at 120 s; alone it decides everything in about 12 s.
            outcomes = wait_for(all_decided, 300 + 60, served.describe)
            firsts = Counter(o["submission_id"] for o in outcomes.values() if not o["duplicate"])
            assert {i: firsts[i] for i in ids} == dict.fromkeys(ids, 1), "exactly one first outcome each"
            assert not [o for o in outcomes.values() if o["submission_id"] in ids and o["duplicate"]]
            applied_here = _health(served)["intake"]["submissions"]
            assert 0 < applied_here < len(everything), "both workers applied some"
            accepted = [
                e for o in outcomes.values() if o["submission_id"] in ids for e in o.get("events", [])
            ]
            assert len(accepted) == len(set(accepted)), "no submission took effect twice"
            murmur2_ids = {s["submission_id"] for s in halves["murmur2"]}
            placed = {
                orjson.loads(r.value)["submission_id"]: (r.partition, r.key, dict(r.headers))
                for r in read_topic(broker.bootstrap, topics.SUBMISSIONS, idle=0.5)
            }
            by_door = {i: p for i, p in placed.items() if INBOX_HEADER in p[2]}
            assert set(by_door) == {s["submission_id"] for s in door}
            for submission_id, (partition, key, _) in placed.items():
                if submission_id in murmur2_ids or submission_id in by_door:
                    assert partition == _murmur2_partition(key), (submission_id, partition)
            assert {p for p, _, _ in by_door.values()} == set(range(topics.DEFAULT_PARTITIONS))
        finally:
            assert served.stop() == 0
        assert_verifies(served)


def test_issue_10_item_5_publish_refuses_a_1_5_mb_line_sends_the_rest_and_prints_its_summary(
    tmp_path: Path,
) -> None:
    good = generated("size", 4, seed=5)
    huge = {**good[0], "submission_id": "SIZE-HUGE", "padding": "x" * 1_500_000}
    lines = [orjson.dumps(good[0]), orjson.dumps(good[1]), b"", orjson.dumps(huge), orjson.dumps(good[2])]
    lines.append(orjson.dumps(good[3]))
    file = tmp_path / "today.jsonl"
    file.write_bytes(b"\n".join(lines) + b"\n")
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        admin.ensure_topics(broker.bootstrap)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "credit_ledger.cli",
                "publish",
                str(file),
                "--kafka-bootstrap",
                broker.bootstrap,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, "a refused line is an error"
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert (summary["sent"], summary["refused"], summary["failed"]) == (4, 1, 0)
        (refusal,) = [line for line in done.stderr.splitlines() if "not sent" in line]
        size = len(orjson.dumps(huge))
        assert refusal == (
            f"not sent: line 4: too_large: the submission is {size:,} bytes; at most 262,144 bytes are "
            "accepted (the ledger's limit for one submission)"
        )
        assert "Traceback" not in done.stderr
        sent = [
            orjson.loads(r.value)["submission_id"]
            for r in read_topic(broker.bootstrap, topics.SUBMISSIONS, idle=0.5)
        ]
        assert sorted(sent) == sorted(s["submission_id"] for s in good)


class LibrdkafkaDefault(Partitioner):
    """librdkafka's default partitioner, ``consistent_random``: CRC32 of the key modulo the
    partition count (random for an empty key), what a confluent-kafka client does untold."""

    def __init__(self) -> None:
        self.chooser = random.Random(23)

    def choose(self, key: bytes, partitions: int = topics.DEFAULT_PARTITIONS) -> int:
        return zlib.crc32(key) % partitions if key else self.chooser.randrange(partitions)

    def partition(
        self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        return self.choose(serialized_key or b"", len(cluster.partitions_for_topic(topic)))


def _murmur2_partition(key: bytes, partitions: int = topics.DEFAULT_PARTITIONS) -> int:
    """The partition kafka-python's (and Java's) default partitioner gives a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Randomly(Partitioner):
    """A partitioner that ignores the key: any partition, at random (seeded)."""

    def __init__(self) -> None:
        self.chooser = random.Random(17)

    def partition(
        self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        return int(self.chooser.choice(sorted(cluster.partitions_for_topic(topic))))


def _health(served: Served) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{served.http_port}/v1/health", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _held(served: Served) -> list[Any]:
    document = _health(served)
    return document["intake"]["partitions"] if document else []
