"""The route table against what is served: the same routes, and every documented status answered.

Issue 11: the OpenAPI document is written from the table that registers the views, so the two
cannot drift; here each (method, path, status) the document promises is provoked and seen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from ledger.verification.checkpoints import CheckpointLog, checkpoint_signer
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from ledger.verification.transparency import LedgerTree, StoreChanged
from streams.health import HealthCheck
from streams.web.openapi import served_operations, statuses
from streams.web.routes import ROUTES
from tests.conftest import ORGANISATION, PERSON, example
from tests.unit.querydesk import LICENSING, NO_FILE, Desk, desk
from tests.unit.webdesk import Web

__all__ = ["desk"]  # the fixture

Probe = Callable[[Web], Awaitable[tuple[int, Any]]]
GARBAGE = "clk_nosuchkey_x"
HUGE = b"[" + b" " * (16 * 2**20) + b"]"
GRANT = example("grant_authorisation")["authorisation"]


def served_routes(web: Web) -> set[tuple[str, str]]:
    """(METHOD, path) of every route aiohttp serves; HEAD is Faust's, answered beside each GET."""
    webserver: Any = web.app.web
    return {
        (route.method, route.resource.canonical)
        for route in webserver.web_app.router.routes()
        if route.method != "HEAD"
    }


def test_the_routes_served_are_exactly_the_routes_documented_in_openapi(desk: Desk, tmp_path: Path) -> None:
    async def run(queries: bool) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        async with Web(desk, tmp_path / str(queries), queries=queries) as web:
            status, document = await web.call("GET", "/v1/openapi.json")
            assert status == 200
            return served_routes(web), served_operations(document)

    served, documented = asyncio.run(run(True))
    assert served == documented
    assert len(served) == len(ROUTES) == 23
    served, documented = asyncio.run(run(False))  # without a query service: what needs none
    assert (
        served
        == documented
        == {
            ("GET", "/v1/"),
            ("GET", "/v1/openapi.json"),
            ("POST", "/v1/submissions"),
            ("GET", "/v1/health"),
            ("GET", "/checkpoint"),
            ("GET", "/tile/{level}/{index}"),
            ("GET", "/v1/publicity"),  # public: it needs read models (503 without), not the register
            *{("GET", r.path) for r in ROUTES if r.path.startswith("/v1/proofs/")},
        }
    )


class Keys:
    def __init__(self, desk: Desk) -> None:
        self.tax = desk.api_key("department", "tax_bureau")
        self.auditor = desk.api_key("auditor", "audit_office")
        self.me = desk.api_key("subject", "citizen", subject=PERSON)


def failing(exc: Exception) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


