"""List changes: entries into and exits from the black list, the red list and clean-record status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.domain.notices import ENDED_REASONS
from projections.fold import State

LIST_CHANGE_VERSION = 1


def list_changes(
    before: Mapping[str, bool],
    after: Mapping[str, bool],
    state: State,
    message: Mapping[str, Any] | None,
    *,
    effective_at: str,
) -> list[dict[str, Any]]:
    """One change per list whose membership differs, naming the ledger event that caused it
    (``message`` is None for a change that time alone brought, e.g. a clean record beginning)."""
    changes = []
    for name in ("black", "red", "clean"):
        if before.get(name, False) == after.get(name, False):
            continue
        entered = after.get(name, False)
        change: dict[str, Any] = {
            "v": LIST_CHANGE_VERSION,
            "list": name,
            "change": "entry" if entered else "exit",
            "subject_key": state["subject_key"],
            "masked_code": state["masked_code"],
            "effective_at": effective_at,
            "cause": _cause(message),
        }
        change.update(_reason(name, entered, state, message))
        changes.append(change)
    return changes


def _cause(message: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "event_id": message.get("event_id"),
        "type": message.get("type"),
        "position": message.get("position"),
        "version": message.get("version"),
    }


def _reason(name: str, entered: bool, state: State, message: Mapping[str, Any] | None) -> dict[str, Any]:
    body = message.get("body", {}) if message is not None else {}
    if name in ("black", "red") and message is not None:
        designation_id = body.get("designation_id")
        designation = state["designations"].get(designation_id or "", {})
        if entered:
            return {
                "reason": f"designated by {designation.get('department')}",
                "basis": designation.get("basis"),
                "document_number": designation.get("document_number"),
                "designation_id": designation_id,
            }
        reason = body.get("reason", "")
        return {
            "reason": ENDED_REASONS.get(reason, reason),
            "basis": designation.get("basis"),
            "designation_id": designation_id,
        }
    if entered:
        return {"reason": "no adverse record for three consecutive years", "basis": "clean-record rule"}
    return {"reason": "an adverse record was filed", "basis": "clean-record rule"}
