"""The key ring: AES-256-GCM data keys per subject and retention unit, wrapped by the master key.

Envelope encryption: each retention unit (a record and what belongs to it, a file's own content,
a department's rejected originals of one month) has its own 256-bit data key; the database
keeps it wrapped (AES-256-GCM) by the master key (``CREDIT_MASTER_KEY`` or ``DATA_DIR/master.key``).
A personal value is sealed under its unit's key with associated data naming its stream, event
version and field, so a ciphertext moved elsewhere does not open. Destroying a data key
(shredding) makes every value sealed under it unreadable while every stored byte, and so every
hash, chain and Merkle proof, stays as it was. A master-key rotation re-wraps the data keys and
touches no event.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.application.ports import DataKeyStore
from ledger.domain.personal import ENVELOPE_PREFIX, SHREDDED, DataKeyRow, Envelope

MASTER_KEY_BYTES = 32
REJECTIONS_STREAM = "rejections"
"""The stream name of rejected originals' keys (they belong to no subject's file)."""
REJECTION_RETENTION_DAYS = 90
"""How long after the end of its month a rejected original stays readable (docs/privacy.md)."""
_MEMO = 500_000  # data keys kept unwrapped in memory; a memo, cleared when full


OPENS, SHREDDED_KEY, ALTERED = "opens", "shredded", "altered"
"""What ``KeyRing.examine`` finds of a sealed value."""


class MasterKeyMismatch(RuntimeError):
    """The configured master key is not the one the stored data keys are wrapped by."""


class SealedValueAltered(ValueError):
    """A ciphertext fails its GCM tag: it was altered, or moved from where it was sealed."""


def master_key_id(master_key: bytes) -> str:
    """A short public fingerprint of a master key (what each wrapped data key names)."""
    return hashlib.sha256(b"credit-ledger master key:" + master_key).hexdigest()[:16]


def parse_master_key(text: str) -> bytes:
    """The 32 bytes of a master key written as 64 hex digits; ValueError otherwise."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        msg = "must be 64 hexadecimal digits (a 256-bit key)"
        raise ValueError(msg)
    return key


