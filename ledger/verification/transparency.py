"""The ledger's Merkle view: its tree over the global order, leaves and proofs."""

from __future__ import annotations

import bisect
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from ledger.application.service import CreditLedger
from ledger.domain.integrity import event_id
from ledger.verification.merkle import (
    Checkpoint,
    CheckpointSigner,
    MerkleLog,
    leaf_hash,
    ledger_leaf,
)
from ledger.verification.tiles import Tile, tile_data

PAGE = 5000


class TransparencyError(Exception):
    """A proof or lookup cannot be given; the message says why in terms a caller can act on."""


class UnknownEvent(TransparencyError, LookupError):
    """No event in the tree has that position, event id, or stream and version."""


class ProofRangeError(TransparencyError, ValueError):
    """The sizes asked for are not a valid pair for this tree (too large, or out of order)."""


class StoreChanged(TransparencyError):
    """The stored event no longer matches the leaf the tree committed to (the store was altered)."""


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
    event's content is the hash chain's question (``ledger.domain.integrity``), not the tree's.
    """
    try:
        decoded = orjson.loads(state)
    except orjson.JSONDecodeError:
        return ""
    return hash_in_state(decoded)


def hash_in_state(state: object) -> str:
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

    def __init__(self, ledger: CreditLedger, *, page: int = PAGE) -> None:
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
                batch = self.ledger.reader.event_rows(self.last_position, want)
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
        """The leaf index of the event with this event id (``ledger.domain.integrity.event_id``)."""
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
            batch = self.ledger.reader.event_rows(position - 1, 1)
            if not batch or batch[0][0] != position:
                msg = f"the event at position {position} (leaf {index}) is no longer in the store"
                raise StoreChanged(msg)
            _, stream, version, _topic, state = batch[0]
            leaf = Leaf(position, stream, version, stored_event_hash(state))
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

    def checkpoint(
        self, signer: CheckpointSigner, now: datetime | None = None, *, origin: str | None = None
    ) -> Checkpoint:
        """A checkpoint of the whole tree as it is, and of the register's newest receipt (its
        position and chain link, read now), signed by ``signer`` at ``now``: a v3 checkpoint (a
        C2SP checkpoint note) of the log named ``origin``, or without one a v2 checkpoint."""
        receipts = self.ledger.reader.receipt_head()
        with self._lock:
            moment = now or datetime.now(UTC)
            return signer.sign(self.size, self.log.root(), moment, receipts=receipts, origin=origin)

    def tile(self, tile: Tile) -> bytes:
        """The hashes of a tlog-tiles tile of the tree as it is (LookupError if it is not full yet)."""
        with self._lock:
            return tile_data(self.log, tile)

    def _event_ids(self) -> array[int]:
        """The first 64 bits of every leaf's event id, by leaf index (read from the store once)."""
        if self._ids is None:
            ids: array[int] = array("Q")
            while len(ids) < self.size:
                want = min(self.page, self.size - len(ids))
                batch = self.ledger.reader.event_rows(self._positions[len(ids)] - 1, want)
                if not batch:
                    msg = f"the store holds fewer events than the tree's {self.size}"
                    raise StoreChanged(msg)
                for position, stream, version, _topic, _state in batch[:want]:
                    if position != self._positions[len(ids)]:
                        msg = f"position {self._positions[len(ids)]} is no longer in the store"
                        raise StoreChanged(msg)
                    ids.append(_id_key(event_id(stream, version)))
            self._ids = ids
        return self._ids
