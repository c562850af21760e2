"""Bench only: ``credit-ledger`` with encryption off, for bench/intake.py's comparison run.

There is no setting for this on purpose: production cannot turn privacy off. This launcher
replaces, in its own process only, the composition root's step that gives the ledger its master
key (``CreditLedger.use_master_key``) with one that leaves the ledger unsealed, then runs the CLI.
Children a serve spawns (``--workers N`` above 1) run the real CLI and seal.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]  # bench/projections.py is no package

from credit_ledger.cli import main
from ledger.application.service import CreditLedger


def _unsealed(self: CreditLedger, master_key: bytes) -> None:
    self.privacy = None


if __name__ == "__main__":
    CreditLedger.use_master_key = _unsealed  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
