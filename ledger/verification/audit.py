"""The audit: every hash chain, the tree and every checkpoint, each problem named and located."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ledger.application.service import CreditLedger
from ledger.domain.integrity import ChainBreak, StoredEventView, verify_streams
from ledger.verification.checkpoints import KEY_FILE, KEY_VARIABLE, SourcedCheckpoint, moment
from ledger.verification.merkle import (
    Checkpoint,
    key_id,
    verify_checkpoint,
    verify_consistency,
)
from ledger.verification.transparency import PAGE, LedgerTree, hash_in_state, stored_event_hash

# --- The audit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing that does not verify: ``kind``, a sentence naming it, and its particulars."""

    kind: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.kind, "message": self.message, **self.details}


@dataclass
class AuditReport:
    """What ``audit`` found: the recomputed tree and every problem, chains first."""

    tree: LedgerTree
    events: int
    checkpoints: int
    consistency_checked: int
    problems: list[Problem]
    seconds: float

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
) -> AuditReport:
    """Verify everything the ledger can show: every hash chain, the tree, and every checkpoint.

    One pass over the store decodes each event once, checks its stream's chain
    (``ledger.domain.integrity.verify_streams``, as ``CreditLedger.verify`` does) and appends its leaf.
    Then each checkpoint must be well formed, signed by ``public_key`` (hex), no larger than the
    tree and equal to the tree's root at its size; checkpoints of one size must agree; and each
    checkpoint, in time order, must extend the one before (RFC 9162 consistency, proved from the
    tree and verified). Every problem names its event (stream, version, position) or its checkpoint
    (size, time, source).

    With ``parallel`` (the default for a store another process can open, on a machine with more
    than one core) the chains are checked in a second process while this one builds the tree:
    the same checks, on two cores.
    """
    started = time.perf_counter()
    tree = LedgerTree(ledger, page=page)
    problems: list[Problem] = []
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and type(ledger.factory).__name__ != "POPOFactory"
    if parallel:
        breaks = _chains_beside(ledger, lambda: _tree_only(ledger, tree, problems, page))
    else:
        breaks = verify_streams(_scan(ledger, tree, problems, page))
    chain_problems = _chain_problems(ledger, breaks, page)
    problems[:0] = chain_problems
    distinct, checked = _check_checkpoints(tree, checkpoints, public_key, problems, chain_problems)
    return AuditReport(tree, tree.size, distinct, checked, problems, time.perf_counter() - started)


def _order_problem(stream: str, version: int, position: int, last: int) -> Problem:
    return Problem(
        "order",
        f"stream {stream} version {version}: position {position} follows position {last}; "
        "positions must strictly increase",
        {"stream": stream, "version": version, "position": position, "after_position": last},
    )


def _chains_beside(ledger: CreditLedger, meanwhile: Callable[[], None]) -> list[ChainBreak]:
    """Run ``ledger.verify()`` in a forked process while ``meanwhile`` runs here; its chain breaks."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(_verify_chains, dict(ledger.env), ledger.secret)
        meanwhile()
        breaks: list[ChainBreak] = future.result()
    return breaks


def _verify_chains(env: dict[str, str], secret: bytes) -> list[ChainBreak]:
    """In the second process: open the same store and check every chain (the catalogue is not used)."""
    from ledger.application.service import CreditLedger as Ledger  # noqa: PLC0415
    from ledger.domain.catalogue import load_catalogue  # noqa: PLC0415

    mine = Ledger(catalogue=load_catalogue(), secret=secret, env=env)
    try:
        return mine.verify()
    finally:
        mine.close()


def _tree_only(ledger: CreditLedger, tree: LedgerTree, problems: list[Problem], page: int) -> None:
    """The tree and the order of positions, reading each stored hash without decoding the event."""
    for position, stream, version, _topic, stored in _ordered_rows(ledger, problems, page):
        tree.add(position, stream, version, stored_event_hash(stored))


def _ordered_rows(
    ledger: CreditLedger, problems: list[Problem], page: int
) -> Iterator[tuple[int, str, int, str, bytes]]:
    """Every stored event's row in ledger order, noting any position that does not increase."""
    last = 0
    while True:
        batch = ledger.reader.event_rows(last, page)
        if not batch:
            return
        for row in batch:
            position, stream, version = row[0], row[1], row[2]
            if position <= last:
                problems.append(_order_problem(stream, version, position, last))
            last = max(last, position)
            yield row


