"""The README's and docs/' command examples run as shown, in a fresh copy of the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.runner import Page, copy_checkout, examples, iter_pages, reader_environment, tools_dir

ROOT = Path(__file__).resolve().parents[2]
PAGES_WITH_EXAMPLES = [page for page in iter_pages(ROOT) if examples(page)]


@pytest.mark.integration
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_command_example_on_the_page_runs_as_it_shows(page: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "checkout"
    copy_checkout(ROOT, workspace)
    checked_out = set(files_in(workspace))
    reading = Page(workspace, reader_environment(tools_dir()))
    try:
        for example in examples(workspace / page.relative_to(ROOT), page.relative_to(ROOT)):
            reading.run(example)  # raises DocError naming the line, the script and its output
    finally:
        reading.close()
    if page.relative_to(ROOT) in NEWCOMERS_PATH:  # what a newcomer makes stays in data/ (issue 17)
        assert sorted(set(files_in(workspace)) - checked_out) == []


NEWCOMERS_PATH = {Path("README.md"), Path("docs/tutorial.md")}
MADE_BY_THE_INSTALL = (".venv/", "data/")


def files_in(workspace: Path) -> list[str]:
    """The workspace's files a reader could trip over: not the data dir, the virtualenv or caches."""
    names = (str(path.relative_to(workspace)) for path in workspace.rglob("*") if path.is_file())
    return [
        name
        for name in names
        if not name.startswith(MADE_BY_THE_INSTALL) and "__pycache__" not in name and ".egg-info" not in name
    ]


def test_the_readme_walk_through_is_run_not_excused() -> None:
    readme = examples(ROOT / "README.md")
    excused = [example.where for example in readme if example.not_run is not None]
    assert len(excused) <= 1, f"only the test command itself may go unrun in the README: {excused}"
    assert any(example.mode == "interrupt" and "demo" in example.script for example in readme)
    assert any(example.mode == "background" and "serve" in example.script for example in readme)


def test_the_readmes_command_table_names_every_command() -> None:
    from credit_ledger.cli import credit_ledger  # noqa: PLC0415

    table = (
        (ROOT / "README.md").read_text("utf-8").split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    )
    listed = {row.split("`")[1].split()[0] for row in table.splitlines() if row.startswith("| `")}
    assert set(credit_ledger.commands) - listed == set()
