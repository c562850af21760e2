"""A worker asked to stop ends within a deadline, even when Faust's own shutdown hangs."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import faust

log = logging.getLogger(__name__)

STOP_DEADLINE_SECONDS = 30.0
"""How long a worker may take to stop after SIGINT/SIGTERM before it exits regardless.

A clean stop takes a few seconds (leave the group, flush the producer, close the ledger).
Faust can hang in its shutdown, notably when the signal comes while it is still starting
(robinhood/faust#484); an operator's Ctrl-C or a supervisor's SIGTERM must still end it.
"""


class StopDeadline:
    """Armed by the first stop signal; if the process is still here ``seconds`` later, it says
    so, prints every thread's stack (what hung, for a bug report) and exits with 128+signal.

    Exiting without the rest of the shutdown is safe: the ledger commits each batch in one
    transaction and the intake applies a submission again idempotently, as after a crash;
    serve's children and the embedded broker die with this process (parent-death signal).
    """

    def __init__(
        self,
        seconds: float = STOP_DEADLINE_SECONDS,
        *,
        stream: IO[str] | None = None,  # a file with a descriptor (faulthandler writes to it)
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.seconds = seconds
        self.stream = stream
        self.exit_process = exit_process
        self._timer: threading.Timer | None = None

    def arm(self, signum: int) -> None:
        """Start the countdown (once: a second signal does not extend it)."""
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.seconds, self._overdue, args=(signum,))
        self._timer.daemon = True
        self._timer.start()

    def arm_on_ctrl_c(self) -> None:
        """Arm on a Ctrl-C that comes before the worker handles signals itself (still starting).

        Python turns it into KeyboardInterrupt, as before; the shutdown it unwinds into (Faust
        stopping a half-started worker, among others) is then bounded too.
        """

        def interrupted(signum: int, frame: object) -> None:
            self.arm(signum)
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, interrupted)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _overdue(self, signum: int) -> None:
        stream = self.stream or sys.stderr
        name = signal.Signals(signum).name
        stream.write(
            f"credit-ledger did not stop within {self.seconds:.0f} s of {name}; exiting now. "
            "Nothing committed is lost and the rest is applied again at the next start. "
            "Its threads, for a bug report:\n"
        )
        stream.flush()
        try:
            faulthandler.dump_traceback(file=stream, all_threads=True)  # needs a real file: stderr
            stream.flush()
        finally:
            self.exit_process(128 + signum)


class BoundedStopWorker(faust.Worker):
    """faust.Worker whose shutdown after SIGINT/SIGTERM is bounded by a ``StopDeadline``."""

    def __init__(self, app: faust.App, *, deadline: StopDeadline, **options: Any) -> None:
        super().__init__(app, **options)
        self.deadline = deadline

    # mode's signal handlers (mode.worker.Worker), the one place a stop request arrives.
    def _on_sigint(self) -> None:
        self._stopping(signal.SIGINT)
        super()._on_sigint()

    def _on_sigterm(self) -> None:
        self._stopping(signal.SIGTERM)
        super()._on_sigterm()

    def _stopping(self, signum: int) -> None:
        self.deadline.arm(signum)
        self.loop.set_exception_handler(quiet_about_unclosed_clients)


def quiet_about_unclosed_clients(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """While stopping, Kafka clients that Faust made but had not started yet (a stop soon after
    the start) are garbage-collected unclosed; aiokafka reports each as an error, during the
    shutdown and after "stopped cleanly". They hold nothing; anything else is reported as usual."""
    if str(context.get("message", "")).startswith("Unclosed AIOKafka"):
        log.debug("%s", context["message"])
        return
    loop.default_exception_handler(context)
