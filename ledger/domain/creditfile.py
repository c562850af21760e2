"""The credit file: one event-sourced aggregate per subject, holding every record's whole life.

One module over 400 lines because it is one aggregate: each command method checks its rules
and triggers its event, whose ``@event`` method applies it, and a command, its guards and its
event are read together. The state the events build (records, objections, repairs,
designations) is in ``records.py``; the catalogue rules it applies are in ``catalogue.py``; how
a designation's measure notices follow its basis is in ``notices.py``, applied here after every
event so that feedback on a notice is judged by the file's own events.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, ProgrammingError, event
from eventsourcing.utils import get_topic, register_topic

from ledger.domain import feedback, integrity, notices
from ledger.domain.catalogue_measures import Measure
from ledger.domain.errors import NotAuthorised, RecordClosed, RuleViolation, UnknownRecord
from ledger.domain.notices import Notice
from ledger.domain.personal import (
    FILE_UNIT,
    SHREDDED,
    FieldSealer,
    record_unit,
    seal_personal,
    sealed_unit_key,
    shred_due,
)
from ledger.domain.records import (
    EXPIRED,
    REPAIRED,
    REVOKED,
    Designation,
    Feedback,
    Objection,
    RecordState,
    RepairApplication,
)
from ledger.domain.workdays import local_date


class Context:
    """When and on whose behalf a command runs: time is always given, never read from a clock."""

    __slots__ = (
        "at",
        "department",
        "occurred_at",
        "occurred_iso",
        "occurred_on",
        "sealer",
        "stamp",
        "submission",
    )

    def __init__(
        self,
        *,
        at: datetime,
        occurred_at: datetime,
        department: str,
        submission: str,
        sealer: FieldSealer | None = None,
    ) -> None:
        self.at = at  # when the ledger records it
        self.sealer = sealer  # seals personal fields before events are hashed (None: kept in clear)
        self.occurred_at = occurred_at  # when the submitter says it happened
        self.department = department
        self.submission = submission  # "department/submission_id" that caused it
        self.occurred_iso = occurred_at.isoformat()
        # The day in China it happened: the unit every period and deadline is counted in.
        self.occurred_on: date = local_date(occurred_at)
        # What every event of this command carries about its origin and time.
        self.stamp: dict[str, Any] = {
            "occurred_at": self.occurred_iso,
            "timestamp": at,
            "submission": submission,
        }


def seal(
    event_class: type[Any],
    originator_id: UUID | str,
    version: int,
    fields: dict[str, Any],
    sealer: FieldSealer | None = None,
    subject_kind: str = "person",
    unit_keys: MutableMapping[str, str] | None = None,
) -> str:
    """The hash of the event at ``version`` of ``originator_id`` that ``fields`` make, over exactly
    the state the mapper will store (every field but the id, the version and the hash itself).

    Every event field is passed explicitly (no defaults), so ``fields`` are the event's state.
    Tests verify every chain they build, so a field that slipped past this would show at once.
    With a ``sealer`` the personal fields (``ledger.domain.personal``) are first replaced in
    ``fields`` by their envelopes: the hash covers the ciphertext, so it survives shredding.
    """
    class_version = getattr(event_class, "class_version", 1)
    if sealer is not None:
        name = event_class.__name__
        seal_personal(sealer, name, class_version, originator_id, version, fields, subject_kind, unit_keys)
    state = fields if class_version == 1 else {**fields, "class_version": class_version}
    return integrity.seal_hash(originator_id, version, _topic(event_class), state)


_TOPICS: dict[type[Any], str] = {}


def _topic(event_class: type[Any]) -> str:
    topic = _TOPICS.get(event_class)
    if topic is None:
        topic = _TOPICS[event_class] = get_topic(event_class)
    return topic


class CreditFile(Aggregate):
    """A subject's credit file. Commands are verbs that check the rules, then record past-tense events."""

    sealer: FieldSealer | None = None
    """Seals new events' personal fields; the application sets it on every file a batch touches."""
    recording = False
    """True while a new event is applied (``trigger_event``), whose sealing already named its unit's
    data key in ``unit_keys``; False while the file is loaded from stored events."""

    class Event(Aggregate.Event):
        prev_hash: str
        event_hash: str
        submission: str

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            aggregate.head_hash = self.event_hash
            if not aggregate.recording:  # loaded: the file learns its units' data keys from its events
                version = getattr(self, "class_version", 1)
                sealed = sealed_unit_key(type(self).__name__, version, self.__dict__)
                if sealed is not None:
                    aggregate.unit_keys.setdefault(*sealed)
            if aggregate.designations:  # their notices follow every change of what they rest on
                aggregate.follow_notices(getattr(self, "occurred_at", ""))
            return aggregate

        @property
        def event_id(self) -> str:
            """Stable id of this event: derived from its stream and version, so re-sends match."""
            return integrity.event_id(self.originator_id, self.originator_version)

    class Opened(Event, Aggregate.Created):
        subject_kind: str
        masked_code: str
        name: str
        checksum_override: dict[str, str] | None

    def __init__(
        self,
        subject_kind: str,
        masked_code: str,
        name: str,
        checksum_override: dict[str, str] | None,
    ) -> None:
        self.subject_kind = subject_kind
        self.masked_code = masked_code
        self.name = name
        self.checksum_override = checksum_override
        self.records: dict[str, RecordState] = {}
        self.designations: dict[str, Designation] = {}
        self.statements: dict[str, dict[str, Any]] = {}
        self.authorisations: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, dict[int, Feedback]] = {}  # notice id -> state version -> standing
        self.feedback_ids: set[str] = set()  # every feedback id used, superseded ones too
        self.reminded: set[tuple[str, int]] = set()  # (notice id, state version) found overdue
        self.unit_keys: dict[str, str] = {}  # retention unit -> the data key its values are sealed under
        self.head_hash = integrity.GENESIS
        self.shredded_at: str | None = None  # when the file's own unit (its name) was shredded

    # -- creation and sealing -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        subject_key: UUID,
        *,
        subject_kind: str,
        masked_code: str,
        name: str,
        checksum_override: dict[str, str] | None,
        ctx: Context,
    ) -> CreditFile:
        fields: dict[str, Any] = {
            "originator_topic": get_topic(cls),
            "timestamp": ctx.at,
            "prev_hash": integrity.GENESIS,
            "submission": ctx.submission,
            "subject_kind": subject_kind,
            "masked_code": masked_code,
            "name": name,
            "checksum_override": checksum_override,
        }
        sealed = seal(cls.Opened, subject_key, cls.INITIAL_VERSION, fields, ctx.sealer, subject_kind)
        del fields["originator_topic"]  # _create sets it
        file = cls._create(cls.Opened, id=subject_key, event_hash=sealed, **fields)
        file.sealer = ctx.sealer
        return file

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Chain every new event to the last one and seal it with its own hash."""
        if kwargs.get("timestamp") is None:
            msg = f"{event_class.__name__} needs an explicit timestamp: the domain never reads the clock"
            raise ProgrammingError(msg)
        kwargs["prev_hash"] = self.head_hash
        kwargs["event_hash"] = seal(
            event_class,
            self.stream_key,
            self.version + 1,
            kwargs,
            self.sealer,
            self.subject_kind,
            self.unit_keys,
        )
        self.recording = True
        try:
            super().trigger_event(event_class, **kwargs)
        finally:
            self.recording = False

    @property
    def stream_key(self) -> str:
        """The file's id as a string, formatted once: ``str(UUID)`` costs more than hashing an event,
        and sealing, hashing and naming every new event needs it."""
        key: str | None = self.__dict__.get("_stream_key")
        if key is None:
            key = self._stream_key = str(self.id)
        return key

    # -- guards ---------------------------------------------------------------------------

    def record(self, key: str, *, field: str = "record.record_id") -> RecordState:
        try:
            return self.records[key]
        except KeyError:
            raise UnknownRecord(f"record {key!r} is not on this subject's file", field=field) from None

    @staticmethod
    def check_active(record: RecordState, doing: str, *, field: str = "record.record_id") -> None:
        if record.shredded_at:
            raise RecordClosed(
                f"record {record.key} was shredded on {record.shredded_at[:10]}; it cannot be {doing}",
                field=field,
            )
        if not record.is_active:
            raise RecordClosed(f"record {record.key} is {record.status}; it cannot be {doing}", field=field)

    @staticmethod
    def check_provider(record: RecordState, department: str, doing: str) -> None:
        if department != record.provider:
            raise NotAuthorised(
                f"only the provider {record.provider!r} may {doing} record {record.key}",
                field="department",
            )

    def check_new_record(self, key: str) -> None:
        if key in self.records:
            raise RuleViolation(
                f"record {key} is already on file; send a correction to change it",
                field="record.record_id",
                code="duplicate_record",
            )

    def check_repair_allowed(self, record: RecordState, ctx: Context) -> None:
        if record.kind != "adverse":
            raise RuleViolation(
                f"only adverse records can be repaired; {record.key} is {record.kind}",
                field="record.record_id",
                code="repair_not_allowed",
            )
        self.check_active(record, "repaired")
        if not record.early_end:
            raise RuleViolation(
                f"record {record.key} ({record.severity} {record.category} in {record.domain}) "
                "cannot end before its display period",
                field="record.record_id",
                code="repair_not_allowed",
            )
        if record.repairable_from and ctx.occurred_on.isoformat() < record.repairable_from:
            raise RuleViolation(
                f"record {record.key} may be repaired only after its minimum publicity period, "
                f"from {record.repairable_from}",
                field="occurred_at",
                code="repair_too_early",
            )

    def notice(
        self,
        notice_id: str,
        measures_of: Callable[[Designation], Iterable[Measure]],
        *,
        field: str = "feedback.notice_id",
    ) -> Notice:
        """One of the notices this file's designations issued; ``measures_of`` gives a designation's
        notified measures (its list's published measures in the edition of the day it was made)."""
        for designation in self.designations.values():
            if designation.notice_state is None:
                continue
            for found in notices.notices_for(
                self.id, designation.designation_id, designation.list, measures_of(designation)
            ):
                if found.notice_id == notice_id:
                    return found
        raise UnknownRecord(
            f"notice {notice_id!r} is not one of the notices issued on this subject's file",
            field=field,
            code="unknown_notice",
        )

    # -- commands -------------------------------------------------------------------------

    def file_record(self, fields: dict[str, Any], ctx: Context) -> None:
        """File a new record; a serious adverse record ends any red-list designation."""
        key = f"{ctx.department}:{fields['record_id']}"
        self.check_new_record(key)
        self._record_filed(
            record=key,
            provider=ctx.department,
            fields=fields,
            occurred_at=ctx.occurred_iso,
            linked_from=None,
            timestamp=ctx.at,
            submission=ctx.submission,
        )
        if fields["kind"] == "adverse" and fields["severity"] == "serious":
            self._end_designations_where(lambda d: d.list == "red", "serious_adverse_record", ctx)

    def file_linked_record(
        self, source_subject: UUID, source: RecordState, ctx: Context, filed: dict[str, Any]
    ) -> None:
        """Copy an organisation's serious record onto a responsible person's file, linked back to it.

        ``filed`` are the fields as the organisation's record was filed, in clear: the record's
        state holds its personal fields sealed to the organisation's stream, which do not open
        anywhere else, so the copy is sealed anew for the person's file."""
        if source.key in self.records:
            return  # already linked: replays of the organisation's filing change nothing
        fields = {
            name: filed[name]
            for name in (
                "record_id",
                "category",
                "kind",
                "domain",
                "severity",
                "title",
                "decision_document",
                "decision_date",
                "legal_basis",
                "display_months",
                "display_from",
                "display_until",
                "repairable_from",
                "early_end",
                "edition",
            )
        }
        fields["responsible_persons"] = []
        self._record_filed(
            record=source.key,
            provider=source.provider,
            fields=fields,
            occurred_at=ctx.occurred_iso,
            linked_from={"subject_key": str(source_subject), "record": source.key},
            timestamp=ctx.at,
            submission=ctx.submission,
        )
        if source.is_serious_adverse:  # the person's own red-list entry ends as for any serious record
            self._end_designations_where(lambda d: d.list == "red", "serious_adverse_record", ctx)

    def correct_record(self, key: str, changes: dict[str, Any], reason: str, ctx: Context) -> None:
        record = self.record(key)
        self.check_provider(record, ctx.department, "correct")
        self.check_active(record, "corrected")
        self._record_corrected(
            record=key,
            changes=changes,
            reason=reason,
            **ctx.stamp,
        )

    def raise_objection(self, key: str, objection_id: str, grounds: str, due_by: date, ctx: Context) -> None:
        record = self.record(key)
        self.check_active(record, "disputed")
        if record.disputed:
            raise RuleViolation(
                f"record {key} already has an open objection "
                f"({record.open_objection and record.open_objection.objection_id})",
                field="record.record_id",
                code="objection_open",
            )
        if objection_id in record.objections:
            raise RuleViolation(
                f"objection {objection_id!r} was already raised", field="objection_id", code="duplicate_id"
            )
        self._objection_raised(
            record=key,
            objection_id=objection_id,
            grounds=grounds,
            due_by=due_by.isoformat(),
            **ctx.stamp,
        )

    def resolve_objection(
        self,
        key: str,
        objection_id: str,
        outcome: str,
        explanation: str,
        remedy: str | None,
        changes: dict[str, Any],
        ctx: Context,
    ) -> None:
        """Resolve an open objection; when upheld, correct or revoke the record in the same step."""
        record = self.record(key)
        self.check_provider(record, ctx.department, "resolve an objection to")
        objection = record.objections.get(objection_id)
        if objection is None or objection.outcome is not None:
            state = "unknown" if objection is None else f"already {objection.outcome}"
            raise UnknownRecord(
                f"objection {objection_id!r} on record {key} is {state}; "
                "only an open objection can be resolved",
                field="objection_id",
            )
        self._objection_resolved(
            record=key,
            objection_id=objection_id,
            outcome=outcome,
            explanation=explanation,
            **ctx.stamp,
        )
        if outcome == "upheld" and remedy == "revoke":
            self._revoke(
                record, "objection upheld: " + explanation, "", ctx, designation_reason="objection_upheld"
            )
        elif outcome == "upheld" and changes:
            self._record_corrected(
                record=key,
                changes=changes,
                reason="objection upheld: " + explanation,
                **ctx.stamp,
            )

    def mark_objection_overdue(self, key: str, objection_id: str, ctx: Context) -> None:
        """The provider did not resolve an objection in time: on record, and the record stays disputed."""
        record = self.record(key)
        objection = record.objections.get(objection_id)
        if objection is None or objection.outcome is not None or objection.overdue:
            state = (
                "unknown" if objection is None else ("already overdue" if objection.overdue else "resolved")
            )
            raise UnknownRecord(
                f"objection {objection_id!r} on record {key} is {state}", field="objection_id"
            )
        if ctx.occurred_on.isoformat() <= objection.due_by:
            raise RuleViolation(
                f"objection {objection_id!r} is due by {objection.due_by}; it is not overdue on "
                f"{ctx.occurred_on.isoformat()}",
                field="occurred_at",
                code="not_due",
            )
        self._objection_overdue(
            record=key,
            objection_id=objection_id,
            due_by=objection.due_by,
            **ctx.stamp,
        )

    def grant_authorisation(self, fields: dict[str, Any], ctx: Context) -> None:
        """The subject authorises an organisation to query their file for one purpose, for a period."""
        if fields["authorisation_id"] in self.authorisations:
            raise RuleViolation(
                f"authorisation {fields['authorisation_id']!r} already exists",
                field="authorisation.authorisation_id",
                code="duplicate_id",
            )
        if fields["valid_until"] <= fields["valid_from"]:
            raise RuleViolation(
                "valid_until must be after valid_from",
                field="authorisation.valid_until",
                code="invalid_period",
            )
        self._authorisation_granted(fields=fields, **ctx.stamp)

    def revoke_authorisation(self, authorisation_id: str, ctx: Context) -> None:
        grant = self.authorisations.get(authorisation_id)
        if grant is None or not grant["active"]:
            state = "unknown" if grant is None else "already revoked"
            raise UnknownRecord(f"authorisation {authorisation_id!r} is {state}", field="authorisation_id")
        self._authorisation_revoked(
            authorisation_id=authorisation_id,
            **ctx.stamp,
        )

    def add_statement(self, statement_id: str, text: str, key: str | None, ctx: Context) -> None:
        """The subject's explanatory statement: allowed at any time, on any record, even ended ones."""
        if key is not None and self.record(key).shredded_at:
            raise RecordClosed(
                f"record {key} was shredded; nothing more can be added to it", field="record.record_id"
            )
        if key is None and self.shredded_at:
            raise RecordClosed("this file's own content was erased", field="statement_id")
        if statement_id in self.statements:
            raise RuleViolation(
                f"statement {statement_id!r} is already on file", field="statement_id", code="duplicate_id"
            )
        self._statement_added(
            statement_id=statement_id,
            record=key,
            text=text,
            **ctx.stamp,
        )

    def request_repair(self, key: str, application_id: str, measures_taken: str, ctx: Context) -> None:
        record = self.record(key)
        self.check_repair_allowed(record, ctx)
        if record.pending_repair is not None:
            raise RuleViolation(
                f"record {key} already has a pending repair application "
                f"({record.pending_repair.application_id})",
                field="record.record_id",
                code="repair_pending",
            )
        if application_id in record.repairs:
            raise RuleViolation(
                f"repair application {application_id!r} was already made",
                field="application_id",
                code="duplicate_id",
            )
        self._repair_requested(
            record=key,
            application_id=application_id,
            measures_taken=measures_taken,
            **ctx.stamp,
        )

    def decide_repair(self, key: str, application_id: str, decision: str, reason: str, ctx: Context) -> None:
        record = self.record(key)
        self.check_provider(record, ctx.department, "decide a repair of")
        application = record.repairs.get(application_id)
        if application is None or application.decision is not None:
            state = "unknown" if application is None else f"already {application.decision}"
            raise UnknownRecord(
                f"repair application {application_id!r} on record {key} is {state}",
                field="application_id",
            )
        if decision == "refused":
            self._repair_refused(
                record=key,
                application_id=application_id,
                reason=reason,
                **ctx.stamp,
            )
            return
        self.check_repair_allowed(record, ctx)
        self._repair_granted(
            record=key,
            application_id=application_id,
            reason=reason,
            **ctx.stamp,
        )
        self._end_designations_where(lambda d: key in d.records, "repaired", ctx)

    def expire_record(self, key: str, ctx: Context) -> None:
        """End a record whose display period is over (the platform's scheduler or the provider).

        Never early: the command's own time must be on or after the last display day."""
        record = self.record(key)
        self.check_active(record, "expired")
        until = record.display_until
        if until is None or ctx.occurred_on.isoformat() < until:
            raise RuleViolation(
                f"record {key} is displayed until {until or 'revoked'}; it cannot expire on "
                f"{ctx.occurred_on.isoformat()}",
                field="occurred_at",
                code="not_due",
            )
        self._record_expired(
            record=key,
            display_until=until,
            **ctx.stamp,
        )

    def revoke_record(self, key: str, reason: str, document: str, ctx: Context, *, by_court: bool) -> None:
        record = self.record(key)
        if not by_court:
            self.check_provider(record, ctx.department, "revoke")
        if record.status == REVOKED:
            raise RecordClosed(f"record {key} is already revoked", field="record.record_id")
        self._revoke(record, reason, document, ctx, designation_reason="revoked")

    def close_linked_record(self, key: str, status: str, cause: str, ctx: Context) -> None:
        """Follow the organisation's record: when it ends, the person's linked copy ends too."""
        record = self.records.get(key)
        if record is None or record.linked_from is None or not record.is_active:
            return
        self._linked_record_closed(
            record=key,
            status=status,
            cause=cause,
            **ctx.stamp,
        )

    def designate(self, fields: dict[str, Any], ctx: Context) -> None:
        designation_id = fields["designation_id"]
        if designation_id in self.designations:
            raise RuleViolation(
                f"designation {designation_id!r} already exists", field="designation_id", code="duplicate_id"
            )
        if fields["valid_until"] <= fields["valid_from"]:
            raise RuleViolation(
                "valid_until must be after valid_from", field="designation.valid_until", code="invalid_period"
            )
        for i, key in enumerate(fields["records"]):
            where = f"designation.records[{i}]"
            self.check_active(self.record(key, field=where), "the basis of a designation", field=where)
        if fields["list"] == "red":
            self.check_red_list_eligible()
        self._designation_made(
            designation_id=designation_id,
            department=ctx.department,
            fields=fields,
            **ctx.stamp,
        )

    def check_red_list_eligible(self) -> None:
        blocking = [r.key for r in self.records.values() if r.is_active and r.is_serious_adverse]
        blocking += [d.designation_id for d in self.designations.values() if d.active and d.list == "black"]
        if blocking:
            raise RuleViolation(
                "a subject with an active serious adverse record or black-list entry cannot be on the "
                f"red list ({', '.join(blocking)})",
                field="designation.list",
                code="ineligible",
            )

    def end_designation(self, designation_id: str, reason: str, ctx: Context, *, by_platform: bool) -> None:
        designation = self.designations.get(designation_id)
        if designation is None or not designation.active:
            state = "unknown" if designation is None else "already ended"
            raise UnknownRecord(f"designation {designation_id!r} is {state}", field="designation_id")
        if not by_platform and ctx.department != designation.department:
            raise NotAuthorised(
                f"only the designating department {designation.department!r} may end designation "
                f"{designation_id!r}",
                field="department",
            )
        if reason == "expired" and ctx.occurred_on.isoformat() < designation.valid_until:
            raise RuleViolation(
                f"designation {designation_id!r} is valid until {designation.valid_until}",
                field="occurred_at",
                code="not_due",
            )
        self._designation_ended(
            designation_id=designation_id,
            reason=reason,
            **ctx.stamp,
        )

    def shred_record(
        self, key: str, basis: str, legal_basis: str, retention_years: int, ctx: Context
    ) -> None:
        """Destroy a record's personal content: at the end of its retention (``basis`` ``retention_ended``,
        ``retention_years`` after the record ended) or on the subject's erasure request (any time
        after it ended). What the rules need stays: category, dates, provider, status."""
        record = self.record(key)
        if record.shredded_at:
            raise RecordClosed(
                f"record {key} was already shredded on {record.shredded_at[:10]}", field="record.record_id"
            )
        if record.is_active:
            raise RuleViolation(
                f"record {key} is {record.status}: its content is kept while it is shown or used; it can be "
                "shredded once it has ended (expired, repaired or revoked)",
                field="record.record_id",
                code="not_due",
            )
        if basis == "retention_ended":
            due = shred_due(record.ended_on or record.filed_at, retention_years)
            if ctx.occurred_on.isoformat() < due:
                raise RuleViolation(
                    f"record {key} is retained until {due} ({retention_years} years after it ended)",
                    field="occurred_at",
                    code="not_due",
                )
        self._record_shredded(
            record=key,
            unit=record_unit(key),
            basis=basis,
            legal_basis=legal_basis,
            **ctx.stamp,
        )

    def erase(self, basis: str, legal_basis: str, ctx: Context) -> None:
        """The subject's erasure request: every ended record's content and the file's own (the name)."""
        active = [r.key for r in self.records.values() if r.is_active]
        if active:
            raise RuleViolation(
                f"records {', '.join(active)} are still shown or used; the file can be erased once "
                "every record has ended",
                field="subject.key",
                code="not_due",
            )
        if self.shredded_at:
            raise RecordClosed(
                f"this file was already erased on {self.shredded_at[:10]}", field="subject.key"
            )
        for record in self.records.values():
            if not record.shredded_at:
                self.shred_record(record.key, basis, legal_basis, 0, ctx)
        self._record_shredded(record=None, unit=FILE_UNIT, basis=basis, legal_basis=legal_basis, **ctx.stamp)

    def report_feedback(self, notice: Notice, fields: dict[str, Any], ctx: Context) -> None:
        """The implementing department reports what it did about a notice (执行反馈): applied,
        not applicable or failed while it is in force, stopped after a suspension or withdrawal."""
        feedback.check_addressed(notice, ctx.department)
        designation = self.designations[notice.designation_id]
        feedback.check_answers_current(notice, designation, fields.get("state_version"))
        feedback.check_outcome_fits(notice, fields["outcome"], designation.notice_state)
        version, state = designation.notice_version, designation.notice_state
        assert state is not None  # check_outcome_fits accepts only the states of an issued notice
        standing = self.feedback.get(notice.notice_id, {}).get(version)
        feedback.check_new_id(fields["feedback_id"], self.feedback_ids)
        feedback.check_one_per_state(notice, version, standing, fields.get("supersedes"))
        for name in ("applied_on", "stopped_on"):
            feedback.check_acted_on(designation, fields.get(name), name, ctx.occurred_on)
        self._feedback_reported(
            notice_id=notice.notice_id,
            designation_id=notice.designation_id,
            measure=notice.measure.id,
            department=ctx.department,
            state_version=version,
            state=state,
            feedback_id=fields["feedback_id"],
            outcome=fields["outcome"],
            business_reference=fields.get("business_reference"),
            applied_on=_iso(fields.get("applied_on")),
            stopped_on=_iso(fields.get("stopped_on")),
            reason=fields.get("reason"),
            supersedes=fields.get("supersedes"),
            **ctx.stamp,
        )

    def remind_feedback(
        self, notice: Notice, state_version: int, within_working_days: int, ctx: Context
    ) -> None:
        """The platform's scheduler: feedback on a notice in force is overdue; on record, once per state."""
        designation = self.designations[notice.designation_id]
        awaited = designation.notice_state in notices.IN_FORCE and state_version == designation.notice_version
        answered = state_version in self.feedback.get(notice.notice_id, {})
        if not awaited or answered or (notice.notice_id, state_version) in self.reminded:
            why = "was answered" if answered else ("was already found overdue" if awaited else "has moved on")
            raise RuleViolation(
                f"notice {notice.notice_id} state version {state_version} {why} "
                f"(now version {designation.notice_version}, {designation.notice_state})",
                field="state_version",
                code="not_due",
            )
        since = local_date(datetime.fromisoformat(designation.notice_since))
        due = notices.feedback_due(since, within_working_days)
        if ctx.occurred_on <= due:
            raise RuleViolation(
                f"feedback on notice {notice.notice_id} is due by {due.isoformat()}; it is not overdue on "
                f"{ctx.occurred_on.isoformat()}",
                field="occurred_at",
                code="not_due",
            )
        self._feedback_overdue(
            notice_id=notice.notice_id,
            designation_id=notice.designation_id,
            measure=notice.measure.id,
            department=notice.department,
            state_version=state_version,
            due_on=due.isoformat(),
            **ctx.stamp,
        )

    def follow_notices(self, occurred_at: str) -> None:
        """Move each designation's notices to where its basis now stands (after every event)."""
        for designation in self.designations.values():
            notices.follow(designation, self.records, occurred_at)

    # -- shared steps ---------------------------------------------------------------------

    def _revoke(
        self, record: RecordState, reason: str, document: str, ctx: Context, *, designation_reason: str
    ) -> None:
        self._record_revoked(
            record=record.key,
            reason=reason,
            document=document,
            **ctx.stamp,
        )
        self._end_designations_where(lambda d: record.key in d.records, designation_reason, ctx)

    def _end_designations_where(self, matches: Any, reason: str, ctx: Context) -> None:
        for designation in list(self.designations.values()):
            if designation.active and matches(designation):
                self._designation_ended(
                    designation_id=designation.designation_id,
                    reason=reason,
                    **ctx.stamp,
                )

    # -- events: each applies what happened, and nothing else --------------------------------

    @event("RecordFiled")
    def _record_filed(
        self,
        record: str,
        provider: str,
        fields: dict[str, Any],
        occurred_at: str,
        linked_from: dict[str, str] | None,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.records[record] = RecordState(
            key=record,
            provider=provider,
            filed_at=occurred_at,
            linked_from=linked_from,
            responsible_persons=list(fields.get("responsible_persons", [])),
            **{k: v for k, v in fields.items() if k != "responsible_persons"},
        )

    @event("RecordCorrected")
    def _record_corrected(
        self,
        record: str,
        changes: dict[str, Any],
        reason: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.records[record].apply_changes(changes)

    @event("ObjectionRaised")
    def _objection_raised(
        self,
        record: str,
        objection_id: str,
        grounds: str,
        due_by: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.records[record].objections[objection_id] = Objection(
            objection_id, grounds, raised_on=occurred_at, due_by=due_by
        )

    @event("ObjectionResolved")
    def _objection_resolved(
        self,
        record: str,
        objection_id: str,
        outcome: str,
        explanation: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        objections = self.records[record].objections
        objections[objection_id] = replace(objections[objection_id], outcome=outcome)
        if outcome == "upheld":  # the measures resting on it are withdrawn (follow_notices)
            for designation in self.designations.values():
                if designation.active and record in designation.records:
                    designation.basis_upheld = True

    @event("ObjectionOverdue")
    def _objection_overdue(
        self,
        record: str,
        objection_id: str,
        due_by: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.records[record].objections[objection_id].overdue = True

    @event("AuthorisationGranted")
    def _authorisation_granted(
        self, fields: dict[str, Any], occurred_at: str, timestamp: datetime, submission: str
    ) -> None:
        self.authorisations[fields["authorisation_id"]] = {**fields, "active": True}

    @event("AuthorisationRevoked")
    def _authorisation_revoked(
        self, authorisation_id: str, occurred_at: str, timestamp: datetime, submission: str
    ) -> None:
        self.authorisations[authorisation_id]["active"] = False

    @event("StatementAdded")
    def _statement_added(
        self,
        statement_id: str,
        record: str | None,
        text: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.statements[statement_id] = {"record": record, "text": text, "added_at": occurred_at}

    @event("RepairRequested")
    def _repair_requested(
        self,
        record: str,
        application_id: str,
        measures_taken: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.records[record].repairs[application_id] = RepairApplication(application_id, measures_taken)

    @event("RepairGranted")
    def _repair_granted(
        self,
        record: str,
        application_id: str,
        reason: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        state = self.records[record]
        state.repairs[application_id].decision = "granted"
        state.repairs[application_id].reason = reason
        state.status, state.ended_reason, state.ended_on = REPAIRED, reason, occurred_at

    @event("RepairRefused")
    def _repair_refused(
        self,
        record: str,
        application_id: str,
        reason: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        application = self.records[record].repairs[application_id]
        application.decision, application.reason = "refused", reason

    @event("RecordExpired")
    def _record_expired(
        self, record: str, display_until: str, occurred_at: str, timestamp: datetime, submission: str
    ) -> None:
        state = self.records[record]
        state.status, state.ended_reason = EXPIRED, f"display period ended {display_until}"
        state.ended_on = occurred_at

    @event("RecordRevoked")
    def _record_revoked(
        self,
        record: str,
        reason: str,
        document: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        state = self.records[record]
        state.status, state.ended_reason, state.ended_on = REVOKED, reason, occurred_at

    @event("LinkedRecordClosed")
    def _linked_record_closed(
        self, record: str, status: str, cause: str, occurred_at: str, timestamp: datetime, submission: str
    ) -> None:
        state = self.records[record]
        state.status, state.ended_reason, state.ended_on = status, cause, occurred_at

    @event("RecordShredded")
    def _record_shredded(
        self,
        record: str | None,
        unit: str,
        basis: str,
        legal_basis: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        if record is None:
            self.shredded_at, self.name = occurred_at, SHREDDED
            for statement in self.statements.values():
                if statement["record"] is None:
                    statement["text"] = SHREDDED
            return
        self.records[record].shred(occurred_at)
        for statement in self.statements.values():
            if statement["record"] == record:
                statement["text"] = SHREDDED

    @event("DesignationMade")
    def _designation_made(
        self,
        designation_id: str,
        department: str,
        fields: dict[str, Any],
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.designations[designation_id] = Designation(department=department, made_at=occurred_at, **fields)

    @event("DesignationEnded")
    def _designation_ended(
        self, designation_id: str, reason: str, occurred_at: str, timestamp: datetime, submission: str
    ) -> None:
        designation = self.designations[designation_id]
        designation.active, designation.ended_reason, designation.ended_on = False, reason, occurred_at

    @event("FeedbackReported")
    def _feedback_reported(
        self,
        notice_id: str,
        designation_id: str,
        measure: str,
        department: str,
        state_version: int,
        state: str,
        feedback_id: str,
        outcome: str,
        business_reference: str | None,
        applied_on: str | None,
        stopped_on: str | None,
        reason: str | None,
        supersedes: str | None,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        on = local_date(datetime.fromisoformat(occurred_at)).isoformat()
        self.feedback.setdefault(notice_id, {})[state_version] = Feedback(
            feedback_id, outcome, state_version, on
        )
        self.feedback_ids.add(feedback_id)

    @event("FeedbackOverdue")
    def _feedback_overdue(
        self,
        notice_id: str,
        designation_id: str,
        measure: str,
        department: str,
        state_version: int,
        due_on: str,
        occurred_at: str,
        timestamp: datetime,
        submission: str,
    ) -> None:
        self.reminded.add((notice_id, state_version))


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


# Events stored before the domain moved into ledger.domain name this module by its old path
# (their topics are part of what each event's hash covers, so they are never rewritten).
register_topic("ledger.creditfile", sys.modules[__name__])
