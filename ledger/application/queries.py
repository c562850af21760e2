"""The authorised query path, shared by HTTP and CLI: authenticate, decide, record (fail closed), answer.

Answers are domain outcomes (``ok``, ``invalid``, ``not_authenticated``, ``forbidden``,
``not_found``, ``unavailable``); the HTTP layer maps them to status codes, the CLI to exit codes.

The register is complete: a key that is not valid, and a refusal decided at the door (malformed
input, an internal error) are recorded as refusals too (``authenticate_for``, ``refuse``), each
with the channel it came through. A record's ``outcome`` is ``allowed`` (an answer with data),
``answered`` (allowed, but there was nothing to return: ``no_file``) or ``refused``.

One module of over 400 lines because it is one path: every endpoint's rule (the portal's pages
and the host operator's reads at the command line too) sits beside the one recording path
(``_record``) they all share, which is what keeps the register complete, and the one opening path
(``_revealed``) that lets sealed personal fields out only in a recorded answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.application.keys import KEY_PREFIX, KeyCache
from ledger.application.ports import ReadModels
from ledger.application.privacy import REJECTION_RETENTION_DAYS, SealedValueAltered
from ledger.application.service import CreditLedger, utc_now
from ledger.domain.access import SELF_INQUIRY, Decision, Principal, decide_endpoint, decide_status
from ledger.domain.errors import InvalidInput, LedgerError, error_body
from ledger.domain.integrity import content_digest
from ledger.domain.redaction import echo
from ledger.domain.subjects import SubjectCode, parse_subject_code
from ledger.domain.workdays import local_date

log = logging.getLogger(__name__)

FREE_REPORTS_PER_YEAR = 2

OK = "ok"
INVALID = "invalid"
NOT_AUTHENTICATED = "not_authenticated"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
UNAVAILABLE = "unavailable"
OUTCOMES = (OK, INVALID, NOT_AUTHENTICATED, FORBIDDEN, NOT_FOUND, UNAVAILABLE)

ALLOWED, ANSWERED, REFUSED = "allowed", "answered", "refused"
"""A query record's ``outcome``: data returned; allowed but nothing to return (no file); refused."""

UNKNOWN_KEY = "unknown key"
"""The requester recorded for a key that names no key of this platform (forged or garbage)."""

BLANK_BASIS = "basis must name the legal basis (a non-blank string), or be left out"

OUTCOME_READERS = ("department", "administrator", "subject")
PLATFORM = "credit_platform"
"""The department the platform's own commands, and subjects' grants over HTTP, are filed as."""


_held: ContextVar[list[dict[str, Any]] | None] = ContextVar("held_query_records", default=None)
"""The records ``QueryService.holding`` collects in the current context instead of writing them."""


@dataclass(frozen=True)
class Answer:
    """What the query service answers: an outcome from ``OUTCOMES`` and the body to return."""

    outcome: str
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.outcome == OK


def unrecorded() -> Answer:
    """The answer to a query whose record could not be written: unavailable, and nothing returned."""
    return Answer(
        UNAVAILABLE,
        error_body("audit_unavailable", "", "the query could not be recorded, so nothing is returned"),
    )


