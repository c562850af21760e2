"""Shared pieces of the joint-measures stories: a desk, catalogues to vary, submissions to send."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger.application.measures import MeasuresService
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, default_catalogue_path, parse_catalogue
from tests.conftest import ORGANISATION, SECRET, Clock, example, file_of
from tests.unit.querydesk import Desk

DESIGNATION = "HMD-2026-0202"
_SENT = itertools.count(1)
RECORD = "market_regulator:SJ-2026-0201"


def catalogue_with(**changes: Any) -> Catalogue:
    """The shipped catalogue, its one edition changed: ``effective_from``, ``measure_feedback``, or
    ``unpublished`` (measure ids marked not published)."""
    data = json.loads(default_catalogue_path().read_text("utf-8"))
    edition = data["editions"][0]
    unpublished = changes.pop("unpublished", ())
    for measure in edition["measures"]:
        if measure["id"] in unpublished:
            measure["published"] = False
    edition.update(changes)
    return parse_catalogue(data)


class MeasureDesk(Desk):
    """A desk (ledger, read models, query service) with the measures service beside it."""

    def __init__(self, ledger: CreditLedger, path: Path, clock: Clock) -> None:
        super().__init__(ledger, path, clock)
        self.measures = MeasuresService(self.service, clock=clock)

    def send(self, *subs: dict[str, Any]) -> list[Any]:
        """Submit, project, and return the outcomes (accepted or not)."""
        outcomes = self.ledger.submit(list(subs))
        self.project()
        return outcomes

    def at(self, iso: str) -> MeasureDesk:
        self.clock.set(iso)
        return self

    @property
    def organisation(self) -> Any:
        return file_of(self.ledger, ORGANISATION)

    def notices(self, department: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.subject_notices(str(self.organisation.id))
        return [r for r in rows if department is None or r["department"] == department]

    def messages(self) -> list[dict[str, Any]]:
        return list(self.store.notice_messages())


def measure_desk(
    catalogue: Catalogue, tmp_path: Path, *, now: str = "2026-07-10T09:00:00+08:00"
) -> MeasureDesk:
    clock = Clock(datetime(2026, 7, 10, 1, tzinfo=UTC))
    clock.set(now)
    ledger = CreditLedger(
        catalogue=catalogue, secret=SECRET, clock=clock, env={"PERSISTENCE_MODULE": "eventsourcing.popo"}
    )
    return MeasureDesk(ledger, tmp_path / "read.sqlite", clock)


def designated(desk: MeasureDesk, *, at: str = "2026-07-10T10:00:00+08:00") -> None:
    """The market regulator's serious record on the organisation, and its black-list designation."""
    filing = sub("file_record_organisation", occurred_at=at)
    decided = filing["record"]["decision"]
    decided["date"] = min(decided["date"], (date.fromisoformat(at[:10]) - timedelta(days=1)).isoformat())
    designation = sub("designate", occurred_at=at)
    designation["designation"]["valid_from"] = at[:10]
    desk.at(at).submit(filing, designation)


def sub(name: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(example(name))
    body.update(changes)
    return body


def feedback(
    notice: dict[str, Any], outcome: str, *, at: str, department: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A report_feedback submission on ``notice`` (a notice row), by its department unless told."""
    by = department or notice["department"]
    body: dict[str, Any] = {
        "feedback_id": fields.pop("feedback_id", f"FB-{notice['notice_id'][:8]}-{outcome}"),
        "notice_id": notice["notice_id"],
        "outcome": outcome,
    }
    defaults = {
        "applied": {"business_reference": "（2026）闽01执限字第1号", "applied_on": at[:10]},
        "stopped": {"stopped_on": at[:10]},
    }.get(outcome, {"reason": "本部门无该主体在办事项"})
    body.update({**defaults, **fields})
    return {
        "submission_id": f"FB-SUB-{next(_SENT)}",
        "department": by,
        "action": "report_feedback",
        "subject": {"key": notice["subject_key"]},
        "occurred_at": at,
        "feedback": body,
    }
