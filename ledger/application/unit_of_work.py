"""The unit of work of one batch: the credit files it touches, loaded once and saved together.

Its own module because it is a second thing beside the application service: what a batch has
read and changed (for the save, the stale-read check and a clean abandon), where the service
is what to do with each submission.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.application.ports import SubmissionRegister
from ledger.domain.creditfile import CreditFile
from ledger.domain.personal import FieldSealer
from ledger.domain.subjects import SubjectCode


class Ledger(Protocol):
    """What the unit of work needs of the application: its register, repository and keys."""

    register: SubmissionRegister

    @property
    def repository(self) -> Any: ...

    def is_cached(self, key: UUID) -> bool: ...

    def key_of(self, subject: SubjectCode) -> UUID: ...


class UnitOfWork:
    """The files one batch touches, loaded once and saved together.

    ``begin()`` starts a command: the files it touches are noted with their pending-event count,
    so its new events (or its untidy failure) are found without scanning the whole batch.
    ``read`` keeps the version each file had when the batch first looked at it (0: no file), so
    the save can check that the files it decided on without changing are still current.
    """

    def __init__(self, app: Ledger, sealer: FieldSealer | None = None) -> None:
        self.app = app
        self.sealer = sealer  # set on every file the batch touches: it seals their new events
        self.files: dict[UUID, CreditFile] = {}
        self.touched: dict[UUID, int] = {}
        self.absent: set[UUID] = set()
        self.read: dict[UUID, int] = {}

    def prefetch(self, keys: set[UUID]) -> None:
        """Learn in one query which of these subjects have no file yet, so finding them costs nothing."""
        unknown = [k for k in keys if not self.app.is_cached(k)]
        if unknown:
            self.absent = set(unknown) - self.app.register.existing_streams(unknown)

    def key_of(self, subject: SubjectCode) -> UUID:
        return self.app.key_of(subject)

    def begin(self) -> None:
        self.touched = {}

    def find(self, key: UUID) -> CreditFile | None:
        file = self.files.get(key)
        if file is None:
            if key in self.absent:
                self.read.setdefault(key, 0)
                return None
            try:
                file = self.app.repository.get(key)
            except AggregateNotFoundError:
                self.read.setdefault(key, 0)
                return None
            file.sealer = self.sealer
            self.files[key] = file
            self.read.setdefault(key, file.version)
        if key not in self.touched:
            self.touched[key] = len(file.pending_events)
        return file

    def add(self, file: CreditFile) -> None:
        self.files[file.id] = file
        self.absent.discard(file.id)
        self.touched[file.id] = 0

    def discard_opened(self) -> None:
        """Forget files this command opened: a rejected filing leaves no file behind."""
        for key, baseline in self.touched.items():
            file = self.files.get(key)
            if baseline == 0 and file is not None and file.version == len(file.pending_events):
                del self.files[key]

    def unchanged_reads(self) -> dict[UUID, int]:
        """Files read but not changed by this batch (changed ones are guarded by their version key)."""
        return {
            key: version
            for key, version in self.read.items()
            if key not in self.files or not self.files[key].pending_events
        }

    def new_events(self) -> list[Any]:
        return [
            e
            for key, baseline in self.touched.items()
            if key in self.files
            for e in self.files[key].pending_events[baseline:]
        ]
