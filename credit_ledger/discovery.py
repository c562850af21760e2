"""Where a running `serve` can be reached: a small file in its data dir, read by clients run beside it.

`serve` writes ``DATA_DIR/serving.json`` (its pid, Kafka bootstrap address, HTTP URL) once it is
up and removes it when it stops. A client given no ``CREDIT_KAFKA_BOOTSTRAP`` reads it from the
same data dir (``./data`` or ``CREDIT_DATA_DIR``), so a department trying the embedded broker,
whose address changes at every start, never copies it from the banner. A file left by a `serve`
that was killed names a process that is gone, and is ignored.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FILE = "serving.json"


@dataclass(frozen=True)
class Serving:
    """A running `serve`: its process, its broker and its HTTP API (None when it serves none)."""

    pid: int
    kafka: str
    embedded: bool
    http: str | None

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's process: it exists
        return True


def announce(data_dir: Path, serving: Serving) -> Path:
    """Write the file atomically (a reader never sees half of it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE
    part = path.with_name(f".{FILE}.{os.getpid()}")
    part.write_bytes(orjson.dumps(asdict(serving), option=orjson.OPT_INDENT_2))
    os.replace(part, path)
    return path


def withdraw(data_dir: Path) -> None:
    """Remove the file if this process wrote it (another serve may have taken the data dir since)."""
    found = read(data_dir, alive_only=False)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            (data_dir / FILE).unlink()


def read(data_dir: Path, *, alive_only: bool = True) -> Serving | None:
    """The serve running in ``data_dir``, or None (no file, an unreadable one, or a dead process)."""
    try:
        raw = orjson.loads((data_dir / FILE).read_bytes())
        found = Serving(int(raw["pid"]), str(raw["kafka"]), bool(raw["embedded"]), raw.get("http"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if alive_only and not found.alive():
        return None
    return found
