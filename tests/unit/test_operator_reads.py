"""The host operator's reads at the console are queries like any other: `credit-ledger file CODE`
opens the sealed fields with the host's master key, so it is recorded in the query register
before it shows anything, the subject sees it, and without a record it shows nothing."""

from __future__ import annotations

import getpass
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contract.messages import messages_from_store
from credit_ledger.cli import main
from credit_ledger.compose import build_ledger
from credit_ledger.config import Settings
from ledger.application.service import CreditLedger
from ledger.domain.integrity import content_digest
from ledger.domain.subjects import SubjectCode, parse_subject_code
from tests.conftest import PERSON, Clock, example
from tests.unit.portaldesk import Browser, serve_portal
from tests.unit.querydesk import Desk
from tests.unit.webdesk import Web, serve

SECRET = "unit-test-secret-0123456789abcdef"


@pytest.fixture
def data(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose ledger holds the shipped examples (张三's file among them)."""
    monkeypatch.setenv("CREDIT_SUBJECT_SECRET", SECRET)
    monkeypatch.delenv("CREDIT_API_KEY", raising=False)
    examples = tmp_path / "examples.jsonl"
    examples.write_text(run(capsys, "schema", "--examples")[1], "utf-8")
    assert run(capsys, "apply", "--quiet", "--data-dir", str(tmp_path / "data"), str(examples))[0] == 0
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def register(data: Path) -> list[dict[str, Any]]:
    """Every query record in the data dir's ledger, oldest first."""
    ledger = build_ledger(Settings.from_env(data_dir=data))
    try:
        return [
            m["body"]["record"] for m in messages_from_store(ledger.reader) if m["type"] == "QueryRecorded"
        ]
    finally:
        ledger.close()


def person() -> SubjectCode:
    return parse_subject_code(PERSON, today=datetime.now(UTC).date())


def test_file_writes_one_query_record_naming_the_operator_the_cli_channel_the_purpose_and_the_subject(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    before = register(data)
    code, out, _ = run(
        capsys, "file", PERSON, "--json", "--purpose", "objection review OB-7", "--data-dir", str(data)
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["name"] == "张三"
    (record,) = register(data)[len(before) :]
    ledger = build_ledger(Settings.from_env(data_dir=data))
    subject_key = str(ledger.key_of(person()))
    assert {k: record[k] for k in ("requester", "host", "organisation", "role", "channel", "endpoint")} == {
        "requester": f"cli:{getpass.getuser()}",
        "host": socket.gethostname(),
        "organisation": "credit_platform",
        "role": "administrator",
        "channel": "cli",
        "endpoint": "file",
    }
    assert (record["purpose"], record["subject_key"], record["outcome"]) == (
        "objection review OB-7",
        subject_key,
        "allowed",
    )
    assert record["ledger_version"] == shown["version"]
    assert len(record["answer_digest"]) == 64
    assert PERSON not in json.dumps(record, ensure_ascii=False)
    assert "张三" not in json.dumps(record, ensure_ascii=False)
    ledger.close()


def test_file_without_a_purpose_records_the_documented_default_operations(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    assert run(capsys, "file", PERSON, "--data-dir", str(data))[0] == 0
    assert register(data)[-1]["purpose"] == "operations"


def test_file_of_a_code_with_no_file_is_recorded_as_answered_with_nothing_returned(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    code, out, err = run(capsys, "file", "110101199003071233", "--data-dir", str(data))
    assert (code, out) == (1, "")
    assert "no credit file for 110101********1233" in err
    record = register(data)[-1]
    assert (record["endpoint"], record["outcome"], record["returned"]) == ("file", "answered", [])


@pytest.fixture
def unwritable_register(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger refuses every query record (a full disk, a lost database connection)."""

    def broken(self: CreditLedger, record: dict[str, Any]) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(CreditLedger, "record_query", broken)


@pytest.mark.usefixtures("unwritable_register")
def test_file_shows_nothing_and_fails_when_its_query_record_cannot_be_written(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    for form in ([], ["--json"]):
        code, out, err = run(capsys, "file", PERSON, *form, "--data-dir", str(data))
        assert code == 1
        assert out == ""
        assert "张三" not in err
        assert "逾期未申报" not in err
        assert "audit_unavailable" in err
        assert "nothing is returned" in err


def operator_read_seen_by_the_subject(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path, clock: Clock
) -> tuple[Desk, str]:
    """The operator reads 张三's file; a desk on the same ledger has projected the record."""
    assert run(capsys, "file", PERSON, "--purpose", "objection review OB-7", "--data-dir", str(data))[0] == 0
    clock.now = datetime.now(UTC)
    desk = Desk(build_ledger(Settings.from_env(data_dir=data)), tmp_path / "read.sqlite", clock)
    desk.project()
    return desk, desk.api_key("subject", "citizen", subject=PERSON)


def test_the_subject_sees_the_operators_read_at_v1_me_queries_as_the_platform_from_the_command_line(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path, clock: Clock
) -> None:
    desk, key = operator_read_seen_by_the_subject(capsys, data, tmp_path, clock)
    seen: list[dict[str, Any]] = []

    async def scenario(web: Web) -> None:
        status, body = await web.call("GET", "/v1/me/queries", key=key)
        assert status == 200
        seen.extend(body["queries"])

    serve(desk, tmp_path, scenario)
    read = [q for q in seen if q["purpose"] == "objection review OB-7"]
    assert len(read) == 1
    assert {k: read[0][k] for k in ("organisation", "role", "channel", "outcome", "returned")} == {
        "organisation": "credit_platform",
        "role": "administrator",
        "channel": "cli",
        "outcome": "allowed",
        "returned": ["file"],
    }
    desk.ledger.close()


def test_the_portal_lists_the_operators_read_among_the_subjects_queries(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path, clock: Clock
) -> None:
    desk, key = operator_read_seen_by_the_subject(capsys, data, tmp_path, clock)
    pages: list[str] = []

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        pages.append((await browser.get("/me")).text)

    serve_portal(desk, tmp_path, scenario)
    (page,) = pages
    row = next(line for line in page.splitlines() if "objection review OB-7" in line)
    assert "信用信息共享平台" in row
    assert "命令行" in row
    desk.ledger.close()


def test_the_answer_digest_is_of_the_file_as_the_ledger_holds_it_sealed(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    # So an auditor holding the ledger can recompute what was shown without opening anything.
    from credit_ledger.cli.ledger_commands import _file_body  # noqa: PLC0415

    assert run(capsys, "file", PERSON, "--data-dir", str(data))[0] == 0
    ledger = build_ledger(Settings.from_env(data_dir=data))
    body = _file_body(ledger, person())
    assert body is not None
    assert "张三" not in json.dumps(body, ensure_ascii=False)
    assert register(data)[-1]["answer_digest"] == content_digest(body)
    ledger.close()


@pytest.fixture
def listed(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with an organisation on the black list, folded into its read models."""
    from credit_ledger.compose import build_projector, build_store  # noqa: PLC0415

    monkeypatch.setenv("CREDIT_SUBJECT_SECRET", SECRET)
    monkeypatch.delenv("CREDIT_API_KEY", raising=False)
    data = tmp_path / "data"
    submissions = tmp_path / "designation.jsonl"
    submissions.write_text(
        "".join(json.dumps(example(n)) + "\n" for n in ("file_record_organisation", "designate"))
    )
    assert run(capsys, "apply", "--quiet", "--data-dir", str(data), str(submissions))[0] == 0
    settings = Settings.from_env(data_dir=data)
    ledger = build_ledger(settings)
    build_projector(ledger, build_store(settings)).apply(messages_from_store(ledger.reader))
    ledger.close()
    return data


def test_lists_writes_one_query_record_naming_the_operator_and_the_cli_channel_before_printing(
    capsys: pytest.CaptureFixture[str], listed: Path
) -> None:
    before = register(listed)
    code, out, _ = run(capsys, "lists", "black", "--json", "--data-dir", str(listed))
    assert code == 0
    assert [json.loads(line)["masked_code"] for line in out.splitlines()] == ["91350100M000100Y43"]
    (record,) = register(listed)[len(before) :]
    assert {k: record[k] for k in ("requester", "host", "role", "channel", "endpoint", "returned")} == {
        "requester": f"cli:{getpass.getuser()}",
        "host": socket.gethostname(),
        "role": "administrator",
        "channel": "cli",
        "endpoint": "lists",
        "returned": ["list:black"],
    }


@pytest.mark.usefixtures("unwritable_register")
def test_lists_shows_nothing_and_fails_when_its_query_record_cannot_be_written(
    capsys: pytest.CaptureFixture[str], listed: Path
) -> None:
    code, out, err = run(capsys, "lists", "black", "--data-dir", str(listed))
    assert (code, out) == (1, "")
    assert "audit_unavailable" in err


def test_a_file_that_no_longer_replays_shows_nothing_and_the_attempt_is_recorded_as_refused(
    capsys: pytest.CaptureFixture[str], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = register(data)

    def damaged(self: CreditLedger, code: SubjectCode) -> None:
        raise ValueError("event 3 of the stream does not follow event 2")

    monkeypatch.setattr(CreditLedger, "file_of", damaged)
    code, out, err = run(capsys, "file", PERSON, "--purpose", "incident INC-9", "--data-dir", str(data))
    assert (code, out) == (1, "")
    assert "cannot be replayed (ValueError)" in err
    (record,) = register(data)[len(before) :]
    ledger = build_ledger(Settings.from_env(data_dir=data))
    assert {
        k: record[k] for k in ("endpoint", "channel", "outcome", "purpose", "subject_key", "returned")
    } == {
        "endpoint": "file",
        "channel": "cli",
        "outcome": "refused",
        "purpose": "incident INC-9",
        "subject_key": str(ledger.key_of(person())),
        "returned": [],
    }
    assert record["reason"] == "internal_error: the file cannot be read (ValueError)"
