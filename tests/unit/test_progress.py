"""Long jobs show progress to a person at a terminal and stay silent for machines (issue 17, item 6)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

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


def verify_output(data_dir: Path, *, stderr_is_a_terminal: bool) -> tuple[bytes, bytes]:
    """`credit-ledger verify` as a person runs it (stderr a terminal) or a script does (a pipe)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")} | {"TERM": "xterm"}
    command = [sys.executable, "-m", "credit_ledger.cli", "verify", "--data-dir", str(data_dir)]
    if not stderr_is_a_terminal:
        done = subprocess.run(command, capture_output=True, env=env, timeout=120, check=True)
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=follower, env=env, timeout=120, check=True
        )
    finally:
        os.close(follower)
    drawn = b""
    try:
        while chunk := os.read(leader, 65536):
            drawn += chunk
    except OSError:  # EIO: the terminal's other end is closed and everything was read
        pass
    os.close(leader)
    return done.stdout, drawn


def test_verify_shows_its_progress_on_a_terminal_and_never_in_a_pipe_or_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from credit_ledger.cli import main  # noqa: PLC0415

    examples = tmp_path / "examples.jsonl"
    assert main(["schema", "--examples"]) == 0
    examples.write_text(capsys.readouterr().out, "utf-8")
    assert main(["apply", "--quiet", "--data-dir", str(tmp_path / "data"), str(examples)]) == 0

    stdout, terminal = verify_output(tmp_path / "data", stderr_is_a_terminal=True)
    assert b"events verified" in terminal
    assert re.search(rb"(?<!\d)(\d+)/\1(?!\d)", terminal), terminal  # the bar reaches every event: 23/23
    assert b"verified: every hash chain is intact" in terminal
    assert stdout == b""  # problems only, as JSON lines: none here, and no bar

    stdout, piped = verify_output(tmp_path / "data", stderr_is_a_terminal=False)
    assert b"events verified" not in piped
    assert b"\x1b[" not in piped
    assert piped.startswith(b"verified: every hash chain is intact")
    assert stdout == b""
