"""Child processes beside the worker (relay, projector, more intake workers), restarted when they crash."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from credit_ledger.config import Settings
from credit_ledger.output import note
from streams.broker import die_with_parent_hook


@dataclass
class RestartDelay:
    """How long to wait before restarting a crashed child: doubling, capped, and reset by a healthy run.

    A child that crashes at once again and again backs off to ``most`` seconds; one that had run
    ``healthy_after`` seconds before it crashed is restarted after ``first`` again, since its
    crash says nothing about the ones before it.
    """

    first: float = 1.0
    most: float = 30.0
    healthy_after: float = 60.0
    upcoming: float = field(init=False)

    def __post_init__(self) -> None:
        self.upcoming = self.first

    def after_crash(self, ran_for: float) -> float:
        """The delay before the next start of a child that ran ``ran_for`` seconds and then crashed."""
        if ran_for >= self.healthy_after:
            self.upcoming = self.first
        delay = self.upcoming
        self.upcoming = min(delay * 2, self.most)
        return delay


class Child(Protocol):
    """What the supervisor needs of a started process (subprocess.Popen has it)."""

    def wait(self, timeout: float | None = None) -> int: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class ChildSupervisor(threading.Thread):
    """Runs a `credit-ledger` subcommand beside the worker, restarting it if it dies, until stopped.

    The relay and the projector are processes of their own so their work runs on other cores
    than the intake's; each dies with this process (Linux parent-death signal). ``spawn``,
    ``clock`` and ``pause`` are the process start, the monotonic clock and the wait between
    restarts; tests replace them.
    """

    def __init__(
        self,
        command: str,
        settings: Settings,
        bootstrap: str,
        *,
        args: tuple[str, ...] = (),
        name: str | None = None,
        spawn: Callable[[], Child] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], object] | None = None,
    ) -> None:
        self.command = name or command  # how the banner, the log file and messages call it
        super().__init__(name=f"{self.command}-supervisor", daemon=True)
        self.argv = [sys.executable, "-m", "credit_ledger.cli", command, *args]
        self.env = {**os.environ, **settings.environment(), "CREDIT_KAFKA_BOOTSTRAP": bootstrap}
        self.log_path: Path = settings.data_dir / f"{self.command}.log"
        self.stopping = threading.Event()
        self.starting = threading.Lock()
        self.process: Child | None = None
        self.restart_delay = RestartDelay()
        self.spawn = spawn or self.start_process
        self.clock = clock
        self.pause = pause or self.stopping.wait

    def start_process(self) -> Child:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A group of its own: a Ctrl-C at the terminal reaches serve alone, which stops its
                # children itself (a child interrupted while it starts would crash and be restarted).
                process_group=0,
                preexec_fn=die_with_parent_hook(),  # noqa: PLW1509 - only prctl, resolved before fork
            )

    def run(self) -> None:
        while True:
            with self.starting:  # stop() either sees this child or keeps the next one from starting
                if self.stopping.is_set():
                    return
                started = self.clock()
                self.process = self.spawn()
            code = self.process.wait()
            if self.stopping.is_set() or code == 0:
                return  # asked to stop, not a crash
            delay = self.restart_delay.after_crash(self.clock() - started)
            note(
                f"the {self.command} process exited with status {code}; "
                f"restarting in {delay:.0f}s (log: {self.log_path})"
            )
            self.pause(delay)

    def stop(self) -> None:
        self.request_stop()
        self.wait_stopped()

    def request_stop(self) -> None:
        """SIGTERM to the child, and no restart after it; ``wait_stopped`` waits for it."""
        with self.starting:
            self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self, timeout: float = 10.0) -> None:
        """Wait for the child to end, killing it after ``timeout`` seconds."""
        if self.process is not None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.is_alive():
            self.join(timeout=5)
