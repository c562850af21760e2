"""Wires the ledger application from settings: the one place that chooses adapters."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime

from credit_ledger.config import Settings, ledger_env
from ledger.application.service import CreditLedger, utc_now
from ledger.domain.catalogue import load_catalogue


def tune_gc() -> None:
    """Collect garbage less often: a ledger worker keeps a large, long-lived aggregate cache.

    CPython's cyclic collector otherwise walks that whole cache again and again while a batch
    allocates events (about 15% of intake time, measured in bench/ledger_append.py). Objects
    alive at start-up are frozen out of collection; the thresholds make full collections rare.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


def build_ledger(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> CreditLedger:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return CreditLedger(
        catalogue=load_catalogue(settings.catalogue),
        secret=settings.secret_bytes(),
        clock=clock,
        env=ledger_env(settings),
    )
