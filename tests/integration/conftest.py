"""Integration fixtures: one embedded broker for the whole session, never skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import BrokerError, EmbeddedBroker

BROKER_START_TIMEOUT = 20.0
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder runs against the embedded broker: mark it ``integration``."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's embedded broker, its log under pytest's temporary directory.

    A broker that cannot start fails the tests that need it, loudly, with its log tail:
    integration tests never skip for want of a broker (it installs from PyPI).
    """
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    embedded = EmbeddedBroker(log_path=log_path)
    try:
        embedded.start(timeout=BROKER_START_TIMEOUT)
    except BrokerError as exc:
        pytest.fail(f"The embedded Kafka broker must start for integration tests: {exc}")
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def bootstrap(broker: EmbeddedBroker) -> str:
    """The bootstrap address of the session's broker (which must still be running)."""
    if not broker.is_running():
        pytest.fail(f"The session's embedded broker died; its log ends:\n{broker.log_tail()}")
    return broker.bootstrap
