"""Departments publish to Kafka; every submission ends in exactly one outcome; the ledger reaches Kafka."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError as KafkaMessageSizeTooLarge

from contract import topics
from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import load_catalogue
from ledger.verification.signed import Checkpoint
from streams.clients import publish
from tests.conftest import example
from tests.integration.kafka import BrokerUnderTest
from tests.integration.serving import (
    Served,
    is_scheduler_command,
    issue_key,
    outcomes_until,
    records,
    wait_for,
)


def lines(*submissions: Any) -> list[bytes]:
    return [s if isinstance(s, bytes) else orjson.dumps(s) for s in submissions]


def test_submissions_flow_into_the_ledger_and_out_to_kafka_each_with_one_outcome(
    fresh_broker: str, tmp_path: Path
) -> None:
    served = Served(tmp_path / "data", bootstrap=fresh_broker).start()
    try:
        good = [example("file_record"), example("file_record_organisation"), example("correct_record")]
        bad_code = copy.deepcopy(example("file_record"))
        bad_code.update(submission_id="TAX-BAD-CODE")
        bad_code["subject"]["id"] = "11010519491231002Y"
        not_allowed = copy.deepcopy(example("file_record"))
        not_allowed.update(submission_id="VF-1", department="volunteer_federation")
        unknown_record = copy.deepcopy(example("correct_record"))
        unknown_record.update(submission_id="TAX-NOPE", record={"record_id": "NOPE"})
        missing_field = {"submission_id": "TAX-MISSING", "department": "tax_bureau", "action": "file_record"}
        report = publish(
            fresh_broker,
            lines(*good, bad_code, not_allowed, unknown_record, missing_field, good[0]),  # good[0] again
            topics.SUBMISSIONS,
        )
        assert (report.sent, report.failed) == (8, 0)
        send_raw(fresh_broker, b"\xff\xfe{not json")  # a misbehaving client: bytes that are not JSON

        outcomes = outcomes_until(fresh_broker, 9, describe=served.describe)
        assert len(outcomes) == 9, "one outcome per submission received, the re-sent one too"
        (resent,) = [o for o in outcomes if o["duplicate"]]
        by_id = {o["submission_id"]: o for o in outcomes if not o["duplicate"]}
        first = by_id[good[0]["submission_id"]]
        assert (resent["submission_id"], resent["first_position"]) == (
            first["submission_id"],
            first["position"],
        )
        assert resent["events"] == first["events"], "a duplicate repeats its first outcome"
        assert {by_id[s["submission_id"]]["status"] for s in good} == {"accepted"}
        assert by_id["TAX-BAD-CODE"]["reason"]["field"] == "subject.id"
        assert by_id["TAX-BAD-CODE"]["reason"]["code"] == "invalid_subject_code"
        assert by_id["VF-1"]["reason"]["code"] == "not_authorised"
        assert by_id["TAX-NOPE"]["reason"] == {
            "code": "unknown_record",
            "field": "record.record_id",
            "message": "record 'tax_bureau:NOPE' is not on this subject's file",
        }
        assert by_id["TAX-MISSING"]["reason"]["code"] == "missing_field"
        garbled = [o for o in outcomes if o["department"] is None]
        assert len(garbled) == 1
        assert garbled[0]["reason"]["code"] == "undecodable"
        assert garbled[0]["original_sealed"] is True, "kept for its sender, never on a topic in clear"
        assert garbled[0]["submission_id"].startswith("credit.submissions/")

        rejections = records(fresh_broker, topics.REJECTIONS)
        assert sorted(r["submission_id"] for r in rejections) == sorted(
            o["submission_id"] for o in outcomes if o["status"] == "rejected"
        )
        assert all(r["original_sealed"] and r["original_ref"] for r in rejections)

        accepted_events = [e for s in good for e in by_id[s["submission_id"]]["events"]]
        ledger = ledger_topic_holding(fresh_broker, accepted_events, served)
        filed = next(m for m in ledger if m["type"] == "RecordFiled" and m["department"] == "tax_bureau")
        assert filed["submission_id"] == "TAX-2026-000101"
        assert filed["body"]["record"] == "tax_bureau:SW-2026-0101"
        assert len(filed["hash"]) == 64
    finally:
        assert served.stop() == 0


def test_a_worker_killed_mid_stream_loses_and_doubles_nothing(fresh_broker: str, tmp_path: Path) -> None:
    catalogue = load_catalogue()
    generator = SubmissionGenerator(catalogue.latest, subjects=300, seed=11, bad_ratio=0.05, prefix="kill")
    submissions = generator.take(3000)
    served = Served(tmp_path / "data", bootstrap=fresh_broker).start()
    publish(fresh_broker, lines(*submissions[:1500]), topics.SUBMISSIONS)
    wait_for(lambda: len(records(fresh_broker, topics.OUTCOMES, idle=0.2)) > 200, 30, served.describe)
    served.kill()  # SIGKILL: no commit, no goodbye, mid-stream
    publish(fresh_broker, lines(*submissions[1500:]), topics.SUBMISSIONS)
    publish(fresh_broker, lines(*submissions[:500]), topics.SUBMISSIONS)  # and a department re-sends some

    restarted = Served(tmp_path / "data", bootstrap=fresh_broker).start()
    try:
        ours = {s["submission_id"] for s in submissions}

        def all_ours() -> list[dict[str, Any]] | None:
            found = records(fresh_broker, topics.OUTCOMES)
            return found if ours <= {o["submission_id"] for o in found} else None

        outcomes = wait_for(all_ours, 60, restarted.describe)
        # The relay may re-send a tail after a crash; consumers recognise it by position. The
        # platform's scheduler adds outcomes of its own (expiring the generated past records).
        by_position = {o["position"]: o for o in outcomes if not is_scheduler_command(o)}
        firsts = Counter(o["submission_id"] for o in by_position.values() if not o["duplicate"])
        resends = Counter(o["submission_id"] for o in by_position.values() if o["duplicate"])
        assert set(firsts) == ours, "every submission has an outcome"
        assert all(n == 1 for n in firsts.values()), "exactly one first outcome per submission"
        # Each message received has one outcome: the department's re-sends one each, marked
        # duplicate; what the killed worker had read but not committed is read again from the
        # same offsets, and gets none.
        assert resends == Counter(s["submission_id"] for s in submissions[:500])
        ledger = records(fresh_broker, topics.LEDGER)
        events = {(m["subject_key"], m["version"]): m["event_id"] for m in ledger}
        # A duplicate repeats its first outcome's events; what took effect is the first outcomes'.
        every = {o["position"]: o for o in outcomes}.values()
        accepted = [e for o in every if not o.get("duplicate") for e in o.get("events", [])]
        assert len(accepted) == len(set(accepted)), "no submission took effect twice"
        assert set(accepted) <= set(events.values())
    finally:
        assert restarted.stop() == 0


def test_an_empty_ledger_topic_is_repopulated_after_the_embedded_broker_restarts(tmp_path: Path) -> None:
    served = Served(tmp_path / "data").start()  # no bootstrap: serve starts its own embedded broker
    try:
        publish(
            served.bootstrap,
            lines(example("file_record"), example("file_record_organisation")),
            topics.SUBMISSIONS,
        )
        before = wait_for(
            lambda: len(m := records(served.bootstrap, topics.LEDGER)) >= 6 and m, 30, served.describe
        )
        # The first checkpoint is due as soon as the tree holds anything; wait for the one over all.
        signed = wait_for(
            lambda: [
                d
                for d in records(served.bootstrap, topics.DIGESTS)
                if Checkpoint.from_dict(d).size == len(before)
            ],
            30,
            served.describe,
        )
    finally:
        served.kill()  # the embedded broker dies with it, and its topics with it
    again = Served(tmp_path / "data").start()
    try:
        after = wait_for(
            lambda: len(m := records(again.bootstrap, topics.LEDGER)) >= 6 and m, 30, again.describe
        )
        replayed = sorted(after, key=lambda m: m["position"])
        assert [m["event_id"] for m in replayed[: len(before)]] == [
            m["event_id"] for m in sorted(before, key=lambda m: m["position"])
        ]
        # Anything after them is the scheduler's, filing what has come due since (an expiry).
        assert all(is_scheduler_command(m) for m in replayed[len(before) :])
        assert "was empty: the relay re-publishes it" in again.log.read_text()
        digests = records(again.bootstrap, topics.DIGESTS)
        assert signed[-1] in digests  # the same signed statement, back on the topic
        assert Checkpoint.from_dict(signed[-1]).version == 3  # a C2SP checkpoint note
        assert "credit.digests was empty" in again.log.read_text()
    finally:
        assert again.stop() == 0


def test_departments_without_kafka_submit_over_http(fresh_broker: str, tmp_path: Path) -> None:
    served = Served(tmp_path / "data", bootstrap=fresh_broker, http=True).start()
    try:
        url = f"http://127.0.0.1:{served.http_port}"
        wait_for(lambda: _get(f"{url}/v1/health"), 20, served.describe)
        body = json.dumps([example("file_record"), 42]).encode()
        request = urllib.request.Request(
            f"{url}/v1/submissions", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            receipt = json.loads(response.read())
        assert (receipt["queued"], receipt["rejected"]) == (1, 1)
        assert receipt["receipts"][1]["reason"]["code"] == "undecodable"
        assert _get(f"{url}/v1/outcomes") is None  # a department's own business: 401 without its key
        key = issue_key(served, "--role", "department", "--organisation", "tax_bureau")
        outcomes = wait_for(
            lambda: (_get(f"{url}/v1/outcomes?department=tax_bureau", key=key) or {}).get("outcomes"),
            20,
            served.describe,
        )
        assert outcomes[0]["status"] == "accepted"
        spec = _get(f"{url}/v1/openapi.json")
        assert "/v1/submissions" in spec["paths"]
        with urllib.request.urlopen(f"{url}/", timeout=5) as home:  # the portal, not Faust's index
            assert home.headers.get_content_type() == "text/html"
        for faust_page in ("/router/", "/router/assignments/", "/table/"):  # Faust's own: off
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}{faust_page}", timeout=5)
            assert (refused.value.code, json.loads(refused.value.read())["error"]["code"]) == (
                404,
                "not_found",
            )
    finally:
        assert served.stop() == 0


def ledger_topic_holding(bootstrap: str, event_ids: list[str], served: Served) -> list[dict[str, Any]]:
    """credit.ledger once it holds exactly these events and the scheduler's own (the platform's
    time-driven commands run at a moment the test does not choose), each subject's versions 1, 2, 3..."""
    seen: dict[str, Any] = {}

    def exactly() -> list[dict[str, Any]] | None:
        ledger = records(bootstrap, topics.LEDGER)
        platform = [
            e
            for o in records(bootstrap, topics.OUTCOMES)
            if is_scheduler_command(o)
            for e in o.get("events", [])
        ]
        seen.update(found=sorted(m["event_id"] for m in ledger), wanted=sorted(event_ids + platform))
        return ledger if seen["found"] == seen["wanted"] else None

    ledger: list[dict[str, Any]] = wait_for(
        exactly,
        20,
        lambda: f"credit.ledger {seen.get('found')}, wanted {seen.get('wanted')}. {served.describe()}",
    )
    per_subject: dict[str, list[int]] = {}
    for message in sorted(ledger, key=lambda m: m["position"]):
        per_subject.setdefault(message["subject_key"], []).append(message["version"])
    assert all(versions == list(range(1, len(versions) + 1)) for versions in per_subject.values())
    return ledger


