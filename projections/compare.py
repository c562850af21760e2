"""Compare two sets of folded states and name each difference: subject, view, field, expected, found."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from projections.fold import State

# Bookkeeping that legitimately differs between a live store and a rebuild (global positions
# restart when credit.ledger is re-published), so it is not part of a view.
_IGNORED = frozenset({"position"})


def diff_states(
    expected: Iterable[State], found: Iterable[State], *, limit: int = 1000
) -> list[dict[str, Any]]:
    want = {s["subject_key"]: s for s in expected}
    have = {s["subject_key"]: s for s in found}
    diffs: list[dict[str, Any]] = []
    for key in sorted(want.keys() | have.keys()):
        if len(diffs) >= limit:
            break
        a, b = want.get(key), have.get(key)
        if a is None or b is None:
            diffs.append(
                {"subject": key, "view": "status", "field": "", "expected": _present(a), "found": _present(b)}
            )
            continue
        for path, x, y in _walk(a, b, ""):
            diffs.append({"subject": key, "view": _view(path), "field": path, "expected": x, "found": y})
            if len(diffs) >= limit:
                break
    return diffs


def _present(state: State | None) -> str:
    return "absent" if state is None else f"present (version {state['version']})"


def _view(path: str) -> str:
    head = path.split(".", 1)[0]
    return {"records": "records", "designations": "lists"}.get(head, "status")


def _walk(a: Any, b: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            if key in _IGNORED and not path:
                continue
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                yield sub, a.get(key, "(absent)"), b.get(key, "(absent)")
            else:
                yield from _walk(a[key], b[key], sub)
    elif a != b:
        yield path, a, b
