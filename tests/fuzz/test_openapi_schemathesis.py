"""schemathesis against /v1/openapi.json of a real `credit-ledger serve`: no 5xx, no undocumented status.

Issue 10: every operation of the served document gets generated requests, valid and invalid
(schemathesis' coverage and fuzzing phases), each with the key its route wants. Checks: no
server error, every status and content type documented, every body as its schema says. Bounded:
25 examples per operation and phase (about 20 s on 2 cores), and the run is killed at a deadline.

schemathesis runs as its command line: its pytest plugin does not work with pytest 9.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serving import Served, answers, issue_key, wait_for

PERSON = "11010519491231002X"
RUN_TIMEOUT = 240.0
EXAMPLES = 25
"""Per operation and phase: about 2,000 requests, 20 s on 2 cores."""
CONFIG = """
seed = 20261011
workers = 1
hooks = "tests.fuzz.schemathesis_hooks"
request-timeout = 30
[generation]
mode = "all"
max-examples = {examples}
database = "none"
[phases.examples]
enabled = false
[phases.stateful]
enabled = false
[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
"""
KEYED = {
    # The key each route wants; what the public may call is called without one.
    "^/v1/me/": "subject",
    "^/v1/audit/": "auditor",
    "^/v1/(outcomes|queries/status)$": "department",
}


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    worker = Served(tmp_path_factory.mktemp("fuzz") / "data", http=True).start()
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{worker.http_port}/v1/health"), 30, worker.describe)
        yield worker
    finally:
        assert worker.stop() == 0


def config(served: Served, examples: int) -> str:
    keys = {
        "department": issue_key(served, "--role", "department", "--organisation", "tax_bureau"),
        "subject": issue_key(served, "--role", "subject", "--subject", PERSON),
        "auditor": issue_key(served, "--role", "auditor", "--organisation", "audit_office"),
    }
    operations = "".join(
        f'\n[[operations]]\ninclude-path-regex = "{pattern}"\nheaders = {{ Authorization = "Bearer {keys[role]}" }}\n'
        for pattern, role in KEYED.items()
    )
    return CONFIG.format(examples=examples) + operations


def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    served: Served, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{served.http_port}"
    with urllib.request.urlopen(f"{url}/v1/openapi.json", timeout=5) as response:
        paths = json.loads(response.read())["paths"]
    operations = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}
    settings = tmp_path / "schemathesis.toml"
    settings.write_text(config(served, examples=EXAMPLES))
    junit = tmp_path / "junit.xml"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(settings),
            "--no-color",
            "run",
            f"{url}/v1/openapi.json",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ],
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    cases = ET.parse(junit).getroot().iter("testcase")
    tested = {case.get("name") for case in cases if case.find("skipped") is None}
    # Every operation ran, none skipped; schemathesis leaves out the document it was loaded from.
    assert tested == operations - {"GET /v1/openapi.json"}, done.stdout[-3000:]
    log = served.log.read_text()
    assert "internal error" not in log, log[-3000:]  # no handler failed, even where it answered 4xx
