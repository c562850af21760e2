"""The ledger's Merkle view: its tree over the global order, signed checkpoints, proofs and the audit."""

from __future__ import annotations

import bisect
import contextlib
import multiprocessing
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from ledger.application import CreditLedger
from ledger.integrity import ChainBreak, StoredEventView, event_id, verify_streams
from ledger.merkle import (
    Checkpoint,
    CheckpointSigner,
    MerkleLog,
    generate_seed,
    key_id,
    leaf_hash,
    ledger_leaf,
    verify_checkpoint,
    verify_consistency,
)

CHECKPOINTS_FILE = "checkpoints.jsonl"
"""Where a data dir keeps its signed checkpoints, one JSON object per line, append-only."""

KEY_FILE = "checkpoint-key.seed"
"""Where a data dir keeps the operator's Ed25519 seed (hex) when ``CREDIT_CHECKPOINT_KEY`` is unset."""

KEY_VARIABLE = "CREDIT_CHECKPOINT_KEY"
"""The environment variable that holds the operator's Ed25519 seed as 64 hex digits."""

_PAGE = 5000


class TransparencyError(Exception):
    """A proof or lookup cannot be given; the message says why in terms a caller can act on."""


class UnknownEvent(TransparencyError, LookupError):
    """No event in the tree has that position, event id, or stream and version."""


class ProofRangeError(TransparencyError, ValueError):
    """The sizes asked for are not a valid pair for this tree (too large, or out of order)."""


class StoreChanged(TransparencyError):
    """The stored event no longer matches the leaf the tree committed to (the store was altered)."""


class KeyConfigError(ValueError):
    """The configured checkpoint key is unusable; the message names where it came from."""


# --- Leaves -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """What one leaf commits to: an event's position in the ledger, its stream, version and hash."""

    position: int
    stream: str
    version: int
    event_hash: str

    def data(self) -> bytes:
        """The leaf's bytes (canonical JSON), as hashed into the tree."""
        return ledger_leaf(self.position, self.stream, self.version, self.event_hash)

    def to_dict(self) -> dict[str, Any]:
        """The leaf as it appears in a proof file."""
        return {
            "position": self.position,
            "stream": self.stream,
            "version": self.version,
            "event_hash": self.event_hash,
        }


def stored_event_hash(state: bytes) -> str:
    """The ``event_hash`` stored in an event's state, read with orjson alone ("" if there is none).

    The tree commits to the hash as stored and never recomputes it: whether it matches the
    event's content is the hash chain's question (``ledger.integrity``), not the tree's.
    """
    try:
        decoded = orjson.loads(state)
    except orjson.JSONDecodeError:
        return ""
    return _hash_in(decoded)


def _hash_in(state: object) -> str:
    value = state.get("event_hash") if isinstance(state, dict) else None
    return value if isinstance(value, str) else ""


def _id_key(eid: str) -> int:
    """The first 64 bits of a canonical event id, as the lookup index keeps them."""
    return int(eid[:8] + eid[9:13] + eid[14:18], 16)


# --- The tree -----------------------------------------------------------------------------------


