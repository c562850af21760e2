"""The reference pages keep up with the code they describe (issue 17, item 5): every action of the
schema has its section in docs/submissions.md, every example is linked from it, and every CREDIT_*
variable the code reads is in docs/configuration.md's tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = (ROOT / "docs" / "submissions.md").read_text("utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text("utf-8")
EXAMPLES = ROOT / "ledger" / "schema" / "examples"
# Where a CREDIT_* variable can be read: the packages, the scripts, the benchmarks, the tests.
CODE = [
    "auditor",
    "bench",
    "contract",
    "credit_ledger",
    "ledger",
    "projections",
    "scripts",
    "streams",
    "tests",
]


def schema_actions() -> list[str]:
    schema = json.loads((ROOT / "ledger" / "schema" / "submission.schema.json").read_text("utf-8"))
    return list(schema["properties"]["action"]["enum"])


def test_every_action_of_the_schema_has_its_section_and_says_who_may_send_it() -> None:
    sections = set(re.findall(r"^### (\w+)$", SUBMISSIONS.split("## Actions", 1)[1], re.M))
    who = SUBMISSIONS.split("## Who may send what", 1)[1].split("\n## ", 1)[0]
    rows = {
        name
        for line in who.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`(\w+)`", line.split("|")[1])
    }
    assert set(schema_actions()) - sections == set()
    assert set(schema_actions()) - rows == set()


def test_every_example_is_linked_from_the_submissions_page_and_every_link_to_one_resolves() -> None:
    linked = set(re.findall(r"\(\.\./ledger/schema/examples/([\w.]+)\)", SUBMISSIONS))
    assert {path.name for path in EXAMPLES.glob("*.json")} - linked == set()
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        name
        for page in pages
        for name in re.findall(r"schema/examples/([\w]+\.json)", page.read_text("utf-8"))
    }
    assert {name for name in named if not (EXAMPLES / name).is_file()} == set()


def test_every_credit_variable_in_the_code_is_in_a_table_of_the_configuration_page() -> None:
    in_code: set[str] = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and (path.suffix in {".py", ".sh", ""} or path.parent.name == "scripts"):
                in_code |= set(
                    re.findall(r"\bCREDIT_[A-Z][A-Z_]*[A-Z]\b", path.read_text("utf-8", "replace"))
                )
    in_tables = {
        name
        for line in CONFIGURATION.splitlines()
        if line.startswith("| `CREDIT_")
        for name in re.findall(r"`(CREDIT_[A-Z_]+)`", line.split("|")[1])
    }
    assert in_code, "no CREDIT_ variable found: the search is wrong"
    assert in_code - in_tables == set()
