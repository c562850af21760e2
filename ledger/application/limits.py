"""The documented limits of a submission, checked before anything else touches its value.

A submission is refused (``too_large``, the field named) when it is larger than
:data:`MAX_SUBMISSION_BYTES`, nests deeper than :data:`MAX_DEPTH`, holds a string longer than
:data:`MAX_STRING` characters or a list or object of more than :data:`MAX_ITEMS` items; and
(``duplicate_key``) when one of its objects names a key twice, which JSON parsers otherwise
resolve silently, each its own way.

The checks are on the intake's hot path, so the common case costs a few byte counts: a
submission that is short enough that no string in it can be too long, with too few brackets
to nest too deep and too few commas to hold too many items, is not walked at all; and the
duplicate-key check compares the colons of the bytes received with those of the canonical
form already made for the content digest (a duplicate key leaves a colon behind).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from ledger.domain.errors import InvalidInput, TooLarge
from ledger.domain.integrity import canonical_bytes
from ledger.domain.redaction import cap, echo

MAX_SUBMISSION_BYTES = 256 * 1024
"""Largest submission accepted, in bytes as received (the largest the schema allows, with every
character escaped as ``\\uXXXX``, is under 128 KiB)."""

MAX_DECODED_BYTES = 8 * 1024 * 1024
"""Largest message still decoded to learn its ``department`` and ``submission_id``, so its
``too_large`` rejection is registered under its id; a larger one is refused undecoded."""

MAX_DEPTH = 16
"""Deepest nesting of objects and lists (the submission itself is level 1; the schema needs 4)."""

MAX_STRING = 10_000
"""Longest string, key or value, in characters (the schema's longest field takes 5,000)."""

MAX_ITEMS = 1_000
"""Most items in one list or members in one object (the schema's longest list takes 100)."""

INTEGER_RANGE = (-(2**63), 2**64)
"""Integers a submission built in process may hold: what its canonical JSON can encode (bytes
received never hold others: a longer integer is read as a number with a fraction)."""


def path_of(parts: tuple[str | int, ...]) -> str:
    """A JSON path as reasons name fields: ``record.responsible_persons[0].id``.

    A key that would not read as one there (empty, or holding ``.``, ``[`` or ``]``) is written
    quoted in brackets, ``record["a.b"]`` or ``[""]``, so a path is never empty or ambiguous.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part or any(c in part for c in ".[]"):
            out += "[" + json.dumps(part, ensure_ascii=False) + "]"
        else:
            out += f".{part}" if out else part
    return cap(out, 200)


def check_size(original: bytes) -> None:
    """Refuse a submission over :data:`MAX_SUBMISSION_BYTES` (before or after decoding it)."""
    if len(original) > MAX_SUBMISSION_BYTES:
        raise TooLarge(
            f"the submission is {len(original):,} bytes; at most {MAX_SUBMISSION_BYTES:,} are accepted",
            field="",
        )


def check_limits(data: Mapping[str, Any], original: bytes | None) -> bytes:
    """Check every limit; return the canonical bytes of ``data`` (what its digest is taken of).

    ``original`` is the submission as received, when it came as bytes (a mapping built in
    process has no size, and cannot repeat a key).
    """
    if original is None:
        _walk(data)
    else:
        if len(original) > MAX_SUBMISSION_BYTES:
            check_size(original)
        # What the bytes alone show (no string can be longer than the message, no nesting deeper
        # than its brackets, no container larger than its commas allow) spares the walk.
        if not (
            len(original) <= MAX_STRING
            and original.count(b"{") + original.count(b"[") <= MAX_DEPTH
            and original.count(b",") < MAX_ITEMS
        ):
            _walk(data)
    canonical = canonical_bytes(data)
    if original is None:
        if len(canonical) > MAX_SUBMISSION_BYTES:
            raise TooLarge(
                f"the submission is {len(canonical):,} bytes as JSON; "
                f"at most {MAX_SUBMISSION_BYTES:,} are accepted",
                field="",
            )
    elif original.count(b":") != canonical.count(b":") or b"\\u003" in original:
        # Colons either separate a key from its value or sit inside strings; the canonical form
        # has the same strings, so a difference means a member was dropped: a repeated key.
        # An escaped colon (\u003a) could hide one, so such a message is parsed again to see.
        _check_duplicate_keys(original)
    return canonical


def _walk(data: Any) -> None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, parts = stack.pop()
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise TooLarge(
                    f"{path_of(parts) or 'submission'}: a string of {len(value):,} characters; "
                    f"at most {MAX_STRING:,} are accepted",
                    field=path_of(parts),
                )
            continue
        if type(value) is int and not INTEGER_RANGE[0] <= value < INTEGER_RANGE[1]:
            raise TooLarge(
                f"{path_of(parts) or 'submission'}: an integer of {value.bit_length():,} bits; "
                "JSON integers here are at most 64 bits",
                field=path_of(parts),
            )
        if not isinstance(value, dict | list):
            continue
        where = path_of(parts) or "submission"
        if len(parts) + 1 > MAX_DEPTH:
            raise TooLarge(
                f"{where}: nested more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} are accepted",
                field=path_of(parts),
            )
        if len(value) > MAX_ITEMS:
            raise TooLarge(
                f"{where}: {len(value):,} items; at most {MAX_ITEMS:,} are accepted", field=path_of(parts)
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > MAX_STRING:
                    raise TooLarge(
                        f"{where}: a key of {len(key):,} characters; at most {MAX_STRING:,} are accepted",
                        field=path_of(parts),
                    )
                stack.append((item, (*parts, key)))
        else:
            stack.extend((item, (*parts, i)) for i, item in enumerate(value))


class _Members(dict[str, Any]):
    """An object as the slow parse builds it, remembering a key it saw twice."""

    repeated: str | None = None


def _members(pairs: list[tuple[str, Any]]) -> _Members:
    members = _Members()
    for key, value in pairs:
        if key in members and members.repeated is None:
            members.repeated = key
        members[key] = value
    return members


def _check_duplicate_keys(original: bytes) -> None:
    """Parse again, keeping every member, and refuse the first object that repeats a key."""
    try:
        # Numbers stay text: only the structure matters here (and int() refuses 4,300+ digits).
        data = json.loads(original, object_pairs_hook=_members, parse_int=str, parse_float=str)
    except ValueError:
        return  # orjson read it, so the standard parser's objection is not about keys
    queue: deque[tuple[Any, tuple[str | int, ...]]] = deque([(data, ())])
    while queue:  # breadth first: the shallowest repeated key is named
        value, parts = queue.popleft()
        if isinstance(value, _Members):
            if value.repeated is not None:
                field = path_of((*parts, value.repeated))
                raise InvalidInput(
                    f"{field}: the key {echo(value.repeated)} appears more than once in one object; "
                    "send each key once",
                    field=field,
                    code="duplicate_key",
                )
            queue.extend((item, (*parts, key)) for key, item in value.items())
        elif isinstance(value, list):
            queue.extend((item, (*parts, i)) for i, item in enumerate(value))
