"""Wires the ledger application from settings: the one place that chooses adapters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from credit_ledger.config import Settings, ledger_env
from ledger.application import CreditLedger, utc_now
from ledger.catalogue import load_catalogue


def build_ledger(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> CreditLedger:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return CreditLedger(
        catalogue=load_catalogue(settings.catalogue),
        secret=settings.secret_bytes(),
        clock=clock,
        env=ledger_env(settings),
    )