class QueryService:
    """Every answer carrying credit data, or refusing to, is recorded in the ledger first."""

    def __init__(
        self,
        ledger: CreditLedger,
        views: ReadModels,
        *,
        clock: Callable[[], datetime] = utc_now,
        key_cache_seconds: float = 0.0,
    ) -> None:
        """``key_cache_seconds``: how long a key found valid is accepted without reading it again
        (``ledger.application.keys.KeyCache``; a serving process's, 0 everywhere else)."""
        self.ledger = ledger
        self.views = views
        self.catalogue = ledger.catalogue
        self.clock = clock
        self.key_cache = KeyCache(ledger.keys, key_cache_seconds)

    # -- who is asking ---------------------------------------------------------------------

    def authenticate(self, api_key: str | None) -> Principal | None:
        """The caller's principal; the public without a key; None for a key that is not valid."""
        return self.key_cache.authenticate(api_key)

    def authenticate_for(self, api_key: str | None, endpoint: str, *, channel: str) -> Principal | Answer:
        """The caller's principal; a key that is not valid is recorded as refused and answered 401."""
        principal = self.authenticate(api_key)
        if principal is not None:
            return principal
        caller, why = self._unknown_caller(api_key)
        decision = Decision.refuse("invalid_key", why)
        refused = Answer(NOT_AUTHENTICATED, error_body("invalid_key", "", "the API key is not valid"))
        failed = self._record(caller, endpoint, decision, channel=channel, subject_key=None, returned=[])
        return failed or refused

    def _unknown_caller(self, api_key: str | None) -> tuple[Principal, str]:
        """Who a refused key claims to be: its key id when that names a real key, else unknown."""
        parts = (api_key or "").split("_", 2)
        row = None
        if len(parts) == 3 and parts[0] == KEY_PREFIX and 0 < len(parts[1]) <= 32:
            row = self.ledger.keys.key(parts[1])
        if row is None:
            return Principal(UNKNOWN_KEY, "unknown", "unknown"), "not a key of this platform"
        why = "the key was revoked" if row["revoked_at"] else "the key's secret does not match"
        return Principal(f"key:{row['key_id']}", row["role"], row["organisation"]), why

    def refuse(
        self,
        principal: Principal | None,
        endpoint: str,
        *,
        code: str,
        message: str,
        channel: str,
        api_key: str | None = None,
    ) -> Answer | None:
        """Record a refusal decided outside the service (bad input, an internal error).

        ``principal`` None: the caller could not be authenticated; the record names the key as
        ``authenticate_for`` does. Returns the unavailable Answer if the record cannot be written.
        """
        who = principal if principal is not None else self._unknown_caller(api_key)[0]
        decision = Decision.refuse(code, message)
        return self._record(who, endpoint, decision, channel=channel, subject_key=None, returned=[])

    # -- recording -------------------------------------------------------------------------

    def _record(
        self,
        principal: Principal,
        endpoint: str,
        decision: Decision,
        *,
        channel: str,
        outcome: str | None = None,
        reason: str | None = None,
        **fields: Any,
    ) -> Answer | None:
        """Write the query record; an Answer (unavailable) if it cannot be written, so nothing is returned."""
        record = {
            **principal.audit_fields(),
            "endpoint": endpoint,
            "outcome": outcome or (ALLOWED if decision.allowed else REFUSED),
            "reason": reason
            or (decision.code if decision.allowed else f"{decision.code}: {decision.reason}"),
            "channel": channel,
            "recorded_at": self.clock().isoformat(),
            **fields,
        }
        if principal.host is not None:  # the host's operator: which machine (after what every record has)
            record["host"] = principal.host
        held = _held.get()
        if held is not None:
            held.append(record)  # the caller of holding() writes it before answering
            return None
        try:
            self.ledger.record_query(record)
        except Exception:
            log.exception("a %s query could not be recorded; it was refused and returned nothing", endpoint)
            return unrecorded()
        return None

    @contextmanager
    def holding(self) -> Iterator[list[dict[str, Any]]]:
        """Within it, the records this service would write are collected in the list yielded
        instead, for the caller to write, several answers' records in one transaction (the HTTP
        server's group commit, ``streams.register``).

        What the service returns inside is then an answer that may be given only once every record
        collected is durably written; if they cannot be, the caller answers ``unrecorded()``
        instead, as the service would have. Per context (a ``ContextVar``): concurrent requests
        on one event loop each hold their own."""
        held: list[dict[str, Any]] = []
        token = _held.set(held)
        try:
            yield held
        finally:
            _held.reset(token)

    def record(self, principal: Principal, endpoint: str, decision: Decision, **fields: Any) -> Answer | None:
        """Record an answer or refusal another service decided (a check); unavailable if it cannot be."""
        return self._record(principal, endpoint, decision, **fields)

    def refused(self, decision: Decision) -> Answer:
        """The answer to a refusal: 401 for want of a key, 403 otherwise."""
        return self._refused(decision)

    def _refused(self, decision: Decision) -> Answer:
        outcome = NOT_AUTHENTICATED if decision.code == "not_authenticated" else FORBIDDEN
        return Answer(outcome, error_body(decision.code, "", decision.reason))

    def _refusal(
        self,
        principal: Principal,
        endpoint: str,
        decision: Decision,
        *,
        channel: str,
        subject_key: str | None = None,
    ) -> Answer:
        """Record a refusal the service decided, and answer it (or unavailable, if not recorded)."""
        failed = self._record(
            principal, endpoint, decision, channel=channel, subject_key=subject_key, returned=[]
        )
        return failed or self._refused(decision)

    # -- a subject's status ------------------------------------------------------------------

    def status(
        self,
        principal: Principal,
        code: Any,
        *,
        purpose: Any = None,
        basis: Any = None,
        authorisation_id: Any = None,
        channel: str = "http",
        as_of: Any = None,
    ) -> Answer:
        """A subject's status, if the principal may see it; refused (and recorded) otherwise.

        The arguments come from a request body, so their types are checked here: a value of the
        wrong type, or a blank basis, is refused with ``invalid_field`` naming it, and recorded.
        """
        now = self.clock()
        today = local_date(now)
        problem = _request_problem(
            purpose=purpose, basis=basis, authorisation_id=authorisation_id, as_of=as_of
        )
        request = {
            "purpose": purpose if isinstance(purpose, str) or purpose is None else echo(purpose),
            "basis": basis if isinstance(basis, str) or basis is None else echo(basis),
            "authorisation_id": (
                authorisation_id
                if isinstance(authorisation_id, str) or authorisation_id is None
                else echo(authorisation_id)
            ),
            "as_of": as_of.isoformat()
            if isinstance(as_of, datetime)
            else (None if as_of is None else echo(as_of)),
        }
        if problem is not None:
            decision = Decision.refuse(problem.code, problem.message)
            return self._record(
                principal, "status", decision, channel=channel, subject_key=None, returned=[], **request
            ) or Answer(INVALID, error_body(problem.code, problem.field, problem.message))
        try:
            subject = parse_subject_code(code, today=today, field="subject.id")
        except LedgerError as exc:
            decision = Decision.refuse(exc.code, exc.message)
            return self._record(
                principal, "status", decision, channel=channel, subject_key=None, returned=[], **request
            ) or Answer(INVALID, error_body(exc.code, exc.field, exc.message))
        key = str(self.ledger.key_of(subject))
        state = self.views.subject(key)
        decision = decide_status(
            principal,
            subject_key=key,
            subject_kind=state["kind"] if state else subject.kind.value,
            purpose=purpose,
            basis=basis,
            authorisation_id=authorisation_id,
            authorisations=(state or {}).get("authorisations", {}),
            purposes=self.catalogue.latest.query_purposes,
            today=today,
        )
        view = None
        if decision.allowed:
            if as_of is not None:
                view = self.views.status_as_of(key, as_of)
            elif state is not None:
                view = self.views.status(key, today, state=state)
        returned = ["status"] if view else []
        if view:  # so an auditor's replay can recompute exactly this answer and compare
            request["ledger_version"] = view["ledger_version"]
            request["view_digest"] = content_digest(view)
        return self._file_answer(
            principal,
            "status",
            decision,
            view,
            subject=subject,
            field="subject.id",
            channel=channel,
            subject_key=key,
            returned=returned,
            **request,
        )

    def _file_answer(
        self,
        principal: Principal,
        endpoint: str,
        decision: Decision,
        view: dict[str, Any] | None,
        *,
        subject: SubjectCode,
        field: str,
        channel: str,
        **fields: Any,
    ) -> Answer:
        """Record a read of one subject's file, then answer it: the refusal; ``no_file`` (recorded
        as ``answered``: allowed, but nothing to return, not the same as an answer that carried
        data); or the view, opened."""
        no_file = f"there is no credit file for {subject.masked}"
        empty = decision.allowed and not view
        failed = self._record(
            principal,
            endpoint,
            decision,
            channel=channel,
            outcome=ANSWERED if empty else None,
            reason=f"no_file: {no_file}" if empty else None,
            **fields,
        )
        if failed:
            return failed
        if not decision.allowed:
            return self._refused(decision)
        if view is None:
            return Answer(NOT_FOUND, error_body("no_file", field, no_file))
        return self._revealed(view)

    def public(self, body: dict[str, Any]) -> Answer:
        """Public information (双公示 items in their publicity period, list entries, a public search's
        findings) opened for anyone: not a query of the register, since the law publishes it.

        The caller chooses what is public (``streams.web.publicity.public_item``, the list rows);
        this is the same opening path as every recorded answer, so a shredded value reads
        ``SHREDDED`` and an altered one fails the answer (``unavailable``), never showing ciphertext."""
        return self._revealed(body)

    def _revealed(self, body: dict[str, Any]) -> Answer:
        """The answer with its sealed personal fields opened for the caller the service let in.

        Views (and the read store under them) hold ciphertext; only an answer the register has
        recorded carries clear text. A ciphertext that fails its GCM tag fails the answer and
        names the field, as any other integrity failure does."""
        try:
            return Answer(OK, self.ledger.revealed(body))
        except SealedValueAltered as exc:
            log.error("integrity failure in a view: %s", exc)
            return Answer(UNAVAILABLE, error_body("integrity_failure", "", str(exc)))

    # -- the subject's own -------------------------------------------------------------------

    def me(self, principal: Principal, what: str, *, channel: str = "http") -> Answer:
        """``status``, ``queries`` (who looked at my file), ``report`` (file, status, lists, queries)
        or ``overview`` (the portal's page: the report's content without using up a free report)."""
        endpoint = f"me.{what}"
        decision = decide_endpoint(principal, endpoint)
        key = principal.subject_key
        if not decision.allowed or key is None:
            return self._refusal(principal, endpoint, decision, channel=channel, subject_key=key)
        today = local_date(self.clock())
        body: dict[str, Any] = {}
        if what in ("status", "report", "overview") and (view := self.views.status(key, today)) is not None:
            body["status"] = view
        if what in ("queries", "report", "overview"):
            since = f"{today.year - 2}-{today.month:02d}-{today.day:02d}"  # two years, as credit bureaus show
            body["queries"] = [
                _as_seen_by_subject(q) for q in self.views.queries(subject_key=key, since=since)
            ]
        if what in ("report", "overview"):
            year_start = f"{today.year}-01-01"
            used = len(self.views.queries(subject_key=key, endpoint="me.report", since=year_start))
            used += what == "report"  # this one
            body["report"] = {
                "number_this_year": used,
                "free": used <= FREE_REPORTS_PER_YEAR,
                "free_per_year": FREE_REPORTS_PER_YEAR,
            }
            body["lists"] = self.views.memberships(key, today)
            body["shredded"] = self.views.shredded(key)
        returned = sorted(body)
        failed = self._record(
            principal,
            endpoint,
            decision,
            channel=channel,
            subject_key=key,
            returned=returned,
            purpose=SELF_INQUIRY,
        )
        return failed or self._revealed(body)

    def page(
        self,
        principal: Principal,
        endpoint: str,
        read: Callable[[], dict[str, Any]],
        *,
        channel: str = "portal",
        subject_key: str | None = None,
        purpose: str | None = None,
    ) -> Answer:
        """A page of non-public figures (a department's dashboard, a subject's applications):
        decided, read, recorded with its ``purpose`` when it has one, answered."""
        decision = decide_endpoint(principal, endpoint)
        if not decision.allowed:
            return self._refusal(principal, endpoint, decision, channel=channel, subject_key=subject_key)
        body = read()
        more = {"purpose": purpose} if purpose else {}
        failed = self._record(
            principal,
            endpoint,
            decision,
            channel=channel,
            subject_key=subject_key,
            returned=sorted(body),
            **more,
        )
        return failed or self._revealed(body)

    def file(
        self,
        principal: Principal,
        subject: SubjectCode,
        read: Callable[[], dict[str, Any] | None],
        *,
        purpose: str,
        channel: str = "cli",
    ) -> Answer:
        """A subject's whole credit file as the ledger holds it, for the host's operator at the
        console (``credit-ledger file``): decided, read (``read()``, None for no file), recorded with
        the purpose, the file's version and the answer's digest, and only then opened. The subject
        sees the read among their queries, as any other query of their file."""
        decision = decide_endpoint(principal, "file")
        key = str(self.ledger.key_of(subject))
        try:
            body = read() if decision.allowed else None
        except Exception as exc:
            # Nothing is shown (a stream that no longer replays): the attempt is recorded as every
            # refusal is, naming the subject, and the caller reports what went wrong. The record
            # names the failure itself, not the caller's wrapping of it.
            failure = exc.__cause__ or exc.__context__ or exc
            cannot = Decision.refuse("internal_error", f"the file cannot be read ({type(failure).__name__})")
            self._record(
                principal, "file", cannot, channel=channel, subject_key=key, purpose=purpose, returned=[]
            )
            raise
        found = {"ledger_version": body.get("version"), "answer_digest": content_digest(body)} if body else {}
        return self._file_answer(
            principal,
            "file",
            decision,
            body,
            subject=subject,
            field="CODE",
            channel=channel,
            subject_key=key,
            purpose=purpose,
            returned=["file"] if body else [],
            **found,
        )

    def may_manage_authorisations(self, principal: Principal, *, channel: str = "http") -> Answer | None:
        """None when ``principal`` may grant or revoke on their own file; else the recorded refusal.

        A grant or revocation that is let through is a submission, so its outcome is in the
        submission register, not here.
        """
        decision = decide_endpoint(principal, "me.authorisations")
        if decision.allowed and principal.subject_key is not None:
            return None
        return self._refusal(principal, "me.authorisations", decision, channel=channel)

    # -- a department's outcomes -----------------------------------------------------------------

    def outcomes(
        self,
        principal: Principal,
        *,
        department: str | None,
        read: Callable[[str | None, str | None], dict[str, Any]],
        filters: Mapping[str, Any],
        channel: str = "http",
    ) -> Answer:
        """A department reads its own submissions' outcomes, the administrator everyone's.

        A subject reads the outcomes of their own grants and revocations (filed as the platform).
        ``read(department, subject_key)`` returns the page; it runs only once the caller may see it.
        """
        decision = _decide_outcomes(principal, department)
        if not decision.allowed:
            return self._refusal(principal, "outcomes", decision, channel=channel)
        if principal.role == "department":
            body = read(principal.organisation, None)
        elif principal.role == "subject":
            body = read(PLATFORM, principal.subject_key)
        else:
            body = read(department, None)
        failed = self._record(
            principal,
            "outcomes",
            decision,
            channel=channel,
            subject_key=principal.subject_key,
            returned=["outcomes"],
            filters={k: v for k, v in filters.items() if v is not None},
        )
        return failed or Answer(OK, body)

    def original(
        self,
        principal: Principal,
        position: int,
        *,
        read: Callable[[int], tuple[str | None, bytes | None] | None],
        channel: str = "http",
    ) -> Answer:
        """The bytes as received of the rejected outcome at ``position``, for whoever submitted it.

        Outcome messages carry a preview of a large original; its department (or the administrator)
        fetches the whole here. A message registered under no department is the administrator's.
        """
        decision = _decide_outcomes(principal, None)
        found = read(position) if decision.allowed else None
        mine = principal.role == "administrator" or (
            principal.role == "department" and found is not None and found[0] == principal.organisation
        )
        if decision.allowed and found is not None and not mine:
            decision = Decision.refuse("not_own_outcomes", "this is not one of your submissions")
        if not decision.allowed:
            return self._refusal(principal, "outcomes.original", decision, channel=channel)
        fields = {"position": position}
        failed = self._record(
            principal,
            "outcomes.original",
            decision,
            channel=channel,
            subject_key=None,
            returned=["original"] if found and found[1] is not None else [],
            filters=fields,
        )
        if failed:
            return failed
        if found is None:
            message = f"no rejected outcome with an original at position {position}"
            return Answer(NOT_FOUND, error_body("no_original", "position", message))
        if found[1] is None:
            message = (
                f"the original of the rejected outcome at position {position} was shredded at the end of "
                f"its retention ({REJECTION_RETENTION_DAYS} days after the end of the month it was "
                "rejected in; docs/privacy.md): its outcome and reason stay"
            )
            return Answer(NOT_FOUND, error_body("original_shredded", "position", message))
        return Answer(OK, {**fields, "department": found[0], "original": found[1]})

    # -- lists -------------------------------------------------------------------------------

    def lists(
        self,
        principal: Principal,
        list_name: str,
        filters: Mapping[str, str | None],
        *,
        channel: str = "http",
    ) -> Answer:
        decision = decide_endpoint(principal, "lists")
        rows = self.views.members(list_name, **filters) if decision.allowed else []
        if principal.role == "public":  # the public form: masked code and name, no linkable key
            rows = [{k: v for k, v in row.items() if k != "subject_key"} for row in rows]
        failed = self._record(
            principal,
            "lists",
            decision,
            channel=channel,
            subject_key=None,
            returned=[f"list:{list_name}"],
            filters={k: v for k, v in filters.items() if v},
        )
        if failed:
            return failed
        return self._revealed({"list": list_name, "count": len(rows), "entries": rows})

    # -- auditors ------------------------------------------------------------------------------

    def audit(
        self,
        principal: Principal,
        filters: Mapping[str, str | None],
        *,
        anomalies: bool = True,
        channel: str = "http",
    ) -> Answer:
        decision = decide_endpoint(principal, "audit.queries")
        if not decision.allowed:
            return self._refusal(principal, "audit.queries", decision, channel=channel)
        wanted: dict[str, Any] = {k: v for k, v in filters.items() if v}
        rows = self.views.queries(**wanted)
        body: dict[str, Any] = {"count": len(rows), "queries": rows}
        if anomalies:
            body["hints"] = self.views.anomaly_hints(rows)
        failed = self._record(
            principal,
            "audit.queries",
            decision,
            channel=channel,
            subject_key=None,
            returned=sorted(body),
            filters={k: v for k, v in filters.items() if v},
        )
        return failed or Answer(OK, body)


