"""API keys are authoritative: they live in the ledger's database, never in the read store a rebuild replaces."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credit_ledger.compose import STORE_FILE, build_ledger, build_store, migrate_api_keys
from credit_ledger.config import Settings
from ledger.application.keys import authenticate, hash_key, issue_key
from ledger.store.rows import API_KEY_COLUMNS

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_a_key_still_works_after_the_read_store_is_thrown_away(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    ledger = build_ledger(settings)
    _, key = issue_key(
        ledger.keys,
        role="auditor",
        organisation="审计署",
        label="年度审计",
        subject_key=None,
        now=NOW,
        departments=ledger.catalogue.latest.departments,
    )
    ledger.close()
    build_store(settings).close()
    store = tmp_path / STORE_FILE
    assert "api_keys" not in tables(store)  # the read models hold no key at all
    store.unlink()  # what `projections rebuild` lets an operator do: the read store is derived

    again = build_ledger(settings)
    try:
        principal = authenticate(again.keys, key)
        assert principal is not None
        assert (principal.role, principal.organisation) == ("auditor", "审计署")
    finally:
        again.close()


def test_keys_an_older_release_kept_in_the_read_store_move_into_the_ledger_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = "clk_0123456789ab_" + "x" * 32
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:  # the read store as releases before 0.2 left it
        conn.execute(f"CREATE TABLE api_keys ({', '.join(API_KEY_COLUMNS)})")
        conn.execute(
            f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("0123456789ab", hash_key(key), "auditor", "审计署", "旧钥", None, NOW.isoformat(), None),
        )
    settings = Settings(data_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="credit_ledger.compose"):
        ledger = build_ledger(settings)
    try:
        assert "moved 1 API key(s)" in caplog.text
        principal = authenticate(ledger.keys, key)
        assert principal is not None
        assert principal.role == "auditor"
        assert migrate_api_keys(ledger, settings) == 0  # a second start copies nothing
        assert [row["key_id"] for row in ledger.keys.api_keys()] == ["0123456789ab"]
    finally:
        ledger.close()
