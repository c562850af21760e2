"""Apply one typed command to the files it touches, checking the catalogue's rules on the way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Protocol
from uuid import UUID

from ledger.domain import commands as c
from ledger.domain import notices
from ledger.domain.catalogue import Catalogue, Edition
from ledger.domain.catalogue_measures import Measure
from ledger.domain.creditfile import Context, CreditFile
from ledger.domain.errors import NotAuthorised, NotInCatalogue, RuleViolation, UnknownRecord
from ledger.domain.records import Designation, RecordState
from ledger.domain.subjects import SubjectCode, SubjectKind
from ledger.domain.workdays import deadline

# Actions that may open a file for a subject the ledger has not seen yet.
_OPENERS = (c.FileRecord, c.Designate, c.AddStatement)


class Files(Protocol):
    """The files a command may touch, within one unit of work."""

    def key_of(self, subject: SubjectCode) -> UUID: ...

    def find(self, key: UUID) -> CreditFile | None: ...

    def add(self, file: CreditFile) -> None: ...


def handle(command: c.Command, files: Files, catalogue: Catalogue, ctx: Context) -> CreditFile:
    """Run ``command``; raise a LedgerError (and change nothing) if any rule forbids it."""
    env, action = command.envelope, command.action
    edition = _edition(catalogue, action, ctx)
    department = edition.department(env.department)
    is_platform = department.role == "platform"
    if env.subject is None:
        # Feedback may name the file by the key its notice carried (departments never see others').
        file = _keyed_file(env, files, is_platform=is_platform or isinstance(action, c.ReportFeedback))
    else:
        file = _file_for(env.subject, action, env, files, ctx, catalogue)
    linked_before = (
        [k for k, r in file.records.items() if r.is_active and r.responsible_persons]
        if file.subject_kind == SubjectKind.ORGANISATION.value
        else []
    )

    if isinstance(action, c.FileRecord):
        _file_record(action, file, files, edition, ctx)
    elif isinstance(action, c.CorrectRecord):
        record = file.record(action.record.key)
        changes = _resolve_changes(action.changes, record, catalogue.edition(record.edition))
        file.correct_record(record.key, changes, action.reason, ctx)
    elif isinstance(action, c.RaiseObjection):
        _require_platform(is_platform, "objections are raised by the subject at the platform's desk")
        due = deadline(ctx.occurred_on, edition.objection_resolve_within, edition.objection_resolve_unit)  # type: ignore[arg-type]
        file.raise_objection(action.record.key, action.objection_id, action.grounds, due, ctx)
    elif isinstance(action, c.ResolveObjection):
        record = file.record(action.record.key)
        changes = (
            _resolve_changes(action.changes, record, catalogue.edition(record.edition))
            if action.changes
            else {}
        )
        file.resolve_objection(
            record.key, action.objection_id, action.outcome, action.explanation, action.remedy, changes, ctx
        )
    elif isinstance(action, c.AddStatement):
        _require_platform(is_platform, "statements are added by the subject at the platform's desk")
        file.add_statement(
            action.statement_id, action.text, action.record.key if action.record else None, ctx
        )
    elif isinstance(action, c.RequestRepair):
        _require_platform(is_platform, "repair applications are made by the subject at the platform's desk")
        file.request_repair(action.record.key, action.application_id, action.measures_taken, ctx)
    elif isinstance(action, c.DecideRepair):
        file.decide_repair(action.record.key, action.application_id, action.decision, action.reason, ctx)
    elif isinstance(action, c.GrantAuthorisation | c.RevokeAuthorisation):
        _require_platform(is_platform, "subjects manage authorisations at the desk or with their own key")
        _authorisation(action, file, edition, ctx)
    elif isinstance(action, c.MarkObjectionOverdue):
        _require_platform(is_platform, "objections are marked overdue by the platform's scheduler")
        file.mark_objection_overdue(action.record.key, action.objection_id, ctx)
    elif isinstance(action, c.ExpireRecord):
        record = file.record(action.record.key)
        if not is_platform and env.department != record.provider:
            raise NotAuthorised(
                "records expire by the platform's scheduler or their provider", field="department"
            )
        file.expire_record(record.key, ctx)
    elif isinstance(action, c.RevokeRecord):
        file.revoke_record(
            action.record.key, action.reason, action.document, ctx, by_court=department.role == "court"
        )
    elif isinstance(action, c.Designate):
        edition.check_may_designate(env.department, action.list)
        file.designate(
            {
                "designation_id": action.designation_id,
                "list": action.list,
                "basis": action.basis,
                "document_number": action.document_number,
                "valid_from": action.valid_from.isoformat(),
                "valid_until": action.valid_until.isoformat(),
                "records": [r.key for r in action.records],
            },
            ctx,
        )
    elif isinstance(action, c.ShredRecord):
        _require_platform(is_platform, "records are shredded by the platform (its scheduler or the desk)")
        _shred(action, file, catalogue, ctx)
    elif isinstance(action, c.EndDesignation):
        file.end_designation(action.designation_id, action.reason, ctx, by_platform=is_platform)
    elif isinstance(action, c.ReportFeedback):
        notice = file.notice(action.notice_id, notified_measures(catalogue))
        file.report_feedback(notice, vars(action), ctx)
    elif isinstance(action, c.RemindFeedback):
        _require_platform(is_platform, "feedback reminders are sent by the platform's scheduler")
        notice = file.notice(action.notice_id, notified_measures(catalogue), field="notice_id")
        edition_then = notices.edition_of(catalogue, file.designations[notice.designation_id].made_at)
        file.remind_feedback(notice, action.state_version, edition_then.feedback_within_working_days, ctx)
    _follow_linked_records(file, linked_before, files, ctx)
    return file


def _edition(catalogue: Catalogue, action: c.Action, ctx: Context) -> Edition:
    """The edition in force when it happened. A follow-up on an existing record (an expiry at the end
    of a display period that began before the first edition, say) falls back to the first edition:
    new facts are judged by the rules of their day, but the past must still be able to end."""
    try:
        return catalogue.edition_at(ctx.occurred_on)
    except NotInCatalogue:
        if isinstance(action, c.FileRecord | c.Designate | c.GrantAuthorisation):
            raise
        return catalogue.editions[0]


def notified_measures(catalogue: Catalogue) -> Callable[[Designation], tuple[Measure, ...]]:
    """What each designation notified: its list's published measures in the edition of its day."""
    return lambda d: notices.edition_of(catalogue, d.made_at).notified_measures(d.list)