def send_raw(bootstrap: str, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topics.SUBMISSIONS, key=b"garbage", value=value).get(timeout=10)
    finally:
        producer.close()


def send_large(bootstrap: str, value: bytes) -> None:
    """One large record, from a producer of its own (kafka-python's stops after a refused one)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    try:
        producer.send(topics.SUBMISSIONS, key=b"HUGE", value=value).get(timeout=30)
    finally:
        producer.close()


def _get(url: str, *, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def test_serve_refuses_a_taken_http_port_in_one_line_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "credit_ledger.cli", "serve", "--http-port", str(port)],
            env={**os.environ, "CREDIT_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"CREDIT_HTTP_PORT={port}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "is serving" not in result.stderr
    assert not (tmp_path / "data" / "ledger.sqlite").exists()  # nothing was started


def test_two_intake_workers_share_the_partitions_and_each_submission_still_has_one_outcome(
    fresh_broker: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    served = Served(data, bootstrap=fresh_broker, http=True, extra_args=("--workers", "2")).start()
    try:
        child_log = data / "intake-2.log"
        wait_for(lambda: child_log.exists() and "is serving" in child_log.read_text(), 30, served.describe)
        health = f"http://127.0.0.1:{served.http_port}/v1/health"

        def held_here() -> list[Any]:
            document = _get(health)
            return document["intake"]["partitions"] if document else []

        # Once the child has joined the group, this worker holds only some of the 6 partitions.
        wait_for(lambda: 0 < len(held_here()) < topics.DEFAULT_PARTITIONS, 30, served.describe)

        submissions = SubmissionGenerator(load_catalogue().latest, subjects=60, seed=11).take(300)
        assert publish(fresh_broker, lines(*submissions), topics.SUBMISSIONS).sent == len(submissions)
        outcomes = outcomes_until(fresh_broker, len(submissions), describe=served.describe)
        assert sorted(o["submission_id"] for o in outcomes) == sorted(s["submission_id"] for s in submissions)

        applied_here = _get(health)["intake"]["submissions"]
        assert 0 < applied_here < len(submissions), "the child applied the other partitions' share"
        ledger_topic_holding(fresh_broker, [e for o in outcomes for e in o.get("events", [])], served)
    finally:
        assert served.stop() == 0
    assert "stopped cleanly" in (data / "intake-2.log").read_text()


def test_a_3_mb_rejected_original_does_not_stop_outcomes_for_everyone(
    broker_under_test: BrokerUnderTest, tmp_path: Path
) -> None:
    fresh_broker = broker_under_test.bootstrap
    # The embedded broker takes a 3 MB record. Apache Kafka refuses one over message.max.bytes
    # (1 MiB by default) at the door, so there the largest it accepts is sent: its rejection, the
    # original inside an outcome, is then larger than any record the relay may publish.
    size = 3 * 1024 * 1024 if not broker_under_test.is_kafka else 1024 * 1024 - 16 * 1024
    served = Served(tmp_path / "data", bootstrap=fresh_broker).start()
    try:
        huge = copy.deepcopy(example("file_record"))
        huge.update(submission_id="TAX-HUGE-1", action="no_such_action", padding="x" * size)
        if broker_under_test.is_kafka:
            too_large = dict(huge, submission_id="TAX-HUGE-0", padding="x" * (3 * 1024 * 1024))
            with pytest.raises(KafkaMessageSizeTooLarge):
                send_large(fresh_broker, orjson.dumps(too_large))
        send_large(fresh_broker, orjson.dumps(huge))
        after = [example("file_record"), example("file_record_organisation"), example("correct_record")]
        assert publish(fresh_broker, lines(*after), topics.SUBMISSIONS).sent == len(after)

        outcomes = outcomes_until(fresh_broker, len(after), describe=served.describe)
        decided = {o["submission_id"]: o for o in outcomes}
        assert {decided[s["submission_id"]]["status"] for s in after} == {"accepted"}
        # The huge one's outcome is on the topic within the topic's limit, or parked with a digest.
        letters = records(fresh_broker, topics.DEAD_LETTERS)
        if "TAX-HUGE-1" in decided:
            assert decided["TAX-HUGE-1"]["status"] == "rejected"
        else:
            parked = [d for d in letters if d["flow"] == "relay" and d["source"]["topic"] == topics.OUTCOMES]
            assert len(parked) == 1, letters
            assert parked[0]["error"] == "MessageSizeTooLargeError"
            assert parked[0]["payload"] is None
            assert parked[0]["payload_bytes"] > size
        assert all(len(orjson.dumps(d)) < 1024 * 1024 for d in letters)
        assert "TAX-HUGE-0" not in decided, "what the broker refused never reached the ledger"
    finally:
        assert served.stop() == 0
