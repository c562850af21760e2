"""The composition root: builds the ledger, the read models and the query service from settings.

The one place that chooses adapters; everything below receives what it needs as arguments.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from contract.messages import messages_from_store
from credit_ledger.config import ConfigError, Settings, ledger_env
from ledger.application.measures import MeasuresService
from ledger.application.privacy import MasterKeyMismatch
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger, utc_now
from ledger.domain.catalogue import Catalogue, load_catalogue
from ledger.domain.errors import CatalogueError
from ledger.store.rows import API_KEY_COLUMNS
from projections.projector import Projector
from projections.reader import ProjectionReader
from projections.store import ProjectionStore

log = logging.getLogger(__name__)
STORE_FILE = "projections.sqlite"  # the read models' SQLite file in a data dir or a rebuild's dir


def tune_gc() -> None:
    """Collect garbage less often: a ledger worker keeps a large, long-lived aggregate cache.

    CPython's cyclic collector otherwise walks that whole cache again and again while a batch
    allocates events (about 15% of intake time, measured in bench/ledger_append.py). Objects
    alive at start-up are frozen out of collection; the thresholds make full collections rare.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


def build_ledger(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> CreditLedger:
    """The configured ledger, sealing under the configured master key (its older API keys moved in)."""
    ledger = open_ledger_unkeyed(settings, clock=clock)
    try:
        ledger.use_master_key(settings.master_key_bytes(ledger_is_new=not ledger.data_keys.master_key_ids()))
    except MasterKeyMismatch as exc:
        ledger.close()
        raise ConfigError(f"CREDIT_MASTER_KEY / {settings.master_key_file}: {exc}") from None
    except ConfigError:
        ledger.close()
        raise
    migrate_api_keys(ledger, settings)
    return ledger


def open_ledger_unkeyed(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> CreditLedger:
    """The configured ledger before any master key is chosen: what ``keys rotate-master`` opens,
    since the key it is given may not be the one the data keys are wrapped by yet."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return CreditLedger(
        catalogue=build_catalogue(settings),
        secret=settings.secret_bytes(),
        clock=clock,
        env=ledger_env(settings),
    )


def build_catalogue(settings: Settings) -> Catalogue:
    """The configured catalogue file, or the one shipped in the package."""
    try:
        return load_catalogue(settings.catalogue)
    except CatalogueError as exc:
        if settings.catalogue is None:
            raise  # the shipped one is broken: a bug, not a setting
        raise ConfigError(f"CREDIT_CATALOGUE ({exc.code}): {exc.message}") from None


def projections_target(settings: Settings) -> str:
    """Where the read models live: the configured PostgreSQL database, or a SQLite file."""
    url = settings.database_url
    if url and url.startswith(("postgres://", "postgresql://")):
        return url
    return str(settings.data_dir / STORE_FILE)


def build_store(settings: Settings) -> ProjectionStore:
    """The live read models."""
    return ProjectionStore(projections_target(settings))


def store_in(directory: Path) -> ProjectionStore:
    """The read models a rebuild or replay wrote into ``directory``."""
    return ProjectionStore(directory / STORE_FILE)


def fresh_store(directory: Path) -> ProjectionStore:
    """An empty store in ``directory`` for a rebuild or replay: always written from nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STORE_FILE
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return ProjectionStore(path)


def history_of(ledger: CreditLedger) -> Callable[[str], list[dict[str, Any]]]:
    """One subject's ledger messages, read from the ledger's own store (as-of views, gap repair)."""
    return lambda key: messages_from_store(ledger.reader, UUID(key))


def build_reader(ledger: CreditLedger, store: ProjectionStore) -> ProjectionReader:
    """The read models as the query service reads them; as-of views fold the ledger's own history."""
    return ProjectionReader(store, ledger.catalogue, history_of(ledger))


def build_query_service(
    ledger: CreditLedger, store: ProjectionStore, *, key_cache_seconds: float = 0.0
) -> QueryService:
    """``key_cache_seconds``: a serving process's (``ledger.application.keys.KeyCache``)."""
    return QueryService(ledger, build_reader(ledger, store), key_cache_seconds=key_cache_seconds)


def open_query_service(settings: Settings) -> QueryService:
    """The authorised, recorded read path (as the HTTP API has it), on the configured ledger and store."""
    return build_query_service(build_ledger(settings), build_store(settings))


def open_measures_service(settings: Settings) -> MeasuresService:
    """Checks before approval and the supervision figures, recorded as the HTTP API records them."""
    return MeasuresService(open_query_service(settings))


def build_projector(ledger: CreditLedger, store: ProjectionStore) -> Projector:
    """The read models' fold; gaps and as-of views are filled from the ledger's own history, and
    persons' names are indexed blind through the ledger's key ring (``index_names``)."""
    return Projector(index_names(store, ledger), ledger.catalogue, history=history_of(ledger))


def index_names(store: ProjectionStore, ledger: CreditLedger) -> ProjectionStore:
    """``store``, writing the blind index of persons' names (opened through ``ledger``'s key ring)."""
    store.names = ledger.name_index.of
    return store


def migrate_api_keys(ledger: CreditLedger, settings: Settings) -> int:
    """Copy API keys from the read store, where releases before 0.2 kept them, into the ledger.

    Keys are authoritative (a rebuild of the read models must never lose them), so they now live
    in the ledger's database. Idempotent: keys already in the ledger are left as they are, and the
    old table is left in place (a rebuild writes a fresh store without it).
    """
    if settings.database_url and not settings.database_url.startswith("sqlite"):
        return 0  # PostgreSQL deployments share one database: the table is the same one
    old = Path(projections_target(settings))
    if not old.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{old}?mode=ro", uri=True) as conn:
            rows = conn.execute(f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys").fetchall()
    except sqlite3.Error:
        return 0  # no such table (a store made since): nothing to migrate
    copied = 0
    for row in rows:
        if ledger.keys.key(row[0]) is None:
            ledger.keys.add_key(dict(zip(API_KEY_COLUMNS, row, strict=True)))
            copied += 1
    if copied:
        log.warning("moved %d API key(s) from %s into the ledger's database", copied, old)
    return copied