def _scan(
    ledger: CreditLedger, tree: LedgerTree, problems: list[Problem], page: int
) -> Iterator[StoredEventView]:
    """Every stored event decoded for the chain check, appending each one's leaf on the way."""
    decode = ledger.mapper.transcoder.decode
    for n_id, stream, version, topic, stored in _ordered_rows(ledger, problems, page):
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


def _cp_details(cp: Checkpoint, sources: Sequence[str]) -> dict[str, Any]:
    return {"size": cp.size, "time": cp.time, "root": cp.root, "key_id": cp.key_id, "sources": list(sources)}


def _named(cp: Checkpoint, sources: Sequence[str]) -> str:
    return f"checkpoint of size {cp.size} at {cp.time} ({', '.join(sources)})"


def _gaps(positions: Sequence[int], limit: int = 10) -> list[list[int]]:
    """Runs of positions missing between consecutive ones: ``[[first, last], ...]``."""
    out: list[list[int]] = []
    for a, b in pairwise(positions):
        if b - a > 1:
            out.append([a + 1, b - 1])
            if len(out) == limit:
                break
    return out


Sourced = tuple[Checkpoint, list[str]]


def _check_checkpoints(
    tree: LedgerTree,
    sourced: Sequence[SourcedCheckpoint],
    public_key: str | None,
    problems: list[Problem],
    chain_problems: Sequence[Problem],
) -> tuple[int, int]:
    """Append the checkpoints' problems; return (distinct checkpoints, consistency proofs checked)."""
    merged: dict[Checkpoint, list[str]] = {}
    for s in sourced:
        if s.checkpoint is None:
            message = f"{s.source}: not a checkpoint: {s.error}"
            problems.append(Problem("checkpoint_malformed", message, {"source": s.source}))
        else:
            merged.setdefault(s.checkpoint, []).append(s.source)
    if not merged:
        return 0, 0
    if public_key is None:
        problems.append(
            Problem(
                "no_public_key",
                f"{len(merged)} checkpoints cannot be checked: no public key is configured "
                f"(set {KEY_VARIABLE}, keep {KEY_FILE} in the data dir, or give the operator's public key)",
                {"checkpoints": len(merged)},
            )
        )
        return len(merged), 0
    valid = _signed(merged, public_key, problems)
    _conflicts(valid, problems)
    breaks_at = [p.details["position"] for p in chain_problems if p.details.get("position") is not None]
    bad: set[Checkpoint] = set()
    agreed = 0  # the largest size so far at which a checkpoint matches the recomputed tree
    for cp, sources in valid:
        if cp.size <= tree.size and tree.root(cp.size).hex() == cp.root:
            agreed = cp.size
        else:
            bad.add(cp)
            problems.append(_mismatch(tree, cp, sources, agreed, breaks_at))
    return len(merged), _consistency(tree, valid, bad, problems)


def _signed(
    merged: Mapping[Checkpoint, list[str]], public_key: str, problems: list[Problem]
) -> list[Sourced]:
    """The checkpoints validly signed by ``public_key``, by size then time; the others are problems."""
    try:
        operator = key_id(bytes.fromhex(public_key))
    except ValueError:
        operator = "(not a key)"
    valid: list[Sourced] = []
    for cp, sources in merged.items():
        if verify_checkpoint(cp, public_key):
            valid.append((cp, sources))
            continue
        reason = (
            f"signed by key {cp.key_id}, not by the operator's key {operator}"
            if cp.key_id != operator
            else "its signature is not valid: the checkpoint was altered or forged"
        )
        message = f"{_named(cp, sources)}: {reason}"
        problems.append(Problem("checkpoint_signature", message, _cp_details(cp, sources)))
    valid.sort(key=lambda item: (item[0].size, moment(item[0].time)))
    return valid


