"""Hostile input for the fuzz suite: JSON values and the bytes of messages a careless or hostile
department could send, as hypothesis strategies.

Each strategy aims at one way input has broken a platform: arbitrary JSON of any shape, any
bytes, nesting far past the limits, strings far past them, odd Unicode (lone surrogates, NUL,
bidirectional controls, compatibility ligatures such as U+FB02, combining marks), duplicate keys,
numbers of every kind (huge integers, negative zero, exponents, ``NaN``), dates and times out of
range or not existing, values of the wrong type anywhere, and the published
examples with one part of them replaced by any of those. Identity numbers are planted throughout,
so the checks can look for them echoed back.

``FUZZ_EXAMPLES`` sets how many examples each fuzz test runs (CI runs the default, a short
run bounded in time, derandomized; ``FUZZ_EXAMPLES=5000`` for a long one).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLES
from tests.unit.test_reason_messages import identity_numbers, paths_of

__all__ = ["identity_numbers"]

EXAMPLE_DATA = [json.loads(p.read_text("utf-8")) for p in sorted(EXAMPLES.glob("*.json"))]
_ids = itertools.count()
EXAMPLES_RUN = int(os.environ.get("FUZZ_EXAMPLES", "150"))

DERANDOMIZED = os.environ.get("CI") == "true"
"""In CI the same examples every run, so a change is not failed by a find that is not its own;
elsewhere each run draws new ones (and hypothesis keeps a failing one to replay)."""

FUZZ = settings(
    max_examples=EXAMPLES_RUN,
    derandomize=DERANDOMIZED,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

FULL_IDENTITY_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9Xx])")
"""An identity number written out in full (masked ones have ``*`` in the middle)."""

ODD_CHARACTERS = [
    "\x00",
    "\u202e",  # right-to-left override
    "\u200b",  # zero width space
    "\ufb02",  # ﬂ, which NFKC makes "fl"
    "\u0301",  # a combining acute accent
    "\ufeff",  # a byte order mark
    "\U0001f600",
    "张",
    "\u2028",
    "Ｘ",  # a full-width X
    "１",  # a full-width 1
]
"""Characters that have made parsers, normalisers and terminals misbehave."""

NUMBER_TEXTS = [
    "0",
    "-0",
    "-0.0",
    "1e400",
    "-1e400",
    "1E-400",
    "6.0",
    "1" * 5000,
    "123456789012345678901234567890",
    "0.1",
    "NaN",
    "Infinity",
    "-Infinity",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
]
"""Numbers as JSON text, valid and not (``NaN``, leading zeros, hex): the parser decides."""


DATE_TEXTS = [
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59-23:59",
    "0000-01-01",
    "2026-02-30T09:00:00+08:00",
    "2026-06-01T09:00:00+08:60",
    "2026-06-01T24:00:00Z",
    "2026-06-01T09:00:00",
    "2026-13-01",
    "1970-01-01T00:00:00Z",
    "2026-06-01T09:00:00.9999999999+08:00",
    "２０２６-06-01",
]
"""Dates and times at and past the edges: out of range, not existing, no or a bad zone offset."""


@st.composite
def date_texts(draw: st.DrawFn) -> str:
    """An RFC 3339 date or time with any numbers in its fields, or one of :data:`DATE_TEXTS`."""
    if draw(st.booleans()):
        return draw(st.sampled_from(DATE_TEXTS))
    year, month, day = draw(st.integers(0, 9999)), draw(st.integers(0, 99)), draw(st.integers(0, 99))
    date = f"{year:04}-{month:02}-{day:02}"
    if draw(st.booleans()):
        return date
    hour, minute = draw(st.integers(0, 99)), draw(st.integers(0, 99))
    zone = draw(st.sampled_from(["Z", "+08:00", "-23:59", "+24:00", "+08:60", "", "+0800"]))
    return f"{date}T{hour:02}:{minute:02}:00{zone}"


def texts() -> st.SearchStrategy[str]:
    """Strings: ordinary, odd Unicode, identity numbers, dates at the edges, and (rarely) very long."""
    return st.one_of(
        st.text(max_size=40),
        date_texts(),
        st.text(alphabet=st.sampled_from(ODD_CHARACTERS), max_size=10),
        identity_numbers(),
        identity_numbers().map(lambda number: f"身份证号{number}，见附件"),
        st.integers(9_990, 10_010).map(lambda n: "y" * n),  # around the 10,000-character limit
    )


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.integers(min_value=10**17, max_value=10**18),  # digits like an identity number's
        st.floats(allow_nan=False, allow_infinity=False),
        st.just(-0.0),
        st.just(2**64),
    )


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), numbers(), texts())
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts(), inner, max_size=5)),
        max_leaves=max_leaves,
    )


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """A published example with one part replaced by any JSON value, removed, or joined by an
    extra member: close enough to a valid submission to reach the parser's deeper checks."""
    data = json.loads(json.dumps(draw(st.sampled_from(EXAMPLE_DATA))))
    data["submission_id"] = f"FZ-{next(_ids)}"  # a new id: a resend would stop at the register
    paths = paths_of(data)
    action = draw(st.sampled_from(["replace", "remove", "add", "date", "none"]))
    if action == "none":  # as published: accepted, or refused by the rules for what is on file
        return data
    dated = [p for p in paths if p and isinstance(p[-1], str) and p[-1].endswith(("_at", "date"))]
    if action == "date" and dated:  # a date field's value at or past the edges of the calendar
        path, replacement = draw(st.sampled_from(dated)), draw(date_texts())
        action = "replace"
    else:
        path, replacement = draw(st.sampled_from(paths)), draw(json_values())
    if not path:
        return replacement if draw(st.booleans()) else {**data, draw(texts()): replacement}
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    if action == "remove":
        del target[path[-1]]
    elif action == "add" and isinstance(target, dict):
        target[draw(texts())] = replacement
    else:
        target[path[-1]] = replacement
    return data


