"""The key ring: AES-256-GCM data keys per subject and retention unit, wrapped by the master key.

Envelope encryption: each retention unit (a record and what belongs to it, a file's own content,
a department's rejected originals of one month) has its own 256-bit data key; the database
keeps it wrapped (AES-256-GCM) by the master key (``CREDIT_MASTER_KEY`` or ``DATA_DIR/master.key``).
A personal value is sealed under its unit's key with associated data naming its stream, event
version and field, so a ciphertext moved elsewhere does not open. Destroying a data key
(shredding) makes every value sealed under it unreadable while every stored byte, and so every
hash, chain and Merkle proof, stays as it was. A master-key rotation re-wraps the data keys and
touches no event.

One module of over 400 lines because every piece of it handles unwrapped key material (the
ring, the batch sealer, the name index, rotation): keeping them together keeps the code that may
see a data key in one place to review.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
import unicodedata
from binascii import b2a_base64 as _b2a
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.application.ports import DataKeyStore
from ledger.domain.inbox import InboxItem
from ledger.domain.personal import ENVELOPE_PREFIX, SHREDDED, DataKeyRow, Envelope, is_envelope

log = logging.getLogger(__name__)

MASTER_KEY_BYTES = 32
REJECTIONS_STREAM = "rejections"
"""The stream name of rejected originals' keys (they belong to no subject's file)."""
INBOX_STREAM = "inbox"
"""The stream name of the inbox's keys (a department's submissions received over HTTP in a month)."""
INBOX_FIELD = "submission"
"""The field an inbox row's envelope names; its version is the row's position (the associated
data binds it there: ``inbox|<position>|submission``)."""
REJECTION_RETENTION_DAYS = 90
"""How long after the end of its month a rejected original stays readable (docs/privacy.md)."""
_MEMO = 500_000  # data keys kept unwrapped in memory (32 bytes each); a memo, cleared when full
_CIPHERS = 4096  # AESGCM objects kept ready (about 2.5 KB each, OpenSSL contexts); the oldest goes first
_RANDOM_BLOCK = 16_384  # bytes drawn from the OS at once for a batch's new keys and nonces


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
    """The data key of one unit of one stream, derived: the keys of rejected originals and of the
    inbox (a few a month, found by department and month), and every key made before key ids were
    ordered by time (``ordered_key_id``); a file's own keys are named by its events now."""
    return hashlib.sha256(f"{stream}|{unit}".encode()).hexdigest()[:24]


def ordered_key_id(millis: int, batch: bytes, seq: int) -> str:
    """A new data key's id: the millisecond its batch began (12 hex digits), 24 random bits drawn
    once per batch, and the key's number in the batch (6 hex digits).

    Ids that grow with time put a batch's new keys at one end of the key store's index: ids
    derived from stream and unit (a hash) landed on random pages, so every batch rewrote most of
    the index's pages, a cost that grew with the ledger (docs/benchmarks.md, issue 15). The random
    bits keep apart the batches two workers begin in one millisecond (were they equal too, the
    unique id refuses the second batch's insert and the batch is tried again). Same width and
    alphabet as a derived id: an envelope names either, and no reader derives it."""
    return f"{millis & 0xFFFF_FFFF_FFFF:012x}{batch.hex()}{seq:06x}"


