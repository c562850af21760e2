"""A ledger, its read models and the query service kept in step by hand: for query and HTTP tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from contract.messages import messages_from_store
from credit_ledger.compose import build_reader
from ledger.application.keys import issue_key
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger
from ledger.domain.access import Principal
from projections.projector import Projector
from projections.store import ProjectionStore
from tests.conftest import Clock, example, file_of

BANK = "bank-fz-001"
NO_FILE = "110101199003071233"
"""A valid identity number no one has filed on."""
LICENSING = {"purpose": "administrative_licensing", "basis": "《行政许可法》第三十一条"}
"""A department's purpose and legal basis for a person's status."""


class Desk:
    """The ledger, the read models and the query service, kept in step by hand."""

    def __init__(self, ledger: CreditLedger, path: Path, clock: Clock) -> None:
        self.ledger = ledger
        self.store = ProjectionStore(path, names=ledger.name_index.of)
        self.projector = Projector(self.store, ledger.catalogue)
        self.service = QueryService(ledger, build_reader(ledger, self.store), clock=clock)
        self.clock = clock
        self.seen = 0

    def project(self) -> None:
        new = messages_from_store(self.ledger.reader)[self.seen :]
        self.seen += len(new)
        self.projector.apply(new)

    def submit(self, *subs: dict[str, Any]) -> None:
        for outcome in self.ledger.submit(list(subs)):
            assert outcome.accepted, outcome.reason
        self.project()

    def records(self) -> int:
        return sum(
            1
            for n in self.ledger.recorder.select_notifications(1, 100_000)
            if n.topic.endswith("QueryRecorded")
        )

    def key(self, role: str, organisation: str, subject: str | None = None) -> Principal:
        principal = self.service.authenticate(self.api_key(role, organisation, subject))
        assert principal is not None
        return principal

    def api_key(self, role: str, organisation: str, subject: str | None = None) -> str:
        """A new key, as its holder sends it."""
        subject_key = str(file_of(self.ledger, subject).id) if subject else None
        _, key = issue_key(
            self.ledger.keys,
            role=role,
            organisation=organisation,
            label="测试人员",
            subject_key=subject_key,
            now=self.clock(),
            departments=self.ledger.catalogue.latest.departments,
        )
        return key


@pytest.fixture
def desk(ledger: CreditLedger, tmp_path: Path, clock: Clock) -> Desk:
    clock.set("2026-10-10T10:00:00+08:00")
    d = Desk(ledger, tmp_path / "read.sqlite", clock)
    d.submit(example("file_record"), example("file_record_organisation"), example("designate"))
    grant = copy.deepcopy(example("grant_authorisation"))
    d.submit(grant)
    return d
