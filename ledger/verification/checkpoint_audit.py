"""The checkpoints' part of the audit: signatures, agreement with the tree, consistency, and (v2)
the chain of checkpoints and the register's anchor.

Every checkpoint gathered (from the data dir's file, ``credit.digests``, anywhere) counts once
however many sources hold it. A v2 checkpoint names the one filed before it (``prev``): a
checkpoint that names one found in none of the sources shows that a checkpoint was deleted from
them. A v2 checkpoint also signs the register's newest receipt (position and chain link): the
register as recomputed must still have that link at that position. A v3 checkpoint (a C2SP
checkpoint note) must name this ledger's origin; with a witness policy, each checkpoint must be
cosigned by enough of its witnesses, or be covered by a later checkpoint that is (both matching
the recomputed tree, the later one extends it). Copies of one v3 checkpoint from different
sources (the file, credit.digests, a witness, the HTTP API) count once, with every cosignature
any of them carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from ledger.domain.outcomes import RECEIPT_GENESIS
from ledger.verification.checkpoints import KEY_FILE, KEY_VARIABLE, SourcedCheckpoint, moment
from ledger.verification.merkle import verify_consistency
from ledger.verification.notes import ED25519, NoteSignature, note_key_id
from ledger.verification.policy import WitnessPolicy
from ledger.verification.problems import Problem
from ledger.verification.signed import NO_PREVIOUS, Checkpoint, checkpoint_hash, key_id, verify_checkpoint
from ledger.verification.transparency import LedgerTree


def anchors(sourced: Sequence[SourcedCheckpoint]) -> set[int]:
    """The register positions v2 checkpoints sign: where the register walk keeps the chain's link."""
    return {s.checkpoint.receipts for s in sourced if s.checkpoint is not None and s.checkpoint.receipts}


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


def check_checkpoints(
    tree: LedgerTree,
    sourced: Sequence[SourcedCheckpoint],
    public_key: str | None,
    problems: list[Problem],
    chain_problems: Sequence[Problem],
    register: Mapping[int, str] | None = None,
    register_end: int = 0,
    *,
    origin: str | None = None,
    policy: WitnessPolicy | None = None,
) -> tuple[int, int]:
    """Append the checkpoints' problems; return (distinct checkpoints, consistency proofs checked).

    ``register`` holds the recomputed register's chain link at each position a v2 checkpoint
    signs (see :func:`anchors`), and ``register_end`` its newest receipt's position. ``origin``
    is this ledger's log name, which every v3 checkpoint must carry (None: any); ``policy`` the
    witnesses whose cosignatures are required.
    """
    merged: dict[Checkpoint, list[str]] = {}
    cosigned: dict[Checkpoint, list[NoteSignature]] = {}
    for s in sourced:
        if s.checkpoint is None:
            message = f"{s.source}: not a checkpoint: {s.error}"
            problems.append(Problem("checkpoint_malformed", message, {"source": s.source}))
        else:
            merged.setdefault(s.checkpoint, []).append(s.source)
            cosigned.setdefault(s.checkpoint, []).extend(s.checkpoint.cosignatures)
    merged = {cp.cosigned(cosigned[cp]): sources for cp, sources in merged.items()}
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
    valid = _signed(merged, public_key, origin, problems)
    _conflicts(valid, problems)
    _chain(valid, merged, problems)
    _anchored(valid, register or {}, register_end, problems)
    breaks_at = [p.details["position"] for p in chain_problems if p.details.get("position") is not None]
    bad: set[Checkpoint] = set()
    vouched: dict[Checkpoint, Sourced | None] = {}  # each mismatch's largest smaller matching one
    agreed: Sourced | None = None  # the largest checkpoint so far that matches the recomputed tree
    for cp, sources in valid:
        if cp.size <= tree.size and tree.root(cp.size).hex() == cp.root:
            agreed = (cp, sources)
        else:
            bad.add(cp)
            vouched[cp] = agreed
    for cp, sources in valid:
        if cp in bad:
            later = next(((c, s) for c, s in valid if c not in bad and c.size > cp.size), None)
            problems.append(_mismatch(tree, cp, sources, vouched[cp], breaks_at, later))
    if policy is not None:
        _witnessed(valid, bad, policy, problems)
    return len(merged), _consistency(tree, valid, bad, problems)


