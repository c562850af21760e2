"""Run `credit-ledger serve` as a real process for tests, and read topics with deadlines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from contract import topics
from streams.broker import EmbeddedBroker, free_port
from streams.clients import read_topic

SESSION_TIMEOUT = "2"  # the embedded broker accepts less than Kafka's 6 s minimum; joins in ~1 s
SUBJECT_SECRET = "integration-test-secret-0123456789"


class Served:
    """One `credit-ledger serve` process with its own data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bootstrap: str | None = None,
        http: bool = False,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.bootstrap = bootstrap
        self.extra_args = extra_args  # e.g. ("--no-relay",)
        self.env = env or {}  # e.g. CREDIT_DATABASE_URL
        self.http_port = free_port() if http else None
        self.log = data_dir / f"serve-{time.time_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Served:
        return self.launch().ready(timeout)

    def launch(self) -> Served:
        """Start the process and return at once (``ready`` waits for its banner): several workers
        start side by side, each paying its imports and its connections at the same time."""
        env = {
            **os.environ,
            "CREDIT_DATA_DIR": str(self.data_dir),
            "CREDIT_KAFKA_SESSION_TIMEOUT": SESSION_TIMEOUT,
            "CREDIT_SUBJECT_SECRET": SUBJECT_SECRET,
            **self.env,
        }
        env.pop("CREDIT_KAFKA_BOOTSTRAP", None)
        if self.bootstrap:
            env["CREDIT_KAFKA_BOOTSTRAP"] = self.bootstrap
        args = [sys.executable, "-m", "credit_ledger.cli", "serve"]
        args += ["--http-port", str(self.http_port)] if self.http_port else ["--no-http"]
        args += self.extra_args
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def ready(self, timeout: float = 30.0) -> Served:
        """Until the banner names the broker; a serve that does not come up in time is killed."""
        try:
            found = wait_for(
                lambda: re.search(r"kafka: +(\S+)", self.log.read_text()), timeout, self.describe
            )
        except BaseException:
            self.kill()  # a serve that did not come up must not outlive the test
            raise
        self.bootstrap = found.group(1)
        return self

    def describe(self) -> str:
        return f"serve log:\n{self.log.read_text()[-3000:]}"

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; a process that does not stop in time is killed (and the test fails)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"serve did not stop within {timeout}s of SIGTERM. {self.describe()}"
            ) from None


def cli(served: Served, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """One ``credit-ledger`` command against the served data dir and broker."""
    env = {
        **os.environ,
        "CREDIT_DATA_DIR": str(served.data_dir),
        "CREDIT_KAFKA_BOOTSTRAP": served.bootstrap or "",
        "CREDIT_SUBJECT_SECRET": SUBJECT_SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "credit_ledger.cli", *args],
        check=False,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def serving_alone(tmp_path: Path) -> Iterator[Served]:
    """`serve` with HTTP on a broker of its own (so no other test's topics), the scheduler every
    second; stopped cleanly at the end (the test fails if it does not stop)."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        os.environ["CREDIT_SCHEDULER_INTERVAL"] = "1"
        try:
            served = Served(tmp_path / "data", bootstrap=broker.bootstrap, http=True).start()
        finally:
            del os.environ["CREDIT_SCHEDULER_INTERVAL"]
        try:
            yield served
        finally:
            assert served.stop() == 0


def issue_key(served: Served, *options: str) -> str:
    """A new API key (``keys issue`` options), issued with the CLI into the served ledger."""
    env = {**os.environ, "CREDIT_DATA_DIR": str(served.data_dir), "CREDIT_SUBJECT_SECRET": SUBJECT_SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "credit_ledger.cli", "keys", "issue", *options],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key: str = orjson.loads(done.stdout)["key"]
    return key


def answers(url: str) -> bool:
    """Whether ``url`` answers a GET with a success."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:  # refused, dead, or an HTTP error status
        return False


def wait_for(probe: Callable[[], Any], timeout: float, describe: Callable[[], str] = lambda: "") -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``describe()`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s. {describe()}")
        time.sleep(0.1)


def records(bootstrap: str, topic: str, *, idle: float = 0.5) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in read_topic(bootstrap, topic, idle=idle)]


def is_scheduler_command(outcome: dict[str, Any]) -> bool:
    """The platform's own time-driven commands (expiries of generated past records, ...)."""
    return str(outcome.get("submission_id")).startswith("sched.")


def outcomes_until(
    bootstrap: str, count: int, timeout: float = 40.0, describe: Callable[[], str] = lambda: ""
) -> list[dict[str, Any]]:
    """The outcomes on credit.outcomes once there are at least ``count`` of them, leaving out the
    scheduler's (it runs when a worker starts, at a time the test does not choose)."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = [o for o in records(bootstrap, topics.OUTCOMES) if not is_scheduler_command(o)]
        return len(found) >= count

    wait_for(enough, timeout, lambda: f"{len(found)} of {count} outcomes. {describe()}")
    return found