def probes(
    desk: Desk, keys: Keys, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[tuple[str, str, int], Probe]:
    """How to make each route answer each status it documents (in the order they run)."""
    status_body = {"subject": {"id": PERSON}, **LICENSING}
    register_down = (desk.ledger, "write_query_events", OSError("disk full"))
    found: dict[tuple[str, str, int], Probe] = {}

    def probe(
        method: str,
        path: str,
        status: int,
        *,
        url: str | Callable[[], str] | None = None,
        during: tuple[Any, str, Exception] | None = None,
        checkpoint_key: str | None = None,
        then: Callable[[], None] | None = None,
        **request: Any,
    ) -> None:
        async def run(web: Web) -> tuple[int, Any]:
            with monkeypatch.context() as patch:
                if during is not None:
                    target, name, exc = during
                    patch.setattr(target, name, failing(exc))
                if checkpoint_key is not None:  # as CREDIT_CHECKPOINT_KEY would give it the worker
                    patch.setattr(web.api.proofs, "key", checkpoint_key)
                target_url = url() if callable(url) else url or path
                answer = await web.call(method, target_url, **request)
            if then is not None:
                then()
            return answer

        found[(method, path, status)] = run

    probe("GET", "/v1/", 200)
    probe("GET", "/v1/openapi.json", 200)
    probe("POST", "/v1/submissions", 202, json=[example("file_record")])
    probe("POST", "/v1/submissions", 400, data=b"{")
    probe("POST", "/v1/submissions", 413, json=[{}] * 10_001)
    inbox_down = (desk.ledger.inbox, "append_inbox", OperationalError("database is locked"))
    probe("POST", "/v1/submissions", 503, json=[example("file_record")], during=inbox_down)
    outcomes = "/v1/outcomes"
    probe("GET", outcomes, 200, key=keys.tax)
    probe("GET", outcomes, 400, url=f"{outcomes}?limit=abc", key=keys.tax)
    probe("GET", outcomes, 401)
    probe("GET", outcomes, 403, key=keys.auditor)
    probe("GET", outcomes, 503, key=keys.tax, during=register_down)
    original = "/v1/outcomes/{position}/original"
    rejected = lambda: f"/v1/outcomes/{a_rejected_position(desk)}/original"  # noqa: E731
    probe("GET", original, 200, url=rejected, key=keys.tax)
    probe("GET", original, 400, url="/v1/outcomes/abc/original", key=keys.tax)
    probe("GET", original, 401, url=rejected)
    probe("GET", original, 403, url=rejected, key=keys.auditor)
    probe("GET", original, 404, url="/v1/outcomes/999999/original", key=keys.tax)
    probe("GET", original, 503, url=rejected, key=keys.tax, during=register_down)
    status = "/v1/queries/status"
    probe("POST", status, 200, key=keys.tax, json=status_body)
    probe("POST", status, 400, key=keys.tax, json={**status_body, "as_of": "yesterday"})
    probe("POST", status, 401, key=GARBAGE, json=status_body)
    probe("POST", status, 403, json=status_body)
    probe("POST", status, 404, key=keys.tax, json={**status_body, "subject": {"id": NO_FILE}})
    probe("POST", status, 413, key=keys.tax, data=HUGE)
    probe("POST", status, 503, key=keys.tax, json=status_body, during=register_down)
    for what in ("status", "queries", "report"):
        me = f"/v1/me/{what}"
        probe("GET", me, 200, key=keys.me)
        probe("GET", me, 401, key=GARBAGE)
        probe("GET", me, 403, key=keys.tax)
        probe("GET", me, 503, key=keys.me, during=register_down)
    grant = "/v1/me/authorisations"
    probe("POST", grant, 202, key=keys.me, json=GRANT)
    probe("POST", grant, 400, key=keys.me, json=[1])
    probe("POST", grant, 401, key=GARBAGE, json=GRANT)
    probe("POST", grant, 403, key=keys.tax, json=GRANT)
    probe("POST", grant, 413, key=keys.me, data=HUGE)
    probe("POST", grant, 503, key=keys.tax, json=GRANT, during=register_down)
    revoke = "/v1/me/authorisations/{authorisation_id}/revoke"
    probe("POST", revoke, 202, url="/v1/me/authorisations/SQ-2026-0601/revoke", key=keys.me)
    probe("POST", revoke, 400, url=f"/v1/me/authorisations/{'x' * 1001}/revoke", key=keys.me)
    probe("POST", revoke, 401, url="/v1/me/authorisations/SQ-2026-0601/revoke", key=GARBAGE)
    probe("POST", revoke, 403, url="/v1/me/authorisations/SQ-2026-0601/revoke", key=keys.tax)
    probe("POST", revoke, 503, url="/v1/me/authorisations/A/revoke", key=keys.tax, during=register_down)
    lists = "/v1/lists/{list_name}"
    probe("GET", lists, 200, url="/v1/lists/black")
    probe("GET", lists, 401, url="/v1/lists/red", key=GARBAGE)
    probe("GET", lists, 404, url="/v1/lists/white")
    probe("GET", lists, 503, url="/v1/lists/red", during=register_down)
    checks = "/v1/checks"
    check = {"subject": {"id": ORGANISATION}, "business": "supervision_inspection", "reference": "JC-2026-01"}
    probe("POST", checks, 200, key=keys.tax, json=check)
    probe("POST", checks, 400, key=keys.tax, json={**check, "business": "fortune_telling"})
    probe("POST", checks, 401, key=GARBAGE, json=check)
    probe("POST", checks, 403, key=keys.auditor, json=check)
    probe("POST", checks, 413, key=keys.tax, data=HUGE)
    probe("POST", checks, 503, key=keys.tax, json=check, during=register_down)
    stats = "/v1/measures/stats"
    probe("GET", stats, 200, key=keys.tax)
    probe("GET", stats, 400, url=f"{stats}?since=yesterday", key=keys.tax)
    probe("GET", stats, 401, key=GARBAGE)
    probe("GET", stats, 403, key=keys.me)
    probe("GET", stats, 503, key=keys.auditor, during=register_down)
    publicity = "/v1/publicity"
    probe("GET", publicity, 200)
    probe("GET", publicity, 400, url=f"{publicity}?page=0")
    probe("GET", publicity, 503, during=(desk.store.records, "publicity", OSError("database is locked")))
    audit = "/v1/audit/queries"
    probe("GET", audit, 200, key=keys.auditor)
    probe("GET", audit, 401, key=GARBAGE)
    probe("GET", audit, 403, key=keys.tax)
    probe("GET", audit, 503, key=keys.auditor, during=register_down)
    probe("GET", "/checkpoint", 404)  # nothing signed yet
    tile = "/tile/{level}/{index}"
    probe("GET", tile, 200, url="/tile/0/000.p/1", as_bytes=True)
    probe("GET", tile, 400, url="/tile/0/x000/001")
    probe("GET", tile, 404, url="/tile/0/x001/000")
    probe("GET", tile, 409, url="/tile/0/000.p/1", during=(LedgerTree, "catch_up", StoreChanged("moved")))
    key = "/v1/proofs/public-key"
    probe("GET", key, 404, then=lambda: sign_a_checkpoint_then_file_one_more(desk, data_dir))
    probe("GET", "/checkpoint", 200, as_bytes=True)
    probe("GET", key, 503, checkpoint_key="not hex")
    probe("GET", key, 200)
    probe("GET", "/v1/proofs/checkpoints", 200)
    probe("GET", "/v1/proofs/checkpoints", 400, url="/v1/proofs/checkpoints?limit=-1")
    inclusion = "/v1/proofs/inclusion"
    probe("GET", inclusion, 200, url=f"{inclusion}?position=1")
    probe("GET", inclusion, 400)
    probe("GET", inclusion, 404, url=f"{inclusion}?position=99999&size=1")
    # The newest event: every request records a query, so it is newer than the checkpoint.
    probe("GET", inclusion, 409, url=lambda: f"{inclusion}?position={desk.ledger.reader.head()}")
    probe("GET", inclusion, 422, url=f"{inclusion}?position=1&size=99999")
    consistency = "/v1/proofs/consistency"
    probe("GET", consistency, 200, url=f"{consistency}?old=1&new=2")
    probe("GET", consistency, 400, url=f"{consistency}?old=a&new=2")
    probe(
        "GET",
        consistency,
        409,
        url=f"{consistency}?old=1&new=2",
        during=(LedgerTree, "catch_up", StoreChanged("moved")),
    )
    probe("GET", consistency, 422, url=f"{consistency}?old=2&new=99999")
    probe("GET", "/v1/health", 200)
    probe("GET", "/v1/health", 503, during=(desk.ledger.reader, "head", OSError("database is locked")))
    return found


def test_every_documented_status_is_one_a_handler_answers(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keys(desk)
    table = probes(desk, keys, tmp_path, monkeypatch)

    async def answered(web: Web) -> set[tuple[str, str, int]]:
        _, document = await web.call("GET", "/v1/openapi.json")
        documented = {
            (method.upper(), path, int(status))
            for path, ops in document["paths"].items()
            for method, op in ops.items()
            for status in op["responses"]
        }
        seen = set()
        for (method, path, status), run in table.items():
            got, body = await run(web)
            assert got == status, (method, path, status, body)
            if status >= 400 and path != "/v1/health":
                assert_error_body(body)
            seen.add((method, path, status))
        assert {s for s in documented if s[2] != 500} == seen
        return documented

    async def run() -> set[tuple[str, str, int]]:
        async with Web(desk, tmp_path) as web:
            return await answered(web)

    documented = asyncio.run(run())
    assert {(m, p) for m, p, s in documented if s == 500} == {(m, p) for m, p, _ in documented}
    every_route_answers_500_in_json(desk, tmp_path / "failing", monkeypatch)


def a_rejected_position(desk: Desk) -> int:
    """The outcomes-log position of a rejected tax-bureau submission (filed on first use)."""
    bad = {**example("file_record"), "submission_id": "TAX-REJECTED-ORIGINAL"}
    bad["subject"] = {**bad["subject"], "id": "11010519491231002Y"}  # a wrong check digit
    desk.ledger.submit([bad])
    logged = desk.ledger.outcomes_after(0, limit=100_000)
    return next(p for p, o in logged if o.submission_id == "TAX-REJECTED-ORIGINAL")


def sign_a_checkpoint_then_file_one_more(desk: Desk, data_dir: Path) -> None:
    tree = LedgerTree(desk.ledger)
    tree.catch_up()
    signer = checkpoint_signer(data_dir)
    CheckpointLog.in_dir(data_dir).append(tree.checkpoint(signer, datetime.now(UTC), origin=DEFAULT_ORIGIN))
    desk.submit(example("correct_record"))  # newer than the checkpoint: 409 for its inclusion


def assert_error_body(body: Any) -> None:
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "field", "message"}, body
    assert all(isinstance(v, str) for v in body["error"].values()), body


def every_route_answers_500_in_json(desk: Desk, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each route's handler failing unexpectedly, and health's check, answer 500 internal_error."""

    async def boom(*args: Any) -> Any:
        raise RuntimeError("unexpected")

    failing = tuple(r if r.handler is None else dataclasses.replace(r, handler=boom) for r in ROUTES)
    monkeypatch.setattr(HealthCheck, "report", boom)
    keys = Keys(desk)

    async def run() -> None:
        async with Web(desk, data_dir, failing) as web:
            for route in failing:
                path = route.path.replace("{list_name}", "black").replace("{authorisation_id}", "A")
                path = path.replace("{position}", "1").replace("{level}/{index}", "0/000.p/1")
                status, body = await web.call(route.method, path, key=keys.tax, json={})
                assert (status, body["error"]["code"]) == (500, "internal_error"), route.path

    asyncio.run(run())


def test_docs_http_md_lists_every_route_with_the_statuses_it_answers() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text("utf-8")
    listed = {
        (match.group(1), match.group(2)): match.group(3)
        for match in re.finditer(r"^\| `(GET|POST) ([^`]+)` \| [^|]+ \| ([0-9, ]+) \|$", page, re.MULTILINE)
    }
    assert listed == {
        (route.method, route.path): ", ".join(str(s) for s in statuses(route) if s != 500) for route in ROUTES
    }