def _operator_id(cp: Checkpoint, public_key: str) -> str:
    """The key id the operator's key has in ``cp``'s version (a v3 note's depends on its origin)."""
    try:
        raw = bytes.fromhex(public_key)
    except ValueError:
        return "(not a key)"
    if cp.origin is None:
        return key_id(raw)
    return f"{note_key_id(cp.origin, ED25519, raw):08x}"


def _signed(
    merged: Mapping[Checkpoint, list[str]], public_key: str, origin: str | None, problems: list[Problem]
) -> list[Sourced]:
    """The checkpoints validly signed by ``public_key`` (and naming ``origin``, for v3), by size
    then time; the others are problems."""
    valid: list[Sourced] = []
    for cp, sources in merged.items():
        operator = _operator_id(cp, public_key)
        foreign = cp.origin is not None and origin is not None and cp.origin != origin
        if not foreign and verify_checkpoint(cp, public_key):
            valid.append((cp, sources))
            continue
        if foreign:
            reason = f"it is a checkpoint of the log {cp.origin}, not of this ledger's {origin}"
        elif cp.key_id != operator:
            reason = f"signed by key {cp.key_id}, not by the operator's key {operator}"
        else:
            reason = "its signature is not valid: the checkpoint was altered or forged"
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
    tree: LedgerTree,
    cp: Checkpoint,
    sources: Sequence[str],
    vouched: Sourced | None,
    breaks_at: Sequence[int],
    later: Sourced | None = None,
) -> Problem:
    """The problem of a validly signed checkpoint that the recomputed tree does not match, located.

    Every leaf before the size of ``vouched`` (the largest smaller checkpoint that matches) is
    vouched for, so the change lies in leaves from there to ``cp.size - 1`` of the current tree.
    ``later`` is the smallest larger checkpoint that matches the tree: its tree has another root
    at ``cp.size``, so the two are inconsistent, both signed by the operator (a fork), and both
    are named.
    """
    agreed = vouched[0].size if vouched is not None else 0
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
        "agrees_with": _cp_details(*vouched) if vouched is not None else None,
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
        details["inconsistent_with"] = _cp_details(*later) if later is not None else None
    where = (
        f"leaves {agreed} to {end - 1} (positions {positions[0]} to {positions[-1]})"
        if positions
        else f"the events after leaf {agreed - 1}"
    )
    still = f"the {_named(*vouched)} still matches, so " if vouched is not None else ""
    text = f"{head}; {still}an event in {where} was altered, removed, inserted or reordered"
    if gaps:
        text += "; positions missing there: " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps)
    hits = [p for p in breaks_at if (positions and positions[0] <= p <= positions[-1])]
    if hits:
        text += "; chain breaks there at positions " + ", ".join(map(str, hits[:10]))
    if later is not None and kind == "checkpoint_root":
        text += (
            f"; it is inconsistent with the later {_named(*later)}, which matches the ledger: "
            "the operator signed both, two histories (a fork)"
        )
    return Problem(kind, text, details)


def _kafka(source: str) -> bool:
    return "@" in source and not source.startswith(("witness ", "http://", "https://"))


def _where(source: str) -> str:
    """The source a checkpoint was read from, without its line, offset or item number."""
    if source.startswith(("witness ", "http://", "https://")):
        return source.split("#", maxsplit=1)[0]
    return source.split("/", maxsplit=1)[0] if _kafka(source) else source.rsplit(":", 1)[0]


