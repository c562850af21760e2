"""Signed checkpoints of the ledger: the operator's Ed25519 statement of the tree (and the register).

Two versions, both verifiable forever:

- **v1** signs ``size``, ``root``, ``time`` and ``key_id`` under the domain string
  ``credit-ledger checkpoint v1\\n``.
- **v2** (``"v": 2``) also signs ``receipts`` and ``receipts_head`` (the position and chain link
  of the submission register's newest receipt: the register is pinned as the tree is) and
  ``prev`` (the hash of the checkpoint filed before it in the signer's checkpoint file, or 64
  zeros: a checkpoint removed from a file leaves the next one naming a checkpoint that is not
  there), under ``credit-ledger checkpoint v2\\n``.

Nothing signed in one version verifies as the other: the domain strings differ.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.domain.integrity import GENESIS, canonical_bytes

CHECKPOINT_DOMAIN = b"credit-ledger checkpoint v1\n"
"""Prefixed to a v1 checkpoint's canonical bytes when signing: the signature can mean nothing else."""

CHECKPOINT_DOMAIN_V2 = b"credit-ledger checkpoint v2\n"
"""Prefixed to a v2 checkpoint's canonical bytes (its register anchor and link included)."""

NO_PREVIOUS = GENESIS
"""The ``prev`` of a v2 checkpoint that is the first in its file."""

_FIELD_PATTERNS = {
    "root": re.compile(r"[0-9a-f]{64}"),
    "time": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z"),
    "key_id": re.compile(r"[0-9a-f]{16}"),
    "signature": re.compile(r"[0-9a-f]{128}"),
}
_V2_PATTERNS = {"receipts_head": re.compile(r"[0-9a-f]{64}"), "prev": re.compile(r"[0-9a-f]{64}")}
_FIELD_FORMS = {
    "root": "64 lowercase hex digits",
    "time": "an RFC 3339 UTC timestamp ending in Z",
    "key_id": "16 lowercase hex digits",
    "signature": "128 lowercase hex digits",
    "receipts_head": "64 lowercase hex digits",
    "prev": "64 lowercase hex digits",
}
_CHECKPOINT_FIELDS = ("size", "root", "time", "key_id", "signature")
_V2_FIELDS = ("v", *_CHECKPOINT_FIELDS, "receipts", "receipts_head", "prev")


def rfc3339_utc(moment: datetime) -> str:
    """``moment`` as an RFC 3339 UTC timestamp ending in ``Z`` (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key_id(public_key: bytes) -> str:
    """The short name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def checkpoint_signed_bytes(
    size: int,
    root: str,
    time: str,
    key_id: str,
    *,
    receipts: int | None = None,
    receipts_head: str | None = None,
    prev: str | None = None,
) -> bytes:
    """What a checkpoint signature covers: the domain string, then the canonical fields (v2 when
    the register anchor is given)."""
    body: dict[str, Any] = {"size": size, "root": root, "time": time, "key_id": key_id}
    if receipts is None:
        return CHECKPOINT_DOMAIN + canonical_bytes(body)
    body.update(receipts=receipts, receipts_head=receipts_head, prev=prev)
    return CHECKPOINT_DOMAIN_V2 + canonical_bytes(body)


