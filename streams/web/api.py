"""What every handler reaches: the worker's parts, the services built once, and the served routes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ledger.application.measures import MeasuresService
from ledger.application.queries import QueryService
from streams.parts import WorkerParts
from streams.web.calls import Route
from streams.web.proofs import ProofService


@dataclass
class Api:
    """What handlers reach: the worker's parts, the services built once, and the served routes."""

    parts: WorkerParts
    proofs: ProofService
    routes: tuple[Route, ...]
    max_item_bytes: int = 1_000_000 - 1024
    """The largest submission (with its key) that fits one message of the worker's producer."""

    @property
    def queries(self) -> QueryService:
        service = self.parts.queries
        assert service is not None, "routes that need the query service are served only with one"
        return service

    @cached_property
    def measures(self) -> MeasuresService:
        """Checks and supervision figures, recorded through the query service's register."""
        return MeasuresService(self.queries)
