"""Compare two read stores and name each difference: the folded states, and every derived feed.

A difference is ``{subject, view, field, expected, found}``, ``expected`` being the live value.
The states are compared field by field (``diff_states``). A derived feed (``DerivedFeed``) is
compared as the sequence of its items per group (for list changes: per subject and list), each
item reduced to what identifies it, so what legitimately differs between a live store and a
rebuild (global positions restart when ``credit.ledger`` is re-published) is left out. The feeds
are the list changes, the measure notices on ``credit.measures`` (per subject and notice: each
state's version, state and cause) and the supervision statistics (per department and measure,
computed from each store's notice rows for the same day) and the blind index of persons' names
(per subject: its digest, which a rebuild recomputes from the sealed name). A later feed plugs in by adding a
``DerivedFeed`` to ``FEEDS`` and deriving it in ``projections.rebuild``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from contract.measures import message_id
from ledger.domain.workdays import local_date
from projections.fold import State
from projections.supervision import measure_stats

# Bookkeeping that legitimately differs between a live store and a rebuild (global positions
# restart when credit.ledger is re-published), so it is not part of a view.
_IGNORED = frozenset({"position"})


class ComparedStore(Protocol):
    """What a comparison reads of a store (``projections.store.ProjectionStore``)."""

    def states(self) -> Iterator[State]: ...

    def list_changes(self) -> Iterator[dict[str, Any]]: ...

    def notice_messages(self) -> Iterator[dict[str, Any]]: ...

    def notice_rows(self) -> list[dict[str, Any]]: ...

    def name_index(self) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class DerivedFeed:
    """A feed the projections derive from the ledger: how to read it from a store, how its items
    group (order is compared within a group), and what identifies an item."""

    name: str
    read: Callable[[ComparedStore], Iterable[Mapping[str, Any]]]
    group: Callable[[Mapping[str, Any]], tuple[str, str]]
    identity: Callable[[Mapping[str, Any]], Hashable]
    summary: Callable[[Mapping[str, Any]], Any] | None = None  # how a differing item is shown


def _list_change_identity(change: Mapping[str, Any]) -> Hashable:
    """A list change is its direction and what caused it: an event (by its id, which is stable
    where positions are not) or time (a clean record beginning on a date)."""
    cause = change.get("cause")
    by = (
        ("event", cause.get("event_id"))
        if isinstance(cause, Mapping)
        else ("time", change.get("effective_at"))
    )
    return (change.get("change"), *by)


LIST_CHANGES = DerivedFeed(
    name="list_changes",
    read=lambda store: store.list_changes(),
    group=lambda change: (str(change.get("subject_key")), str(change.get("list"))),
    identity=_list_change_identity,
)

NOTICES = DerivedFeed(
    name="measure_notices",
    read=lambda store: store.notice_messages(),
    group=lambda m: (str(m.get("subject_key")), str(m.get("notice_id"))),
    identity=lambda m: (*message_id(m), m.get("state"), (m.get("cause") or {}).get("event_id")),
    summary=lambda m: {k: m.get(k) for k in ("type", "state", "state_version", "department", "cause")},
)


def _stats_items(store: ComparedStore) -> list[dict[str, Any]]:
    """The supervision figures of a store, as of today in China: one item per department and per
    measure (both stores are read on the same day, so ``overdue`` means the same in each)."""
    stats = measure_stats(store.notice_rows(), local_date(datetime.now(UTC)))
    return [{"group": "department", "key": row["department"], **row} for row in stats["by_department"]] + [
        {"group": "measure", "key": row["measure"], **row} for row in stats["by_measure"]
    ]


MEASURE_STATS = DerivedFeed(
    name="measure_stats",
    read=_stats_items,
    group=lambda item: (str(item["group"]), str(item["key"])),
    identity=lambda item: tuple(sorted((k, str(v)) for k, v in item.items())),
    summary=lambda item: {k: v for k, v in item.items() if k not in ("group", "key", "title")},
)

NAME_INDEX = DerivedFeed(
    name="name_index",
    read=lambda store: store.name_index(),
    group=lambda row: (str(row["subject_key"]), "name"),
    identity=lambda row: row["digest"],
)

FEEDS: tuple[DerivedFeed, ...] = (LIST_CHANGES, NOTICES, MEASURE_STATS, NAME_INDEX)
"""Every derived feed a rebuild must reproduce."""


def compare_stores(
    live: ComparedStore, rebuilt: ComparedStore, *, feeds: Sequence[DerivedFeed] = FEEDS, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every difference between the live store and a rebuild: states first, then each feed's.

    What ``credit-ledger projections rebuild`` reports (one JSON line per difference)."""
    diffs = diff_states(live.states(), rebuilt.states(), limit=limit)
    for feed in feeds:
        if len(diffs) >= limit:
            break
        diffs += diff_feed(feed, feed.read(live), feed.read(rebuilt), limit=limit - len(diffs))
    return diffs


def diff_feed(
    feed: DerivedFeed,
    expected: Iterable[Mapping[str, Any]],
    found: Iterable[Mapping[str, Any]],
    *,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The first difference in each group's sequence of items (the rest of a group follows from it)."""
    want, have = _grouped(feed, expected), _grouped(feed, found)
    diffs: list[dict[str, Any]] = []
    for group in sorted(want.keys() | have.keys()):
        if len(diffs) >= limit:
            break
        a, b = want.get(group, []), have.get(group, [])
        ids_a, ids_b = [feed.identity(x) for x in a], [feed.identity(x) for x in b]
        if ids_a == ids_b:
            continue
        at = next(
            (i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y), min(len(a), len(b))
        )
        diffs.append(
            {
                "subject": group[0],
                "view": feed.name,
                "field": f"{group[1]}[{at}]",
                "expected": _summary(feed, a, at, len(a)),
                "found": _summary(feed, b, at, len(b)),
            }
        )
    return diffs


def _grouped(
    feed: DerivedFeed, items: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for item in items:
        out.setdefault(feed.group(item), []).append(item)
    return out


def _summary(feed: DerivedFeed, items: Sequence[Mapping[str, Any]], at: int, count: int) -> Any:
    if at >= len(items):
        return f"(absent: {count} items)"
    item = items[at]
    if feed.summary is not None:
        return {**feed.summary(item), "of": count}
    cause = item.get("cause")
    return {
        "change": item.get("change"),
        "effective_at": item.get("effective_at"),
        "cause": cause.get("event_id") if isinstance(cause, Mapping) else None,
        "of": count,
    }


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