def original_retained_until(month: str) -> date:
    """The day the rejected originals of ``month`` (``YYYY-MM``) stop being readable: their key is
    destroyed REJECTION_RETENTION_DAYS after the month's end."""
    year, mon = int(month[:4]), int(month[5:7])
    return date(year + mon // 12, mon % 12 + 1, 1) + timedelta(days=REJECTION_RETENTION_DAYS)


def key_id(stream: UUID | str, unit: str) -> str:
    """The data key of one unit of one stream: derived, so the sealer finds it without a directory."""
    return hashlib.sha256(f"{stream}|{unit}".encode()).hexdigest()[:24]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeyRing:
    """Seals and opens personal values; creates, wraps, destroys and re-wraps data keys."""

    def __init__(self, store: DataKeyStore, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            msg = f"the master key must be {MASTER_KEY_BYTES} bytes, got {len(master_key)}"
            raise ValueError(msg)
        self.store = store
        self.master_key_id = master_key_id(master_key)
        self._master = AESGCM(master_key)
        self._keys: dict[str, tuple[AESGCM | None, str]] = {}  # key id -> (key or None if shredded, stream)

    def check(self, also: str | None = None) -> None:
        """Refuse to start with a master key that wraps none of the stored data keys (``also``: the
        id of a second key some may be wrapped by, during a rotation)."""
        stored = self.store.master_key_ids() - {self.master_key_id, also}
        if stored:
            raise MasterKeyMismatch(
                f"the ledger's data keys are wrapped by master key {', '.join(sorted(stored))}, but the "
                f"configured one is {self.master_key_id}: restore the master key from its backup "
                "(CREDIT_MASTER_KEY or DATA_DIR/master.key; see docs/privacy.md). Starting with another "
                "key would make every personal field unreadable"
            )

    # -- data keys --------------------------------------------------------------------------

    def _wrap(self, kid: str, stream: str, unit: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._master.encrypt(nonce, key, f"{kid}|{stream}|{unit}".encode())

    def _unwrap(self, row: DataKeyRow) -> AESGCM | None:
        kid, stream, unit, _master_id, wrapped, _created, _shredded = row
        if wrapped is None:
            return None
        try:
            key = self._master.decrypt(wrapped[:12], wrapped[12:], f"{kid}|{stream}|{unit}".encode())
        except InvalidTag:
            msg = (
                f"data key {kid} does not unwrap under master key {self.master_key_id}: altered or misplaced"
            )
            raise SealedValueAltered(msg) from None
        return AESGCM(key)

    def _find(self, kid: str) -> tuple[AESGCM | None, str] | None:
        found = self._keys.get(kid)
        if found is None:
            row = self.store.data_keys([kid]).get(kid)
            if row is None:
                return None
            found = self._remember(kid, self._unwrap(row), row[1])
        return found

    def _remember(self, kid: str, key: AESGCM | None, stream: str) -> tuple[AESGCM | None, str]:
        if len(self._keys) >= _MEMO:
            self._keys.clear()
        found = self._keys[kid] = (key, stream)
        return found

    def forget(self, key_ids: Iterable[str]) -> None:
        """Drop keys from memory once destroyed in the store."""
        for kid in key_ids:
            found = self._keys.get(kid)
            self._keys[kid] = (None, found[1] if found else "")

    def batch(self, absent: set[UUID] | None = None) -> BatchSealer:
        """A sealer for one batch: the keys it creates are saved with the batch's events."""
        return BatchSealer(self, absent or set())

    # -- opening ----------------------------------------------------------------------------

    def open(self, text: str) -> Any:
        """The clear value of an envelope; ``SHREDDED`` if its key was destroyed.

        Raises SealedValueAltered if the ciphertext or its stated place was altered."""
        envelope = Envelope.parse(text)
        found = self._find(envelope.key_id)
        if found is None:
            msg = f"sealed value of {envelope.field} names data key {envelope.key_id}, which never existed"
            raise SealedValueAltered(msg)
        key, stream = found
        if key is None:
            return SHREDDED
        blob = _unb64(envelope.blob)
        try:
            clear = key.decrypt(
                blob[:12], blob[12:], f"{stream}|{envelope.version}|{envelope.field}".encode()
            )
        except InvalidTag:
            msg = (
                f"ciphertext altered: {envelope.field} of stream {stream} version {envelope.version} "
                "fails its GCM tag"
            )
            raise SealedValueAltered(msg) from None
        return orjson.loads(clear)

    def check_place(self, text: str, stream: str, version: int, field: str) -> str | None:
        """Why the envelope found at ``field`` of the event at ``version`` of ``stream`` is not the one
        sealed there (None if it is, or its key was destroyed and it can no longer be told)."""
        return self.examine(text, stream, version, field)[1]

    def examine(self, text: str, stream: str, version: int, field: str) -> tuple[str, str | None]:
        """What ``verify`` finds of one sealed value: (``opens``, None) if it decrypts under its key
        with its associated data (stream, version, field); (``shredded``, None) if its key was
        destroyed (its place can no longer be told); (``altered``, why) otherwise."""
        try:
            envelope = Envelope.parse(text)
            found = self._find(envelope.key_id)  # raises if the wrapped data key itself was altered
        except ValueError as exc:  # SealedValueAltered is one
            return ALTERED, f"{field}: {exc}"
        if found is not None and found[0] is None:
            return SHREDDED_KEY, None
        why = self._misplaced(text, envelope, found, stream, version, field)
        return (OPENS, None) if why is None else (ALTERED, why)

    def _misplaced(
        self,
        text: str,
        envelope: Envelope,
        found: tuple[AESGCM | None, str] | None,
        stream: str,
        version: int,
        field: str,
    ) -> str | None:
        if found is not None and found[1] != stream:
            return f"ciphertext of {field} was sealed for stream {found[1]}, not this one"
        if (envelope.version, envelope.field) != (version, field):
            return f"ciphertext of {field} was sealed for version {envelope.version} field {envelope.field}"
        try:
            self.open(text)
        except SealedValueAltered as exc:
            return str(exc)
        return None

    def reveal(self, value: Any) -> Any:
        """``value`` (a view, a list, a message) with every envelope in it opened (or ``SHREDDED``)."""
        if isinstance(value, str):
            return self.open(value) if value.startswith(ENVELOPE_PREFIX) else value
        if isinstance(value, dict):
            return {k: self.reveal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.reveal(v) for v in value]
        return value

    def open_original(self, original: bytes) -> bytes | None:
        """A rejected original as received; None once its retention ended (its key destroyed).

        Its key is read from the store each time, never from memory: another process (the
        scheduler's worker) may have destroyed it, and originals are read seldom."""
        if not original.startswith(ENVELOPE_PREFIX.encode()):
            return original  # stored before originals were sealed
        text = original.decode()
        self._keys.pop(Envelope.parse(text).key_id, None)
        clear = self.open(text)
        return None if clear == SHREDDED else base64.b64decode(clear)

    # -- rotation and retention -------------------------------------------------------------

    def rotate(self, new_master_key: bytes) -> int:
        """Re-wrap every live data key under ``new_master_key``; return how many. Events are untouched."""
        new = KeyRing(self.store, new_master_key)
        count, after = 0, ""
        while rows := self.store.live_data_keys(after=after, limit=1000):
            rewrapped = []
            for row in rows:
                kid, stream, unit, master_id, wrapped, _c, _s = row
                if master_id == new.master_key_id:
                    continue  # done by an earlier, interrupted rotation
                key = self._master.decrypt(wrapped[:12], wrapped[12:], f"{kid}|{stream}|{unit}".encode())  # type: ignore[index]
                rewrapped.append((kid, new.master_key_id, new._wrap(kid, stream, unit, key)))
            self.store.rewrap_data_keys(rewrapped)
            count += len(rewrapped)
            after = rows[-1][0]
        self._master, self.master_key_id = new._master, new.master_key_id
        return count

    def expired_rejection_keys(self, today: date) -> list[str]:
        """Keys of rejected originals whose month ended more than REJECTION_RETENTION_DAYS ago."""
        out, after = [], ""
        while rows := self.store.live_data_keys(stream=REJECTIONS_STREAM, after=after):
            for kid, _stream, unit, *_ in rows:
                if today >= original_retained_until(unit.rsplit(":", 1)[-1]):
                    out.append(kid)
            after = rows[-1][0]
        return out

    def shred_rejections(self, today: date, at: str) -> int:
        """Destroy the keys of rejected originals past their retention; return how many."""
        expired = self.expired_rejection_keys(today)
        if expired:
            self.store.shred_data_keys(expired, at)
            self.forget(expired)
        return len(expired)


class BatchSealer:
    """The ``FieldSealer`` of one batch: seals values, and keeps the keys it created until saved."""

    def __init__(self, ring: KeyRing, absent: set[UUID]) -> None:
        self.ring = ring
        self.absent = absent  # streams with no file yet: none of their keys can exist
        self.created: dict[str, tuple[AESGCM, DataKeyRow]] = {}
        self.now = ""

    def _key(self, stream: UUID | str, unit: str, *, opens: bool) -> tuple[str, AESGCM]:
        kid = key_id(stream, unit)
        made = self.created.get(kid)
        if made is not None:
            return kid, made[0]
        found = self.ring._keys.get(kid)
        if found is None and not opens and stream not in self.absent:
            found = self.ring._find(kid)
        if found is not None:
            if found[0] is None:
                msg = f"the data key of {unit} was destroyed: nothing more can be sealed under it"
                raise RuntimeError(msg)
            return kid, found[0]
        raw = AESGCM.generate_key(bit_length=256)
        key = AESGCM(raw)
        wrapped = self.ring._wrap(kid, str(stream), unit, raw)
        self.created[kid] = (key, (kid, str(stream), unit, self.ring.master_key_id, wrapped, self.now, None))
        return kid, key

    def seal(
        self, stream: UUID | str, unit: str, version: int, field: str, value: Any, *, opens: bool
    ) -> str:
        kid, key = self._key(stream, unit, opens=opens)
        nonce = os.urandom(12)
        sealed = key.encrypt(nonce, orjson.dumps(value), f"{stream}|{version}|{field}".encode())
        return f"{ENVELOPE_PREFIX}{kid}:{version}:{field}:{_b64(nonce + sealed)}"

    def seal_original(self, department: str, month: str, original: bytes) -> bytes:
        """A rejected original, sealed under its department's key of the month (``YYYY-MM``)."""
        unit = f"rejections:{department}:{month}"
        text = base64.b64encode(original).decode()
        return self.seal(REJECTIONS_STREAM, unit, 0, "original", text, opens=False).encode()

    def rows(self) -> list[DataKeyRow]:
        return [row for _key, row in self.created.values()]

    def committed(self) -> None:
        """The batch is saved: its keys may now be used by later batches."""
        for kid, (key, row) in self.created.items():
            self.ring._remember(kid, key, row[1])
        self.created = {}
