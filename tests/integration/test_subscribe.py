"""A subscriber follows list changes; --from-beginning means the first change ever, every time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.application.submissions import example_submissions
from tests.integration.serving import Served


def subscription(data: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CREDIT_KAFKA_BOOTSTRAP"}
    env["CREDIT_DATA_DIR"] = str(data)
    return subprocess.Popen(
        [sys.executable, "-m", "credit_ledger.cli", "subscribe", "list-changes", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def changes_until_the_exit(follower: subprocess.Popen[bytes], deadline: float) -> list[dict[str, str]]:
    """Lines until the designation's exit shows, then Ctrl-C, as a person would stop it."""
    assert follower.stdout is not None
    seen: list[dict[str, str]] = []
    try:
        while not any(change["change"] == "exit" for change in seen):
            assert time.monotonic() < deadline, f"no exit within the deadline; saw {seen}"
            line = follower.stdout.readline()
            assert line, "the subscriber stopped before the exit"
            seen.append(json.loads(line))
    finally:
        follower.send_signal(signal.SIGINT)
        # A person's Ctrl-C: it commits what it printed and leaves its group, in seconds (it once
        # took kafka-python's whole 30 s request timeout when the interrupt hit a request).
        assert follower.wait(timeout=STOPS_WITHIN) == 0
    return seen


STOPS_WITHIN = 15.0
"""Seconds a subscriber may take to stop after Ctrl-C (its close is bounded at 5 s)."""


def test_from_the_beginning_a_second_time_in_the_same_group_still_starts_at_the_first_change(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    served = Served(data, http=False).start()
    try:
        lines = b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in example_submissions())
        env = {k: v for k, v in os.environ.items() if k != "CREDIT_KAFKA_BOOTSTRAP"}
        env["CREDIT_DATA_DIR"] = str(data)
        subprocess.run(
            [sys.executable, "-m", "credit_ledger.cli", "publish", "-"],
            input=lines,
            env=env,
            check=True,
            timeout=60,
        )
        first = changes_until_the_exit(
            subscription(data, "--from-beginning", "--list", "black"), time.monotonic() + 90
        )
        again = changes_until_the_exit(
            subscription(data, "--from-beginning", "--list", "black"), time.monotonic() + 60
        )
    finally:
        assert served.stop() == 0
    assert [c["change"] for c in first] == ["entry", "exit"]
    assert again == first
    assert first[0]["designation_id"] == "HMD-2026-0202"
