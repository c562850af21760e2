"""The inbox: submissions a door recorded in the ledger's database before it answered for them.

``POST /v1/submissions`` answers 202 only once every item is an inbox row (one transaction per
request), so a receipt outlives any broker. The relay drains the rows, in position order, to
``credit.submissions``; each message carries a **seal** (the Kafka header :data:`INBOX_HEADER`),
an HMAC under the deployment's secret of the row's position and bytes. The intake reads a sealed
message under the source ``inbox/<position>`` (:func:`inbox_source`) instead of its Kafka
position, so the same row drained twice (after a broker lost its topics, say) is the same message
received once: its outcome is logged once, whichever copy or partition it arrives on. A header
anyone could write would let a Kafka client pass its message off as a row: the seal is what
tells them apart.

Rows are stored **sealed** when the ledger has a master key: the item's Kafka key and value as
one AES-256-GCM envelope under its department's monthly inbox key, bound to its position
(``ledger.application.privacy.BatchSealer.seal_inbox``); only the department and submission id
stay in clear, for ``decided``. The relay reads them opened (``CreditLedger.inbox_page``).

A row is **decided** once the outcomes log holds an entry read from its source (its first
decision's receipt, or a duplicate, conflict or unregistered entry). The recorders answer that in
``inbox_page``; the drain publishes only undecided rows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

INBOX_HEADER = "credit-inbox"
"""The Kafka header of a drained inbox row: ``<position>:<seal>`` (ASCII)."""

INBOX_SOURCE_PREFIX = "inbox/"

SOURCE_DEPARTMENT = ""
"""Department of the receipt for a message with no usable key: its submission id is its source."""

_SEAL_BYTES = 16
_SEAL_CONTEXT = b"credit-ledger inbox seal v1"


def inbox_source(position: int) -> str:
    """The source a drained inbox row is read under: ``inbox/17``."""
    return f"{INBOX_SOURCE_PREFIX}{position}"


@dataclass(frozen=True)
class InboxItem:
    """One submission as a door records it: what it is published as, and who it says sent it."""

    key: bytes
    """The Kafka key it is published with (``contract.messages.submission_key``)."""
    value: bytes
    """The submission, as published to ``credit.submissions``."""
    department: str | None
    """Its ``department`` when that and its ``submission_id`` are both strings, the key the ledger
    registers it under; else None (and ``submission_id`` None too: it is registered under its source)."""
    submission_id: str | None
    """Its ``submission_id``, or None exactly when ``department`` is."""


@dataclass(frozen=True)
class InboxEntry:
    """One inbox row read back: its position, the item, when it was recorded, and whether the
    outcomes log already holds an entry read from it."""

    position: int
    item: InboxItem
    received_at: str
    decided: bool
    altered: str | None = None
    """Why the stored row does not open (its ciphertext fails its GCM tag, or was moved): such a
    row is never published; the drain rejects it under its source, so it still has one outcome."""


InboxSealer = Callable[[int, "InboxItem"], "InboxItem"]
"""What a recorder stores of an item, given its position: the application's sealing of the row
(``CreditLedger.record_in_inbox``; docs/privacy.md, "The inbox")."""


class InboxSeal:
    """Seals drained rows and recognises sealed messages, under a key derived from the secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _SEAL_CONTEXT, hashlib.sha256).digest()

    def _mac(self, position: int, value: bytes) -> str:
        message = b"%d\n" % position + value
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_SEAL_BYTES].hex()

    def header(self, position: int, value: bytes) -> bytes:
        """The :data:`INBOX_HEADER` value for row ``position`` published as ``value``."""
        return f"{position}:{self._mac(position, value)}".encode("ascii")

    def source(self, header: bytes | None, value: bytes) -> str | None:
        """``inbox/<position>`` when ``header`` seals ``value``; None for anything else."""
        if not header or len(header) > 64:
            return None
        position, _, mac = header.partition(b":")
        if not position.isdigit() or len(position) > 18:
            return None
        number = int(position)
        if not hmac.compare_digest(mac, self._mac(number, value).encode("ascii")):
            return None
        return inbox_source(number)
