"""An orjson transcoder for the event store that round-trips UUIDs, datetimes and decimals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Transcoder

# orjson turns UUIDs and datetimes into plain strings, which would decode as str.
# Non-JSON values are therefore tagged the way eventsourcing's JSONTranscoder does,
# so stored bytes stay readable by anyone who knows that convention.
_TYPE = "_type_"
_DATA = "_data_"


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _tag(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _tag(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else _tag(v) for v in value]
    if kind is UUID:
        return {_TYPE: "uuid_hex", _DATA: value.hex}
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_TYPE: "datetime_iso", _DATA: value.isoformat()}
    if isinstance(value, Decimal):
        return {_TYPE: "decimal_str", _DATA: str(value)}
    if isinstance(value, UUID):
        return {_TYPE: "uuid_hex", _DATA: value.hex}
    msg = f"Object of type {type(value).__name__} is not serialisable by the ledger transcoder"
    raise TypeError(msg)


_DECODERS: dict[str, Callable[[str], Any]] = {
    "uuid_hex": UUID,
    "datetime_iso": datetime.fromisoformat,
    "decimal_str": Decimal,
}


def _untag(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        tag = value.get(_TYPE)
        if tag is not None and len(value) == 2 and _DATA in value:
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                return decoder(value[_DATA])
        return {k: v if type(v) in _SCALARS else _untag(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else _untag(v) for v in value]
    return value


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class OrjsonTranscoder(Transcoder):
    """Encodes event state with orjson; tags UUID, datetime and Decimal so they decode as such."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(_tag(obj), default=_default, option=_OPTIONS)

    def decode(self, data: bytes) -> Any:
        tags = data.count(b'"_type_"')
        if tags == 0:
            return orjson.loads(data)
        if tags == 1:
            # The common case: an event's state whose only tagged value is its top-level timestamp.
            # (A tag is always an object key; inside a JSON string the quotes would be escaped.)
            value = orjson.loads(data)
            stamp = value.get("timestamp") if type(value) is dict else None
            if type(stamp) is dict and stamp.get(_TYPE) == "datetime_iso" and len(stamp) == 2:
                value["timestamp"] = datetime.fromisoformat(stamp[_DATA])
                return value
            return _untag(value)
        return _untag(orjson.loads(data))
