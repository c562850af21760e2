"""The layering the project promises: the ledger knows nothing of Kafka or Faust."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"kafka", "faust", "aiokafka", "mode"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_layers_import_only_downward_and_no_package_has_a_cycle() -> None:
    # The contracts are in pyproject.toml ([tool.importlinter]); docs/architecture.md draws them.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_ledger_imports_no_kafka_or_faust() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN)
        for p in (ROOT / "ledger").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_entrypoints_read_the_environment() -> None:
    # credit_ledger/ is the composition root: config.Settings reads every CREDIT_* variable, and
    # everything below is given its settings (the data dir, the checkpoint and witness keys).
    readers = {
        str(p.relative_to(ROOT))
        for package in ("ledger", "contract", "projections", "streams")
        for p in (ROOT / package).rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text("utf-8")))
        if (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"})
        or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in {"environ", "getenv", "environb"} for alias in node.names)
        )
    }
    assert readers == set()


def test_the_log_is_read_through_the_read_port_not_the_recorder() -> None:
    # CreditLedger.reader (ledger.application.ports.LedgerLog) is the way into the log; only the
    # application, which owns the recorder, and the recorders themselves touch ``.recorder``.
    owners = (ROOT / "ledger" / "application", ROOT / "ledger" / "store")
    reaching = {
        str(p.relative_to(ROOT))
        for package in ("ledger", "contract", "projections", "streams", "credit_ledger", "bench")
        for p in (ROOT / package).rglob("*.py")
        if not p.is_relative_to(owners[0]) and not p.is_relative_to(owners[1])
        for node in ast.walk(ast.parse(p.read_text("utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "recorder"
    }
    assert reaching == set()


def test_every_module_opens_with_a_one_line_docstring() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for package in ("ledger", "streams", "projections", "credit_ledger")
        for p in (ROOT / package).rglob("*.py")
        if not (ast.get_docstring(ast.parse(p.read_text("utf-8"))) or "").strip()
    ]
    assert missing == []


def test_events_stored_under_the_old_module_paths_still_resolve() -> None:
    # The domain moved from ledger.creditfile / ledger.queries into ledger.domain; stored events
    # keep the topics they were written with (their hashes cover them).
    from eventsourcing.utils import resolve_topic  # noqa: PLC0415

    from ledger.domain.creditfile import CreditFile  # noqa: PLC0415
    from ledger.domain.queries import QueryRecord  # noqa: PLC0415

    assert resolve_topic("ledger.creditfile:CreditFile.RecordFiled") is CreditFile.RecordFiled
    assert resolve_topic("ledger.creditfile:CreditFile") is CreditFile
    assert resolve_topic("ledger.queries:QueryRecord.QueryRecorded") is QueryRecord.QueryRecorded


def test_every_package_is_installed_not_only_importable_from_the_checkout(tmp_path: Path) -> None:
    # Run from outside the checkout: pytest puts the repository on sys.path, an installed
    # console script does not, so a package missing from pyproject's list would pass every other test.
    packages = ("ledger", "contract", "streams", "projections", "credit_ledger")
    code = "; ".join(f"import {p}" for p in packages)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    command = subprocess.run(
        [str(Path(sys.executable).with_name("credit-ledger")), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert command.returncode == 0, command.stderr
