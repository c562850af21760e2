"""Shared fixtures: a ledger on in-memory persistence with a controllable clock."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, load_catalogue
from ledger.domain.subjects import parse_subject_code

EXAMPLES = Path(__file__).resolve().parents[1] / "ledger" / "schema" / "examples"
PERSON = "11010519491231002X"
OTHER_PERSON = "440524188001010014"
ORGANISATION = "91350100M000100Y43"
SECRET = b"test-secret-of-at-least-16-bytes"
MASTER_KEY = bytes(range(32))
"""The tests' master key: every ledger a test builds seals its personal fields, as production does."""

# The brokers (the embedded one, the Apache Kafka cluster): one session fixture for every folder.
pytest_plugins = ("tests.integration.brokers",)


def pytest_configure(config: pytest.Config) -> None:
    """Let SIGINT reach what the tests start, as a reader's Ctrl-C does.

    A shell that starts the suite in the background without job control (``cmd &`` in a
    script) starts it with SIGINT ignored, and an ignored signal stays ignored across exec:
    the Ctrl-C that tests/docs and the stop tests send would reach nothing and they would hang.
    A handled signal is reset to its default in an exec'd child, so handle it here.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Clock:
    """A clock the test moves by hand: the ledger never reads the real one."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).astimezone(UTC)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One throw-away PostgreSQL cluster for the session, started by the first test that needs it
    (``tests/integration/pg_server.py``); never skipped."""
    from tests.integration.pg_server import running_postgres  # noqa: PLC0415 - only when a test needs it

    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def ledger(catalogue: Catalogue, clock: Clock) -> Iterator[CreditLedger]:
    app = CreditLedger(
        catalogue=catalogue,
        secret=SECRET,
        clock=clock,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        master_key=MASTER_KEY,
    )
    yield app
    assert app.verify() == [], "every chain a test builds must verify"
    app.close()


def example(name: str) -> dict[str, Any]:
    """One of the published schema examples, by the part of its file name after the number."""
    (path,) = [p for p in EXAMPLES.glob("*.json") if p.stem.split("_", 1)[1] == name]
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def file_of(ledger: CreditLedger, code: str) -> Any:
    return ledger.file_of(parse_subject_code(code, today=ledger.clock().date()))
