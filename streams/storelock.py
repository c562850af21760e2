"""A lock across processes on the read-model store: projectors share it, the scheduler takes it alone."""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Iterator
from typing import Any

POSTGRES = ("postgres://", "postgresql://")


class StoreLock:
    """Keeps the scheduler's clean-record announcements from interleaving with projector batches.

    Both read subjects' states from the store, change them, and write them back, in different
    processes: the scheduler runs in a serve worker (the Faust leader), the projector in its own
    process. Interleaved, one would overwrite the other's newer state. Projectors take the lock
    shared (they fold disjoint subjects: each owns its partitions), the announcement exclusive.
    SQLite: ``flock`` on a file beside the store; PostgreSQL: a session advisory lock (every host
    shares the database). An uncontended ``flock`` costs a few microseconds a batch.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._fd: int | None = None
        self._conn: Any = None
        self._key = zlib.crc32(f"credit-ledger.read-models:{target}".encode())

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._held(exclusive=False):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._held(exclusive=True):
            yield

    @contextlib.contextmanager
    def _held(self, *, exclusive: bool) -> Iterator[None]:
        if self.target.startswith(POSTGRES):
            suffix = "" if exclusive else "_shared"
            conn = self._postgres()
            conn.execute(f"SELECT pg_advisory_lock{suffix}(%s)", (self._key,))
            try:
                yield
            finally:
                conn.execute(f"SELECT pg_advisory_unlock{suffix}(%s)", (self._key,))
            return
        fd = self._file()
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(f"{self.target}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def _postgres(self) -> Any:
        if self._conn is None:
            import psycopg  # noqa: PLC0415 - only with the postgres extra

            self._conn = psycopg.connect(self.target, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
