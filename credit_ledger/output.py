"""Output conventions: JSON lines on stdout for machines, tables for people, diagnostics on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

import orjson


def json_line(obj: Any, out: TextIO | None = None) -> None:
    # sys.stdout is looked up at each call, not bound once at import: it may have been replaced since
    (out or sys.stdout).write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    materialised = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([_width(c)] + [_width(r[i]) for r in materialised]) for i, c in enumerate(columns)]
    out.write("  ".join(_pad(c, w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for r in materialised:
        out.write("  ".join(_pad(v, w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def note(message: str) -> None:
    """A diagnostic for people: stderr, so stdout stays machine-readable."""
    sys.stderr.write(message + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
