"""Portal sessions kept in the ledger's database: shared by workers, kept over a restart, expiring.

Two portals (two apps, as two workers or a worker before and after a restart) over one SQLite
ledger; only the SHA-256 of a session's token is stored; idle and lifetime timeouts refuse and
delete a session; sign-out deletes it for every worker.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ledger.application.keys import key_principal
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from streams.portal.security import SESSION_COOKIE, Sessions, hash_token
from tests.conftest import SECRET, Clock
from tests.unit.portaldesk import Browser, serve_portal
from tests.unit.querydesk import Desk


def on_database(catalogue: Catalogue, database: Path, tmp_path: Path, name: str) -> Desk:
    """A worker's ledger and read models over the shared ledger database ``database``."""
    clock = Clock(datetime(2026, 10, 10, 2, tzinfo=UTC))
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(database)}
    ledger = CreditLedger(catalogue=catalogue, secret=SECRET, clock=clock, env=env)
    return Desk(ledger, tmp_path / f"read-{name}.sqlite", clock)


def test_a_session_opened_by_one_worker_is_valid_in_another_and_signing_out_ends_it_for_both(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    database = tmp_path / "ledger.sqlite"
    first = on_database(catalogue, database, tmp_path, "first")
    key = first.api_key("department", "tax_bureau")
    cookie: dict[str, str] = {}

    async def sign_in(browser: Browser) -> None:
        signed = await browser.sign_in(key)
        assert signed.headers["Location"] == "/dashboard"
        jar = browser.web.client.session.cookie_jar
        cookie.update({c.key: c.value for c in jar})
        assert (await browser.get("/dashboard")).status == 200

    serve_portal(first, tmp_path / "a", sign_in)
    token = cookie[SESSION_COOKIE]
    stored = sqlite3.connect(database).execute("SELECT session_hash, key_id FROM portal_sessions").fetchall()
    assert [h for h, _ in stored] == [hash_token(token)]  # the hash, never the token
    assert token not in database.read_bytes().decode("latin-1")

    second = on_database(catalogue, database, tmp_path, "second")  # another worker, or after a restart
    header = f"{SESSION_COOKIE}={token}; portal_csrf={cookie['portal_csrf']}"

    async def use_and_sign_out(browser: Browser) -> None:
        page = await browser.get("/dashboard", Cookie=header)
        assert page.status == 200, page.text[:500]
        assert "部门看板：" in page.text
        out = await browser.post("/logout", {}, token=page.token, Cookie=header)
        assert out.headers["Location"] == "/"
        again = await browser.get("/dashboard", Cookie=header)
        assert (again.status, again.headers["Location"]) == (303, "/login")

    serve_portal(second, tmp_path / "b", use_and_sign_out)
    assert sqlite3.connect(database).execute("SELECT count(*) FROM portal_sessions").fetchone() == (0,)

    async def refused_in_the_first(browser: Browser) -> None:
        page = await browser.get("/dashboard", Cookie=header)
        assert (page.status, page.headers["Location"]) == (303, "/login")

    serve_portal(on_database(catalogue, database, tmp_path, "third"), tmp_path / "c", refused_in_the_first)


def test_an_idle_session_and_one_past_its_lifetime_are_refused_and_deleted(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    desk = on_database(catalogue, tmp_path / "ledger.sqlite", tmp_path, "one")
    desk.api_key("department", "tax_bureau")
    (row,) = desk.ledger.keys.api_keys()
    now = [1_000_000.0]
    store = desk.ledger.sessions

    def sessions() -> Sessions:  # a fresh instance each time: nothing is remembered in memory
        return Sessions(
            store,
            lambda key_id: key_principal(desk.ledger.keys, key_id),
            idle=1800,
            lifetime=8 * 3600,
            clock=lambda: now[0],
        )

    opened = sessions().open(row["key_id"])
    assert opened is not None
    idle_token, _ = opened
    now[0] += 1799
    assert sessions().get(idle_token) is not None  # used: idle counts from here
    now[0] += 1801
    assert sessions().get(idle_token) is None
    assert store.session(hash_token(idle_token)) is None

    opened = sessions().open(row["key_id"])
    assert opened is not None
    busy_token, _ = opened
    for _ in range(8 * 4):  # a request every 15 minutes for eight hours
        now[0] += 900
        assert sessions().get(busy_token) is not None
    now[0] += 900
    assert sessions().get(busy_token) is None  # past the lifetime, however busy
    assert store.session(hash_token(busy_token)) is None


def test_a_revoked_key_ends_its_sessions_and_opens_none(catalogue: Catalogue, tmp_path: Path) -> None:
    desk = on_database(catalogue, tmp_path / "ledger.sqlite", tmp_path, "one")
    desk.api_key("department", "court")
    (row,) = desk.ledger.keys.api_keys()
    sessions = Sessions(desk.ledger.sessions, lambda key_id: key_principal(desk.ledger.keys, key_id))
    opened = sessions.open(row["key_id"])
    assert opened is not None
    assert desk.ledger.keys.revoke_key(row["key_id"], "2026-10-10T03:00:00+00:00")
    assert sessions.get(opened[0]) is None
    assert sessions.open(row["key_id"]) is None
