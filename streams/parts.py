"""What the HTTP views need from the worker they run in, handed over by the composition root."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from projections.store import ProjectionStore
from streams.deadletters import DeadLetterWatch
from streams.intake import Intake
from streams.scheduling import Scheduler


@dataclass(frozen=True)
class WorkerParts:
    """The worker's ledger, intake and ledger thread, and the read side when this worker has one."""

    ledger: CreditLedger
    intake: Intake
    executor: ThreadPoolExecutor
    submissions: Any  # the Faust topic of credit.submissions
    data_dir: Path  # checkpoints and the checkpoint key live here
    read_store: ProjectionStore | None = None  # one read connection, used on the ledger thread
    queries: QueryService | None = None
    health_stall_seconds: float = 30.0
    dead_letters: DeadLetterWatch | None = None  # credit.dead-letters as health reports it
    scheduler: Scheduler | None = None  # runs on this worker while it is the Faust app's leader
    log_origin: str = DEFAULT_ORIGIN  # the ledger's name in its C2SP checkpoints (the public key's vkey)
    checkpoint_key: str | None = None  # CREDIT_CHECKPOINT_KEY (None: the data dir's seed file)
