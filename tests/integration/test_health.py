"""GET /v1/health on a real `serve`: lag that reaches zero, a stalled relay, dead letters, the scheduler's leader."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from contract import topics
from streams.clients import publish
from tests.conftest import example
from tests.integration.serving import Served, wait_for

SUBMISSIONS = ["file_record", "file_record_organisation", "correct_record", "designate"]
STALL_SECONDS = "1"  # CREDIT_HEALTH_STALL_SECONDS for these tests: a stall shows within a second or two


@pytest.fixture
def short_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` inherits the environment when it starts: judge stalls after 1 s instead of 30."""
    monkeypatch.setenv("CREDIT_HEALTH_STALL_SECONDS", STALL_SECONDS)


def health(served: Served) -> tuple[int, dict[str, Any]] | None:
    """(HTTP status, document) of GET /v1/health, or None while the server does not answer yet."""
    url = f"http://127.0.0.1:{served.http_port}/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503 still carries the document
        return error.code, json.loads(error.read())
    except OSError:
        return None


def submit(served: Served, items: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/v1/submissions",
        data=json.dumps(items).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        assert json.loads(response.read())["queued"] == len(items)


def health_when(served: Served, accept: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    """Poll health until ``accept(document)`` holds; fail at the deadline with the last document seen."""
    seen: list[Any] = [None]

    def probe() -> dict[str, Any] | None:
        seen[0] = health(served)
        if seen[0] is None:
            return None
        status, document = seen[0]
        assert status in (200, 503), seen[0]
        return document if status == 200 and accept(document) else None

    document: dict[str, Any] = wait_for(
        probe, timeout, lambda: f"last health: {seen[0]}. {served.describe()}"
    )
    return document


def answering(document: dict[str, Any]) -> bool:
    """Any 200 will do: the worker is up and serving HTTP."""
    return True


def codes(document: dict[str, Any]) -> list[str]:
    return [problem["code"] for problem in document["problems"]]


def test_health_reports_zero_relay_and_projection_lag_once_submissions_are_accepted(
    fresh_broker: str, tmp_path: Path, short_stalls: None
) -> None:
    served = Served(tmp_path / "data", bootstrap=fresh_broker, http=True).start()
    try:
        first = health_when(served, answering, 20)
        assert first["status"] == "ok", first
        submit(served, [example(name) for name in SUBMISSIONS])

        def level(document: dict[str, Any]) -> bool:
            return bool(
                document["ledger_head"]["credit.outcomes"] >= len(SUBMISSIONS)
                and document["relay_lag"] == {"credit.ledger": 0, "credit.outcomes": 0, "inbox": 0}
                and document["projections"]["lag"] == 0
                and document["intake"]["lag"] == 0
                # null until a partition's first fetch (docs/streams.md); on a real cluster the
                # fetches of the partitions that got nothing answer a moment later
                and all(p["lag"] == 0 for p in document["intake"]["partitions"])
            )

        document = health_when(served, level, 20)
        assert document["status"] == "ok"
        assert document["problems"] == []
        assert document["relayed_up_to"] == document["ledger_head"]
        assert document["ledger_head"]["credit.ledger"] > 0
        assert document["projections"]["projected_up_to"] == document["ledger_head"]["credit.ledger"]
        assert document["intake"]["submissions"] >= len(SUBMISSIONS)
        figures = [
            *document["ledger_head"].values(),
            *document["relayed_up_to"].values(),
            *document["relay_lag"].values(),
            *document["projections"].values(),
            document["intake"]["lag"],
        ]
        assert all(type(figure) is int for figure in figures), figures
        assert document["intake"]["partitions"], "the only worker holds every partition"
        assert all(type(p["lag"]) is int for p in document["intake"]["partitions"])
    finally:
        assert served.stop() == 0


def test_a_stalled_relay_is_reported_as_degraded_with_http_200(
    fresh_broker: str, tmp_path: Path, short_stalls: None
) -> None:
    served = Served(tmp_path / "data", bootstrap=fresh_broker, http=True, extra_args=("--no-relay",)).start()
    try:
        health_when(served, answering, 20)
        # Over HTTP the submissions wait in the inbox, which the relay drains; over Kafka the intake
        # applies them, and their events and outcomes wait for the relay. Both stay behind.
        submit(served, [example(name) for name in SUBMISSIONS])
        items = [json.dumps(example(name)).encode() for name in SUBMISSIONS]
        assert publish(fresh_broker, items, topics.SUBMISSIONS).sent == len(SUBMISSIONS)

        def behind_everywhere(document: dict[str, Any]) -> bool:
            lag = document["relay_lag"]
            return bool(lag["inbox"] >= len(SUBMISSIONS) and lag["credit.outcomes"] >= len(SUBMISSIONS))

        behind = health_when(served, behind_everywhere, 20)
        assert behind["relay_lag"]["credit.ledger"] == behind["ledger_head"]["credit.ledger"] > 0
        assert behind["relayed_up_to"] == {"credit.ledger": 0, "credit.outcomes": 0, "inbox": 0}

        stalled = health_when(served, lambda d: "relay_stalled" in codes(d), 10)
        assert stalled["status"] == "degraded"
        answer = health(served)
        assert answer is not None
        assert answer[0] == 200, "degraded keeps HTTP 200: a load balancer must not drop the API"
        assert "relay.log" in stalled["problems"][0]["message"]
        # Nothing was relayed, so the read models have nothing to catch up on: not their problem.
        assert stalled["projections"]["lag"] == 0
        assert "projections_stalled" not in codes(stalled)
        assert "intake_backlog" not in codes(stalled)
    finally:
        assert served.stop() == 0


def dead_letters_tool(bootstrap: str, action: str) -> str:
    """`python -m streams.deadletters <action>`: what an on-call engineer runs; its stderr summary."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.deadletters", action, "--bootstrap", bootstrap, "--idle", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + done.stderr


def test_health_reports_dead_letters_per_flow_and_is_degraded_until_they_are_acknowledged(
    fresh_broker: str, tmp_path: Path, short_stalls: None
) -> None:
    served = Served(tmp_path / "data", bootstrap=fresh_broker, http=True).start()
    try:
        first = health_when(served, answering, 20)
        assert first["dead_letters"]["total"] == 0
        assert first["intake"]["dead_letters"] == 0
        # A message on credit.ledger that no fold can read: the projector parks it and goes on.
        producer = KafkaProducer(bootstrap_servers=fresh_broker, acks="all")
        sent = producer.send(topics.LEDGER, key=b"garbled", value=b"not a ledger message").get(timeout=10)
        producer.close()
        submit(served, [example(name) for name in SUBMISSIONS])

        parked = health_when(served, lambda d: d["dead_letters"]["unacknowledged"] >= 1, 30)
        assert parked["status"] == "degraded"
        assert "dead_letters" in codes(parked)
        assert parked["dead_letters"]["by_flow"]["projector"] == {"total": 1, "unacknowledged": 1}
        assert parked["dead_letters"]["by_flow"]["intake"] == {"total": 0, "unacknowledged": 0}
        (letter,) = parked["dead_letters"]["last"]
        assert letter["source"] == {
            "topic": topics.LEDGER,
            "partition": sent.partition,
            "offset": sent.offset,
            "position": None,
        }
        assert letter["error"] == "JSONDecodeError"
        assert letter["acknowledged"] is False
        assert "payload" not in letter, "health names the position, never the content"
        # The flow went on: the submissions after it reached the read models.
        health_when(
            served, lambda d: d["projections"]["lag"] == 0 and d["relay_lag"]["credit.ledger"] == 0, 20
        )

        listed = dead_letters_tool(fresh_broker, "list")
        assert '"flow":"projector"' in listed
        assert "1 dead letter(s) listed" in listed
        assert "1 dead letter(s) acknowledged" in dead_letters_tool(fresh_broker, "acknowledge")

        seen = health_when(served, lambda d: d["dead_letters"]["unacknowledged"] == 0, 20)
        assert "dead_letters" not in codes(seen)
        assert seen["dead_letters"]["total"] == 1, "acknowledged, not deleted"
        assert seen["dead_letters"]["last"][0]["acknowledged"] is True
        assert "0 dead letter(s) listed" in dead_letters_tool(fresh_broker, "list")
    finally:
        assert served.stop() == 0


def test_the_scheduler_runs_on_exactly_one_worker_the_faust_leader(
    fresh_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDIT_SCHEDULER_INTERVAL", "0.2")  # a round at every beat of the timer
    data = tmp_path / "data"
    first = Served(data, bootstrap=fresh_broker, http=True).start()
    second = Served(data, bootstrap=fresh_broker, http=True, extra_args=("--no-relay", "--no-project"))
    workers = [first, second]
    try:
        second.start()  # inside: a second that cannot start must not leave the first running
        views: list[dict[str, Any]] = []

        def settled() -> bool:
            """Both workers in the same generation of the Faust app's group, and one leads it."""
            views[:] = [health_when(w, answering, 20)["scheduler"] for w in workers]
            generations = {v["generation"] for v in views}
            return (
                None not in generations
                and len(generations) == 1
                and [v["leader"] for v in views].count(True) == 1
            )

        wait_for(settled, 40, lambda: f"schedulers: {views}. {first.describe()} {second.describe()}")
        before = list(views)
        leader = [v["leader"] for v in before].index(True)
        other = 1 - leader

        def leader_ran_three_more() -> bool:
            views[:] = [health_when(w, answering, 20)["scheduler"] for w in workers]
            return bool(views[leader]["runs"] >= before[leader]["runs"] + 3)

        wait_for(leader_ran_three_more, 30, lambda: f"schedulers: {views}")
        after = list(views)
        assert after[other]["generation"] == before[other]["generation"] == after[leader]["generation"], (
            "no rebalance in between: the same two members all along"
        )
        assert after[other]["runs"] == before[other]["runs"] == 0, "the other worker never ran a round"
        assert (after[leader]["leader"], after[other]["leader"]) == (True, False)
        assert after[leader]["last_run_at"] is not None
    finally:
        stopped = [w.stop() for w in reversed(workers) if w.process is not None]
        assert stopped == [0] * len(stopped)
