"""Signed checkpoints of the ledger: the operator's Ed25519 statement of the tree (and the register).

Two versions, both verifiable forever:

- **v1** signs ``size``, ``root``, ``time`` and ``key_id`` under the domain string
  ``credit-ledger checkpoint v1\\n``.
- **v2** (``"v": 2``) also signs ``receipts`` and ``receipts_head`` (the position and chain link
  of the submission register's newest receipt: the register is pinned as the tree is) and
  ``prev`` (the hash of the checkpoint filed before it in the signer's checkpoint file, or 64
  zeros: a checkpoint removed from a file leaves the next one naming a checkpoint that is not
  there), under ``credit-ledger checkpoint v2\\n``.

- **v3** (``"v": 3``) is a C2SP checkpoint in a signed note (``tlog_checkpoint``, ``notes``):
  the origin line naming this ledger, the size, the base64 root, and three extension lines that
  carry what v2 signs (``credit-ledger time``, ``credit-ledger receipts``, ``credit-ledger prev``),
  signed by the same Ed25519 key under the origin as its key name. Witnesses' cosignatures ride
  along as further signature lines; they are not part of the checkpoint's identity.

Nothing signed in one version verifies as another: the domain strings differ, and a note text
begins with its origin, never with a domain string.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.domain.integrity import GENESIS, canonical_bytes
from ledger.verification.notes import (
    ED25519,
    NoteError,
    NoteSignature,
    VerifierKey,
    note_key_id,
    parse_note,
    valid_key_name,
)
from ledger.verification.tlog_checkpoint import CheckpointBody, FormatError, decimal

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
_V3_PATTERNS = {**_V2_PATTERNS, "key_id": re.compile(r"[0-9a-f]{8}")}
_CHECKPOINT_FIELDS = ("size", "root", "time", "key_id", "signature")
_V2_FIELDS = ("v", *_CHECKPOINT_FIELDS, "receipts", "receipts_head", "prev")
EXTENSION = "credit-ledger"
"""The first word of each extension line of a v3 checkpoint."""


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

    ``root``, ``signature`` and the v2 hashes are lowercase hex; ``time`` is RFC 3339 UTC. A v3
    checkpoint also has its ``origin``; its ``key_id`` is the note's 4-byte key id (8 hex digits),
    and ``cosignatures`` are the note's other signature lines (witnesses'), which do not count in
    comparing two checkpoints. The fields are checked on construction, so a Checkpoint in hand is
    always well formed (though not necessarily validly signed: see :func:`verify_checkpoint`).
    """

    size: int
    root: str
    time: str
    key_id: str
    signature: str
    receipts: int | None = None
    receipts_head: str | None = None
    prev: str | None = None
    origin: str | None = None
    cosignatures: tuple[NoteSignature, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in ("size", *(("receipts",) if self.version >= 2 else ())):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                msg = f"checkpoint {name} must be a non-negative integer, not {value!r}"
                raise ValueError(msg)
        patterns = {**_FIELD_PATTERNS, **({2: _V2_PATTERNS, 3: _V3_PATTERNS}.get(self.version, {}))}
        for name, pattern in patterns.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                form = (
                    "8 lowercase hex digits" if self.version == 3 and name == "key_id" else _FIELD_FORMS[name]
                )
                msg = f"checkpoint {name} must be {form}, not {value!r}"
                raise ValueError(msg)
        if self.version == 1 and (self.receipts_head is not None or self.prev is not None):
            msg = "a checkpoint with receipts_head or prev must also give receipts"
            raise ValueError(msg)
        if self.origin is not None and self.receipts is None:
            msg = "a version 3 checkpoint (with an origin) also signs receipts, receipts_head and prev"
            raise ValueError(msg)
        if self.origin is not None and not valid_key_name(self.origin):
            msg = f"a checkpoint origin has no spaces, '+' or control characters, not {self.origin!r}"
            raise ValueError(msg)

    @property
    def version(self) -> int:
        if self.origin is not None:
            return 3
        return 1 if self.receipts is None else 2

    def body(self) -> CheckpointBody:
        """A v3 checkpoint's C2SP body: origin, size, root, and its extension lines."""
        assert self.origin is not None, "only a version 3 checkpoint is a note"
        extensions = (
            f"{EXTENSION} time {self.time}",
            f"{EXTENSION} receipts {self.receipts} {self.receipts_head}",
            f"{EXTENSION} prev {self.prev}",
        )
        return CheckpointBody(self.origin, self.size, bytes.fromhex(self.root), extensions)

    def signed_bytes(self) -> bytes:
        """Exactly what the signature covers: the domain string, then the canonical fields (v1, v2),
        or the note text (v3)."""
        if self.version == 3:
            return self.body().text().encode()
        return checkpoint_signed_bytes(
            self.size,
            self.root,
            self.time,
            self.key_id,
            receipts=self.receipts,
            receipts_head=self.receipts_head,
            prev=self.prev,
        )

    def operator_signature(self) -> NoteSignature:
        """A v3 checkpoint's own signature line (its origin is its key name)."""
        assert self.origin is not None, "only a version 3 checkpoint is a note"
        return NoteSignature(self.origin, int(self.key_id, 16), bytes.fromhex(self.signature))

    def note(self) -> str:
        """A v3 checkpoint as a signed note: its text, the operator's signature, the cosignatures."""
        lines = "".join(s.line() for s in (self.operator_signature(), *self.cosignatures))
        return self.body().text() + "\n" + lines

    def cosigned(self, signatures: Iterable[NoteSignature]) -> Checkpoint:
        """This checkpoint with ``signatures`` added to its cosignatures (each line once)."""
        added = [s for s in signatures if s not in self.cosignatures]
        return replace(self, cosignatures=(*self.cosignatures, *added)) if added else self

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready data (the form the auditor reads)."""
        if self.version == 3:
            return {"v": 3, "note": self.note()}
        if self.version == 1:
            return {name: getattr(self, name) for name in _CHECKPOINT_FIELDS}
        return {"v": 2, **{name: getattr(self, name) for name in _V2_FIELDS[1:]}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Read a checkpoint back (any version), refusing missing, unknown or malformed fields."""
        version = data.get("v", 1)
        if version not in (1, 2, 3) or type(version) is not int:
            msg = f"checkpoint version must be 1 (no 'v'), 2 or 3, not {version!r}"
            raise ValueError(msg)
        if version == 3:
            if set(data) != {"v", "note"} or not isinstance(data["note"], str):
                msg = f"a version 3 checkpoint is {{'v': 3, 'note': TEXT}}, not fields {sorted(data)}"
                raise ValueError(msg)
            return cls.from_note(data["note"])
        fields = _CHECKPOINT_FIELDS if version == 1 else _V2_FIELDS
        missing = [name for name in fields if name not in data and name != "v"]
        unknown = sorted(set(data) - set(fields) - {"v"})
        if missing or unknown:
            msg = f"checkpoint fields: missing {missing}, unknown {unknown}"
            raise ValueError(msg)
        return cls(**{name: data[name] for name in fields if name != "v"})

    @classmethod
    def from_note(cls, raw: str | bytes) -> Checkpoint:
        """Read a v3 checkpoint from its signed note; ValueError says what is not right.

        The operator's signature is the one line named by the origin with an Ed25519 signature's
        length; every other line is kept as a cosignature (checked only against witnesses' keys).
        """
        try:
            note = parse_note(raw)
            body = CheckpointBody.parse(note.text)
        except (NoteError, FormatError) as exc:
            raise ValueError(f"not a C2SP checkpoint note: {exc}") from None
        fields = _extensions(body.extensions)
        own = [s for s in note.signatures if s.name == body.origin and len(s.signature) == 64]
        if len(own) != 1:
            msg = f"a checkpoint note carries one Ed25519 signature named {body.origin!r}, not {len(own)}"
            raise ValueError(msg)
        (mine,) = own
        others = tuple(s for s in note.signatures if s is not mine)
        cp = cls(
            body.size, body.root.hex(), key_id=f"{mine.key_id:08x}", signature=mine.signature.hex(),
            origin=body.origin, cosignatures=others, **fields,
        )  # fmt: skip
        if cp.body().text() != note.text:  # e.g. a time or hash written otherwise than it is signed
            raise ValueError("the checkpoint note's lines are not written as a checkpoint writes them")
        return cp


def _extensions(lines: tuple[str, ...]) -> dict[str, Any]:
    """A v3 checkpoint's time, register anchor and predecessor, from its three extension lines."""
    words = [line.split(" ") for line in lines]
    shapes = [[EXTENSION, "time", "_"], [EXTENSION, "receipts", "_", "_"], [EXTENSION, "prev", "_"]]
    if len(words) != 3 or any(len(w) != len(s) or w[:2] != s[:2] for w, s in zip(words, shapes, strict=True)):
        shown = "|".join(lines)[:200]
        msg = f"a version 3 checkpoint has the lines '{EXTENSION} time|receipts|prev ...', not {shown!r}"
        raise ValueError(msg)
    receipts = decimal(words[1][2])
    if receipts is None:
        raise ValueError(f"the checkpoint's receipts position is a decimal number, not {words[1][2][:30]!r}")
    return {"time": words[0][2], "receipts": receipts, "receipts_head": words[1][3], "prev": words[2][2]}


def checkpoint_hash(cp: Checkpoint) -> str:
    """What a later checkpoint's ``prev`` names: SHA-256 of the canonical JSON of ``cp``, signature
    included (v1, v2), or of its signed note text (v3: cosignatures added later change nothing)."""
    if cp.version == 3:
        return hashlib.sha256(cp.signed_bytes()).hexdigest()
    return hashlib.sha256(canonical_bytes(cp.to_dict())).hexdigest()


def generate_seed() -> bytes:
    """A fresh random 32-byte Ed25519 private seed for the operator's checkpoint key."""
    return secrets.token_bytes(32)


class CheckpointSigner:
    """Signs checkpoints with the operator's Ed25519 key (RFC 8032), given its 32-byte seed.

    ``previous`` returns the last checkpoint of the file this signer's checkpoints are filed in
    (``CheckpointLog.last``): a v2 or v3 checkpoint names it in ``prev``. Without it every such
    checkpoint is the first of its chain.
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

    def vkey(self, origin: str) -> VerifierKey:
        """The signed-note verifier key of this key for the log ``origin`` (its key name)."""
        return VerifierKey.of(origin, ED25519, self.public_key)

    def signed(self, cp: Checkpoint) -> bool:
        """Whether ``cp`` names this key (by key id; the signature is not checked)."""
        if cp.origin is None:
            return cp.key_id == self.key_id
        return cp.key_id == f"{note_key_id(cp.origin, ED25519, self.public_key):08x}"

    def sign(
        self,
        size: int,
        root: bytes | str,
        time: datetime | str,
        *,
        receipts: tuple[int, str] | None = None,
        origin: str | None = None,
    ) -> Checkpoint:
        """A signed checkpoint for ``size`` leaves with ``root`` (bytes or hex) at ``time``.

        With ``receipts``, the register's (position, link) of its newest receipt, it is a v2
        checkpoint, chained to the signer's previous one; with an ``origin`` too, a v3 checkpoint:
        a C2SP checkpoint note of the log of that origin.
        """
        root_hex = root.hex() if isinstance(root, bytes) else root
        time_str = rfc3339_utc(time) if isinstance(time, datetime) else time
        if receipts is None:
            if origin is not None:
                raise ValueError("a version 3 checkpoint signs the register too: give receipts")
            message = checkpoint_signed_bytes(size, root_hex, time_str, self.key_id)
            return Checkpoint(size, root_hex, time_str, self.key_id, self._key.sign(message).hex())
        before = self._previous() if self._previous is not None else None
        prev = checkpoint_hash(before) if before is not None else NO_PREVIOUS
        position, head = receipts
        if origin is not None:
            note_id = f"{self.vkey(origin).key_id:08x}"
            unsigned = Checkpoint(size, root_hex, time_str, note_id, "0" * 128, position, head, prev, origin)
            signature = self._key.sign(unsigned.signed_bytes()).hex()
            return replace(unsigned, signature=signature)
        message = checkpoint_signed_bytes(
            size, root_hex, time_str, self.key_id, receipts=position, receipts_head=head, prev=prev
        )
        signature = self._key.sign(message).hex()
        return Checkpoint(size, root_hex, time_str, self.key_id, signature, position, head, prev)


def verify_checkpoint(cp: Checkpoint, public_key_hex: str) -> bool:
    """Whether ``cp`` names the key ``public_key_hex`` and carries that key's valid signature (for
    a v3 checkpoint: the key under the checkpoint's origin as its name)."""
    try:
        public_key = bytes.fromhex(public_key_hex)
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return False
    if cp.origin is not None:
        return VerifierKey.of(cp.origin, ED25519, public_key).verify(
            cp.signed_bytes().decode(), cp.operator_signature()
        )
    if cp.key_id != key_id(public_key):
        return False
    try:
        key.verify(bytes.fromhex(cp.signature), cp.signed_bytes())
    except InvalidSignature:
        return False
    return True