class LedgerTree:
    """The RFC 9162 Merkle tree over the ledger's events in ledger (notification) order.

    Leaf ``i`` is the ``i``-th event in position order (counted from 0, so the index is gap-free
    even where PostgreSQL skipped positions), and its bytes are
    ``ledger_leaf(position, stream, version, stored event_hash)``. ``catch_up`` appends the events
    recorded since the last one it appended. Thread-safe: every method holds the tree's lock.

    Memory: 8 bytes per leaf for its position plus about 64 for the Merkle log; an index from event
    ids to leaves (8 bytes per leaf) is built the first time an event is looked up by id.
    """

    def __init__(self, ledger: CreditLedger, *, page: int = _PAGE) -> None:
        self.ledger = ledger
        self.page = page
        self.log = MerkleLog()
        self._positions: array[int] = array("q")
        self._ids: array[int] | None = None
        self._lock = threading.RLock()

    @property
    def size(self) -> int:
        """The number of leaves (events) in the tree."""
        return self.log.size

    @property
    def last_position(self) -> int:
        """The position of the newest event in the tree (0 when empty)."""
        return self._positions[-1] if self._positions else 0

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (default: all)."""
        with self._lock:
            return self.log.root(size)

    def add(self, position: int, stream: str, version: int, event_hash: str) -> int:
        """Append one event's leaf (for a caller that reads the store itself); returns its index.

        The caller must give events in increasing position; ``catch_up`` checks that itself.
        """
        with self._lock:
            index = self.log.append(ledger_leaf(position, stream, version, event_hash))
            self._positions.append(position)
            if self._ids is not None:
                self._ids.append(_id_key(event_id(stream, version)))
            return index

    def catch_up(self, limit: int | None = None) -> int:
        """Append the events recorded since the last one in the tree (at most ``limit``); how many."""
        with self._lock:
            appended = 0
            while limit is None or appended < limit:
                want = self.page if limit is None else min(self.page, limit - appended)
                batch = event_rows(self.ledger, self.last_position, want)
                for position, stream, version, _topic, state in batch:
                    if position <= self.last_position:
                        msg = f"the store returned position {position} after {self.last_position}"
                        raise StoreChanged(msg)
                    self.add(position, stream, version, stored_event_hash(state))
                appended += len(batch)
                if len(batch) < want:
                    break
            return appended

    def index_of(self, position: int) -> int:
        """The leaf index of the event at ``position``."""
        with self._lock:
            i = bisect.bisect_left(self._positions, position)
            if i < len(self._positions) and self._positions[i] == position:
                return i
        msg = f"no event at position {position} in the tree of {self.size} events"
        raise UnknownEvent(msg)

    def position_at(self, index: int) -> int:
        """The position of the event at leaf ``index``."""
        with self._lock:
            if not 0 <= index < len(self._positions):
                msg = f"leaf index {index} is not in the tree of {self.size} events"
                raise UnknownEvent(msg)
            return self._positions[index]

    def positions(self, start: int, end: int) -> Sequence[int]:
        """The positions of leaves ``start`` to ``end - 1``."""
        with self._lock:
            return self._positions[start:end]

    def index_of_event_id(self, eid: str) -> int:
        """The leaf index of the event with this event id (``ledger.integrity.event_id``)."""
        try:
            canonical = str(UUID(eid))
        except ValueError:
            msg = f"{eid!r} is not an event id (a UUID)"
            raise UnknownEvent(msg) from None
        with self._lock:
            ids = self._event_ids()
            key, start = _id_key(canonical), 0
            while True:
                try:
                    index = ids.index(key, start)
                except ValueError:
                    msg = f"no event with id {canonical} in the tree of {self.size} events"
                    raise UnknownEvent(msg) from None
                leaf = self.leaf(index)
                if event_id(leaf.stream, leaf.version) == canonical:
                    return index
                start = index + 1  # another event sharing the first 64 bits: keep looking

    def index_of_event(self, stream_id: UUID | str, version: int) -> int:
        """The leaf index of ``version`` of the stream ``stream_id`` (a subject key)."""
        try:
            stream = UUID(str(stream_id))
        except ValueError:
            msg = f"{stream_id!r} is not a stream id (a subject key, a UUID)"
            raise UnknownEvent(msg) from None
        return self.index_of_event_id(event_id(stream, version))

    def leaf(self, index: int) -> Leaf:
        """The leaf at ``index``, read back from the store and checked against the tree."""
        with self._lock:
            position = self.position_at(index)
            batch = self.ledger.recorder.select_notifications(position, 1)
            if not batch or batch[0].id != position:
                msg = f"the event at position {position} (leaf {index}) is no longer in the store"
                raise StoreChanged(msg)
            n = batch[0]
            leaf = Leaf(position, str(n.originator_id), n.originator_version, stored_event_hash(n.state))
            if leaf_hash(leaf.data()) != self.log.leaf_hash_at(index):
                msg = f"the event at position {position} (leaf {index}) changed since the tree was built"
                raise StoreChanged(msg)
            return leaf

    def inclusion_proof(self, position: int, size: int | None = None) -> dict[str, Any]:
        """The proof that the event at ``position`` is in the tree of ``size`` leaves (default: all).

        Returns the proof file the standalone auditor reads:
        ``{"leaf": {position, stream, version, event_hash}, "index", "size", "path": [hex, ...]}``.
        """
        with self._lock:
            return self.inclusion_proof_at(self.index_of(position), size)

    def inclusion_proof_for_event(
        self, stream_id: UUID | str, version: int, size: int | None = None
    ) -> dict[str, Any]:
        """``inclusion_proof`` for ``version`` of the stream ``stream_id``."""
        with self._lock:
            return self.inclusion_proof_at(self.index_of_event(stream_id, version), size)

    def inclusion_proof_for_event_id(self, eid: str, size: int | None = None) -> dict[str, Any]:
        """``inclusion_proof`` for the event with id ``eid``."""
        with self._lock:
            return self.inclusion_proof_at(self.index_of_event_id(eid), size)

    def inclusion_proof_at(self, index: int, size: int | None = None) -> dict[str, Any]:
        """``inclusion_proof`` for the leaf at ``index``."""
        with self._lock:
            size = self.size if size is None else size
            if not 0 <= size <= self.size:
                msg = f"size {size} is beyond the tree, which has {self.size} events"
                raise ProofRangeError(msg)
            leaf = self.leaf(index)
            if index >= size:
                msg = (
                    f"the event at position {leaf.position} is leaf {index}, "
                    f"so it is not in the tree of the first {size} events"
                )
                raise ProofRangeError(msg)
            path = self.log.inclusion_proof(index, size)
            return {"leaf": leaf.to_dict(), "index": index, "size": size, "path": [p.hex() for p in path]}

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """The proof that the tree of ``old_size`` leaves is a prefix of that of ``new_size``.

        Returns the proof file the standalone auditor reads: ``{"old_size", "new_size", "path"}``.
        """
        with self._lock:
            new_size = self.size if new_size is None else new_size
            if not 0 <= old_size <= new_size <= self.size:
                msg = (
                    f"sizes {old_size} -> {new_size} must satisfy 0 <= old <= new <= {self.size} "
                    "(the tree's size)"
                )
                raise ProofRangeError(msg)
            path = self.log.consistency_proof(old_size, new_size)
            return {"old_size": old_size, "new_size": new_size, "path": [p.hex() for p in path]}

    def checkpoint(self, signer: CheckpointSigner, now: datetime | None = None) -> Checkpoint:
        """A checkpoint of the whole tree as it is, signed by ``signer`` at ``now``."""
        with self._lock:
            return signer.sign(self.size, self.log.root(), now or datetime.now(UTC))

    def _event_ids(self) -> array[int]:
        """The first 64 bits of every leaf's event id, by leaf index (read from the store once)."""
        if self._ids is None:
            ids: array[int] = array("Q")
            while len(ids) < self.size:
                want = min(self.page, self.size - len(ids))
                batch = self.ledger.recorder.select_notifications(self._positions[len(ids)], want)
                if not batch:
                    msg = f"the store holds fewer events than the tree's {self.size}"
                    raise StoreChanged(msg)
                for n in batch[:want]:
                    if n.id != self._positions[len(ids)]:
                        msg = f"position {self._positions[len(ids)]} is no longer in the store"
                        raise StoreChanged(msg)
                    ids.append(_id_key(event_id(n.originator_id, n.originator_version)))
            self._ids = ids
        return self._ids