def _keyed_file(env: c.Envelope, files: Files, *, is_platform: bool) -> CreditFile:
    """The existing file a platform command (or a department's feedback) names by its key."""
    if not is_platform:
        raise NotAuthorised(
            "only the platform's own commands and report_feedback address a file by its key; "
            "departments send subject.id",
            field="subject.key",
        )
    file = files.find(env.subject_key) if env.subject_key else None
    if file is None:
        raise UnknownRecord(f"there is no credit file with key {env.subject_key}", field="subject.key")
    return file


def _file_for(
    subject: SubjectCode, action: c.Action, env: c.Envelope, files: Files, ctx: Context, catalogue: Catalogue
) -> CreditFile:
    """The subject's file; opened here only by an action that may open one, on a day an edition is
    in force (the fallback of ``_edition`` lets the past end, never a new file begin before it)."""
    key = files.key_of(subject)
    file = files.find(key)
    if file is not None:
        return file
    if not isinstance(action, _OPENERS):
        raise UnknownRecord(f"there is no credit file for subject {subject.masked}", field="subject.id")
    catalogue.edition_at(ctx.occurred_on)  # raises NotInCatalogue (occurred_at) before the first edition
    file = CreditFile.open(
        key,
        subject_kind=subject.kind.value,
        masked_code=subject.masked,
        name=env.subject_name,
        checksum_override=env.checksum_override,
        ctx=ctx,
    )
    files.add(file)
    return file


def _authorisation(
    action: c.GrantAuthorisation | c.RevokeAuthorisation, file: CreditFile, edition: Edition, ctx: Context
) -> None:
    if isinstance(action, c.RevokeAuthorisation):
        file.revoke_authorisation(action.authorisation_id, ctx)
        return
    if action.purpose not in edition.query_purposes:
        raise NotInCatalogue(
            f"query purpose {action.purpose!r} is not in catalogue edition {edition.edition}",
            field="authorisation.purpose",
        )
    file.grant_authorisation(
        {
            "authorisation_id": action.authorisation_id,
            "organisation": action.organisation,
            "purpose": action.purpose,
            "valid_from": action.valid_from.isoformat(),
            "valid_until": action.valid_until.isoformat(),
        },
        ctx,
    )


def _shred(action: c.ShredRecord, file: CreditFile, catalogue: Catalogue, ctx: Context) -> None:
    if action.record is None:
        if action.basis != "erasure_request":
            raise RuleViolation(
                "only an erasure request erases a whole file; name the record whose retention ended",
                field="record",
                code="invalid_for_subject",
            )
        file.erase(action.basis, action.legal_basis, ctx)
        return
    record = file.record(action.record.key)
    years = catalogue.edition(record.edition).retention_years
    file.shred_record(record.key, action.basis, action.legal_basis, years, ctx)


def _require_platform(is_platform: bool, why: str) -> None:
    if not is_platform:
        raise NotAuthorised(f"{why} (department credit_platform)", field="department")