def _conflicts(valid: Sequence[Sourced], problems: list[Problem]) -> None:
    """Two validly signed roots for one size: the operator showed two histories."""
    by_size: dict[int, list[Sourced]] = {}
    for item in valid:
        by_size.setdefault(item[0].size, []).append(item)
    for size, group in by_size.items():
        if len({cp.root for cp, _ in group}) > 1:
            problems.append(
                Problem(
                    "checkpoint_conflict",
                    f"the operator signed {len(group)} different roots for size {size}: "
                    + "; ".join(f"{cp.root[:16]}... at {cp.time} ({', '.join(s)})" for cp, s in group)
                    + ": two histories were shown (a fork)",
                    {"size": size, "checkpoints": [_cp_details(cp, s) for cp, s in group]},
                )
            )


def _consistency(
    tree: LedgerTree, valid: Sequence[Sourced], bad: set[Checkpoint], problems: list[Problem]
) -> int:
    """Each checkpoint, in time order, must extend the one before; returns how many proofs were checked."""
    checked = 0
    in_time = sorted(valid, key=lambda item: (moment(item[0].time), item[0].size))
    for (old, old_sources), (new, new_sources) in pairwise(in_time):
        pair = {"old": _cp_details(old, old_sources), "new": _cp_details(new, new_sources)}
        if new.size < old.size:
            message = (
                f"{_named(new, new_sources)} signs fewer events than the earlier "
                f"{_named(old, old_sources)}: the log shrank"
            )
            problems.append(Problem("checkpoint_rollback", message, pair))
            continue
        if old in bad or new in bad or old.root == new.root:
            continue  # a mismatch is reported already; an identical tree needs no proof
        proof = tree.log.consistency_proof(old.size, new.size)
        checked += 1
        roots = bytes.fromhex(old.root), bytes.fromhex(new.root)
        if not verify_consistency(old.size, new.size, *roots, proof):  # pragma: no cover - both match
            message = f"{_named(new, new_sources)} is not consistent with {_named(old, old_sources)}"
            problems.append(Problem("consistency", message, pair))
    return checked


def _mismatch(
    tree: LedgerTree, cp: Checkpoint, sources: Sequence[str], agreed: int, breaks_at: Sequence[int]
) -> Problem:
    """The problem of a validly signed checkpoint that the recomputed tree does not match, located.

    Every leaf before ``agreed`` is vouched for by a matching checkpoint, so the change lies in
    leaves ``agreed`` to ``cp.size - 1`` of the current tree.
    """
    end = min(cp.size, tree.size)
    positions = tree.positions(agreed, end)
    before = tree.position_at(agreed - 1) if agreed else 0
    gaps = _gaps([before, *positions])
    details: dict[str, Any] = {
        **_cp_details(cp, sources),
        "tree_size": tree.size,
        "agrees_up_to_size": agreed,
        "first_position": positions[0] if positions else None,
        "last_position": positions[-1] if positions else None,
        "missing_positions": gaps,
    }
    if cp.size > tree.size:
        lost = cp.size - tree.size
        head = f"{_named(cp, sources)} signs {cp.size} events, but the ledger holds only {tree.size}: " + (
            "1 event was removed" if lost == 1 else f"{lost} events were removed"
        )
        kind = "checkpoint_beyond_tree"
    else:
        head = (
            f"{_named(cp, sources)} does not match the ledger: the recomputed root of the first "
            f"{cp.size} events is {tree.root(cp.size).hex()[:16]}..., the checkpoint signs {cp.root[:16]}..."
        )
        kind = "checkpoint_root"
        details["recomputed_root"] = tree.root(cp.size).hex()
    where = (
        f"leaves {agreed} to {end - 1} (positions {positions[0]} to {positions[-1]})"
        if positions
        else f"the events after leaf {agreed - 1}"
    )
    vouched = f"the checkpoint of size {agreed} still matches, so " if agreed else ""
    text = f"{head}; {vouched}an event in {where} was altered, removed, inserted or reordered"
    if gaps:
        text += "; positions missing there: " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps)
    hits = [p for p in breaks_at if (positions and positions[0] <= p <= positions[-1])]
    if hits:
        text += "; chain breaks there at positions " + ", ".join(map(str, hits[:10]))
    return Problem(kind, text, details)
