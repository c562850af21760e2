"""The Go verifier (tests/go/verifier), built once a session into a temporary directory.

It uses only golang.org/x/mod/sumdb/note and sumdb/tlog (and Go's standard library): the
independent implementation the ledger's checkpoints, proofs and tiles must convince. Go and the Go
module proxy are on the project's machines; a machine without Go fails these tests, it never
skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "go" / "verifier"
BUILD_TIMEOUT = 600.0
RUN_TIMEOUT = 120.0


@dataclass(frozen=True)
class GoVerifier:
    """The built program, and how long building it took."""

    path: Path
    build_seconds: float

    def run(self, *args: str) -> tuple[int, str]:
        """Its exit status and its one verdict line."""
        done = subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
        return done.returncode, (done.stdout.strip() or done.stderr.strip())


@pytest.fixture(scope="session")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> GoVerifier:
    """Build tests/go/verifier with the module versions go.sum pins (downloaded from the module proxy)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the Go toolchain (1.23 or later) is needed: tests/go/verifier checks the ledger's checkpoints "
            "and proofs with golang.org/x/mod/sumdb. Install it (https://go.dev/dl/, or Debian's golang-go) "
            "and put 'go' on the PATH"
        )
    out = tmp_path_factory.mktemp("go") / "verifier"
    started = time.perf_counter()
    done = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=MODULE,
        env={**os.environ, "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"go build in {MODULE} failed:\n{done.stdout}{done.stderr}")
    return GoVerifier(out, time.perf_counter() - started)
