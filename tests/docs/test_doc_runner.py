"""How the documentation runner reads a page's markers (the executed docs depend on it)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.docs.runner import DocError, Example, Page, examples, reader_environment, tools_dir

PAGE = """# A page

<!-- run: mode=background until='is serving' -->
```sh
credit-ledger serve
```

```sh
credit-ledger outcomes
```

<!-- not run: it needs a Docker engine -->
```bash
docker compose up
```

```
not a command: an output shown
```

<!-- run: expect='sent' poll=30 exit=1 -->
```console
credit-ledger publish x.jsonl
```
"""


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, "utf-8")
    return path


def test_each_command_block_is_an_example_with_its_markers_options(tmp_path: Path) -> None:
    found = examples(page(tmp_path, PAGE))
    assert [(e.line, e.mode, e.until, e.not_run) for e in found] == [
        (4, "background", "is serving", None),
        (8, "foreground", None, None),
        (13, "foreground", None, "it needs a Docker engine"),
        (22, "foreground", None, None),
    ]
    assert (found[3].expect, found[3].poll, found[3].exit) == ("sent", 30.0, 1)
    assert found[1].script == "credit-ledger outcomes"


@pytest.mark.parametrize(
    ("marker", "complaint"),
    [
        ("<!-- not run -->", "'not run' needs a reason"),
        ("<!-- run: wait=3 -->", "unknown run option 'wait=3'"),
        ("<!-- run: mode=later until=x -->", "mode='later'"),
        ("<!-- run: mode=background -->", "needs until=REGEX"),
    ],
)
def test_a_wrong_marker_is_named_with_its_line(tmp_path: Path, marker: str, complaint: str) -> None:
    with pytest.raises(DocError, match=r"page\.md:3: ") as raised:
        examples(page(tmp_path, f"text\n{marker}\n```sh\ntrue\n```\n"))
    assert complaint in str(raised.value)


def test_an_unclosed_fence_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DocError, match="never closed"):
        examples(page(tmp_path, "```sh\ntrue\n"))


def test_an_example_that_fails_or_shows_other_output_fails_with_its_script_and_output(tmp_path: Path) -> None:
    reading = Page(tmp_path, reader_environment(tools_dir()), timeout=30)
    failing, unexpected = examples(
        page(
            tmp_path,
            "```sh\necho half; false\n```\n<!-- run: expect=accepted -->\n```sh\necho rejected\n```\n",
        )
    )
    with pytest.raises(DocError, match="exited 1, the page shows 0") as raised:
        reading.run(failing)
    assert "echo half; false" in str(raised.value)
    assert "half" in str(raised.value)
    with pytest.raises(DocError, match="does not match 'accepted'"):
        reading.run(unexpected)


def a_background_example_that_says_bye_on_ctrl_c(tmp_path: Path) -> tuple[Page, Example]:
    """A page whose one example runs in the background and writes ``gone`` when Ctrl-C reaches it."""
    reading = Page(tmp_path, reader_environment(tools_dir()), timeout=30)
    (serving,) = examples(
        page(
            tmp_path,
            "<!-- run: mode=background until=up -->\n```sh\ntrap 'echo bye > gone; exit 0' INT\necho up\nwhile true; do sleep 0.1; done\n```\n",
        )
    )
    return reading, serving


def test_a_background_example_gets_ctrl_c_even_from_a_runner_that_ignores_it(tmp_path: Path) -> None:
    """A suite started by ``cmd &`` in a script inherits SIGINT ignored; the reader's shell has it."""
    reading, serving = a_background_example_that_says_bye_on_ctrl_c(tmp_path)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        reading.run(serving)
    finally:
        signal.signal(signal.SIGINT, before)
    reading.close()
    assert (tmp_path / "gone").read_text() == "bye\n"


def test_a_background_example_runs_until_the_page_ends_and_then_gets_ctrl_c(tmp_path: Path) -> None:
    reading, serving = a_background_example_that_says_bye_on_ctrl_c(tmp_path)
    reading.run(serving)
    assert not (tmp_path / "gone").exists()
    reading.close()
    assert (tmp_path / "gone").read_text() == "bye\n"


def test_the_readers_environment_has_no_setting_of_the_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_DATA_DIR", "/somewhere/else")
    env = reader_environment(tools_dir())
    assert "CREDIT_DATA_DIR" not in env
    assert env["PATH"].startswith(str(tools_dir()))
    assert env["CREDIT_HTTP_PORT"].isdigit()
