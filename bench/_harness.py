"""What every benchmark shares: the import path, its arguments, the machine line, GC tuning, a ledger.

Import it first (``import _harness``): ``python bench/x.py`` puts ``bench/`` at the head of the
import path, where ``bench/projections.py`` would shadow the ``projections`` package; this puts the
repository's root there instead, so the benchmarks run from a checkout as they are documented.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from ledger.application.service import CreditLedger
    from ledger.domain.catalogue import Catalogue

SECRET = b"bench-secret-0123456789"
NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
"""The ledger's clock in every benchmark: generated submissions are dated relative to it."""


def parser(doc: str | None, epilog: str | None = None) -> argparse.ArgumentParser:
    """The script's arguments, its module docstring as the description."""
    return argparse.ArgumentParser(
        description=doc, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def machine() -> str:
    return f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def start(*, gc: bool = True) -> None:
    """Tune the garbage collector as credit-ledger's long-running commands do, and say where we run."""
    if gc:
        from credit_ledger.compose import tune_gc  # noqa: PLC0415 - after the import path is fixed

        tune_gc()
    print(machine())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


BENCH_MASTER_KEY = bytes(range(32))
"""The benchmarks' master key: personal fields sealed as in production (``--no-encryption`` runs without)."""


def open_ledger(path: Path, catalogue: Catalogue, *, encrypted: bool = True) -> CreditLedger:
    """A ledger on a SQLite file, its clock stopped at ``NOW``, sealing personal fields unless told not to."""
    from ledger.application.service import CreditLedger  # noqa: PLC0415 - after the import path is fixed

    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    master_key = BENCH_MASTER_KEY if encrypted else None
    return CreditLedger(catalogue=catalogue, secret=SECRET, clock=lambda: NOW, env=env, master_key=master_key)
