"""Long jobs show progress to a person at a terminal and stay silent for machines (issue 17, item 6)."""

from __future__ import annotations

import os
import pty
import sys

import pytest

from credit_ledger.progress import progress


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("events verified", total=10) as advance:
        for done in range(11):
            advance(done)
    assert capsys.readouterr() == ("", "")


def test_nothing_is_drawn_when_the_command_prints_json_even_at_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        with progress("events replayed", enabled=False) as advance:
            advance(5)
    os.set_blocking(leader, False)
    try:
        drawn = os.read(leader, 1024)
    except OSError:  # nothing to read: EAGAIN, or EIO once the terminal is closed
        drawn = b""
    os.close(leader)
    assert drawn == b""


def test_a_terminal_sees_what_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        monkeypatch.setenv("TERM", "xterm")
        with progress("events verified", total=1000) as advance:
            advance(500)
        terminal.flush()
    os.set_blocking(leader, False)
    drawn = b""
    try:
        while chunk := os.read(leader, 65536):
            drawn += chunk
    except (BlockingIOError, OSError):
        pass
    os.close(leader)
    assert b"events verified" in drawn