def _text_of(value: Any, duplicate: bool) -> str:
    """JSON text of ``value``; with ``duplicate``, its first object repeats its first key."""
    text = json.dumps(value, ensure_ascii=False)
    if duplicate and isinstance(value, dict) and value:
        key, item = next(iter(value.items()))
        text = "{" + json.dumps(key) + ":" + json.dumps(item) + "," + text[1:]
    return text


@st.composite
def raw_json_texts(draw: st.DrawFn) -> bytes:
    """JSON text as a department might write it: duplicate keys, raw number tokens, escapes of
    lone surrogates and controls, deep nesting, trailing garbage."""
    value = draw(st.one_of(mutated_examples(), json_values()))
    text = _text_of(value, duplicate=draw(st.booleans()))
    form = draw(st.sampled_from(["as_is", "number", "escape", "deep", "tail", "bom"]))
    if form == "number" and isinstance(value, dict):
        text = text[:-1] + ("," if value else "") + f'"n":{draw(st.sampled_from(NUMBER_TEXTS))}' + "}"
    elif form == "escape" and isinstance(value, dict):
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\x41"]))
        text = text[:-1] + ("," if value else "") + f'"e":"{escape}"' + "}"
    elif form == "deep":
        depth = draw(st.integers(15, 3000))
        opener = draw(st.sampled_from(["[", '{"a":']))
        nested = opener * depth + "1" + ("]" if opener == "[" else "}") * depth
        if isinstance(value, dict):  # inside a submission, as issue 10's item 1 did it
            text = text[:-1] + ("," if value else "") + '"d":' + nested + "}"
        else:
            text = nested
    elif form == "tail":
        text += draw(st.sampled_from(["\n", " x", "}", "{}", "\x00"]))
    elif form == "bom":
        text = "\ufeff" + text
    return text.encode("utf-8", "surrogatepass")


def messages() -> st.SearchStrategy[bytes]:
    """The bytes of one message: mostly JSON text of hostile shapes, and any bytes at all."""
    return st.one_of(raw_json_texts(), st.binary(max_size=300), mutated_examples().map(_encoded))


def _encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
