"""A monotonic clock for tests: it moves only when told to (``clock.now += seconds``)."""

from __future__ import annotations


class Ticks:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
