"""Small files a data dir keeps (secrets, seeds, staged keys): written whole and synced, never half-read."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_once(path: Path, text: str) -> None:
    """Create ``path`` holding ``text`` (mode 0600) unless it exists, durably and atomically.

    The text is written and synced under a name of its own, then linked into place; a link never
    replaces a file. So processes starting together on a new data dir (``serve --workers N``) all
    read the one secret the first of them made, and none reads a file another is still writing.
    """
    draft = _draft(path, text)
    try:
        with contextlib.suppress(FileExistsError):  # another process linked its own first: it is the one
            os.link(draft, path)
        _sync_directory(path.parent)  # the name survives a crash, like what the secret protects
    finally:
        draft.unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` (mode 0600), replacing it: a reader sees the old file or the whole new one."""
    os.replace(_draft(path, text), path)
    _sync_directory(path.parent)


def _draft(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    return draft


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
