"""Long-running commands end cleanly on SIGTERM or SIGINT: their work runs until a stop event is set."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any


def run_until_signalled(work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``work(stop)`` on its own event loop; SIGTERM or SIGINT sets ``stop``, so it ends cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await work(stop)

    asyncio.run(main())


@contextmanager
def stop_on_signal() -> Iterator[threading.Event]:
    """An event SIGTERM or SIGINT sets, for a loop that checks it between polls; the handlers
    before are restored after.

    A Kafka client interrupted by ``KeyboardInterrupt`` in the middle of a request can leave its
    last commit unanswerable: ``subscribe`` then took kafka-python's whole request timeout (30 s)
    to close after Ctrl-C. Checked between polls, a stop lets the commit and the group's leave go
    as they do at any other close."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
