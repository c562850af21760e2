"""Long-running commands end cleanly on SIGTERM or SIGINT: their work runs until a stop event is set."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
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
