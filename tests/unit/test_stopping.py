"""A worker asked to stop exits within its deadline, saying why and what hung, even if the shutdown hangs."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path

import pytest

from streams.stopping import StopDeadline, quiet_about_unclosed_clients


def test_a_stop_that_overruns_its_deadline_exits_with_128_plus_the_signal_and_prints_the_threads(
    tmp_path: Path,
) -> None:
    exited = threading.Event()
    codes: list[int] = []
    stream = (tmp_path / "stderr").open("w+")

    def exit_(code: int) -> None:
        codes.append(code)
        exited.set()

    deadline = StopDeadline(0.05, stream=stream, exit_process=exit_)
    deadline.arm(signal.SIGINT)
    assert exited.wait(timeout=10), "the deadline never fired"
    assert codes == [130]
    stream.seek(0)
    report = stream.read()
    assert "did not stop within 0 s of SIGINT; exiting now" in report
    assert "Nothing committed is lost" in report
    assert "Thread 0x" in report or "Current thread 0x" in report  # faulthandler's stacks


def test_a_second_signal_does_not_restart_the_countdown_and_a_clean_stop_cancels_it() -> None:
    codes: list[int] = []
    deadline = StopDeadline(0.2, exit_process=codes.append)
    deadline.arm(signal.SIGTERM)
    first = deadline._timer
    deadline.arm(signal.SIGINT)
    assert deadline._timer is first
    deadline.cancel()
    assert first is not None
    first.join(timeout=5)
    assert codes == []


def test_while_stopping_unclosed_kafka_clients_are_not_reported_as_errors_but_anything_else_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.DEBUG):
            quiet_about_unclosed_clients(loop, {"message": "Unclosed AIOKafkaProducer", "producer": object()})
            quiet_about_unclosed_clients(loop, {"message": "Task exception was never retrieved"})
    finally:
        loop.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Task exception was never retrieved"]