def _request_problem(*, purpose: Any, basis: Any, authorisation_id: Any, as_of: Any) -> LedgerError | None:
    """What is wrong with a status request's own fields, if anything (the first field at fault)."""
    texts = {"purpose": purpose, "basis": basis, "authorisation_id": authorisation_id}
    for field, value in texts.items():
        if value is None:
            continue
        if not isinstance(value, str):
            return InvalidInput(
                f"{field}: expected a string, got {echo(value)}", field=field, code="invalid_field"
            )
        if not value.strip():
            message = (
                BLANK_BASIS if field == "basis" else f"{field} must be a non-blank string, or be left out"
            )
            return InvalidInput(message, field=field, code="invalid_field")
    if as_of is not None and (not isinstance(as_of, datetime) or as_of.tzinfo is None):
        return InvalidInput(
            f"as_of: expected a time with a zone offset, got {echo(as_of)}",
            field="as_of",
            code="invalid_field",
        )
    return None


def _decide_outcomes(principal: Principal, department: str | None) -> Decision:
    """Outcomes carry rejected originals (identity numbers, names): each submitter reads only its own."""
    role = principal.role
    if role == "public":
        return Decision.refuse("not_authenticated", "this needs an API key: a department's key")
    if role not in OUTCOME_READERS:
        return Decision.refuse(
            "forbidden_role", f"outcomes are for the department that submitted, not role {role}"
        )
    own = {"department": principal.organisation, "subject": PLATFORM}.get(role)
    if own is not None and department not in (None, own):
        return Decision.refuse("not_own_outcomes", f"this key reads only the outcomes of {own}'s submissions")
    return Decision.allow()


def _as_seen_by_subject(q: Mapping[str, Any]) -> dict[str, Any]:
    """What a subject sees of a query about them: who (organisation, role), when, why, through what
    (``channel``: ``http``, ``portal``, or ``cli``, the command line), the outcome."""
    return {
        k: q.get(k)
        for k in ("at", "organisation", "role", "purpose", "basis", "channel", "outcome", "returned")
    }
