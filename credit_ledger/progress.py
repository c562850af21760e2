"""Progress on long jobs (verify, replay, projections rebuild): shown on a terminal, silent otherwise.

Drawn on stderr with rich, so stdout stays machine-readable; nothing at all when stderr is not a
terminal (CI, pipes, log files) or the command prints JSON for a machine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int], None]
"""``advance(done)``: how many items are done so far (absolute, not a delta)."""


@contextmanager
def progress(what: str, *, total: int | None = None, enabled: bool = True) -> Iterator[Advance]:
    """A progress line for ``what`` ("events verified"), with a bar when ``total`` is known."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda done: None
        return
    from rich.console import Console  # noqa: PLC0415 - only for a person at a terminal
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed:,}")]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total or None)
        yield lambda done: bar.update(task, completed=done)
