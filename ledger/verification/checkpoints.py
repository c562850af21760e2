"""The operator's checkpoint key and the append-only file of signed checkpoints.

A signer made here chains each v2 checkpoint to the last one in its data dir's file (``prev``),
so a line deleted from the file leaves the next one naming a checkpoint that is not there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ledger.store.files import write_once
from ledger.verification.merkle import (
    Checkpoint,
    CheckpointSigner,
    generate_seed,
)

CHECKPOINTS_FILE = "checkpoints.jsonl"
"""Where a data dir keeps its signed checkpoints, one JSON object per line, append-only."""

KEY_FILE = "checkpoint-key.seed"
"""Where a data dir keeps the operator's Ed25519 seed (hex) when ``CREDIT_CHECKPOINT_KEY`` is unset."""

KEY_VARIABLE = "CREDIT_CHECKPOINT_KEY"
"""The environment variable that holds the operator's Ed25519 seed as 64 hex digits."""


class KeyConfigError(ValueError):
    """The configured checkpoint key is unusable; the message names where it came from."""


# --- The operator's key -------------------------------------------------------------------------


def _seed(text: str, where: str) -> bytes:
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        seed = b""
    if len(seed) != 32:
        msg = f"{where} must hold 64 hex digits (a 32-byte Ed25519 seed)"
        raise KeyConfigError(msg)
    return seed


def key_source(data_dir: Path, key: str | None = None) -> str:
    """Where the checkpoint key comes from: the variable (its value ``key``) or the seed file's path."""
    return KEY_VARIABLE if key else str(data_dir / KEY_FILE)


def configured_seed(data_dir: Path, file_name: str, variable: str, value: str | None = None) -> bytes | None:
    """A 32-byte seed from ``value`` (what the setting ``variable`` holds, as the composition root
    read it) or else the data dir's ``file_name``, if either is set."""
    if value:
        return _seed(value, variable)
    path = data_dir / file_name
    if not path.exists():
        return None
    return _seed(path.read_text("ascii"), str(path))


def seed_file(data_dir: Path, file_name: str) -> bytes:
    """The seed in the data dir's ``file_name``, written there first (mode 0600) if there is none.

    The file is created whole or not at all (``write_once``), so two processes starting together
    end up with the same key.
    """
    path = data_dir / file_name
    if not path.exists():
        write_once(path, generate_seed().hex() + "\n")
    return _seed(path.read_text("ascii"), str(path))


def configured_signer(data_dir: Path, key: str | None = None) -> CheckpointSigner | None:
    """The operator's signer from ``key`` (``CREDIT_CHECKPOINT_KEY``) or the data dir's seed file,
    if either is set."""
    seed = configured_seed(data_dir, KEY_FILE, KEY_VARIABLE, key)
    if seed is None:
        return None
    return CheckpointSigner(seed, previous=CheckpointLog.in_dir(data_dir).last)


def checkpoint_signer(data_dir: Path, key: str | None = None) -> CheckpointSigner:
    """The operator's signer; without a configured key, a new seed is written to the data dir (0600)."""
    signer = configured_signer(data_dir, key)
    if signer is not None:
        return signer
    return CheckpointSigner(seed_file(data_dir, KEY_FILE), previous=CheckpointLog.in_dir(data_dir).last)


# --- Checkpoint files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcedCheckpoint:
    """A checkpoint as read from somewhere (``file:line`` or ``topic/partition@offset``), or why not."""

    source: str
    checkpoint: Checkpoint | None
    error: str = ""


def checkpoint_json(cp: Checkpoint) -> bytes:
    """A checkpoint as one line of JSON (the form of the file and of credit.digests messages)."""
    return orjson.dumps(cp.to_dict())


def parse_checkpoint(raw: bytes, source: str) -> SourcedCheckpoint:
    """Read one checkpoint, keeping the reason if it is not one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return SourcedCheckpoint(source, None, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return SourcedCheckpoint(source, None, "not a JSON object")
    try:
        return SourcedCheckpoint(source, Checkpoint.from_dict(data))
    except (TypeError, ValueError) as exc:
        return SourcedCheckpoint(source, None, str(exc))


class CheckpointLog:
    """The data dir's append-only file of signed checkpoints, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, data_dir: Path) -> CheckpointLog:
        return cls(data_dir / CHECKPOINTS_FILE)

    def append(self, cp: Checkpoint) -> None:
        """Add one checkpoint as a line, written with one ``write`` and synced to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, checkpoint_json(cp) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[SourcedCheckpoint]:
        """Every line, in order, parsed or with the reason it is not a checkpoint."""
        if not self.path.exists():
            return []
        return [
            parse_checkpoint(line, f"{self.path.name}:{number}")
            for number, line in enumerate(self.path.read_bytes().splitlines(), 1)
            if line.strip()
        ]

    def checkpoints(self) -> list[Checkpoint]:
        """The well-formed checkpoints, in file order."""
        return [s.checkpoint for s in self.read() if s.checkpoint is not None]

    def last(self) -> Checkpoint | None:
        """The file's last well-formed checkpoint, read from its end (what the next one chains to)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            tail, step = b"", 4096
            while end > 0:
                start = max(0, end - step)
                f.seek(start)
                tail = f.read(end - start) + tail
                end = start
                lines = tail.splitlines()
                # The first line of the chunk may be cut (unless the chunk reached the start).
                for line in reversed(lines[1:] if end > 0 else lines):
                    found = parse_checkpoint(line, self.path.name).checkpoint if line.strip() else None
                    if found is not None:
                        return found
                tail = lines[0] if end > 0 and lines else b""
        return None

    def latest(self, key: str | Callable[[Checkpoint], bool] | None = None) -> Checkpoint | None:
        """The last well-formed checkpoint in the file (of key id ``key``, or for which ``key``
        holds when it is a test such as ``CheckpointSigner.signed``, if given)."""
        if isinstance(key, str):
            found = [cp for cp in self.checkpoints() if cp.key_id == key]
        else:
            found = [cp for cp in self.checkpoints() if key is None or key(cp)]
        return found[-1] if found else None

    def find(self, size: int) -> Checkpoint | None:
        """The last checkpoint in the file that signs exactly ``size`` leaves."""
        found = [cp for cp in self.checkpoints() if cp.size == size]
        return found[-1] if found else None


def moment(time_text: str) -> datetime:
    """A checkpoint's RFC 3339 time as a datetime (fractions beyond microseconds are dropped).

    A time that is no real date (the format allows month 13) sorts first rather than raising.
    """
    try:
        return datetime.fromisoformat(time_text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