_URLSAFE = bytes.maketrans(b"+/", b"-_")
"""URL-safe base64 (``BatchSealer.sealing`` writes it without padding, ``_unb64`` reads it)."""


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
        self._keys: dict[str, tuple[bytes | None, str]] = {}  # key id -> (key or None if shredded, stream)
        # key id -> its AESGCM, for the keys used last. An OrderedDict: evicting the oldest of a plain
        # dict (del d[next(iter(d))]) scans the slots its earlier deletions left, which made verify,
        # meeting a new key at almost every value, spend 5 of its 74 profiled seconds there.
        self._ciphers: OrderedDict[str, AESGCM] = OrderedDict()

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

    def _wrap(self, kid: str, stream: str, unit: str, key: bytes, nonce: bytes | None = None) -> bytes:
        nonce = nonce or os.urandom(12)
        return nonce + self._master.encrypt(nonce, key, f"{kid}|{stream}|{unit}".encode())

    def _unwrap(self, row: DataKeyRow) -> bytes | None:
        kid, stream, unit, master_id, wrapped, _created, _shredded = row
        if wrapped is None:
            return None
        if master_id != self.master_key_id:
            # Another process on this ledger wraps its data keys under another master key (workers
            # started with different keys on a new ledger pass the check at start): a configuration
            # error to stop on, not a forged key to reject one submission for.
            raise MasterKeyMismatch(
                f"data key {kid} is wrapped by master key {master_id}, but this process's master key is "
                f"{self.master_key_id}: every worker on one ledger must be given the same master key "
                "(CREDIT_MASTER_KEY, or the same DATA_DIR/master.key; see docs/privacy.md)"
            )
        try:
            key = self._master.decrypt(wrapped[:12], wrapped[12:], f"{kid}|{stream}|{unit}".encode())
        except InvalidTag:
            msg = (
                f"data key {kid} does not unwrap under master key {self.master_key_id}: altered or misplaced"
            )
            raise SealedValueAltered(msg) from None
        return key

    def _cipher(self, kid: str, key: bytes) -> AESGCM:
        """The AESGCM of data key ``kid``: a bounded cache, since each holds OpenSSL contexts (about
        2.5 KB) while the key itself is 32 bytes; keeping one per key ever used cost memory and time."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            if len(self._ciphers) >= _CIPHERS:
                self._ciphers.popitem(last=False)
            cipher = self._ciphers[kid] = AESGCM(key)
        return cipher

    def _find(self, kid: str) -> tuple[bytes | None, str] | None:
        found = self._keys.get(kid)
        if found is None:
            row = self.store.data_keys([kid]).get(kid)
            if row is None:
                return None
            found = self._remember(kid, self._unwrap(row), row[1])
        return found

    def prefetch(self, key_ids: Iterable[str]) -> None:
        """Load the data keys of ``key_ids`` not yet in memory with one store call, so that a walk over
        many sealed values (``verify``) asks the store once a page, not once a value. A wrapped key
        that does not unwrap is left out: ``open`` and ``examine`` then name it for each value."""
        missing = {kid for kid in key_ids if kid not in self._keys}
        if not missing:
            return
        for kid, row in self.store.data_keys(missing).items():
            try:
                key = self._unwrap(row)
            except SealedValueAltered:
                continue
            self._remember(kid, key, row[1])

    def _remember(self, kid: str, key: bytes | None, stream: str) -> tuple[bytes | None, str]:
        if len(self._keys) >= _MEMO:
            self._keys.clear()
        found = self._keys[kid] = (key, stream)
        return found

    def forget(self, key_ids: Iterable[str]) -> None:
        """Drop keys from memory once destroyed in the store."""
        for kid in key_ids:
            found = self._keys.get(kid)
            self._keys[kid] = (None, found[1] if found else "")
            self._ciphers.pop(kid, None)

    def batch(self) -> BatchSealer:
        """A sealer for one batch: the keys it creates are saved with the batch's events."""
        return BatchSealer(self)

    # -- opening ----------------------------------------------------------------------------

    def open(self, text: str) -> Any:
        """The clear value of an envelope; ``SHREDDED`` if its key was destroyed.

        Raises SealedValueAltered if the ciphertext or its stated place was altered."""
        envelope = Envelope.parse(text)
        return self._open(envelope, self._find(envelope.key_id))

    def _open(self, envelope: Envelope, found: tuple[bytes | None, str] | None) -> Any:
        if found is None:
            msg = f"sealed value of {envelope.field} names data key {envelope.key_id}, which never existed"
            raise SealedValueAltered(msg)
        key, stream = found
        if key is None:
            return SHREDDED
        blob = _unb64(envelope.blob)
        try:
            clear = self._cipher(envelope.key_id, key).decrypt(
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
        why = self._misplaced(envelope, found, stream, version, field)
        return (OPENS, None) if why is None else (ALTERED, why)

    def _misplaced(
        self,
        envelope: Envelope,
        found: tuple[bytes | None, str] | None,
        stream: str,
        version: int,
        field: str,
    ) -> str | None:
        if found is not None and found[1] != stream:
            return f"ciphertext of {field} was sealed for stream {found[1]}, not this one"
        if (envelope.version, envelope.field) != (version, field):
            return f"ciphertext of {field} was sealed for version {envelope.version} field {envelope.field}"
        try:
            self._open(envelope, found)
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
        kid = Envelope.parse(text).key_id
        self._keys.pop(kid, None)
        self._ciphers.pop(kid, None)
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

    def open_inbox(self, position: int, stored: InboxItem) -> InboxItem:
        """An inbox row as received: its Kafka key and value opened (``BatchSealer.seal_inbox``).

        A row stored in clear (before rows were sealed) comes back as it is; one whose key was
        destroyed at the end of its retention comes back with empty key and value (the intake
        rejects it under its source, so it still has its one outcome). Raises SealedValueAltered
        when the ciphertext fails its tag or was sealed for another position."""
        if not stored.value.startswith(ENVELOPE_PREFIX.encode()):
            return stored
        text = stored.value.decode()
        envelope = Envelope.parse(text)
        if (envelope.version, envelope.field) != (position, INBOX_FIELD):
            msg = (
                f"ciphertext of inbox row {position} was sealed for position {envelope.version} "
                f"field {envelope.field}"
            )
            raise SealedValueAltered(msg)
        found = self._find(envelope.key_id)
        if found is not None and found[1] != INBOX_STREAM:
            msg = f"ciphertext of inbox row {position} was sealed for stream {found[1]}"
            raise SealedValueAltered(msg)
        clear = self.open(text)
        if clear == SHREDDED:
            return InboxItem(b"", b"", stored.department, stored.submission_id)
        key, value = clear
        return InboxItem(
            base64.b64decode(key), base64.b64decode(value), stored.department, stored.submission_id
        )

    def expired_rejection_keys(self, today: date) -> list[str]:
        """Keys of rejected originals and of the inbox whose month ended more than
        REJECTION_RETENTION_DAYS ago (the same retention: docs/privacy.md)."""
        out = []
        for stream in (REJECTIONS_STREAM, INBOX_STREAM):
            after = ""
            while rows := self.store.live_data_keys(stream=stream, after=after):
                for kid, _stream, unit, *_ in rows:
                    if today >= original_retained_until(unit.rsplit(":", 1)[-1]):
                        out.append(kid)
                after = rows[-1][0]
        return out

    def shred_rejections(self, today: date, at: str) -> int:
        """Destroy the keys of rejected originals and of the inbox past their retention; how many."""
        expired = self.expired_rejection_keys(today)
        if expired:
            self.store.shred_data_keys(expired, at)
            self.forget(expired)
        return len(expired)


class BatchSealer:
    """The ``FieldSealer`` of one batch: seals values, and keeps the keys it created until saved.

    What a batch seals often shares a unit (a new file's name and its first record, a record and
    its responsible persons), so each unit's key is looked up once per batch (``_units``); the
    random bytes of new data keys and nonces are drawn from the OS in blocks (``_random``), not
    one system call per key and per value."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.created: dict[str, tuple[bytes, DataKeyRow]] = {}
        self.now = ""
        self._units: dict[tuple[str, str], tuple[str, AESGCM]] = {}
        self._pool = b""
        self._at = 0
        self._ids: tuple[int, bytes] | None = None  # (millisecond, random bits) of the new key ids
        self._seq = 0

    def _new_key_id(self) -> str:
        if self._ids is None or self._seq > 0xFFFFFF:
            self._ids, self._seq = (time.time_ns() // 1_000_000, self._random(3)), 0
        self._seq += 1
        return ordered_key_id(*self._ids, self._seq)

    def _random(self, n: int) -> bytes:
        if self._at + n > len(self._pool):
            self._pool, self._at = os.urandom(max(_RANDOM_BLOCK, n)), 0
        at = self._at
        self._at = at + n
        return self._pool[at : at + n]

    def _key(self, stream: str, unit: str, *, opens: bool, key: str | None) -> tuple[str, AESGCM]:
        """The key of a file's unit: the one its events name (``key``), or a new one when the unit
        opens or none of its events sealed anything yet. Never looked up by stream and unit."""
        known = self._units.get((stream, unit))
        if known is not None:
            return known
        if key is not None and not opens:
            live = self.created.get(key) or self.ring._find(key)
            if live is not None:
                return self._use(stream, unit, key, live[0])
            # The file names a key the store does not hold (a key store restored from an older
            # backup than the events): what the file already holds stays unreadable, but what
            # comes next is sealed, under a new key, and the flow goes on.
            log.error(
                "data key %s of %s of stream %s is not in the key store: sealing under a new key",
                key,
                unit,
                stream,
            )
        return self._create(self._new_key_id(), stream, unit)

    def _derived_key(self, stream: str, unit: str) -> tuple[str, AESGCM]:
        """The key of a unit found by its name (rejected originals', the inbox's: ``key_id``)."""
        known = self._units.get((stream, unit))
        if known is not None:
            return known
        kid = key_id(stream, unit)
        live = self.created.get(kid) or self.ring._find(kid)
        if live is not None:
            return self._use(stream, unit, kid, live[0])
        return self._create(kid, stream, unit)

    def _use(self, stream: str, unit: str, kid: str, key: bytes | None) -> tuple[str, AESGCM]:
        if key is None:
            msg = f"the data key of {unit} was destroyed: nothing more can be sealed under it"
            raise RuntimeError(msg)
        found = self._units[(stream, unit)] = (kid, self.ring._cipher(kid, key))
        return found

    def _create(self, kid: str, stream: str, unit: str) -> tuple[str, AESGCM]:
        random = self._random
        raw, nonce = random(32), random(12)
        wrapped = nonce + self.ring._master.encrypt(nonce, raw, f"{kid}|{stream}|{unit}".encode())
        self.created[kid] = (raw, (kid, stream, unit, self.ring.master_key_id, wrapped, self.now, None))
        found = self._units[(stream, unit)] = (kid, AESGCM(raw))  # used for this batch only
        return found

    def key_of(self, stream: str, unit: str) -> str | None:
        found = self._units.get((stream, unit))
        return None if found is None else found[0]

    def seal_derived(self, stream: str, unit: str, version: int, field: str, value: Any) -> str:
        """One value sealed at ``field`` of ``version`` of ``stream`` under the key named after
        ``unit`` (``key_id``): what belongs to no file, found by department and month."""
        return self._sealing(stream, version, lambda: self._derived_key(stream, unit))(field, value)

    def sealing(
        self, stream: str, unit: str, version: int, *, opens: bool, key: str | None = None
    ) -> Callable[[str, Any], str]:
        """What seals the values of the event at ``version`` of ``stream`` (``FieldSealer``), under
        the data key ``key`` the file names for ``unit``, or a new one."""
        return self._sealing(stream, version, lambda: self._key(stream, unit, opens=opens, key=key))

    def _sealing(
        self, stream: str, version: int, unit_key: Callable[[], tuple[str, AESGCM]]
    ) -> Callable[[str, Any], str]:
        """The associated data (``<stream>|<version>|<field>``) and the envelope
        (``enc1:<key id>:<version>:<field>:<base64>``) are built from parts made once per event;
        the unit's key is looked up on the first value, so an event with nothing to seal makes no
        key. Every value gets a nonce of its own."""
        ad_head = f"{stream}|{version}|"
        random = self._random
        head = ""
        encrypt: Callable[[bytes, bytes, bytes], bytes] | None = None

        def one(field: str, value: Any) -> str:
            nonlocal head, encrypt
            if encrypt is None:
                kid, key = unit_key()
                head, encrypt = f"{ENVELOPE_PREFIX}{kid}:{version}:", key.encrypt
            nonce = random(12)
            sealed = nonce + encrypt(nonce, orjson.dumps(value), (ad_head + field).encode())
            return f"{head}{field}:{_b2a(sealed, newline=False).translate(_URLSAFE).rstrip(b'=').decode()}"

        return one

    def seal_original(self, department: str, month: str, original: bytes) -> bytes:
        """A rejected original, sealed under its department's key of the month (``YYYY-MM``)."""
        unit = f"rejections:{department}:{month}"
        text = base64.b64encode(original).decode()
        return self.seal_derived(REJECTIONS_STREAM, unit, 0, "original", text).encode()

    def seal_inbox(self, department: str | None, month: str, position: int, item: InboxItem) -> InboxItem:
        """An inbox row as stored: its Kafka key and value sealed together under its department's
        inbox key of the month, bound to its position; department and submission id in clear
        (what ``decided`` is answered by)."""
        unit = f"inbox:{department if department is not None else 'unregistered'}:{month}"
        pair = [base64.b64encode(item.key).decode(), base64.b64encode(item.value).decode()]
        sealed = self.seal_derived(INBOX_STREAM, unit, position, INBOX_FIELD, pair).encode()
        return InboxItem(b"", sealed, item.department, item.submission_id)

    def rows(self) -> list[DataKeyRow]:
        return [row for _key, row in self.created.values()]

    def mark(self) -> int:
        """How many keys were created so far (``created`` keeps their order): ``discard_since``
        drops those a rejected command adds after."""
        return len(self.created)

    def discard_since(self, mark: int) -> None:
        """A command was rejected: the keys it created seal nothing that is saved, so they are not
        saved either. Kept, a new subject's ``file`` key would be stored with no event of its stream,
        and every process that had not made it (another worker, this one restarted) would create
        it again for the subject's next filing (its stream has no file: no key is looked up) and
        fail on the key's unique id, turning each of the subject's submissions into internal_error."""
        if len(self.created) > mark:
            dropped = set(list(self.created)[mark:])
            for kid in dropped:
                del self.created[kid]
            self._units = {unit: found for unit, found in self._units.items() if found[0] not in dropped}

    def committed(self) -> None:
        """The batch is saved: its keys may now be used by later batches.

        What the batch held for itself goes: the files it touched keep a reference to their
        sealer (``CreditFile.sealer``) while they sit in the aggregate cache, so a sealer that
        kept its ciphers (about 2.5 KB each) and unused random bytes would keep every batch's."""
        for kid, (key, row) in self.created.items():
            self.ring._remember(kid, key, row[1])
        self.created = {}
        self._units = {}
        self._pool, self._at = b"", 0
        self._ids = None


NAME_INDEX_CONTEXT = b"credit-ledger name index v1"
"""What the blind index's key is derived for (HMAC of the subject-key secret): a key of its own,
never the subject keys' (docs/privacy.md, "Searching sealed names")."""


def normalised_name(name: str) -> str:
    """A name as searched: NFKC (full-width letters and digits as half-width), no white space,
    case folded; so 张 三 and 张三, ＡＢＣ公司 and abc公司 are the same name."""
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold()


class NameIndex:
    """The blind index of persons' names: HMAC-SHA256 of the normalised name.

    The read store keeps the digest beside the subject key, never the name, so the public search
    finds a person by their full name without a clear name anywhere in the store. Its key is
    derived from the subject-key secret (``CREDIT_SUBJECT_SECRET``), which pseudonymises identity
    numbers the same way and is never rotated, so the index outlives master-key rotations. It
    leaks equality: two subjects with the same name have the same digest. A name whose key was
    destroyed (shredded) has no digest, so rebuilding the row drops the subject from the index.
    """

    def __init__(self, secret: bytes, ring: Callable[[], KeyRing | None]) -> None:
        self._key = hmac.new(secret, NAME_INDEX_CONTEXT, hashlib.sha256).digest()
        self._ring = ring

    def digest(self, name: str) -> str:
        """The digest a search for ``name`` looks up."""
        return hmac.new(self._key, normalised_name(name).encode(), hashlib.sha256).hexdigest()

    def of(self, name: Any) -> str | None:
        """The digest of a file's name as the read store holds it (clear, sealed or shredded)."""
        if not isinstance(name, str) or name == SHREDDED:
            return None
        if is_envelope(name):
            ring = self._ring()
            if ring is None:
                return None
            try:
                name = ring.open(name)
            except SealedValueAltered as exc:  # verify names it; the index leaves the subject out
                log.error("name not indexed: %s", exc)
                return None
            if not isinstance(name, str) or name == SHREDDED:
                return None
        return self.digest(name) if normalised_name(name) else None
