"""RFC 9162 Merkle tree over the ledger's global order: roots, proofs, verification, checkpoints."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.domain.integrity import canonical_bytes

# RFC 9162 section 2.1.1: a leaf is hashed as SHA-256(0x00 || data) and an interior node as
# SHA-256(0x01 || left || right), so no leaf can be passed off as a node or the other way round.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
HASH_SIZE = 32

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 9162 2.1.1: the hash of the empty string)."""

CHECKPOINT_DOMAIN = b"credit-ledger checkpoint v1\n"
"""Prefixed to a checkpoint's canonical bytes when signing: the signature can mean nothing else."""

_sha256 = hashlib.sha256
_NODE_HASHER = hashlib.sha256(_NODE_PREFIX)


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf: SHA-256(0x00 || data)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def ledger_leaf(position: int, stream_id: str, version: int, event_hash: str) -> bytes:
    """The bytes of the leaf that commits to one event at ``position`` in the global order."""
    return canonical_bytes(
        {"position": position, "stream": stream_id, "version": version, "event_hash": event_hash}
    )


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n >= 2``): where RFC 9162 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of ``hashes`` straight from RFC 9162's recursive definition (slow)."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


class MerkleLog:
    """An append-only Merkle tree that answers for its current size and every past size.

    ``_levels[h]`` holds, 32 bytes each, the hashes of the completed perfect subtrees of height
    ``h`` in order: level 0 is the leaf hashes, and entry ``i`` of level ``h`` covers leaves
    ``[i * 2**h, (i + 1) * 2**h)``. Each is computed once, when its last leaf arrives (one node
    hash per leaf on average). Every tree of size ``n <= size`` splits into at most
    ``log2(n) + 1`` such subtrees, so roots and proofs cost O(log n) lookups and node hashes.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_data: bytes) -> int:
        """Add a leaf by its bytes; returns its 0-based index (gap-free: always the old size)."""
        return self.append_leaf_hash(_sha256(_LEAF_PREFIX + leaf_data).digest())

    def append_leaf_hash(self, h: bytes) -> int:
        """Add a leaf by its already computed leaf hash; returns its 0-based index."""
        if len(h) != HASH_SIZE:
            msg = f"a leaf hash is {HASH_SIZE} bytes, not {len(h)}"
            raise ValueError(msg)
        index = self._size
        levels = self._levels
        node, i, level = bytes(h), index, 0
        while True:
            row = levels[level]
            row += node
            if not i & 1:
                break
            # ``node`` completed a right child: its left sibling is the entry just before it.
            node = _sha256(_NODE_PREFIX + row[-64:-32] + node).digest()
            i >>= 1
            level += 1
            if level == len(levels):
                levels.append(bytearray())
        self._size = index + 1
        return index

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash stored at ``index``."""
        self._check_index(index, self._size)
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def root(self, size: int | None = None) -> bytes:
        """The Merkle Tree Hash of the first ``size`` leaves (default: all of them)."""
        size = self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[size]): sibling hashes from the leaf up to the root."""
        size = self._check_size(size)
        self._check_index(index, size)
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:  # walk down from the root; PATH lists the siblings bottom-up
            k = _split(end - start)
            if index < start + k:
                path.append(self._range_hash(start + k, end))
                end = start + k
            else:
                path.append(self._perfect(start, k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old_size, D[new_size]); empty when the sizes are equal or 0."""
        new_size = self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            msg = f"old size {old_size} is not between 0 and the new size {new_size}"
            raise ValueError(msg)
        proof: list[bytes] = []
        if old_size in (0, new_size):
            return proof
        # SUBPROOF(m, D[start:end], b), unrolled: m is old_size relative to ``start``, and
        # ``whole`` is b (true while D[start:end] still begins with the whole old tree).
        m, start, end, whole = old_size, 0, new_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._range_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._perfect(start, k))
                start += k
                m -= k
                whole = False
        if not whole:
            proof.append(self._range_hash(start, end))
        proof.reverse()
        return proof

    def _perfect(self, start: int, width: int) -> bytes:
        """The cached hash of the aligned perfect subtree ``[start, start + width)``."""
        level = width.bit_length() - 1
        offset = (start >> level) * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion produces (``start`` suitably aligned).

        The range splits, left to right, into perfect subtrees of strictly decreasing width, and
        the MTH is their right fold: node(p1, node(p2, ... pk)).
        """
        parts: list[bytes] = []
        while start < end:
            width = 1 << ((end - start).bit_length() - 1)
            parts.append(self._perfect(start, width))
            start += width
        acc = parts.pop()
        while parts:
            acc = _sha256(_NODE_PREFIX + parts.pop() + acc).digest()
        return acc

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            msg = f"size {size} is not between 0 and the log's size {self._size}"
            raise ValueError(msg)
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            msg = f"leaf index {index} is not in a tree of size {size}"
            raise IndexError(msg)


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show the leaf at ``index`` is in the tree with ``root``?"""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    node = _NODE_HASHER.copy  # SHA-256 already fed 0x01: copying it beats re-hashing the prefix
    for p in proof:
        if sn == 0:
            return False
        h = node()
        if fn & 1 or fn == sn:  # p is a left sibling
            h.update(p)
            h.update(r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:  # p is a right sibling
            h.update(r)
            h.update(p)
        r = h.digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: does ``proof`` show the tree ``old_root`` is a prefix of ``new_root``?"""
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:  # the empty tree is a prefix of every tree
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE_PREFIX + c + fr).digest()
            sr = _sha256(_NODE_PREFIX + c + sr).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(_NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# --- Checkpoints -----------------------------------------------------------------------------

_FIELD_PATTERNS = {
    "root": re.compile(r"[0-9a-f]{64}"),
    "time": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z"),
    "key_id": re.compile(r"[0-9a-f]{16}"),
    "signature": re.compile(r"[0-9a-f]{128}"),
}
_FIELD_FORMS = {
    "root": "64 lowercase hex digits",
    "time": "an RFC 3339 UTC timestamp ending in Z",
    "key_id": "16 lowercase hex digits",
    "signature": "128 lowercase hex digits",
}
_CHECKPOINT_FIELDS = ("size", "root", "time", "key_id", "signature")


def rfc3339_utc(moment: datetime) -> str:
    """``moment`` as an RFC 3339 UTC timestamp ending in ``Z`` (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key_id(public_key: bytes) -> str:
    """The short name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def checkpoint_signed_bytes(size: int, root: str, time: str, key_id: str) -> bytes:
    """What a checkpoint signature covers: the domain string, then the canonical fields."""
    body = {"size": size, "root": root, "time": time, "key_id": key_id}
    return CHECKPOINT_DOMAIN + canonical_bytes(body)


@dataclass(frozen=True)
class Checkpoint:
    """The operator's signed statement that the log had ``size`` leaves and ``root`` at ``time``.

    ``root`` and ``signature`` are lowercase hex; ``time`` is RFC 3339 UTC. The fields are checked
    on construction, so a Checkpoint in hand is always well formed (though not necessarily
    validly signed: see :func:`verify_checkpoint`).
    """

    size: int
    root: str
    time: str
    key_id: str
    signature: str

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 0:
            msg = f"checkpoint size must be a non-negative integer, not {self.size!r}"
            raise ValueError(msg)
        for name, pattern in _FIELD_PATTERNS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                msg = f"checkpoint {name} must be {_FIELD_FORMS[name]}, not {value!r}"
                raise ValueError(msg)

    def signed_bytes(self) -> bytes:
        """Exactly what the signature covers: the domain string, then the canonical fields."""
        return checkpoint_signed_bytes(self.size, self.root, self.time, self.key_id)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as JSON-ready data (the form the auditor reads)."""
        return {name: getattr(self, name) for name in _CHECKPOINT_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Read a checkpoint back, refusing missing, unknown or malformed fields."""
        missing = [name for name in _CHECKPOINT_FIELDS if name not in data]
        unknown = sorted(set(data) - set(_CHECKPOINT_FIELDS))
        if missing or unknown:
            msg = f"checkpoint fields: missing {missing}, unknown {unknown}"
            raise ValueError(msg)
        return cls(**{name: data[name] for name in _CHECKPOINT_FIELDS})


def generate_seed() -> bytes:
    """A fresh random 32-byte Ed25519 private seed for the operator's checkpoint key."""
    return secrets.token_bytes(32)


class CheckpointSigner:
    """Signs checkpoints with the operator's Ed25519 key (RFC 8032), given its 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            msg = f"an Ed25519 seed is 32 bytes, not {len(seed)}"
            raise ValueError(msg)
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._key.public_key().public_bytes_raw()
        self.key_id: str = key_id(self.public_key)

    @property
    def public_key_hex(self) -> str:
        """The raw 32-byte public key in hex: all an auditor needs from the operator."""
        return self.public_key.hex()

    def sign(self, size: int, root: bytes | str, time: datetime | str) -> Checkpoint:
        """A signed checkpoint for ``size`` leaves with ``root`` (bytes or hex) at ``time``."""
        root_hex = root.hex() if isinstance(root, bytes) else root
        time_str = rfc3339_utc(time) if isinstance(time, datetime) else time
        message = checkpoint_signed_bytes(size, root_hex, time_str, self.key_id)
        signature = self._key.sign(message).hex()
        return Checkpoint(size, root_hex, time_str, self.key_id, signature)


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
