"""The read models follow the ledger through Kafka: lists, status, list changes, time, rebuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract import topics
from streams.broker import free_port
from streams.clients import publish
from tests.conftest import example
from tests.integration.serving import Served, cli, records, wait_for

ASKING = ("--purpose", "supervision_inspection", "--basis", "《社会信用体系建设法》")
EXAMPLES = [
    "file_record",
    "file_record_organisation",
    "correct_record",
    "raise_objection",
    "resolve_objection",
    "add_statement",
    "request_repair",
    "decide_repair",
    "designate",
    "file_record_minor",
]


@pytest.fixture
def served(fresh_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with monkeypatch.context() as scheduling:
        scheduling.setenv("CREDIT_SCHEDULER_INTERVAL", "1")
        s = Served(tmp_path / "data", bootstrap=fresh_broker, http=True).start()
    try:
        yield s
    finally:
        assert s.stop() == 0


def file_the_first_record(served: Served) -> None:
    """The tax bureau's filing on the person, once status answers for them (read models caught up)."""
    assert served.bootstrap
    publish(served.bootstrap, [orjson.dumps(example("file_record"))], topics.SUBMISSIONS)
    wait_for(
        lambda: cli(served, "status", "11010519491231002X", *ASKING, "--json").returncode == 0,
        40,
        served.describe,
    )


def test_lists_status_and_list_changes_follow_the_ledger_and_a_rebuild_equals_them(served: Served) -> None:
    assert served.bootstrap
    file_the_first_record(served)
    between = datetime.now(UTC).isoformat()
    publish(served.bootstrap, [orjson.dumps(example(name)) for name in EXAMPLES[1:]], topics.SUBMISSIONS)

    def black_list() -> Any:
        result = cli(served, "lists", "black", "--json")
        return [json.loads(line) for line in result.stdout.splitlines()] or None

    (entry,) = wait_for(black_list, 40, served.describe)
    assert (entry["masked_code"], entry["designation_id"]) == ("91350100M000100Y43", "HMD-2026-0202")

    with urllib.request.urlopen(
        f"http://127.0.0.1:{served.http_port}/v1/lists/black?domain=product_quality"
    ) as r:
        assert json.loads(r.read())["count"] == 1

    # Time makes events: the minor record's display period ended 2026-07-02, so the scheduler
    # expires it through the ledger, and the status stops showing it.
    def expired() -> Any:
        view = json.loads(cli(served, "status", "11010519491231002X", *ASKING, "--json").stdout or "null")
        return (
            view
            if view and not any(r["record"] == "transport:JT-2026-0401" for r in view["records"])
            else None
        )

    view = wait_for(expired, 40, served.describe)
    assert view["lists"] == {"black": False, "red": False, "clean": False}
    ledger = records(served.bootstrap, topics.LEDGER)
    assert any(m["type"] == "RecordExpired" and m["department"] == "credit_platform" for m in ledger)

    changes = wait_for(lambda: records(served.bootstrap, topics.LIST_CHANGES) or None, 20, served.describe)
    black = [c for c in changes if c["list"] == "black"]
    assert black[0]["change"] == "entry"
    assert black[0]["cause"]["type"] == "DesignationMade"

    # As of a moment between the two batches, the ledger knew only the first filing.
    then = json.loads(
        cli(served, "status", "11010519491231002X", "--as-of", between, *ASKING, "--json").stdout
    )
    assert [(r["record"], r["title"]) for r in then["records"]] == [
        ("tax_bureau:SW-2026-0101", "逾期未申报个人所得税，处以罚款")
    ]
    assert then["ledger_version"] == 2

    rebuilt = cli(served, "projections", "rebuild", "--into", str(served.data_dir / "rebuilt"))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    summary = json.loads(rebuilt.stdout.splitlines()[-1])
    assert summary["differences"] == 0
    assert summary["rebuilt"]["subjects"] == summary["live"]["subjects"] == 3


