"""The register's part of the audit: the receipt chain, and receipts against the events they name.

A receipt is what a department's outcome rests on, so each one is checked two ways:

- **its link**: each receipt's ``chain_hash`` must be the hash of the link before it, its position
  and its content (``ledger.domain.outcomes.receipt_chain_hash``). A receipt altered in place (a
  rejection flipped to an acceptance, say) no longer matches its link; a receipt removed leaves
  the next one linked to a receipt that is not there. Someone who can write the database can
  recompute every link after the one they altered: the v2 checkpoints, which sign the link of the
  newest receipt, catch that (``checkpoint_audit``).
- **its events**: an accepted receipt must name exactly the events that carry its submission
  (``department/submission_id``), and a rejected one none; an event whose submission has no
  accepted receipt naming it is reported too.

The events' side is tallied while the chains are checked (one pass over the store): per
submission, the number of its events and the XOR of their ids' first 64 bits. Memory is one
entry per submission with events, as ``verify_streams`` keeps one per stream.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from ledger.application.service import CreditLedger
from ledger.domain.integrity import StoredEventView, event_id_key
from ledger.domain.outcomes import ACCEPTED, RECEIPT_GENESIS, receipt_chain_hash
from ledger.verification.problems import Problem

PAGE = 5000
MAX_REPORTED = 100
"""Most problems of each kind reported (a register rewritten wholesale would otherwise flood)."""


def _id_key(eid: str) -> int:
    return int(eid[:8] + eid[9:13] + eid[14:18], 16)


@dataclass
class SubmissionTally:
    """Per submission (``department/submission_id``): how many events carry it, and their ids' XOR."""

    by_submission: dict[str, tuple[int, int]] = field(default_factory=dict)

    def tap(self, views: Iterable[StoredEventView]) -> Iterator[StoredEventView]:
        """Pass the views through, counting each decoded event under its submission."""
        tally = self.by_submission
        for view in views:
            state = view.state
            submission = state.get("submission") if state is not None else None
            if submission and isinstance(submission, str):  # query records carry none
                count, xor = tally.get(submission, (0, 0))
                tally[submission] = (count + 1, xor ^ event_id_key(view.stream_id, view.version))
            yield view


@dataclass
class RegisterWalk:
    """What the walk over the register found: chain problems, its links where checkpoints look,
    its end, and per submission what its receipt names: (events, XOR of their ids, position, status)."""

    problems: list[Problem]
    links: dict[int, str]
    end: int
    receipts: int
    named: dict[str, tuple[int, int, int, str]]


class _Reporter:
    """Problems of one kind beyond ``MAX_REPORTED`` are counted, not listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str, message: str, **details: object) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] <= MAX_REPORTED:
            self.problems.append(Problem(kind, message, details))


def walk_register(ledger: CreditLedger, anchors: Collection[int] = (), *, page: int = PAGE) -> RegisterWalk:
    """Every receipt in position order, each checked against its link in the chain."""
    problems: list[Problem] = []
    report = _Reporter(problems)
    links: dict[int, str] = {}
    named: dict[str, tuple[int, int, int, str]] = {}
    wanted = set(anchors)
    link, position, receipts = RECEIPT_GENESIS, 0, 0
    while rows := ledger.reader.receipts_after(position, limit=page):
        for at, receipt in rows:
            receipts += 1
            if receipt_chain_hash(link, at, receipt) != receipt.chain_hash:
                report(
                    "receipt_chain",
                    f"receipt at position {at} ({receipt.department}/{receipt.submission_id}, "
                    f"{receipt.status}) does not match its link in the register's chain: it was altered, "
                    "or the receipt before it was removed",
                    position=at,
                    department=receipt.department,
                    submission_id=receipt.submission_id,
                )
            link = receipt.chain_hash or link
            if at in wanted:
                links[at] = receipt.chain_hash
            events = receipt.events if receipt.status == ACCEPTED else ()
            named[f"{receipt.department}/{receipt.submission_id}"] = (
                len(events),
                _xor(events),
                at,
                receipt.status,
            )
        position = rows[-1][0]
    return RegisterWalk(problems, links, position, receipts, named)


def cross_check(walk: RegisterWalk, tally: SubmissionTally, *, settled: int | None = None) -> list[Problem]:
    """Receipts against the events they name, and events against their submission's receipt.

    Receipts after ``settled`` (the register's end when the events were tallied from the start)
    may name events committed after the tally passed; only their links are checked.
    """
    problems: list[Problem] = []
    report = _Reporter(problems)
    held_all = tally.by_submission
    for name, (count, xor, at, status) in walk.named.items():
        if settled is not None and at > settled:
            continue
        held = held_all.get(name, (0, 0))
        where = f"receipt at position {at} ({name}, {status})"
        if held != (count, xor):
            other = " (other ones)" if held[0] == count else ""
            report(
                "receipt_events",
                f"{where} names {count} events, but the ledger holds {held[0]} events "
                f"of this submission{other}",
                position=at,
                submission=name,
                events_named=count,
                events_held=held[0],
            )
        elif status == ACCEPTED and count == 0:
            report(
                "receipt_events",
                f"{where} is accepted but names no events: an acceptance always adds events",
                position=at,
                submission=name,
                events_named=0,
                events_held=0,
            )
    for name, (count, _) in sorted(held_all.items()):
        if name not in walk.named:
            report(
                "receipt_events",
                f"{count} events carry submission {name}, which has no receipt in the register: "
                "its receipt was removed",
                submission=name,
                events_held=count,
            )
    return problems


def _xor(events: Iterable[str]) -> int:
    out = 0
    for eid in events:
        out ^= _id_key(eid)
    return out
