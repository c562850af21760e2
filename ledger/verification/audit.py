"""The audit: every hash chain, the tree, the register and every checkpoint, each problem named
and located.

The checkpoints' checks are in ``checkpoint_audit``, the register's in ``register``; this module
makes the one pass over the store that feeds them.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from ledger.application.service import CreditLedger
from ledger.domain.integrity import ChainBreak, StoredEventView, verify_streams
from ledger.verification.checkpoint_audit import anchors, check_checkpoints
from ledger.verification.checkpoints import SourcedCheckpoint
from ledger.verification.policy import WitnessPolicy
from ledger.verification.problems import Problem
from ledger.verification.register import SubmissionTally, cross_check, walk_register
from ledger.verification.sealed import SealedTally, check_sealed
from ledger.verification.transparency import PAGE, LedgerTree, hash_in_state, stored_event_hash

__all__ = ["AuditReport", "Problem", "audit"]

# --- The audit ----------------------------------------------------------------------------------


@dataclass
class AuditReport:
    """What ``audit`` found: the recomputed tree and every problem, chains first."""

    tree: LedgerTree
    events: int
    checkpoints: int
    consistency_checked: int
    problems: list[Problem]
    seconds: float
    receipts: int = 0
    sealed: SealedTally | None = None  # sealed values that opened, and those shredded

    @property
    def ok(self) -> bool:
        return not self.problems


def audit(
    ledger: CreditLedger,
    checkpoints: Sequence[SourcedCheckpoint] = (),
    public_key: str | None = None,
    *,
    page: int = PAGE,
    parallel: bool | None = None,
    origin: str | None = None,
    policy: WitnessPolicy | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Verify everything the ledger can show: every hash chain, the tree, the register and every
    checkpoint.

    Every sealed value (each event's personal fields, each rejected original) must open under
    the data key it names with its associated data; shredded ones are counted apart
    (``ledger.verification.sealed``).

    One pass over the store decodes each event once, checks its stream's chain
    (``ledger.domain.integrity.verify_streams``, as ``CreditLedger.verify`` does), tallies it under
    its submission and appends its leaf. One pass over the register checks each receipt's link and
    what it names against the tally (``register``). Then each checkpoint must be well formed,
    signed by ``public_key`` (hex), no larger than the tree and equal to the tree's root at its
    size; checkpoints of one size must agree; each checkpoint, in time order, must extend the one
    before (RFC 9162 consistency, proved from the tree and verified); and a v2 checkpoint must
    follow one that is among those read, and sign the register's link as recomputed; a v3
    checkpoint must name ``origin`` (if given), and with a witness ``policy`` every checkpoint
    must be witnessed or covered by a later one that is (``checkpoint_audit``). Every problem
    names its event (stream, version, position), its receipt (position, department, submission)
    or its checkpoint (size, time, source).

    With ``parallel`` (the default for a store another process can open, on a machine with more
    than one core) the chains are checked in a second process while this one builds the tree and
    walks the register: the same checks, on two cores. ``progress(position)`` is told how far the
    tree has read, a page at a time.
    """
    started = time.perf_counter()
    tree = LedgerTree(ledger, page=page)
    problems: list[Problem] = []
    signed_at = anchors(checkpoints)

    # A ledger being written while it is verified: every receipt up to here was committed with its
    # events before the scan below began, so the scan holds them; a later one may name events the
    # scan did not reach (its link is still checked). The register is walked after the scans, so
    # every event they read has its receipt there (committed in the same transaction).
    settled = ledger.reader.last_receipt_position()
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and type(ledger.factory).__name__ != "POPOFactory"
    if parallel:
        breaks, tally = _chains_beside(ledger, lambda: _tree_only(ledger, tree, problems, page, progress))
    else:
        tally = SubmissionTally()
        breaks = verify_streams(tally.tap(_scan(ledger, tree, problems, page, progress)))
    register = walk_register(ledger, signed_at, page=page)
    chain_problems = _chain_problems(ledger, breaks, page)
    sealed_problems, sealed = check_sealed(ledger, page)
    problems[:0] = [
        *chain_problems,
        *sealed_problems,
        *register.problems,
        *cross_check(register, tally, settled=settled),
    ]
    distinct, checked = check_checkpoints(
        tree,
        checkpoints,
        public_key,
        problems,
        chain_problems,
        register.links,
        register.end,
        origin=origin,
        policy=policy,
    )
    seconds = time.perf_counter() - started
    return AuditReport(tree, tree.size, distinct, checked, problems, seconds, register.receipts, sealed)