def test_every_status_query_is_recorded_and_reaches_the_query_audit_topic(served: Served) -> None:
    assert served.bootstrap
    file_the_first_record(served)
    refused = cli(served, "status", "11010519491231002X", "--json")
    assert refused.returncode == 1
    assert "purpose_required" in refused.stderr
    issued = json.loads(
        cli(served, "keys", "issue", "--role", "subject", "--subject", "11010519491231002X").stdout
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/v1/me/queries",
        headers={"Authorization": f"Bearer {issued['key']}"},
    )

    expected = {("credit_platform", "allowed"), ("credit_platform", "refused")}

    def seen() -> Any:
        # Query records reach the read models in the projector's batches: wait for both kinds.
        with urllib.request.urlopen(request) as r:
            queries = json.loads(r.read())["queries"]
        return queries if {(q["organisation"], q["outcome"]) for q in queries} >= expected else None

    queries = wait_for(seen, 30, served.describe)
    assert {(q["organisation"], q["outcome"]) for q in queries} >= expected
    audit = wait_for(lambda: records(served.bootstrap, topics.QUERY_AUDIT) or None, 20, served.describe)
    assert all(m["type"] == "QueryRecorded" for m in audit)
    assert not any(m["type"] == "QueryRecorded" for m in records(served.bootstrap, topics.LEDGER))
    status_post = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/v1/queries/status",
        data=json.dumps({"subject": {"id": "11010519491231002X"}}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused_http:
        urllib.request.urlopen(status_post)
    assert refused_http.value.code == 403

    # An auditor replays credit.ledger: it equals the live views, and every answered status
    # recorded in credit.query-audit is recomputed from the replayed events, digest for digest.
    wait_for(lambda: len(records(served.bootstrap, topics.QUERY_AUDIT)) >= 4 or None, 20, served.describe)
    replayed = cli(served, "replay", "--into", str(served.data_dir / "replay"), "--idle", "1")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    summary = json.loads(replayed.stdout.splitlines()[-1])
    assert (summary["differences"], summary["recorded_status_queries_not_reproduced"]) == (0, 0)
    assert summary["recorded_status_queries_checked"] >= 1


def test_after_a_mixed_demo_run_rebuild_and_replay_equal_the_live_views(
    fresh_broker: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CREDIT_DATA_DIR": str(tmp_path / "data"),
        "CREDIT_KAFKA_BOOTSTRAP": fresh_broker,
        "CREDIT_KAFKA_SESSION_TIMEOUT": "2",
        "CREDIT_SUBJECT_SECRET": "integration-test-secret-0123456789",
        "CREDIT_SCHEDULER_INTERVAL": "2",
    }
    port = free_port()
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "credit_ledger.cli",
            "demo",
            "--duration",
            "14",
            "--rate",
            "150",
            "--json",
            "--http-port",
            str(port),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert f"portal:    http://127.0.0.1:{port}/" in demo.stderr, "the demo's banner shows the portal"
    final = json.loads(demo.stdout.splitlines()[-1])
    assert final["final"]
    assert final["accepted"] > 500
    assert final["rejected"] > 0  # the demo sends bad submissions on purpose
    served = Served(tmp_path / "data", bootstrap=fresh_broker)
    served.bootstrap = fresh_broker
    # The demo stops its projector wherever it was; a projector run now catches up from its
    # committed offsets, and the rebuild must come to equal the live views.
    projector = subprocess.Popen(
        [sys.executable, "-m", "credit_ledger.cli", "project"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        rebuilt = wait_for(
            lambda: (
                (r := cli(served, "projections", "rebuild", "--into", str(tmp_path / "rebuilt"))).returncode
                == 0
                and r
            ),
            60,
        )
    finally:
        projector.terminate()
        projector.wait(timeout=20)
    assert json.loads(rebuilt.stdout.splitlines()[-1])["differences"] == 0
    replayed = cli(served, "replay", "--into", str(tmp_path / "replayed"), "--idle", "1")
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-2000:]
    summary = json.loads(replayed.stdout.splitlines()[-1])
    assert summary["events"] > 500
    assert summary["differences"] == 0


def test_the_operators_read_of_a_file_reaches_the_subjects_queries_and_the_query_audit_topic(
    served: Served,
) -> None:
    assert served.bootstrap
    file_the_first_record(served)
    shown = cli(served, "file", "11010519491231002X", "--purpose", "objection review OB-7", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "张三"
    issued = json.loads(
        cli(served, "keys", "issue", "--role", "subject", "--subject", "11010519491231002X").stdout
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.http_port}/v1/me/queries",
        headers={"Authorization": f"Bearer {issued['key']}"},
    )

    def the_operators_read() -> Any:
        with urllib.request.urlopen(request) as r:
            queries = json.loads(r.read())["queries"]
        return [q for q in queries if q["purpose"] == "objection review OB-7"] or None

    (seen,) = wait_for(the_operators_read, 30, served.describe)
    assert (seen["organisation"], seen["role"], seen["channel"], seen["outcome"]) == (
        "credit_platform",
        "administrator",
        "cli",
        "allowed",
    )
    audit = wait_for(
        lambda: (
            [
                m["body"]["record"]
                for m in records(served.bootstrap, topics.QUERY_AUDIT)
                if m["body"]["record"]["endpoint"] == "file"
            ]
            or None
        ),
        20,
        served.describe,
    )
    (record,) = audit
    assert record["requester"].startswith("cli:")
    assert record["host"]
    assert record["purpose"] == "objection review OB-7"