@dataclass(frozen=True)
class Checkpoint:
    """The operator's signed statement that the log had ``size`` leaves and ``root`` at ``time``
    (and, from version 2, that the register's newest receipt was at position ``receipts`` with
    link ``receipts_head``, and that ``prev`` was the checkpoint filed before it).

    ``root``, ``signature`` and the v2 hashes are lowercase hex; ``time`` is RFC 3339 UTC. The
    fields are checked on construction, so a Checkpoint in hand is always well formed (though not
    necessarily validly signed: see :func:`verify_checkpoint`).
    """

    size: int
    root: str
    time: str
    key_id: str
    signature: str
    receipts: int | None = None
    receipts_head: str | None = None
    prev: str | None = None

    def __post_init__(self) -> None:
        for name in ("size", *(("receipts",) if self.version == 2 else ())):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                msg = f"checkpoint {name} must be a non-negative integer, not {value!r}"
                raise ValueError(msg)
        patterns = {**_FIELD_PATTERNS, **(_V2_PATTERNS if self.version == 2 else {})}
        for name, pattern in patterns.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                msg = f"checkpoint {name} must be {_FIELD_FORMS[name]}, not {value!r}"
                raise ValueError(msg)
        if self.version == 1 and (self.receipts_head is not None or self.prev is not None):
            msg = "a checkpoint with receipts_head or prev must also give receipts"
            raise ValueError(msg)

    @property
    def version(self) -> int:
        return 1 if self.receipts is None else 2

    def signed_bytes(self) -> bytes:
        """Exactly what the signature covers: the domain string, then the canonical fields."""
        return checkpoint_signed_bytes(
            self.size,
            self.root,
            self.time,
            self.key_id,
            receipts=self.receipts,
            receipts_head=self.receipts_head,
            prev=self.prev,
        )

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready data (the form the auditor reads)."""
        if self.version == 1:
            return {name: getattr(self, name) for name in _CHECKPOINT_FIELDS}
        return {"v": 2, **{name: getattr(self, name) for name in _V2_FIELDS[1:]}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Read a checkpoint back (either version), refusing missing, unknown or malformed fields."""
        version = data.get("v", 1)
        if version not in (1, 2) or type(version) is not int:
            msg = f"checkpoint version must be 1 (no 'v') or 2, not {version!r}"
            raise ValueError(msg)
        fields = _CHECKPOINT_FIELDS if version == 1 else _V2_FIELDS
        missing = [name for name in fields if name not in data and name != "v"]
        unknown = sorted(set(data) - set(fields) - {"v"})
        if missing or unknown:
            msg = f"checkpoint fields: missing {missing}, unknown {unknown}"
            raise ValueError(msg)
        return cls(**{name: data[name] for name in fields if name != "v"})


def checkpoint_hash(cp: Checkpoint) -> str:
    """What a later checkpoint's ``prev`` names: SHA-256 of the canonical JSON of ``cp``, signature
    included (of either version)."""
    return hashlib.sha256(canonical_bytes(cp.to_dict())).hexdigest()


def generate_seed() -> bytes:
    """A fresh random 32-byte Ed25519 private seed for the operator's checkpoint key."""
    return secrets.token_bytes(32)


class CheckpointSigner:
    """Signs checkpoints with the operator's Ed25519 key (RFC 8032), given its 32-byte seed.

    ``previous`` returns the last checkpoint of the file this signer's checkpoints are filed in
    (``CheckpointLog.last``): a v2 checkpoint names it in ``prev``. Without it every v2 checkpoint
    is the first of its chain.
    """

    def __init__(self, seed: bytes, *, previous: Callable[[], Checkpoint | None] | None = None) -> None:
        if len(seed) != 32:
            msg = f"an Ed25519 seed is 32 bytes, not {len(seed)}"
            raise ValueError(msg)
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._previous = previous
        self.public_key: bytes = self._key.public_key().public_bytes_raw()
        self.key_id: str = key_id(self.public_key)

    @property
    def public_key_hex(self) -> str:
        """The raw 32-byte public key in hex: all an auditor needs from the operator."""
        return self.public_key.hex()

    def sign(
        self,
        size: int,
        root: bytes | str,
        time: datetime | str,
        *,
        receipts: tuple[int, str] | None = None,
    ) -> Checkpoint:
        """A signed checkpoint for ``size`` leaves with ``root`` (bytes or hex) at ``time``.

        With ``receipts``, the register's (position, link) of its newest receipt, it is a v2
        checkpoint, chained to the signer's previous one.
        """
        root_hex = root.hex() if isinstance(root, bytes) else root
        time_str = rfc3339_utc(time) if isinstance(time, datetime) else time
        if receipts is None:
            message = checkpoint_signed_bytes(size, root_hex, time_str, self.key_id)
            return Checkpoint(size, root_hex, time_str, self.key_id, self._key.sign(message).hex())
        before = self._previous() if self._previous is not None else None
        prev = checkpoint_hash(before) if before is not None else NO_PREVIOUS
        position, head = receipts
        message = checkpoint_signed_bytes(
            size, root_hex, time_str, self.key_id, receipts=position, receipts_head=head, prev=prev
        )
        signature = self._key.sign(message).hex()
        return Checkpoint(size, root_hex, time_str, self.key_id, signature, position, head, prev)


def verify_checkpoint(cp: Checkpoint, public_key_hex: str) -> bool:
    """Whether ``cp`` names the key ``public_key_hex`` and carries that key's valid signature."""
    try:
        public_key = bytes.fromhex(public_key_hex)
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return False
    if cp.key_id != key_id(public_key):
        return False
    try:
        key.verify(bytes.fromhex(cp.signature), cp.signed_bytes())
    except InvalidSignature:
        return False
    return True
