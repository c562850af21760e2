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

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
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
    """Seals the personal values of one event (the application's key ring).

    ``sealing`` gives the function that seals one value of the event at ``version`` of
    ``stream`` under ``unit``'s data key: called with the value's field (its path in the
    event) and the value, it returns the envelope. The unit's key is looked up (or created)
    on the first value only, so an event whose personal fields are all absent makes no key.
    ``key`` is the id of the data key the file's earlier events of the unit were sealed under
    (``CreditFile.unit_keys``), None if none of them sealed anything: the file is the directory
    of its own keys."""

    def sealing(
        self, stream: str, unit: str, version: int, *, opens: bool, key: str | None = None
    ) -> Callable[[str, Any], str]: ...

    def key_of(self, stream: str, unit: str) -> str | None:
        """The id of the data key the values of ``unit`` of ``stream`` were last sealed under here."""
        ...


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
    stream: UUID | str,
    version: int,
    state: dict[str, Any],
    subject_kind: str = "person",
    unit_keys: MutableMapping[str, str] | None = None,
) -> None:
    """Replace the personal fields of ``state`` (an event's, about to be hashed) by envelopes, in place.

    Containers on the way are copied before they change, so a dict the caller still holds (a
    command's fields) keeps its clear values. ``subject_kind`` is the file's (person or organisation);
    ``unit_keys`` the file's data key of each unit its events sealed values under: the key is
    taken from it, and a new unit's key is added to it (``sealed_unit_key`` does the same for the
    events a file is loaded from)."""
    plan = _PLANS.get((event_type, class_version, subject_kind == "organisation"))
    if plan is None:
        return
    declaration, nodes = plan
    unit = unit_of(declaration, state)
    key = unit_keys.get(unit) if unit_keys else None
    sid = stream if isinstance(stream, str) else str(stream)
    _apply(nodes, state, sealer.sealing(sid, unit, version, opens=declaration.opens, key=key), "")
    if key is None and unit_keys is not None and (made := sealer.key_of(sid, unit)) is not None:
        unit_keys[unit] = made


def sealed_unit_key(event_type: str, class_version: int, state: Mapping[str, Any]) -> tuple[str, str] | None:
    """(unit, data key id) of the first value sealed in an event's ``state``; None if it seals none.

    A file learns the keys of its units from its own events, as they are recorded and as they are
    loaded: a new data key's id is not derived from the stream and unit (it is ordered by time, so
    the key store's index takes its inserts at one end), and the file is where it is found again."""
    plan = _PLANS.get((event_type, class_version, False))  # a person's plan: every declared path
    if plan is None:
        return None
    declaration, nodes = plan
    text = _first_envelope(nodes, state)
    if text is None:
        return None
    return unit_of(declaration, state), text[len(ENVELOPE_PREFIX) : text.index(":", len(ENVELOPE_PREFIX))]


def _first_envelope(nodes: tuple[_Node, ...], container: Mapping[str, Any]) -> str | None:
    for key, _field, kind, under in nodes:
        value = container.get(key)
        if value is None:
            continue
        if kind == _LEAF:
            if value.__class__ is str and value.startswith(ENVELOPE_PREFIX):
                return value
        elif kind == _DICT:
            if value.__class__ is dict and (found := _first_envelope(under, value)) is not None:
                return found
        elif value.__class__ is list:
            for item in value:
                if item.__class__ is dict and (found := _first_envelope(under, item)) is not None:
                    return found
    return None


_LEAF, _DICT, _LIST = 0, 1, 2

_Node = tuple[str, str, int, tuple[Any, ...]]
"""One step of a plan: (key in its container, field path from the nearest list item or the
event, what the value is, the plan of what is under it)."""


def _plan(paths: Iterable[str], base: str = "") -> tuple[_Node, ...]:
    """The declared ``paths`` as a tree, grouped by their first step: a container shared by two
    paths (``fields`` of ``fields.title`` and ``fields.responsible_persons[].name``) is copied
    once. ``base`` is the path of the container the plan applies to (empty under a list item,
    whose path is only known when sealing)."""
    heads: dict[str, list[str]] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        heads.setdefault(head, []).append(rest)
    nodes = []
    for head, rests in heads.items():
        listed = head.endswith("[]")
        key = head.removesuffix("[]")
        field = base + key
        if listed:
            nodes.append((key, field, _LIST, _plan([r for r in rests if r])))
        elif rests == [""]:
            nodes.append((key, field, _LEAF, ()))
        elif "" in rests:
            msg = f"{field} is declared both as a personal value and as a container of some"
            raise ValueError(msg)
        else:
            nodes.append((key, field, _DICT, _plan(rests, field + ".")))
    return tuple(nodes)


def _apply(
    nodes: tuple[_Node, ...], container: dict[str, Any], seal: Callable[[str, Any], str], prefix: str
) -> None:
    """Seal every value ``nodes`` reach in ``container``; containers on the way are copied."""
    for key, field, kind, under in nodes:
        value = container.get(key)
        if value is None:
            continue
        if kind == _LEAF:
            if not (value.__class__ is str and value.startswith(ENVELOPE_PREFIX)):
                container[key] = seal(prefix + field, value)
        elif kind == _DICT:
            if isinstance(value, dict):
                inner = container[key] = dict(value)
                _apply(under, inner, seal, prefix)
        elif isinstance(value, list):
            items = container[key] = [dict(item) if isinstance(item, dict) else item for item in value]
            if under:
                for n, item in enumerate(items):
                    if isinstance(item, dict):
                        _apply(under, item, seal, f"{prefix}{field}.{n}.")


_PLANS: dict[tuple[str, int, bool], tuple[Declaration, tuple[_Node, ...]]] = {
    (event_type, class_version, organisation): (
        declaration,
        _plan(p for p in declaration.fields if not (organisation and p in declaration.organisation_clear)),
    )
    for (event_type, class_version), declaration in PERSONAL.items()
    for organisation in (False, True)
}
"""Each declaration compiled once, for a person's file and for an organisation's (whose
``organisation_clear`` fields stay in clear), so sealing an event walks only its own paths."""


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


def envelopes_in(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, envelope) of every sealed value anywhere in ``value`` (an event's state, a view), in
    document order. ``verify`` walks every stored event with it, so the walk tests exact types first
    (what JSON decodes to) and builds a path only for what it descends into or returns."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        if value.startswith(ENVELOPE_PREFIX):
            found.append((path, value))
    elif isinstance(value, Mapping | list | tuple):
        _walk(value, path, found)
    return found


_SCALARS = (int, float, bool, type(None))


def _walk(value: Mapping[Any, Any] | Sequence[Any], path: str, found: list[tuple[str, str]]) -> None:
    pairs = value.items() if isinstance(value, Mapping) else enumerate(value)
    for k, v in pairs:
        kind = type(v)
        if kind is str or (kind not in _SCALARS and isinstance(v, str)):
            if v.startswith(ENVELOPE_PREFIX):
                found.append((f"{path}.{k}" if path else str(k), v))
        elif kind is dict or kind is list or (kind not in _SCALARS and isinstance(v, Mapping | list | tuple)):
            _walk(v, f"{path}.{k}" if path else str(k), found)


def shred_due(ended_on: str, retention_years: int) -> str:
    """The day a record that ended on ``ended_on`` (an ISO time or date) reaches the end of its retention."""
    ended = date.fromisoformat(ended_on[:10])
    try:
        return ended.replace(year=ended.year + retention_years).isoformat()
    except ValueError:  # 29 February into a year without one
        return ended.replace(year=ended.year + retention_years, day=28).isoformat()
