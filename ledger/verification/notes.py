"""C2SP signed notes (c2sp.org/signed-note): text signed by one or more keys, and the keys' names.

A note is a text ending in a newline, a blank line, then one signature line per signer:
``— <key name> base64(4-byte key id || signature)``. A key is named by its *vkey*,
``<name>+<hex key id>+base64(signature type || public key)``, the key id being the first four
bytes of SHA-256 over the name, a newline, the signature type and the public key. Two signature
types are used here, both Ed25519 (the ``cryptography`` library signs and verifies):

- ``0x01``: the note text itself is signed (the operator's checkpoint signature);
- ``0x04``: a *timestamped cosignature* (c2sp.org/tlog-cosignature, ``cosignature/v1``): the
  signature is an 8-byte big-endian POSIX time and an Ed25519 signature over
  ``cosignature/v1\\ntime <T>\\n`` followed by the note text (a witness's signature).

What this module refuses is what ``golang.org/x/mod/sumdb/note`` refuses: invalid UTF-8, control
characters other than newline, a name with a space or a plus, more than 100 signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
"""Signature type of an Ed25519 signature over the note text (signed-note)."""

COSIGNATURE_V1 = 0x04
"""Signature type of a timestamped Ed25519 checkpoint cosignature (tlog-cosignature)."""

SIGNATURE_PREFIX = "\u2014 "
"""Each signature line starts with an em dash and a space."""

MAX_SIGNATURES = 100
"""The most signature lines a note may carry (as Go's note.Open allows)."""

_SIGNATURE_SIZES = {ED25519: 64, COSIGNATURE_V1: 8 + 64}


class NoteError(ValueError):
    """Not a well-formed note, signature or vkey; the message says what is wrong."""


def valid_key_name(name: str) -> bool:
    """A key name is non-empty and has no Unicode space, no plus and no control character."""
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def note_key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """The key id: SHA-256(name || 0x0A || signature type || public key), first 4 bytes, big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not base64") from None


@dataclass(frozen=True)
class VerifierKey:
    """A named public key (a vkey): who signs, with which algorithm, under which key id."""

    name: str
    key_id: int
    signature_type: int
    public_key: bytes

    @classmethod
    def of(cls, name: str, signature_type: int, public_key: bytes) -> VerifierKey:
        """The vkey of ``public_key`` (32 raw Ed25519 bytes) under ``name``."""
        if not valid_key_name(name):
            raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
        if signature_type not in _SIGNATURE_SIZES or len(public_key) != 32:
            raise NoteError("only Ed25519 keys (32 bytes, signature type 0x01 or 0x04) are used here")
        return cls(name, note_key_id(name, signature_type, public_key), signature_type, public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``<name>+<hex key id>+<base64(type || key)>``, checking that the key id is right."""
        parts = text.strip().split("+", 2)  # the base64 key may hold a "+" itself
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError(f"a vkey is <name>+<8 hex digits>+<base64 key>, not {text[:80]!r}")
        name, hex_id, encoded = parts
        try:
            given = int(hex_id, 16)
        except ValueError:
            raise NoteError(f"the key id {hex_id!r} of a vkey must be 8 hex digits") from None
        material = _b64decode(encoded, "the key of a vkey")
        if not material:
            raise NoteError("the key of a vkey is empty")
        key = cls.of(name, material[0], material[1:])
        if key.key_id != given:
            raise NoteError(f"the vkey of {name!r} gives key id {hex_id}, but its key has {key.key_id:08x}")
        return key

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([self.signature_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, text: str, signature: NoteSignature) -> bool:
        """Whether ``signature`` is this key's valid signature (or cosignature) of ``text``."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            return False
        raw = signature.signature
        if len(raw) != _SIGNATURE_SIZES[self.signature_type]:
            return False
        if self.signature_type == COSIGNATURE_V1:
            message = cosigned_message(text, int.from_bytes(raw[:8], "big"))
            raw = raw[8:]
        else:
            message = text.encode()
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(raw, message)
        except InvalidSignature:
            return False
        return True


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a ``cosignature/v1`` signs: its header line, its time line, then the note text."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the signer's key name, its key id and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, newline included."""
        encoded = base64.b64encode(struct.pack(">I", self.key_id) + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"

    @property
    def timestamp(self) -> int | None:
        """A cosignature's time (POSIX seconds), if the signature is one's size."""
        if len(self.signature) != _SIGNATURE_SIZES[COSIGNATURE_V1]:
            return None
        return int.from_bytes(self.signature[:8], "big")

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """One signature line, without its newline."""
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"a signature line starts with '— ', not {line[:40]!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not valid_key_name(name) or not encoded:
            raise NoteError(f"a signature line is '— <key name> <base64>', not {line[:80]!r}")
        raw = _b64decode(encoded, f"the signature of {name!r}")
        if len(raw) < 5:
            raise NoteError(f"the signature of {name!r} is shorter than a key id and one byte")
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])


@dataclass(frozen=True)
class Note:
    """A note: its text (ending in a newline) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        """The note as sent: the text, a blank line, each signature line."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def signed_by(self, keys: Iterable[VerifierKey]) -> tuple[list[VerifierKey], list[VerifierKey]]:
        """The ``keys`` whose signature on this note verifies, and those whose signature line is
        here (same name and key id) but does not verify. Other signature lines are ignored."""
        valid: list[VerifierKey] = []
        invalid: list[VerifierKey] = []
        for key in keys:
            lines = [s for s in self.signatures if (s.name, s.key_id) == (key.name, key.key_id)]
            if not lines:
                continue
            (valid if all(key.verify(self.text, s) for s in lines) else invalid).append(key)
        return valid, invalid


def check_text(text: str) -> None:
    """A note text: non-empty, ending in a newline, no control character but newline."""
    if not text.endswith("\n") or any(c < " " and c != "\n" for c in text):
        raise NoteError("a note text ends in a newline and holds no control character but newlines")


def parse_note(raw: str | bytes) -> Note:
    """Split a note into its text and signature lines (the text ends at the last blank line)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a note must be UTF-8") from None
    if any(c < " " and c != "\n" for c in raw):
        raise NoteError("a note holds no control character but newlines")
    split = raw.rfind("\n\n")
    if split < 0:
        raise NoteError("a note is its text, a blank line, then its signature lines")
    text, block = raw[: split + 1], raw[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("a note ends with at least one signature line and a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note carries at most {MAX_SIGNATURES} signatures, not {len(lines)}")
    return Note(text, tuple(NoteSignature.parse_line(line) for line in lines))


class NoteSigner:
    """Signs note texts with one Ed25519 key under one name: signatures (type 0x01) or
    timestamped cosignatures (type 0x04), as ``signature_type`` says."""

    def __init__(self, name: str, seed: bytes, signature_type: int = ED25519) -> None:
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.vkey = VerifierKey.of(name, signature_type, self._key.public_key().public_bytes_raw())

    @property
    def name(self) -> str:
        return self.vkey.name

    def sign(self, text: str) -> NoteSignature:
        """The signature line of a type 0x01 key over ``text``."""
        if self.vkey.signature_type != ED25519:
            raise ValueError("this key makes cosignatures: use cosign")
        check_text(text)
        return NoteSignature(self.name, self.vkey.key_id, self._key.sign(text.encode()))

    def cosign(self, text: str, timestamp: int) -> NoteSignature:
        """The ``cosignature/v1`` line of a type 0x04 key over ``text`` at ``timestamp``."""
        if self.vkey.signature_type != COSIGNATURE_V1:
            raise ValueError("this key signs notes: use sign")
        if not 0 < timestamp < 2**63:
            raise ValueError(f"a cosignature's time is a positive POSIX time, not {timestamp}")
        check_text(text)
        signature = self._key.sign(cosigned_message(text, timestamp))
        return NoteSignature(self.name, self.vkey.key_id, struct.pack(">Q", timestamp) + signature)


def unique_keys(keys: Sequence[VerifierKey]) -> list[VerifierKey]:
    """``keys`` without repeats of one public key (a witness counts once, however often named)."""
    seen: set[bytes] = set()
    out = []
    for key in keys:
        if key.public_key not in seen:
            seen.add(key.public_key)
            out.append(key)
    return out
