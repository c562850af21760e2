"""Time makes events: due items become the platform's own ledger commands, sent like any submission."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from typing import Any

PLATFORM = "credit_platform"
MIDNIGHT_CST = "T00:00:00+08:00"
RETENTION_BASIS = "征信业管理条例 第十六条: kept 5 years from the end of the act, then deleted"


def _ref(record_key: str) -> dict[str, str]:
    provider, _, record_id = record_key.partition(":")
    return {"provider": provider, "record_id": record_id}


def scheduled_submissions(rows: Iterable[tuple[str, str, str, str]], today: date) -> list[dict[str, Any]]:
    """Submissions for every (kind, subject_key, ref, due_on) due by ``today``.

    Ids and times are derived from the item itself, so sending one again (the scheduler runs
    until the ledger has acted) is answered as a duplicate, never a conflict. ``occurred_at`` is
    midnight in China at the start of the due day: when the display period, deadline or validity
    ended, not when the scheduler happened to run.
    """
    out: list[dict[str, Any]] = []
    for kind, subject_key, ref, due_on in rows:
        if date.fromisoformat(due_on) > today:
            continue
        base = {
            "submission_id": f"sched.{kind}.{_digest(subject_key, ref, due_on)}",
            "department": PLATFORM,
            "subject": {"key": subject_key},
            "occurred_at": due_on + MIDNIGHT_CST,
        }
        if kind == "expire":
            out.append({**base, "action": "expire_record", "record": _ref(ref)})
        elif kind == "overdue":
            record_key, _, objection_id = ref.partition("#")
            out.append(
                {
                    **base,
                    "action": "mark_objection_overdue",
                    "record": _ref(record_key),
                    "objection_id": objection_id,
                }
            )
        elif kind == "shred":
            out.append(
                {
                    **base,
                    "action": "shred_record",
                    "record": _ref(ref),
                    "basis": "retention_ended",
                    "legal_basis": RETENTION_BASIS,
                }
            )
        elif kind == "lapse":
            out.append({**base, "action": "end_designation", "designation_id": ref, "reason": "expired"})
        elif kind == "remind":
            notice_id, _, version = ref.partition("@")
            out.append(
                {**base, "action": "remind_feedback", "notice_id": notice_id, "state_version": int(version)}
            )
    return out


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]
