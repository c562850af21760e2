"""Hints for auditors from the query register: unusual volume, queries with no business after, refusals."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from statistics import median
from typing import Any

Acted = Callable[[str, str, str], bool]
"""acted(subject_key, organisation, after_time): did that organisation file anything on the subject since?"""


def anomaly_hints(
    queries: Iterable[Mapping[str, Any]],
    *,
    acted: Acted | None = None,
    spike_factor: float = 3.0,
    spike_floor: int = 10,
    refusals: int = 3,
    idle_share: float = 0.8,
    idle_minimum: int = 10,
) -> list[dict[str, Any]]:
    """Hints, not verdicts: each names the requester or organisation, the figures and the rule."""
    rows = list(queries)
    hints = _volume(rows, spike_factor, spike_floor) + _refusals(rows, refusals)
    if acted is not None:
        hints += _idle(rows, acted, idle_share, idle_minimum)
    return hints


def _volume(rows: list[Mapping[str, Any]], factor: float, floor: int) -> list[dict[str, Any]]:
    per_day: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for q in rows:
        if q.get("subject_key") and q.get("outcome") == "allowed":
            per_day[q["organisation"]][q["at"][:10]].add(q["subject_key"])
    hints = []
    for organisation, days in per_day.items():
        ordered = sorted(days)
        for i, day in enumerate(ordered):
            history = [len(days[d]) for d in ordered[:i]]
            if len(history) < 3:
                continue
            usual, today = median(history), len(days[day])
            if today >= floor and today > factor * usual:
                hints.append(
                    {
                        "hint": "volume",
                        "organisation": organisation,
                        "day": day,
                        "subjects": today,
                        "usual": usual,
                        "rule": f"more than {factor:g}x its median daily subjects",
                    }
                )
    return hints


def _refusals(rows: list[Mapping[str, Any]], threshold: int) -> list[dict[str, Any]]:
    refused = Counter(q["requester"] for q in rows if q.get("outcome") == "refused")
    return [
        {
            "hint": "refusals",
            "requester": requester,
            "refused": count,
            "rule": f"{threshold} or more refused queries",
        }
        for requester, count in sorted(refused.items())
        if count >= threshold
    ]


def _idle(rows: list[Mapping[str, Any]], acted: Acted, share: float, minimum: int) -> list[dict[str, Any]]:
    asked: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for q in rows:
        if q.get("role") == "department" and q.get("outcome") == "allowed" and q.get("subject_key"):
            asked[q["organisation"]].append(q)
    hints = []
    for organisation, mine in sorted(asked.items()):
        idle = [q for q in mine if not acted(q["subject_key"], organisation, q["at"])]
        if len(mine) >= minimum and len(idle) / len(mine) > share:
            hints.append(
                {
                    "hint": "no_business_action",
                    "organisation": organisation,
                    "queries": len(mine),
                    "without_action": len(idle),
                    "rule": f"over {share:.0%} of its queries led to no filing on the subject",
                }
            )
    return hints
