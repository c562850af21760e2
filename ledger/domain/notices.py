"""Joint-measure notices (信息推送): what a designation notifies, to whom, and how each notice follows it.

When a designation takes effect the platform notifies one **notice** per (published measure of the
designation's list, implementing department), from the catalogue edition in force on the
designation's day (004 items 31 and 38). Every notice of one designation shares one life, driven by
the designation's **basis**:

- in force: the notice is ``issued`` (and later ``resumed``);
- ``suspended`` while a record it rests on is disputed (004 item 47: measures are not applied while
  the information is verified);
- ``withdrawn`` for good when the designation ends (withdrawn, expired, repaired, revoked, lapsed),
  when every record it rests on has ended, or when an objection to one of them was upheld.

Each change of state is a new **state version** of every notice of the designation (1 = issued).
The credit file (which judges feedback) and the projections (which publish notices) both follow
designations with these functions, so the two can never disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from ledger.domain.catalogue import Catalogue, Edition
from ledger.domain.catalogue_measures import Measure
from ledger.domain.records import Designation, RecordState
from ledger.domain.workdays import add_working_days, local_date

ISSUED, SUSPENDED, RESUMED, WITHDRAWN = "issued", "suspended", "resumed", "withdrawn"
STATES = (ISSUED, SUSPENDED, RESUMED, WITHDRAWN)
IN_FORCE = frozenset({ISSUED, RESUMED})
"""States in which the measure is to be applied: the department reports applied, not applicable or failed."""
STOPPABLE = frozenset({SUSPENDED, WITHDRAWN})
"""States after which a department that applied the measure reports it ``stopped``."""

APPLIED, NOT_APPLICABLE, FAILED, STOPPED = "applied", "not_applicable", "failed", "stopped"
OUTCOMES = (APPLIED, NOT_APPLICABLE, FAILED, STOPPED)
RESPONSES = frozenset({APPLIED, NOT_APPLICABLE, FAILED})
"""Answers to a notice in force; ``stopped`` answers a suspension or withdrawal."""

# What a designation's basis is (not a notice state: the notices follow it).
BASIS_IN_FORCE, BASIS_SUSPENDED, BASIS_WITHDRAWN = "in_force", "suspended", "withdrawn"

ENDED_REASONS = {
    "serious_adverse_record": "a serious adverse record was filed",
    "repaired": "credit repair was granted",
    "revoked": "the underlying decision was revoked",
    "objection_upheld": "an objection was upheld",
    "expired": "the designation's validity ended",
    "lapsed": "the designation lapsed",
    "withdrawn": "the designating department withdrew it",
}
UPHELD = "an objection to a record it rests on was upheld"
ALL_ENDED = "every record it rests on has ended"
DISPUTED = "a record it rests on is disputed"
UNDISPUTED = "no record it rests on is disputed any more"

_NAMESPACE = UUID("3b8f0c1e-6d2a-5e47-9c1d-7a4e2f9b6c30").bytes


@dataclass(frozen=True)
class RecordBasis:
    """What a notice needs to know of one record a designation rests on."""

    status: str  # active, or how it ended: expired, repaired, revoked, closed
    disputed: bool

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class Notice:
    """One measure notified to one implementing department for one designation."""

    notice_id: str
    designation_id: str
    list: str
    measure: Measure
    department: str


def basis(
    *, active: bool, ended_reason: str | None, upheld: bool, records: Iterable[RecordBasis]
) -> tuple[str, str]:
    """(basis, why) of a designation's measures: withdrawn, suspended or in force, in that order."""
    rests_on = list(records)
    if not active:
        return BASIS_WITHDRAWN, ENDED_REASONS.get(ended_reason or "", ended_reason or "it ended")
    if upheld:
        return BASIS_WITHDRAWN, UPHELD
    if rests_on and not any(r.active for r in rests_on):
        return BASIS_WITHDRAWN, f"{ALL_ENDED}: {', '.join(sorted({r.status for r in rests_on}))}"
    if any(r.disputed for r in rests_on):
        return BASIS_SUSPENDED, DISPUTED
    return BASIS_IN_FORCE, ""


def transitions(current: str | None, target: str) -> tuple[str, ...]:
    """The notice states that take the notices of a designation from ``current`` (None: not yet
    issued) to its basis ``target``. A notice is always issued first; a withdrawal is final."""
    if current == WITHDRAWN:
        return ()
    if current is None:
        follow = {BASIS_IN_FORCE: (), BASIS_SUSPENDED: (SUSPENDED,), BASIS_WITHDRAWN: (WITHDRAWN,)}
        return (ISSUED, *follow[target])
    if target == BASIS_WITHDRAWN:
        return (WITHDRAWN,)
    if target == BASIS_SUSPENDED:
        return () if current == SUSPENDED else (SUSPENDED,)
    return (RESUMED,) if current == SUSPENDED else ()


def notice_id(subject_key: UUID | str, designation_id: str, measure_id: str, department: str) -> str:
    """The notice's id: a name-based (version 5) UUID of the subject, designation, measure and
    department, so every derivation (the file, the live projector, a rebuild) gives the same one."""
    name = f"{subject_key}|{designation_id}|{measure_id}|{department}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(UUID(bytes=bytes(digest)))


def notices_for(
    subject_key: UUID | str, designation_id: str, list_name: str, measures: Iterable[Measure]
) -> list[Notice]:
    """Every notice a designation issues: one per published measure of its list and implementing
    department (``measures``: the edition's ``notified_measures(list_name)``), in catalogue order."""
    return [
        Notice(
            notice_id(subject_key, designation_id, m.id, department), designation_id, list_name, m, department
        )
        for m in measures
        for department in m.implementing_departments
    ]


def edition_of(catalogue: Catalogue, made_at: str) -> Edition:
    """The edition in force on the day a designation was made: its measures and feedback deadline."""
    return catalogue.edition_at(local_date(datetime.fromisoformat(made_at)))


def feedback_due(since: date, within_working_days: int) -> date:
    """The last day feedback on a notice state that began on ``since`` is on time."""
    return add_working_days(since, within_working_days)


def obligations(history: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The states of a notice's ``history`` (``{version, state, at, event}`` in order) that put it
    in force and were not left by the same event: from each, feedback is due."""
    entries = list(history)
    return [
        entry
        for i, entry in enumerate(entries)
        if entry["state"] in IN_FORCE
        and (i + 1 == len(entries) or entries[i + 1].get("event") != entry.get("event"))
    ]


def follow(designation: Designation, records: Mapping[str, RecordState], occurred_at: str) -> None:
    """Move a designation's notices to where its basis stands after an event (the credit file's
    side; the projections' fold does the same on its own state)."""
    if designation.notice_state == WITHDRAWN:
        return
    target, _why = basis(
        active=designation.active,
        ended_reason=designation.ended_reason,
        upheld=designation.basis_upheld,
        records=[
            RecordBasis(record.status, record.disputed)
            for key in designation.records
            if (record := records.get(key)) is not None
        ],
    )
    for state in transitions(designation.notice_state, target):
        designation.notice_state = state
        designation.notice_version += 1
        designation.notice_since = occurred_at
