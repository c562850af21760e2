"""Joint measures end to end through the embedded broker and `credit-ledger serve` (issue 13):
designation → notices on credit.measures → feedback submission → FeedbackReported on
credit.ledger → supervision figures; a check over HTTP; a rebuild equal to the live views."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract import topics
from streams.clients import publish, read_topic
from tests.conftest import ORGANISATION, example
from tests.integration.serving import Served, cli, issue_key, records, serving_alone, wait_for


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving_alone(tmp_path) as s:
        yield s


def court_notices(served: Served) -> list[dict[str, Any]]:
    shown = cli(served, "subscribe", "measures", "--department", "court", "--from-beginning", "--idle", "1")
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def post(served: Served, path: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}{path}",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_a_designation_notifies_the_court_which_reports_feedback_that_the_ledger_keeps_and_counts(
    served: Served,
) -> None:
    assert served.bootstrap
    publish(
        served.bootstrap,
        [orjson.dumps(example("file_record_organisation")), orjson.dumps(example("designate"))],
        topics.SUBMISSIONS,
    )
    found: list[dict[str, Any]] = []

    def notified() -> bool:
        found[:] = [m for m in court_notices(served) if m["type"] == "notice"]
        return len(found) >= 5

    wait_for(notified, 60, served.describe)
    assert {m["department"] for m in found} == {"court"}  # picked by the Kafka header
    assert {m["measure"]["id"] for m in found} == {
        "black.restrict_high_consumption",
        "black.restrict_air_rail_travel",
        "black.restrict_exit",
        "black.restrict_real_estate_purchase",
        "black.public_disclosure",
    }
    on_topic = list(read_topic(served.bootstrap, topics.MEASURES, idle=1.0))
    notice_records = [r for r in on_topic if b'"type":"notice"' in r.value]
    assert len(notice_records) == 85
    assert all(r.key == found[0]["subject_key"].encode() for r in on_topic)

    exit_notice = next(m for m in found if m["measure"]["id"] == "black.restrict_exit")
    now = datetime.now(UTC)
    feedback = {
        "submission_id": "FY-E2E-0001",
        "subject": {"key": exit_notice["subject_key"]},
        "occurred_at": now.isoformat(),
        "feedback": {
            "feedback_id": "FK-E2E-0001",
            "notice_id": exit_notice["notice_id"],
            "state_version": exit_notice["state_version"],
            "outcome": "applied",
            "business_reference": "（2026）闽01执限字第1号",
            "applied_on": now.date().isoformat(),
        },
    }
    sent = cli(
        served, "feedback", "-", "--department", "court", stdin=json.dumps(feedback, ensure_ascii=False)
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"sent": 1, "refused": 0, "failed": 0}

    reported = wait_for(
        lambda: [
            m for m in records(served.bootstrap or "", topics.LEDGER) if m["type"] == "FeedbackReported"
        ],
        60,
        served.describe,
    )
    (event,) = reported
    assert (event["department"], event["submission_id"]) == ("court", "FY-E2E-0001")
    assert (event["body"]["notice_id"], event["body"]["outcome"]) == (exit_notice["notice_id"], "applied")

    def court_figures() -> dict[str, Any] | None:
        shown = cli(served, "measures", "stats", "--department", "court", "--json")
        assert shown.returncode == 0, shown.stderr
        totals: dict[str, Any] = json.loads(shown.stdout)["totals"]
        return totals if totals["applied"] == 1 else None

    figures = wait_for(court_figures, 60, served.describe)
    # Designated in July, answered now: late; the court's other four are overdue and reminded.
    assert (figures["received"], figures["applied"], figures["late"], figures["overdue"]) == (5, 1, 1, 4)
    unanswered = {m["notice_id"] for m in found} - {exit_notice["notice_id"]}
    reminded = wait_for(
        lambda: (
            unanswered <= (ids := {m["notice_id"] for m in court_notices(served) if m["type"] == "reminder"})
            and ids
        ),
        60,
        served.describe,
    )
    assert reminded <= {m["notice_id"] for m in found}  # the scheduler's, one per overdue notice

    key = issue_key(served, "--role", "department", "--organisation", "court")
    status, answer = post(
        served,
        "/v1/checks",
        key,
        {"subject": {"id": ORGANISATION}, "business": "travel_and_consumption", "reference": "（2026）执1号"},
    )
    assert status == 200
    assert [s["measure"] for s in answer["sanctions"]] == [
        "black.restrict_air_rail_travel",
        "black.restrict_high_consumption",
    ]
    shown = cli(served, "file", ORGANISATION, "--json")
    on_file = json.loads(shown.stdout)["measures"]
    exit_on_file = next(m for m in on_file if m["measure"] == "black.restrict_exit")
    assert exit_on_file["departments"]["court"] == "applied"

    rebuilt = cli(served, "projections", "rebuild", "--into", str(served.data_dir / "rebuilt"))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    summary = json.loads(rebuilt.stdout.splitlines()[-1])
    assert summary["differences"] == 0
    assert summary["rebuilt"]["notice_outbox"] == summary["live"]["notice_outbox"] >= 85
