"""Which event fields are personal data, declared once per event type and version, and how they are sealed.

The credit file's events carry personal content (names, free-text grounds, statements,
responsible persons) beside what the rules need (categories, dates, providers). Every personal
field is listed here, per event type and ``class_version``; before an event is hashed its
personal fields are replaced by envelopes (``enc1:...`` strings, AES-256-GCM under a data key
of the subject's retention unit), so the hash chain and the Merkle tree cover ciphertext and
stay valid once a unit's key is destroyed (crypto-shredding). The cryptography is the
application's (``ledger.application.privacy``); the domain knows only this declaration, the
envelope's shape and the ``FieldSealer`` port.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol
from uuid import UUID

ENVELOPE_PREFIX = "enc1:"
"""How every sealed value begins: ``enc1:<key id>:<version>:<field>:<base64 nonce+ciphertext+tag>``."""

SHREDDED = "[shredded]"
"""What a view shows in place of a value whose data key was destroyed."""

DataKeyRow = tuple[str, str, str, str, bytes | None, str, str | None]
"""One data key: (key id, stream, unit, master key id, wrapped key or None once shredded, created
at, shredded at)."""


FILE_UNIT = "file"
"""The retention unit of what belongs to the file itself (the subject's name, free statements)."""


def record_unit(record: str) -> str:
    """The retention unit of a record and what belongs to it (objections, repairs, statements on it)."""
    return f"record:{record}"


@dataclass(frozen=True)
class Declaration:
    """The personal fields of one event type at one version.

    ``fields`` are paths into the event's state: ``grounds``, ``fields.title``, and ``[]`` for
    every item of a list (``fields.responsible_persons[].name``). ``unit`` names the state field
    holding the record key (``record``), or is None when the event belongs to the file's unit;
    ``opens`` says the event starts its unit, so its data key is new. ``organisation_clear``
    names the fields that stay in clear when the subject is an organisation: an organisation's
    name and its case numbers are public and identify no natural person (the names of its
    responsible persons and free text stay sealed).
    """

    fields: tuple[str, ...]
    unit: str | None = "record"
    opens: bool = False
    organisation_clear: tuple[str, ...] = ()


PERSONAL: dict[tuple[str, int], Declaration] = {
    ("Opened", 1): Declaration(
        ("name", "checksum_override"), unit=None, opens=True, organisation_clear=("name",)
    ),
    ("RecordFiled", 1): Declaration(
        ("fields.title", "fields.responsible_persons[].name"), unit="record", opens=True
    ),
    ("RecordCorrected", 1): Declaration(("changes.title", "changes.responsible_persons[].name", "reason")),
    ("ObjectionRaised", 1): Declaration(("grounds",)),
    ("ObjectionResolved", 1): Declaration(("explanation",)),
    ("StatementAdded", 1): Declaration(("text",)),
    ("RepairRequested", 1): Declaration(("measures_taken",)),
    ("RepairGranted", 1): Declaration(("reason",)),
    ("RepairRefused", 1): Declaration(("reason",)),
    ("RecordRevoked", 1): Declaration(("reason",)),
    # A department's feedback on a measure notice: its free-text reason, and its case number (which
    # names a person's court or administrative case) unless the subject is an organisation. The
    # feedback answers a designation, not one record: it is sealed under the file's unit.
    ("FeedbackReported", 1): Declaration(
        ("business_reference", "reason"), unit=None, organisation_clear=("business_reference",)
    ),
}
"""Every personal field of the credit file's events, by (event type, class_version).

What stays in clear is what the rules and the public lists need and what identifies no one
beyond the pseudonymous subject key: kinds, categories, domains, severities, dates, providers,
document numbers, legal bases, masked codes, list designations, authorisations' organisation
and purpose. A new event type or version with personal fields gets its entry here; an event
type absent from this table has none.
"""


class FieldSealer(Protocol):
    """Seals one personal value of the event at ``version`` of ``stream`` (the application's key ring)."""

    def seal(
        self, stream: UUID | str, unit: str, version: int, field: str, value: Any, *, opens: bool
    ) -> str: ...


def unit_of(declaration: Declaration, state: Mapping[str, Any]) -> str:
    """The retention unit an event's personal fields are sealed under."""
    if declaration.unit is None:
        return FILE_UNIT
    record = state.get(declaration.unit)
    return FILE_UNIT if record is None else record_unit(str(record))


def seal_personal(
    sealer: FieldSealer,
    event_type: str,
    class_version: int,
    stream: UUID,
    version: int,
    state: dict[str, Any],
    subject_kind: str = "person",
) -> None:
    """Replace the personal fields of ``state`` (an event's, about to be hashed) by envelopes, in place.

    Containers on the way are copied before they change, so a dict the caller still holds (a
    command's fields) keeps its clear values. ``subject_kind`` is the file's (person or organisation)."""
    declaration = PERSONAL.get((event_type, class_version))
    if declaration is None:
        return
    unit = unit_of(declaration, state)
    clear = declaration.organisation_clear if subject_kind == "organisation" else ()
    place = _Place(sealer, str(stream), unit, version, declaration.opens)
    for path, steps in _steps_of(declaration):
        if path not in clear:
            place.seal(state, steps, 0, "")


_STEPS: dict[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]] = {}


