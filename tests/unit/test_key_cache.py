"""A serving process remembers a valid API key for a second (``KeyCache``): a revoked key is still
refused within that second, a new key works at once, a key that is not valid is read every time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from credit_ledger.compose import build_query_service
from ledger.application.keys import KEY_CACHE_SECONDS, KeyCache
from ledger.application.ports import KeyStore
from ledger.domain.access import PUBLIC
from tests.conftest import PERSON
from tests.unit.querydesk import LICENSING, Desk, desk
from tests.unit.ticking import Ticks
from tests.unit.webdesk import Web, serve

__all__ = ["desk"]  # the fixture


class CountedKeys:
    """The ledger's key store, counting the reads of a key."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.reads = 0

    def key(self, key_id: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.keys.key(key_id)


def revoke(desk: Desk, key: str) -> None:
    assert desk.ledger.keys.revoke_key(key.split("_")[1], desk.clock().isoformat())


def test_a_revoked_key_is_refused_once_the_second_it_may_be_remembered_has_passed(desk: Desk) -> None:
    ticks = Ticks()
    store = CountedKeys(desk.ledger.keys)
    cache = KeyCache(store, 1.0, clock=ticks)  # type: ignore[arg-type] # only key() is read
    key = desk.api_key("department", "tax_bureau")
    principal = cache.authenticate(key)
    assert principal is not None
    assert principal.organisation == "tax_bureau"
    ticks.now += 0.5
    assert cache.authenticate(key) == principal
    assert store.reads == 1  # remembered: not read again within the second
    revoke(desk, key)
    ticks.now += 0.49
    assert cache.authenticate(key) == principal  # the bound: at most a second after it was read
    ticks.now += 0.02
    assert cache.authenticate(key) is None
    ticks.now += 5
    assert cache.authenticate(key) is None  # a refused key is never remembered: read, and refused
    assert store.reads == 3


def test_a_new_key_works_at_once_and_a_key_that_is_not_valid_is_read_every_time(desk: Desk) -> None:
    ticks = Ticks()
    store = CountedKeys(desk.ledger.keys)
    cache = KeyCache(store, 1.0, clock=ticks)  # type: ignore[arg-type]
    real = desk.api_key("department", "tax_bureau")
    forged = f"clk_{real.split('_')[1]}_not-the-secret"
    for _ in range(3):
        assert cache.authenticate(forged) is None
    assert store.reads == 3
    assert cache.authenticate(real) is not None  # issued after the forged key was refused
    assert cache.authenticate(None) is PUBLIC
    assert cache.authenticate("") is PUBLIC
    assert store.reads == 4


def test_with_no_seconds_nothing_is_remembered_so_a_revocation_is_at_once(desk: Desk) -> None:
    store = CountedKeys(desk.ledger.keys)
    cache = KeyCache(store, 0.0)  # type: ignore[arg-type]
    key = desk.api_key("department", "tax_bureau")
    assert cache.authenticate(key) is not None
    revoke(desk, key)
    assert cache.authenticate(key) is None
    assert store.reads == 2


def test_a_full_cache_is_emptied_and_still_answers_right(desk: Desk) -> None:
    ticks = Ticks()
    cache = KeyCache(desk.ledger.keys, 1.0, clock=ticks, size=2)
    keys = [desk.api_key("department", "tax_bureau") for _ in range(3)]
    principals = [cache.authenticate(key) for key in keys]
    assert all(p is not None for p in principals)
    assert len(cache._valid) <= 2
    revoke(desk, keys[0])
    ticks.now += 1.5
    assert cache.authenticate(keys[0]) is None
    assert cache.authenticate(keys[1]) == principals[1]


def test_only_the_served_query_service_remembers_keys(desk: Desk) -> None:
    assert desk.service.key_cache.seconds == 0  # the CLI's and the tests' query service
    served = build_query_service(desk.ledger, desk.store, key_cache_seconds=KEY_CACHE_SECONDS)
    assert served.key_cache.seconds == KEY_CACHE_SECONDS == 1.0


def test_over_http_a_revoked_key_gets_401_and_the_refusal_is_recorded_once_its_second_passed(
    desk: Desk, tmp_path: Path
) -> None:
    ticks = Ticks()
    desk.service.key_cache = KeyCache(desk.ledger.keys, KEY_CACHE_SECONDS, clock=ticks)
    key = desk.api_key("department", "tax_bureau")
    body = {"subject": {"id": PERSON}, **LICENSING}

    async def scenario(web: Web) -> None:
        status, _ = await web.call("POST", "/v1/queries/status", key=key, json=body)
        assert status == 200
        revoke(desk, key)
        ticks.now += KEY_CACHE_SECONDS
        status, answer = await web.call("POST", "/v1/queries/status", key=key, json=body)
        assert (status, answer["error"]["code"]) == (401, "invalid_key")
        records = desk.records()
        status, answer = await web.call("POST", "/v1/queries/status", key=key, json=body)
        assert (status, desk.records()) == (401, records + 1)  # each refusal recorded, as before

    serve(desk, tmp_path, scenario)
