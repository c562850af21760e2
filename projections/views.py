"""Views derived from a subject's folded state: status, list entries, sanctions, clean record, score."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from ledger.domain.catalogue import Catalogue, Edition
from ledger.domain.integrity import content_digest
from ledger.domain.personal import shred_due
from ledger.domain.workdays import add_months
from projections.fold import State
from projections.notices import measures_view, notice_rows

LISTS = ("black", "red", "clean")
DEFAULT_RETENTION_YEARS = 5  # 征信业管理条例 art. 16, as the catalogue's default


def public_records(state: State) -> list[dict[str, Any]]:
    """Records that are shown and shared: active ones. Ended ones stay only in the audited history."""
    return [{"record": key, **r} for key, r in state["records"].items() if r["status"] == "active"]


def _counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    adverse = {"minor": 0, "general": 0, "serious": 0}
    counts: dict[str, Any] = {"adverse": adverse, "positive": 0, "neutral": 0}
    for r in records:
        if r["kind"] == "adverse":
            counts["adverse"][r["severity"]] += 1
        elif r["kind"] in ("positive", "neutral"):
            counts[r["kind"]] += 1
    return counts


def last_adverse(state: State) -> tuple[str, str] | None:
    """(record key, decision date) of the latest adverse record that still stands (not revoked)."""
    found = [
        (r["decision_date"], key)
        for key, r in state["records"].items()
        if r["kind"] == "adverse" and r["status"] != "revoked"
    ]
    if not found:
        return None
    decided, key = max(found)
    return key, decided


def clean_record(state: State, today: date, years: int = 3) -> dict[str, Any]:
    """No adverse record for ``years`` consecutive years: eligible for the green channel (容缺受理)."""
    latest = last_adverse(state)
    if latest is None:
        # Three consecutive years must have been observed: counted from when the file was opened.
        opened = (state.get("opened_at") or "")[:10]
        if not opened:
            return {"eligible": False, "since": None, "last_adverse": None}
        since = add_months(date.fromisoformat(opened), 12 * years)
        return {"eligible": since <= today, "since": since.isoformat(), "last_adverse": None}
    key, decided = latest
    since = add_months(date.fromisoformat(decided), 12 * years)
    return {
        "eligible": since <= today,
        "since": since.isoformat(),
        "last_adverse": {"record": key, "decision_date": decided},
    }


def memberships(state: State, today: date, clean_years: int = 3) -> dict[str, bool]:
    active = [d["list"] for d in state["designations"].values() if d["active"]]
    return {
        "black": "black" in active,
        "red": "red" in active,
        "clean": bool(state["kind"] == "person" and clean_record(state, today, clean_years)["eligible"]),
    }


def list_entries(state: State) -> list[dict[str, Any]]:
    """One row per active black- or red-list designation, with what a list reader needs."""
    rows = []
    for designation_id, d in state["designations"].items():
        if not d["active"]:
            continue
        domains = sorted({state["records"][k]["domain"] for k in d["records"] if k in state["records"]})
        rows.append(
            {
                "list": d["list"],
                "designation_id": designation_id,
                "subject_key": state["subject_key"],
                "masked_code": state["masked_code"],
                "name": state["name"],
                "department": d["department"],
                "basis": d["basis"],
                "document_number": d["document_number"],
                "entry_date": d["valid_from"],
                "valid_until": d["valid_until"],
                "domains": domains,
            }
        )
    return rows


def sanctions(state: State, edition: Edition) -> dict[str, list[dict[str, Any]]]:
    """Joint measures per black-list designation: in force, suspended (a linked record is disputed)
    or lifted (every record it rests on has ended)."""
    out: dict[str, list[dict[str, Any]]] = {"in_force": [], "suspended": [], "lifted": []}
    measures = edition.measures_for("black")
    for designation_id, d in state["designations"].items():
        if not d["active"] or d["list"] != "black":
            continue
        records = [state["records"][k] for k in d["records"] if k in state["records"]]
        if records and all(r["status"] != "active" for r in records):
            bucket, why = "lifted", "every record it rests on has ended"
        elif any(r["open_objection"] for r in records):
            bucket, why = "suspended", "a record it rests on is disputed"
        else:
            bucket, why = "in_force", ""
        for m in measures:
            out[bucket].append(
                {
                    "designation_id": designation_id,
                    "measure": m.id,
                    "title": m.title,
                    "kind": m.kind,
                    "implementing_departments": list(m.implementing_departments),
                    **({"why": why} if why else {}),
                }
            )
    return out


def score(state: State, edition: Edition) -> dict[str, Any]:
    """An explainable integrity score: base plus catalogue weights, every point traced to its source."""
    rules: Mapping[str, Any] = edition.score
    weights: Mapping[str, int] = rules.get("weights", {})
    contributions = []
    for key, r in state["records"].items():
        if r["status"] != "active":
            continue
        weight_key = f"adverse.{r['severity']}" if r["kind"] == "adverse" else r["kind"]
        if weight_key in weights:
            contributions.append({"source": key, "rule": weight_key, "points": weights[weight_key]})
    for designation_id, d in state["designations"].items():
        weight_key = f"designation.{d['list']}"
        if d["active"] and weight_key in weights:
            points = weights[weight_key]
            contributions.append({"source": designation_id, "rule": weight_key, "points": points})
    base = int(rules.get("base", 100))
    raw = base + sum(c["points"] for c in contributions)
    clamped = max(int(rules.get("min", raw)), min(int(rules.get("max", raw)), raw))
    return {"value": clamped, "base": base, "contributions": contributions, "edition": edition.edition}


def status(state: State, today: date, edition: Edition, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """The subject's current credit status as the platform shows and shares it, as of ``today``.

    With the ``catalogue``, a subject that has had designations also gets ``measures``: the measure
    notices issued against them, each with its state and every implementing department's feedback.
    """
    shown = public_records(state)
    view = {
        "subject": {
            "subject_key": state["subject_key"],
            "masked_code": state["masked_code"],
            "name": state["name"],
            "kind": state["kind"],
        },
        "as_of": today.isoformat(),
        "ledger_version": state["version"],
        "records": shown,
        "counts": _counts(shown),
        "disputed": [r["record"] for r in shown if r["open_objection"]],
        "lists": memberships(state, today, edition.clean_record_years),
        "designations": list_entries(state),
        "sanctions": sanctions(state, edition),
        "clean_record": clean_record(state, today, edition.clean_record_years),
        "score": score(state, edition),
    }
    if catalogue is not None and state["designations"]:
        rows = notice_rows(state, catalogue)
        if rows:
            view["measures"] = measures_view(rows, today)
    return view


def shredded(state: State) -> list[dict[str, Any]]:
    """What of the file was shredded and when: each record's (category, provider, dates) and the
    file's own content, for the subject's report."""
    out = [
        {
            "record": key,
            "category": r["category"],
            "provider": r["provider"],
            "filed_at": r["filed_at"],
            "ended_at": r["ended_at"],
            **r["shredded"],
        }
        for key, r in state["records"].items()
        if r.get("shredded")
    ]
    if state.get("shredded"):
        out.append({"record": None, "what": "the file's own content (name, statements)", **state["shredded"]})
    return out


def due(state: State, retention_years: Mapping[str, int] | None = None) -> list[tuple[str, str, str]]:
    """What time will turn into ledger commands: (kind, reference, due date) for the scheduler.

    expire: a record on the last day of its display period; overdue: an objection the day after
    its deadline; lapse: a designation on its validity end; shred: an ended record at the end of
    its retention (``retention_years`` by catalogue edition, 5 where it is not given).
    """
    items = []
    for key, r in state["records"].items():
        if r["status"] != "active" and r["ended_at"] and not r.get("shredded"):
            years = (retention_years or {}).get(r["edition"], DEFAULT_RETENTION_YEARS)
            items.append(("shred", key, shred_due(r["ended_at"], years)))
        if r["status"] == "active" and r["display_until"]:
            items.append(("expire", key, r["display_until"]))
        objection = r["open_objection"]
        if r["status"] == "active" and objection and not objection["overdue"]:
            day_after = date.fromisoformat(objection["due_by"]) + timedelta(days=1)
            items.append(("overdue", f"{key}#{objection['id']}", day_after.isoformat()))
    for designation_id, d in state["designations"].items():
        if d["active"]:
            items.append(("lapse", designation_id, d["valid_until"]))
    return items


def view_digest(view: Mapping[str, Any]) -> str:
    """SHA-256 of a status view's canonical bytes: what a query record keeps of what it returned."""
    return content_digest(dict(view))
