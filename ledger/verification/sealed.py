"""The sealed values' audit: every envelope the ledger holds opens under its key, in its place.

The hash chain covers the ciphertext, so an altered ciphertext under an intact chain means the
chain was recomputed as well (a hostile operator's rewrite; only a checkpoint shows that). This
check needs no checkpoint: each sealed value must decrypt (AES-256-GCM) under the data key it
names with its associated data (stream, event version, field path), which only the key ring's
holder can forge. A value whose key was destroyed (shredded) can no longer be told and is
counted apart; everything else is a ``sealed`` problem, named like the other integrity failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

from ledger.application.privacy import ALTERED, INBOX_FIELD, INBOX_STREAM, REJECTIONS_STREAM, SHREDDED_KEY
from ledger.application.service import CreditLedger
from ledger.domain.outcomes import CONFLICT, DECIDED, UNREGISTERED
from ledger.domain.personal import ENVELOPE_PREFIX, envelopes_in
from ledger.verification.problems import Problem

_PAGE = 5000
_T = TypeVar("_T")


@dataclass
class SealedTally:
    """How many sealed values opened in their place, and how many could not be told (shredded)."""

    opened: int = 0
    shredded: int = 0


def check_sealed(ledger: CreditLedger, page: int = _PAGE) -> tuple[list[Problem], SealedTally]:
    """Every sealed value of every stored event, every rejected original and every inbox row,
    examined by the key ring (none without one: a ledger that seals nothing has nothing to check)."""
    tally = SealedTally()
    ring = ledger.privacy
    if ring is None:
        return [], tally
    problems = []
    for values in batched(_sealed_values(ledger, page), page):
        # One store call for a page's data keys: a value's own lookup made verify ask the store
        # once a value (149,366 queries for 208k events, 13 s of its 23 s).
        ring.prefetch(_key_id(text) for _where, text, *_ in values)
        for where, text, stream, version, field in values:
            status, why = ring.examine(text, stream, version, field)
            if status == ALTERED:
                problems.append(_problem(where, stream, version, field, str(why)))
            elif status == SHREDDED_KEY:
                tally.shredded += 1
            else:
                tally.opened += 1
    return problems, tally


def batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of ``size`` (itertools.batched arrives with Python 3.12)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _key_id(envelope: str) -> str:
    """The data key an envelope names (``enc1:KEY:...``), without parsing the rest: ``examine`` does."""
    return envelope[len(ENVELOPE_PREFIX) :].split(":", 1)[0]


def _sealed_values(ledger: CreditLedger, page: int) -> Iterator[tuple[dict[str, int], str, str, int, str]]:
    """(where, envelope, stream, version, field) of every sealed value: events, originals, inbox."""
    decode = ledger.mapper.transcoder.decode
    prefix = ENVELOPE_PREFIX.encode()
    last = 0
    while batch := ledger.reader.event_rows(last, page):
        for position, stream, version, _topic, stored in batch:
            last = max(last, position)
            if prefix not in stored:  # stored as JSON: no envelope in it, no state to walk
                continue
            try:
                state = decode(stored)
            except Exception:
                continue
            for field, text in envelopes_in(state):
                yield {"position": position}, text, stream, version, field
    after = 0
    while outcomes := ledger.outcomes_after(after, limit=page):
        for position, logged in outcomes:
            after = position
            kind = logged.entry.kind
            if kind in (CONFLICT, UNREGISTERED):
                original = logged.entry.original
            elif kind == DECIDED and logged.receipt is not None:  # a duplicate shares its receipt's
                original = logged.receipt.original
            else:
                continue
            if original and original.startswith(ENVELOPE_PREFIX.encode()):
                yield {"outcome_position": position}, original.decode(), REJECTIONS_STREAM, 0, "original"
    yield from _sealed_inbox(ledger, page)


def _sealed_inbox(ledger: CreditLedger, page: int) -> Iterator[tuple[dict[str, int], str, str, int, str]]:
    """The inbox's sealed rows, each bound to its position (``BatchSealer.seal_inbox``)."""
    after = 0
    while rows := ledger.inbox.inbox_page(after, page):
        for entry in rows:
            after = entry.position
            if entry.item.value.startswith(ENVELOPE_PREFIX.encode()):
                text = entry.item.value.decode()
                yield {"inbox_position": entry.position}, text, INBOX_STREAM, entry.position, INBOX_FIELD


def _problem(where: dict[str, int], stream: str, version: int, field: str, why: str) -> Problem:
    at = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in where.items())
    return Problem(
        "sealed",
        f"stream {stream} version {version} ({at}): sealed value {field} does not open in its place: {why}",
        {"stream": stream, "version": version, **where, "field": field, "detail": why},
    )
