"""Runs the shell examples of the README and docs/ as a reader would, so a stale example fails CI.

Every fenced block whose language is ``sh``, ``bash``, ``shell`` or ``console`` is a command
example. It runs unless the line before its fence says why not::

    <!-- not run: it needs a Docker engine -->

A marker there may also say how to run it (``<!-- run: KEY=VALUE ... -->``, shell-quoted values):

- ``mode=background until=REGEX``: start it (a ``serve`` in "terminal 1"), wait until its output
  matches, and leave it running for the rest of the page; it gets Ctrl-C (SIGINT) at the end;
- ``mode=interrupt until=REGEX``: start it, wait until its output matches, press Ctrl-C, and
  expect it to stop cleanly (``demo``);
- ``expect=REGEX``: its output (stdout and stderr) must match, loosely: key words and shape, never
  byte for byte;
- ``poll=SECONDS``: a read of something eventually consistent (outcomes after a publish): run it
  again until it succeeds and matches, within that deadline;
- ``exit=N``: the exit status the example shows (an error example), 0 otherwise.

The blocks of one page run in order in one workspace: a copy of the checkout, with ``./data`` as
the data dir, and the workspace's ``.venv`` activated in each block once a block has made it (as
in the reader's terminal). No ``CREDIT_*`` variable leaks in from the test run, except the HTTP
port, which is a free one so that runs in parallel do not collide.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
MARKER = re.compile(r"^<!--\s*(run|not run)\s*(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w-]*)")
OPTIONS = frozenset({"mode", "until", "expect", "poll", "exit"})
MODES = frozenset({"foreground", "background", "interrupt"})


class DocError(Exception):
    """A page's example or marker is wrong: the message names the page, the line and what failed."""


@dataclass(frozen=True)
class Example:
    """One command block of a page, with how to run it (``not_run`` holds the reason if it is not)."""

    page: Path
    line: int  # of the opening fence, 1-based
    script: str
    mode: str = "foreground"
    until: str | None = None
    expect: str | None = None
    poll: float = 0.0
    exit: int = 0
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def examples(page: Path, name: Path | None = None) -> list[Example]:
    """The command blocks of a Markdown page, in order, each with its marker's options; errors
    name the page as ``name`` (its path in the checkout) when given."""
    lines = page.read_text("utf-8").splitlines()
    page = name or page
    found: list[Example] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        ticks, language = opening.groups()
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith(ticks)), None)
        if end is None:
            raise DocError(f"{page}:{index + 1}: a code fence that is never closed")
        if language in COMMAND_LANGUAGES:
            script = "\n".join(lines[index + 1 : end])
            found.append(_example(page, index + 1, script, _marker_before(lines, index)))
        index = end + 1
    return found


def _marker_before(lines: list[str], fence: int) -> re.Match[str] | None:
    return MARKER.match(lines[fence - 1].strip()) if fence > 0 else None


def _example(page: Path, line: int, script: str, marker: re.Match[str] | None) -> Example:
    if marker is None:
        return Example(page, line, script)
    kind, text = marker.group(1), (marker.group(2) or "").strip()
    if kind == "not run":
        if not text:
            raise DocError(f"{page}:{line}: 'not run' needs a reason: <!-- not run: why -->")
        return Example(page, line, script, not_run=text)
    options: dict[str, str] = {}
    for word in shlex.split(text):
        key, _, value = word.partition("=")
        if key not in OPTIONS or not value:
            raise DocError(
                f"{page}:{line}: unknown run option {word!r} (expected KEY=VALUE, KEY one of {sorted(OPTIONS)})"
            )
        options[key] = value
    mode = options.get("mode", "foreground")
    if mode not in MODES:
        raise DocError(f"{page}:{line}: mode={mode!r}: expected one of {sorted(MODES)}")
    if mode != "foreground" and "until" not in options:
        raise DocError(f"{page}:{line}: mode={mode} needs until=REGEX (what shows it is up)")
    return Example(
        page,
        line,
        script,
        mode=mode,
        until=options.get("until"),
        expect=options.get("expect"),
        poll=float(options.get("poll", 0)),
        exit=int(options.get("exit", 0)),
    )


