"""RFC 9162 Merkle tree over the ledger's global order: roots, proofs and their verification.

The signed checkpoints of the tree are in ``signed.py`` (re-exported here, where callers have
always found them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ledger.domain.integrity import canonical_bytes
from ledger.verification.signed import (
    CHECKPOINT_DOMAIN,
    CHECKPOINT_DOMAIN_V2,
    Checkpoint,
    CheckpointSigner,
    checkpoint_hash,
    checkpoint_signed_bytes,
    generate_seed,
    key_id,
    rfc3339_utc,
    verify_checkpoint,
)

__all__ = [
    "CHECKPOINT_DOMAIN",
    "CHECKPOINT_DOMAIN_V2",
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointSigner",
    "checkpoint_hash",
    "checkpoint_signed_bytes",
    "generate_seed",
    "key_id",
    "rfc3339_utc",
    "verify_checkpoint",
]

# RFC 9162 section 2.1.1: a leaf is hashed as SHA-256(0x00 || data) and an interior node as
# SHA-256(0x01 || left || right), so no leaf can be passed off as a node or the other way round.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
HASH_SIZE = 32

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 9162 2.1.1: the hash of the empty string)."""

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

    def subtree_hashes(self, height: int, first: int, count: int) -> bytes:
        """The roots of ``count`` consecutive perfect subtrees of ``height``, from the ``first``-th
        (each covers ``2**height`` leaves), concatenated: what a hash tile holds."""
        row = self._levels[height] if 0 <= height < len(self._levels) else bytearray()
        if first < 0 or count < 0 or (first + count) * HASH_SIZE > len(row):
            msg = f"the tree of {self._size} leaves has no {count} subtrees of height {height} from {first}"
            raise LookupError(msg)
        return bytes(row[first * HASH_SIZE : (first + count) * HASH_SIZE])

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
