"""Hash chain over each subject's events: canonical bytes, event hashes and chain verification."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import orjson

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event in every stream."""

HASH_FIELD = "event_hash"


def _canonical_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    msg = f"{type(value).__name__} has no canonical form"
    raise TypeError(msg)


# orjson gives the canonical form natively: sorted keys, UUIDs and dates as strings, tuples as
# lists, and UTC times with a "Z". Every time the ledger writes is UTC by construction (the
# clock and occurred_at are normalised to UTC), and a naive time is taken as UTC.
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def canonical_bytes(value: Any) -> bytes:
    """Sorted-key JSON with UTC times, decimals and UUIDs as strings: the bytes that get hashed."""
    return orjson.dumps(value, default=_canonical_default, option=_CANONICAL)


def content_digest(value: Any) -> str:
    """SHA-256 hex of a value's canonical bytes: what a record keeps of a view it returned."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def event_hash(stream_id: UUID | str, version: int, topic: str, state: Mapping[str, Any]) -> str:
    """SHA-256 of one event as stored: its stream, version, type and state (minus its own hash)."""
    body = {k: v for k, v in state.items() if k != HASH_FIELD}
    return seal_hash(stream_id, version, topic, body)


def seal_hash(stream_id: UUID | str, version: int, topic: str, body: Mapping[str, Any]) -> str:
    """``event_hash`` for a state known not to carry its own hash (an event being sealed)."""
    envelope = {"stream": str(stream_id), "version": version, "type": topic, "state": body}
    return hashlib.sha256(canonical_bytes(envelope)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """The first event at which a stream stops verifying, and why."""

    stream_id: str
    version: int
    problem: str

    def __str__(self) -> str:
        return f"stream {self.stream_id} version {self.version}: {self.problem}"


class StoredEventView(NamedTuple):
    """What verification needs of a stored event, already decoded (``state`` is None if undecodable).

    A named tuple rather than a dataclass: verification builds one per event, a million at a time."""

    stream_id: str
    version: int
    topic: str
    state: Mapping[str, Any] | None
    decode_error: str = ""


def _check(ev: StoredEventView, expected_version: int, expected_prev: str) -> ChainBreak | str:
    """The event's own hash if it verifies as the next link, else the break."""
    if ev.version != expected_version:
        return ChainBreak(
            ev.stream_id, expected_version, f"missing: version {ev.version} follows {expected_version - 1}"
        )
    if ev.state is None:
        return ChainBreak(ev.stream_id, ev.version, f"stored state cannot be decoded: {ev.decode_error}")
    stored_hash = ev.state.get(HASH_FIELD)
    recomputed = event_hash(ev.stream_id, ev.version, ev.topic, ev.state)
    if stored_hash != recomputed:
        return ChainBreak(
            ev.stream_id,
            ev.version,
            f"content altered: stored hash {str(stored_hash)[:12]}..., "
            f"content hashes to {recomputed[:12]}...",
        )
    if ev.state.get("prev_hash") != expected_prev:
        return ChainBreak(ev.stream_id, ev.version, "prev_hash does not match the previous event's hash")
    return recomputed


def verify_streams(events: Iterable[StoredEventView]) -> list[ChainBreak]:
    """Check events of any number of streams, each stream's in version order (interleaving is fine).

    Returns the first break of each broken stream, in the order they were found.
    """
    heads: dict[str, tuple[int, str]] = {}
    broken: dict[str, ChainBreak] = {}
    for ev in events:
        if ev.stream_id in broken:
            continue
        version, prev = heads.get(ev.stream_id, (1, GENESIS))
        result = _check(ev, version, prev)
        if isinstance(result, ChainBreak):
            broken[ev.stream_id] = result
        else:
            heads[ev.stream_id] = (version + 1, result)
    return list(broken.values())


_EVENT_ID_NAMESPACE = UUID("6f1c5a52-8a4e-4d0f-9a53-3c1b8f1f2d10")


def event_id_key(stream_id: UUID | str, version: int) -> int:
    """The first 64 bits of ``event_id(stream_id, version)`` as an integer, without formatting the
    id: what an index or a tally of many events keeps (``int`` of its first 16 hex digits)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{stream_id}:{version}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") & ~0xF000) | 0x5000  # the version nibble, as event_id


def event_id(stream_id: UUID | str, version: int) -> str:
    """A stable id for the event at ``version`` of ``stream_id`` (same on every re-send and replay).

    It is the RFC 9562 name-based (version 5) UUID of ``"{stream}:{version}"``, formatted here
    directly because ``uuid.uuid5`` plus ``str`` costs more than the hash on the hot path.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{stream_id}:{version}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NAMESPACE_BYTES = _EVENT_ID_NAMESPACE.bytes