# -- running ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def reader_environment(tools: Path) -> dict[str, str]:
    """The reader's environment: no CREDIT_* setting of the test run, the project's tools on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CREDIT_")}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    env["CREDIT_HTTP_PORT"] = str(free_port())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Page:
    """One page's run: its workspace, environment and the examples left running in the background."""

    workspace: Path
    env: Mapping[str, str]
    timeout: float = 180.0
    background: list[tuple[Example, subprocess.Popen[bytes], bytearray]] = field(default_factory=list)

    def run(self, example: Example) -> str:
        """Run one example as its marker says; its output, or DocError saying what went wrong."""
        if example.not_run is not None:
            return ""
        if example.mode == "foreground":
            return self._foreground(example)
        process, output = self._start(example)
        assert example.until is not None  # checked when the marker was read
        self._wait_for(example, process, output, example.until)
        if example.mode == "background":
            self.background.append((example, process, output))
        else:
            self._interrupt(example, process, output)
        return output.decode("utf-8", "replace")

    def _script(self, example: Example) -> str:
        activate = "if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi"
        return f"set -eo pipefail\n{activate}\n{example.script}\n"

    def _foreground(self, example: Example) -> str:
        deadline = time.monotonic() + max(example.poll, 0)
        while True:
            done = subprocess.run(
                ["bash", "-c", self._script(example)],
                cwd=self.workspace,
                env=dict(self.env),
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
            output = (done.stdout + done.stderr).decode("utf-8", "replace")
            problem = self._judge(example, done.returncode, output)
            if problem is None:
                return output
            if time.monotonic() >= deadline:
                raise DocError(
                    f"{example.where}: {problem}\n--- script\n{example.script}\n--- output\n{output}"
                )
            time.sleep(1.0)  # an eventually consistent read: ask again, as a reader would

    @staticmethod
    def _judge(example: Example, status: int, output: str) -> str | None:
        if status != example.exit:
            return f"exited {status}, the page shows {example.exit}"
        if example.expect and not re.search(example.expect, output):
            return f"its output does not match {example.expect!r}"
        return None

    def _start(self, example: Example) -> tuple[subprocess.Popen[bytes], bytearray]:
        process = subprocess.Popen(
            # SIGINT at its default, as a terminal's shell has it: an ignored signal stays ignored
            # across exec, and a shell cannot trap one it was started ignoring (a CI run once saw a
            # background example sit through 60 s of Ctrl-C; /proc's SigIgn says so if it recurs).
            ["env", "--default-signal=INT", "bash", "-c", f"{self._script(example)}"],
            cwd=self.workspace,
            env=dict(self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to its whole process group, as in a terminal
        )
        return process, bytearray()

    def _wait_for(
        self, example: Example, process: subprocess.Popen[bytes], output: bytearray, pattern: str
    ) -> None:
        deadline = time.monotonic() + self.timeout
        while not re.search(pattern, output.decode("utf-8", "replace")):
            if process.poll() is not None and not _read_some(process, output, 0):
                raise DocError(
                    f"{example.where}: stopped (status {process.returncode}) before showing {pattern!r}\n{output.decode('utf-8', 'replace')}"
                )
            if time.monotonic() > deadline:
                self._kill(process)
                raise DocError(
                    f"{example.where}: no {pattern!r} within {self.timeout:.0f} s\n{output.decode('utf-8', 'replace')}"
                )
            _read_some(process, output, 0.5)

    def _interrupt(self, example: Example, process: subprocess.Popen[bytes], output: bytearray) -> None:
        os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            _read_some(process, output, 0.5)
        if process.poll() is None:
            ignored = _ignored_signals(process.pid)
            self._kill(process)
            raise DocError(
                f"{example.where}: did not stop within 60 s of Ctrl-C ({ignored})\n"
                f"{output.decode('utf-8', 'replace')}"
            )
        while _read_some(process, output, 0):
            pass
        if process.returncode not in (0, 130, -signal.SIGINT):
            raise DocError(
                f"{example.where}: Ctrl-C ended it with status {process.returncode}\n{output.decode('utf-8', 'replace')}"
            )

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        """Ctrl-C to what still runs in the background, as the reader would at the end."""
        problems = []
        for example, process, output in reversed(self.background):
            try:
                self._interrupt(example, process, output)
            except DocError as exc:
                problems.append(str(exc))
        self.background.clear()
        if problems:
            raise DocError("\n".join(problems))


def _ignored_signals(pid: int) -> str:
    """The signals process ``pid`` ignores, as /proc shows them (SIGINT is bit 2)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "its /proc status unreadable"
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "?")
    return f"SigIgn {mask}"


def _read_some(process: subprocess.Popen[bytes], output: bytearray, wait: float) -> bool:
    """Append what the process has written, waiting up to ``wait`` seconds; whether it wrote any."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], wait)
    if not ready:
        return False
    chunk = os.read(process.stdout.fileno(), 65536)
    output.extend(chunk)
    return bool(chunk)


def copy_checkout(source: Path, target: Path) -> None:
    """The files git tracks (and new ones it does not ignore), as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout
    for name in listed.decode().split("\0"):
        if not name or not (source / name).is_file():
            continue  # deleted in the work tree but not yet in the index
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes((source / name).read_bytes())
        destination.chmod((source / name).stat().st_mode)


def tools_dir() -> Path:
    """Where the test run's ``credit-ledger`` is: its interpreter's bin directory."""
    return Path(sys.executable).parent


def iter_pages(root: Path) -> Iterator[Path]:
    yield root / "README.md"
    yield from sorted((root / "docs").glob("*.md"))
    yield root / "docker" / "README.md"