def _order_problem(stream: str, version: int, position: int, last: int) -> Problem:
    return Problem(
        "order",
        f"stream {stream} version {version}: position {position} follows position {last}; "
        "positions must strictly increase",
        {"stream": stream, "version": version, "position": position, "after_position": last},
    )


def _chains_beside(
    ledger: CreditLedger, meanwhile: Callable[[], None]
) -> tuple[list[ChainBreak], SubmissionTally]:
    """Check every chain in a forked process while ``meanwhile`` runs here; its breaks and tally."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(_verify_chains, dict(ledger.env), ledger.secret)
        meanwhile()
        found: tuple[list[ChainBreak], SubmissionTally] = future.result()
    return found


def _verify_chains(env: dict[str, str], secret: bytes) -> tuple[list[ChainBreak], SubmissionTally]:
    """In the second process: open the same store, check every chain (as ``CreditLedger.verify``)
    and tally the events by submission (the catalogue is not used)."""
    from ledger.application.service import CreditLedger as Ledger  # noqa: PLC0415
    from ledger.domain.catalogue import load_catalogue  # noqa: PLC0415

    mine = Ledger(catalogue=load_catalogue(), secret=secret, env=env)
    try:
        tally = SubmissionTally()
        return verify_streams(tally.tap(mine.stored_events())), tally
    finally:
        mine.close()


def _tree_only(
    ledger: CreditLedger,
    tree: LedgerTree,
    problems: list[Problem],
    page: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """The tree and the order of positions, reading each stored hash without decoding the event."""
    for position, stream, version, _topic, stored in _ordered_rows(ledger, problems, page, progress):
        tree.add(position, stream, version, stored_event_hash(stored))


def _ordered_rows(
    ledger: CreditLedger, problems: list[Problem], page: int, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, str, int, str, bytes]]:
    """Every stored event's row in ledger order, noting any position that does not increase."""
    last = 0
    while True:
        batch = ledger.reader.event_rows(last, page)
        if progress is not None:
            progress(last)
        if not batch:
            return
        for row in batch:
            position, stream, version = row[0], row[1], row[2]
            if position <= last:
                problems.append(_order_problem(stream, version, position, last))
            last = max(last, position)
            yield row


def _scan(
    ledger: CreditLedger,
    tree: LedgerTree,
    problems: list[Problem],
    page: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[StoredEventView]:
    """Every stored event decoded for the chain check, appending each one's leaf on the way."""
    decode = ledger.mapper.transcoder.decode
    for n_id, stream, version, topic, stored in _ordered_rows(ledger, problems, page, progress):
        try:
            state = decode(stored)
        except Exception as exc:  # any corruption of the stored bytes is reported, not raised
            view = StoredEventView(stream, version, topic, None, decode_error=str(exc)[:200])
            event_hash = stored_event_hash(stored)
        else:
            if isinstance(state, dict):
                view = StoredEventView(stream, version, topic, state)
            else:
                view = StoredEventView(stream, version, topic, None, decode_error="not a JSON object")
            event_hash = hash_in_state(state)
        tree.add(n_id, stream, version, event_hash)
        yield view


def _chain_problems(ledger: CreditLedger, breaks: list[ChainBreak], page: int) -> list[Problem]:
    """One problem per broken chain, with the position of the event where it breaks.

    Positions are found by a second, cheap pass (no decoding) that runs only when something broke:
    for a missing version, the position given is that of the event found in its place.
    """
    if not breaks:
        return []
    wanted = {b.stream_id: b.version for b in breaks}
    found: dict[str, int] = {}
    last = 0
    while len(found) < len(wanted):
        batch = ledger.reader.event_rows(last, page)
        if not batch:
            break
        for position, stream, stored_version, _topic, _state in batch:
            version = wanted.get(stream)
            if version is not None and stream not in found and stored_version >= version:
                found[stream] = position
        last = batch[-1][0]
    problems = []
    for b in breaks:
        at = found.get(b.stream_id)
        where = f" (position {at})" if at is not None else ""
        problems.append(
            Problem(
                "chain",
                f"stream {b.stream_id} version {b.version}{where}: {b.problem}",
                {"stream": b.stream_id, "version": b.version, "position": at, "detail": b.problem},
            )
        )
    return problems