def _chain(valid: Sequence[Sourced], merged: Mapping[Checkpoint, list[str]], problems: list[Problem]) -> None:
    """Each validly signed v2 checkpoint must follow one that is here (or be first in its file)."""
    known = {checkpoint_hash(cp) for cp in merged}
    read = sorted({_where(source) for sources in merged.values() for source in sources})
    from_kafka = any(_kafka(source) for sources in merged.values() for source in sources)
    hint = "" if from_kafka else "; a checkpoint signed on another host is on credit.digests (--from-kafka)"
    for cp, sources in valid:
        prev = cp.prev or NO_PREVIOUS
        if cp.version < 2 or prev == NO_PREVIOUS or prev in known:
            continue
        message = (
            f"{_named(cp, sources)} follows a checkpoint that is in none of the sources read "
            f"({', '.join(read)}; its hash {prev[:16]}...): a checkpoint was deleted from them{hint}"
        )
        problems.append(Problem("checkpoint_missing", message, {**_cp_details(cp, sources), "prev": prev}))


def _anchored(
    valid: Sequence[Sourced], register: Mapping[int, str], register_end: int, problems: list[Problem]
) -> None:
    """Each validly signed v2 checkpoint's register anchor must still be the register's link there."""
    for cp, sources in valid:
        if cp.receipts is None:
            continue
        at, signed = cp.receipts, cp.receipts_head
        found = RECEIPT_GENESIS if at == 0 else register.get(at)
        if found == signed:
            continue
        if at > register_end:
            why = f"but the register now ends at position {register_end}: receipts were removed"
        elif found is None:
            why = f"but there is no receipt at position {at} any more: it was removed"
        else:
            why = (
                f"but the register's chain there is {found[:16]}...: a receipt at or before position "
                f"{at} was altered, removed or inserted, and the chain recomputed over it"
            )
        message = (
            f"{_named(cp, sources)} signs the register up to position {at} "
            f"(link {str(signed)[:16]}...), {why}"
        )
        problems.append(
            Problem(
                "checkpoint_receipts",
                message,
                {
                    **_cp_details(cp, sources),
                    "receipts": at,
                    "receipts_head": signed,
                    "register_end": register_end,
                },
            )
        )


def _witnessed(
    valid: Sequence[Sourced], bad: set[Checkpoint], policy: WitnessPolicy, problems: list[Problem]
) -> None:
    """Each validly signed checkpoint meets ``policy``, or a later one that does covers it (both
    matching the recomputed tree, so the later extends it); a cosignature that does not verify is
    a problem of its own (it is not counted)."""
    met: list[Checkpoint] = []
    for cp, sources in valid:
        cosigners = policy.cosigners(cp)
        for witness in cosigners.invalid:
            message = (
                f"{_named(cp, sources)}: the cosignature of witness {witness.name} does not verify "
                "under its key: it was altered or forged"
            )
            problems.append(
                Problem(
                    "checkpoint_cosignature", message, {**_cp_details(cp, sources), "witness": witness.name}
                )
            )
        if len(cosigners.valid) >= policy.minimum:
            met.append(cp)
    for cp, sources in valid:
        if cp in met or (cp not in bad and any(w.size >= cp.size and w not in bad for w in met)):
            continue
        cosigners = policy.cosigners(cp)
        names = ", ".join(w.name for w in cosigners.valid) or "none"
        missing = ", ".join(w.name for w in (*cosigners.missing, *cosigners.invalid))
        message = (
            f"{_named(cp, sources)} is cosigned by {len(cosigners.valid)} of the witnesses where the policy "
            f"wants {policy.describe()} (cosigned by: {names}; not by: {missing}), and no later checkpoint "
            "that meets the policy covers it"
        )
        details = {
            **_cp_details(cp, sources),
            "cosigned_by": [w.name for w in cosigners.valid],
            "not_cosigned_by": [w.name for w in (*cosigners.missing, *cosigners.invalid)],
            "required": policy.minimum,
        }
        problems.append(Problem("witness_policy", message, details))
