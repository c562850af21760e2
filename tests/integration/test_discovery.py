"""Clients run beside a serve find its broker by themselves (issue 17, item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from credit_ledger import discovery
from tests.conftest import example
from tests.integration.serving import Served, wait_for


def cli(data_dir: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CREDIT_KAFKA_BOOTSTRAP"}
    env["CREDIT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "credit_ledger.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_a_client_in_the_same_data_dir_uses_the_running_serves_broker_and_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    served = Served(data, http=True).start()  # its own embedded broker, at an address nobody typed
    try:
        found = wait_for(lambda: discovery.read(data), 20, served.describe)
        assert found.kafka == served.bootstrap
        assert found.embedded
        assert found.http == f"http://127.0.0.1:{served.http_port}/v1/"
        line = json.dumps(example("file_record"), ensure_ascii=False).encode() + b"\n"
        published = cli(data, "publish", "-", stdin=line)
        assert published.returncode == 0, published.stderr
        assert f"using the embedded broker at {served.bootstrap}" in published.stderr.decode()
        assert json.loads(published.stdout)["sent"] == 1

        def outcome_of_that_submission_only() -> list[dict[str, str]] | None:
            read = cli(data, "outcomes", "--submission", "TAX-2026-000101", "--submission", "NEVER-SENT")
            return [json.loads(line) for line in read.stdout.splitlines()] or None

        (outcome,) = wait_for(outcome_of_that_submission_only, 60, served.describe)
        assert (outcome["submission_id"], outcome["status"]) == ("TAX-2026-000101", "accepted")
        second = cli(data, "serve", "--http-port", str(served.http_port + 1))
        assert second.returncode == 2
        assert f"a serve is already running in {data} (pid {found.pid}" in second.stderr.decode()
        assert discovery.read(data) == found, "the refused serve leaves the running one's file alone"
    finally:
        assert served.stop() == 0
    assert not (data / discovery.FILE).exists(), "serve removes the file when it stops"
    refused = cli(data, "outcomes")
    assert refused.returncode == 1
    assert b"no Kafka to talk to" in refused.stderr


def test_a_file_left_by_a_killed_serve_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    discovery.announce(tmp_path, discovery.Serving(dead.pid, "127.0.0.1:1", True, None))
    assert discovery.read(tmp_path) is None
    assert discovery.read(tmp_path, alive_only=False) is not None
