"""Ctrl-C stops serve at any moment of its start-up: nothing restarts, nothing hangs, nothing stays behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker import free_port
from streams.stopping import STOP_DEADLINE_SECONDS
from tests.integration.serving import SUBJECT_SECRET, wait_for


def processes_of(data_dir: Path) -> list[str]:
    """The processes whose environment names ``data_dir``: serve, its children, its broker."""
    marker = f"CREDIT_DATA_DIR={data_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name}: {command}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.mark.parametrize("after_banner", [0.0, 0.5, 2.0], ids=lambda s: f"{s}s-after-the-banner")
def test_ctrl_c_soon_after_the_banner_stops_serve_and_its_children_within_the_deadline(
    tmp_path: Path, after_banner: float
) -> None:
    log = tmp_path / "serve.log"
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "CREDIT_DATA_DIR": str(data_dir),
        "CREDIT_SUBJECT_SECRET": SUBJECT_SECRET,
        "CREDIT_HTTP_PORT": str(free_port()),
    }
    env.pop("CREDIT_KAFKA_BOOTSTRAP", None)  # its own embedded broker, as a reader's first serve
    with open(log, "wb") as out:
        # A session of its own: Ctrl-C at a terminal reaches the whole process group.
        serve = subprocess.Popen(
            [sys.executable, "-m", "credit_ledger.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "stop with Ctrl-C" in log.read_text(), 60, log.read_text)
        time.sleep(after_banner)  # the moment of the Ctrl-C is the test's parameter
        assert len(processes_of(data_dir)) >= 3, processes_of(data_dir)  # serve, relay, project, broker
        os.killpg(serve.pid, signal.SIGINT)
        status = serve.wait(timeout=STOP_DEADLINE_SECONDS + 15)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    output = log.read_text()
    assert status in (0, 130), output
    assert "restarting in" not in output, output
    assert "Unclosed" not in output, output  # clients Faust had not started yet are no error
    assert "did not stop within" not in output, output  # the deadline is a safety net, not the way
    wait_for(
        lambda: not processes_of(data_dir), 15, lambda: "still running:\n" + "\n".join(processes_of(data_dir))
    )