def _file_record(
    action: c.FileRecord, file: CreditFile, files: Files, edition: Edition, ctx: Context
) -> None:
    if action.decision_date > ctx.occurred_on:
        raise RuleViolation(
            f"the decision date {action.decision_date.isoformat()} is after occurred_at "
            f"{ctx.occurred_on.isoformat()}: a record is filed after its decision",
            field="record.decision.date",
            code="invalid_date",
        )
    category = edition.category(action.category)
    edition.check_domain(action.domain)
    edition.check_may_file(ctx.department, action.category, action.domain)
    if category.kind == "designation":
        raise RuleViolation(
            f"category {category.code!r} is a list designation: send action 'designate'",
            field="record.category",
            code="wrong_action",
        )
    severity = action.severity
    if category.kind == "adverse":
        if severity is None:
            raise NotInCatalogue(
                f"an adverse record ({category.code}) needs a severity: "
                f"one of {', '.join(category.severities)}",
                field="record.severity",
            )
        if severity not in category.severities:
            raise NotInCatalogue(
                f"category {category.code!r} may carry severities "
                f"{', '.join(category.severities)}, got {severity!r}",
                field="record.severity",
            )
    elif severity is not None:
        raise NotInCatalogue(
            f"only adverse records carry a severity; {category.code!r} is {category.kind}",
            field="record.severity",
        )
    if action.responsible_persons and file.subject_kind != SubjectKind.ORGANISATION.value:
        raise RuleViolation(
            "responsible persons are named only on an organisation's record",
            field="record.responsible_persons",
            code="invalid_for_subject",
        )
    period = edition.display_period(
        category, action.domain, severity, action.decision_date, action.display_months
    )
    persons = [
        {
            "subject_key": str(files.key_of(p.subject)),
            "masked_code": p.subject.masked,
            "name": p.name,
            "role": p.role,
        }
        for p in action.responsible_persons
    ]
    fields: dict[str, Any] = {
        "record_id": action.record_id,
        "category": category.code,
        "kind": category.kind,
        "domain": action.domain,
        "severity": severity,
        "title": action.title,
        "decision_document": action.decision_document,
        "decision_date": action.decision_date.isoformat(),
        "legal_basis": action.legal_basis,
        "display_months": action.display_months,
        "display_from": period.display_from.isoformat(),
        "display_until": period.display_until.isoformat() if period.display_until else None,
        "repairable_from": period.repairable_from.isoformat() if period.repairable_from else None,
        "early_end": period.early_end,
        "edition": edition.edition,
        "responsible_persons": persons,
    }
    file.file_record(fields, ctx)
    record = file.records[f"{ctx.department}:{action.record_id}"]
    if record.is_serious_adverse:
        for person, spec in zip(action.responsible_persons, persons, strict=True):
            person_key = UUID(spec["subject_key"])
            person_file = files.find(person_key)
            if person_file is None:
                person_file = CreditFile.open(
                    person_key,
                    subject_kind=SubjectKind.PERSON.value,
                    masked_code=person.subject.masked,
                    name=person.name,
                    checksum_override=None,
                    ctx=ctx,
                )
                files.add(person_file)
            person_file.file_linked_record(file.id, record, ctx, fields)


def _resolve_changes(changes: dict[str, Any], record: RecordState, edition: Edition) -> dict[str, Any]:
    """Check a correction against the record's edition; recompute the display period if it moves."""
    out = dict(changes)
    category = edition.category(record.category, field="record.category")
    if "domain" in changes:
        edition.check_domain(changes["domain"], field="changes.domain")
    severity = changes.get("severity", record.severity)
    if category.kind == "adverse" and severity not in category.severities:
        raise NotInCatalogue(
            f"category {category.code!r} may carry severities "
            f"{', '.join(category.severities)}, got {severity!r}",
            field="changes.severity",
        )
    if category.kind != "adverse" and "severity" in changes:
        raise NotInCatalogue(
            f"only adverse records carry a severity; {category.code!r} is {category.kind}",
            field="changes.severity",
        )
    moves = {"severity", "domain", "decision_date", "display_months"} & changes.keys()
    if moves:
        period = edition.display_period(
            category,
            changes.get("domain", record.domain),
            severity,
            date.fromisoformat(changes.get("decision_date", record.decision_date)),
            changes.get("display_months", record.display_months),
            field="changes.display_months",
        )
        out["display_from"] = period.display_from.isoformat()
        out["display_until"] = period.display_until.isoformat() if period.display_until else None
        out["repairable_from"] = period.repairable_from.isoformat() if period.repairable_from else None
        out["early_end"] = period.early_end
    return out


def _follow_linked_records(file: CreditFile, keys: list[str], files: Files, ctx: Context) -> None:
    """When an organisation's record has ended, end each responsible person's linked copy the same way."""
    for key in keys:
        record = file.records[key]
        if record.is_active:
            continue
        for person in record.responsible_persons:
            person_file = files.find(UUID(person["subject_key"]))
            if person_file is not None:
                person_file.close_linked_record(
                    record.key, record.status, f"{record.status} on the organisation's file", ctx
                )