# --- The operator's key -------------------------------------------------------------------------


def _seed(text: str, where: str) -> bytes:
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        seed = b""
    if len(seed) != 32:
        msg = f"{where} must hold 64 hex digits (a 32-byte Ed25519 seed)"
        raise KeyConfigError(msg)
    return seed


def key_source(data_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """Where the checkpoint key comes from: the environment variable or the seed file's path."""
    env = os.environ if environ is None else environ
    return KEY_VARIABLE if env.get(KEY_VARIABLE) else str(data_dir / KEY_FILE)


def configured_signer(data_dir: Path, environ: Mapping[str, str] | None = None) -> CheckpointSigner | None:
    """The operator's signer from ``CREDIT_CHECKPOINT_KEY`` or the data dir's seed file, if either exists."""
    env = os.environ if environ is None else environ
    raw = env.get(KEY_VARIABLE)
    if raw:
        return CheckpointSigner(_seed(raw, KEY_VARIABLE))
    path = data_dir / KEY_FILE
    if not path.exists():
        return None
    return CheckpointSigner(_seed(path.read_text("ascii"), str(path)))


def checkpoint_signer(data_dir: Path, environ: Mapping[str, str] | None = None) -> CheckpointSigner:
    """The operator's signer; without a configured key, a new seed is written to the data dir (0600).

    The file is created whole or not at all (written aside, then linked into place), so two
    processes starting together end up with the same key.
    """
    signer = configured_signer(data_dir, environ)
    if signer is not None:
        return signer
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    aside = data_dir / f".{KEY_FILE}.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(generate_seed().hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
    return CheckpointSigner(_seed(path.read_text("ascii"), str(path)))


# --- Checkpoint files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcedCheckpoint:
    """A checkpoint as read from somewhere (``file:line`` or ``topic/partition@offset``), or why not."""

    source: str
    checkpoint: Checkpoint | None
    error: str = ""


def checkpoint_json(cp: Checkpoint) -> bytes:
    """A checkpoint as one line of JSON (the form of the file and of credit.digests messages)."""
    return orjson.dumps(cp.to_dict())


def parse_checkpoint(raw: bytes, source: str) -> SourcedCheckpoint:
    """Read one checkpoint, keeping the reason if it is not one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return SourcedCheckpoint(source, None, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return SourcedCheckpoint(source, None, "not a JSON object")
    try:
        return SourcedCheckpoint(source, Checkpoint.from_dict(data))
    except (TypeError, ValueError) as exc:
        return SourcedCheckpoint(source, None, str(exc))


class CheckpointLog:
    """The data dir's append-only file of signed checkpoints, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, data_dir: Path) -> CheckpointLog:
        return cls(data_dir / CHECKPOINTS_FILE)

    def append(self, cp: Checkpoint) -> None:
        """Add one checkpoint as a line, written with one ``write`` and synced to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, checkpoint_json(cp) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[SourcedCheckpoint]:
        """Every line, in order, parsed or with the reason it is not a checkpoint."""
        if not self.path.exists():
            return []
        return [
            parse_checkpoint(line, f"{self.path.name}:{number}")
            for number, line in enumerate(self.path.read_bytes().splitlines(), 1)
            if line.strip()
        ]

    def checkpoints(self) -> list[Checkpoint]:
        """The well-formed checkpoints, in file order."""
        return [s.checkpoint for s in self.read() if s.checkpoint is not None]

    def latest(self, key: str | None = None) -> Checkpoint | None:
        """The last well-formed checkpoint in the file (signed by key id ``key``, if given)."""
        found = [cp for cp in self.checkpoints() if key is None or cp.key_id == key]
        return found[-1] if found else None

    def find(self, size: int) -> Checkpoint | None:
        """The last checkpoint in the file that signs exactly ``size`` leaves."""
        found = [cp for cp in self.checkpoints() if cp.size == size]
        return found[-1] if found else None


def moment(time_text: str) -> datetime:
    """A checkpoint's RFC 3339 time as a datetime (fractions beyond microseconds are dropped).

    A time that is no real date (the format allows month 13) sorts first rather than raising.
    """
    try:
        return datetime.fromisoformat(time_text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


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
    page: int = _PAGE,
    parallel: bool | None = None,
) -> AuditReport:
    """Verify everything the ledger can show: every hash chain, the tree, and every checkpoint.

    One pass over the store decodes each event once, checks its stream's chain
    (``ledger.integrity.verify_streams``, as ``CreditLedger.verify`` does) and appends its leaf.
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
    from ledger.application import CreditLedger as Ledger  # noqa: PLC0415
    from ledger.catalogue import load_catalogue  # noqa: PLC0415

    mine = Ledger(catalogue=load_catalogue(), secret=secret, env=env)
    try:
        return mine.verify()
    finally:
        mine.close()


def _tree_only(ledger: CreditLedger, tree: LedgerTree, problems: list[Problem], page: int) -> None:
    """The tree and the order of positions, reading each stored hash without decoding the event."""
    last = 0
    while True:
        batch = event_rows(ledger, last, page)
        if not batch:
            return
        for position, stream, version, _topic, stored in batch:
            if position <= last:
                problems.append(
                    Problem(
                        "order",
                        f"stream {stream} version {version}: position {position} follows position {last}; "
                        "positions must strictly increase",
                        {"stream": stream, "version": version, "position": position, "after_position": last},
                    )
                )
            last = max(last, position)
            tree.add(position, stream, version, stored_event_hash(stored))


def event_rows(ledger: CreditLedger, after: int, limit: int) -> list[tuple[int, str, int, str, bytes]]:
    """(position, stream, version, topic, state) after ``after``, as plain tuples where the store can."""
    rows = getattr(ledger.recorder, "select_event_rows", None)
    if rows is not None:
        result: list[tuple[int, str, int, str, bytes]] = rows(after, limit)
        return result
    return [
        (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
        for n in ledger.recorder.select_notifications(after + 1, limit)
    ]


def _scan(
    ledger: CreditLedger, tree: LedgerTree, problems: list[Problem], page: int
) -> Iterator[StoredEventView]:
    """Every stored event decoded for the chain check, appending each one's leaf on the way."""
    decode = ledger.mapper.transcoder.decode
    last = 0
    while True:
        batch = event_rows(ledger, last, page)
        if not batch:
            return
        for n_id, stream, version, topic, stored in batch:
            if n_id <= last:
                problems.append(
                    Problem(
                        "order",
                        f"stream {stream} version {version}: position {n_id} follows position {last}; "
                        "positions must strictly increase",
                        {"stream": stream, "version": version, "position": n_id, "after_position": last},
                    )
                )
            last = max(last, n_id)
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
                event_hash = _hash_in(state)
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
        batch = ledger.recorder.select_notifications(last + 1, page)
        if not batch:
            break
        for n in batch:
            stream = str(n.originator_id)
            version = wanted.get(stream)
            if version is not None and stream not in found and n.originator_version >= version:
                found[stream] = n.id
        last = batch[-1].id
    problems = []
    for b in breaks:
        position = found.get(b.stream_id)
        where = f" (position {position})" if position is not None else ""
        problems.append(
            Problem(
                "chain",
                f"stream {b.stream_id} version {b.version}{where}: {b.problem}",
                {"stream": b.stream_id, "version": b.version, "position": position, "detail": b.problem},
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