def _steps_of(declaration: Declaration) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each declared path with its steps (``[]`` a step of its own), split once per declaration."""
    found = _STEPS.get(declaration.fields)
    if found is None:
        found = _STEPS[declaration.fields] = tuple(
            (path, tuple(path.replace("[]", ".[]").split("."))) for path in declaration.fields
        )
    return found


@dataclass(frozen=True, slots=True)
class _Place:
    """Where one event's values are sealed: its stream, unit and version (the associated data)."""

    sealer: FieldSealer
    stream: str
    unit: str
    version: int
    opens: bool

    def seal(self, container: dict[str, Any], steps: tuple[str, ...], i: int, prefix: str) -> None:
        """Seal every value ``steps[i:]`` reach in ``container``; containers on the way are copied."""
        head = steps[i]
        if head not in container:
            return
        value = container[head]
        path = prefix + head
        if i + 1 == len(steps):
            if value is not None and not (isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)):
                container[head] = self.sealer.seal(
                    self.stream, self.unit, self.version, path, value, opens=self.opens
                )
            return
        if steps[i + 1] == "[]":
            if not isinstance(value, list):
                return
            items = container[head] = [dict(item) if isinstance(item, dict) else item for item in value]
            if i + 2 < len(steps):
                for n, item in enumerate(items):
                    if isinstance(item, dict):
                        self.seal(item, steps, i + 2, f"{path}.{n}.")
            return
        if isinstance(value, dict):
            inner = container[head] = dict(value)
            self.seal(inner, steps, i + 1, path + ".")


def is_envelope(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)


@dataclass(frozen=True)
class Envelope:
    """A sealed value's parts: which data key, and where it was sealed (the associated data)."""

    key_id: str
    version: int
    field: str
    blob: str

    @classmethod
    def parse(cls, text: str) -> Envelope:
        """The parts of ``text``; ValueError if it is not an envelope."""
        parts = text.split(":")
        if len(parts) != 5 or parts[0] + ":" != ENVELOPE_PREFIX or not parts[2].isdigit():
            msg = "not a sealed value (enc1:key:version:field:data)"
            raise ValueError(msg)
        return cls(parts[1], int(parts[2]), parts[3], parts[4])

    def __str__(self) -> str:
        return f"{ENVELOPE_PREFIX}{self.key_id}:{self.version}:{self.field}:{self.blob}"


def envelopes_in(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, envelope) of every sealed value anywhere in ``value`` (an event's state, a view)."""
    if isinstance(value, str):
        if value.startswith(ENVELOPE_PREFIX):
            yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from envelopes_in(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from envelopes_in(v, f"{path}.{i}" if path else str(i))


def shred_due(ended_on: str, retention_years: int) -> str:
    """The day a record that ended on ``ended_on`` (an ISO time or date) reaches the end of its retention."""
    ended = date.fromisoformat(ended_on[:10])
    try:
        return ended.replace(year=ended.year + retention_years).isoformat()
    except ValueError:  # 29 February into a year without one
        return ended.replace(year=ended.year + retention_years, day=28).isoformat()
