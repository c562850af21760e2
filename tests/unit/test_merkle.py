"""RFC 9162 Merkle tree, inclusion and consistency proofs, signed checkpoints and the auditor.

One module of about 680 lines: the library's and the standalone auditor's implementations are
held to the same vectors and reference proofs, which are defined once here.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor import auditor  # the standalone file, outside the installed packages
from ledger.domain.integrity import canonical_bytes
from ledger.verification import merkle
from ledger.verification.merkle import (
    CHECKPOINT_DOMAIN,
    EMPTY_ROOT,
    Checkpoint,
    CheckpointSigner,
    MerkleLog,
    generate_seed,
    leaf_hash,
    ledger_leaf,
    node_hash,
    root_from_leaf_hashes,
    verify_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
AUDITOR = ROOT / "auditor" / "auditor.py"

# --- Known vectors: the Certificate Transparency test data (RFC 6962, unchanged by RFC 9162), as
# published in transparency-dev/merkle testonly/constants.go and testonly/reference_test.go.

CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
CT_ROOTS = [  # the roots for sizes 1..8
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# CT_NODES[level][i]: the hash of the perfect subtree over leaves [i * 2**level, (i + 1) * 2**level)
CT_NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
_N = CT_NODES
CT_INCLUSION = [  # (index, size, path)
    (0, 1, []),
    (0, 2, [_N[0][1]]),
    (1, 2, [_N[0][0]]),
    (2, 3, [_N[1][0]]),
    (1, 5, [_N[0][0], _N[1][1], _N[0][4]]),
    (0, 8, [_N[0][1], _N[1][1], _N[2][1]]),
    (5, 8, [_N[0][4], _N[1][3], _N[2][0]]),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, [_N[0][1], _N[1][1], _N[2][1]]),
    (2, 5, [_N[1][1], _N[0][4]]),
    (6, 8, [_N[1][2], _N[1][3], _N[2][0]]),
]

# RFC 8032 section 7.1, TESTs 1 to 3: (secret seed, public key, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]

InclusionVerifier = Callable[[bytes, int, int, Sequence[bytes], bytes], bool]
ConsistencyVerifier = Callable[[int, int, bytes, bytes, Sequence[bytes]], bool]
# Both implementations are held to the same standard: the library's and the standalone auditor's.
INCLUSION: list[InclusionVerifier] = [merkle.verify_inclusion, auditor.verify_inclusion]
CONSISTENCY: list[ConsistencyVerifier] = [merkle.verify_consistency, auditor.verify_consistency]
IDS = ["ledger.verification.merkle", "auditor"]


# --- Reference proofs straight from the RFC 9162 definitions (2.1.3.1 PATH, 2.1.4.1 SUBPROOF) ---


def _k(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), root_from_leaf_hashes(d[k:])]
    return [*ref_path(m - k, d[k:]), root_from_leaf_hashes(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [root_from_leaf_hashes(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), root_from_leaf_hashes(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), root_from_leaf_hashes(d[:k])]


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit), *h[1:]])


def synthetic_leaves(n: int) -> list[bytes]:
    return [
        ledger_leaf(i, f"stream-{i % 97}", i // 97 + 1, hashlib.sha256(b"%d" % i).hexdigest())
        for i in range(n)
    ]


@cache
def log_of(n: int) -> tuple[MerkleLog, tuple[bytes, ...]]:
    """A log of ``n`` synthetic ledger leaves and its leaf hashes (shared: tests only read it)."""
    log = MerkleLog()
    for data in synthetic_leaves(n):
        log.append(data)
    return log, tuple(leaf_hash(data) for data in synthetic_leaves(n))


# --- Hashing and roots ----------------------------------------------------------------------


def test_hashing_is_rfc_9162_domain_separated_sha256() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert auditor.leaf_hash(b"abc") == leaf_hash(b"abc")


def test_roots_match_the_certificate_transparency_vectors() -> None:
    log = MerkleLog()
    assert log.root() == EMPTY_ROOT
    for size, data in enumerate(CT_LEAVES, start=1):
        assert log.append(data) == size - 1
        assert log.root().hex() == CT_ROOTS[size - 1]
    assert [log.root(size).hex() for size in range(1, 9)] == CT_ROOTS  # and every past size
    assert log.root(0) == EMPTY_ROOT
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert [root_from_leaf_hashes(hashes[:n]).hex() for n in range(1, 9)] == CT_ROOTS


def test_cached_subtree_hashes_match_the_vectors() -> None:
    log = MerkleLog()
    for data in CT_LEAVES:
        log.append(data)
    for level, row in enumerate(CT_NODES):
        width = 1 << level
        assert [log._perfect(i * width, width).hex() for i in range(len(row))] == row
    assert [log.leaf_hash_at(i).hex() for i in range(8)] == CT_NODES[0]


def test_proofs_match_the_certificate_transparency_vectors() -> None:
    log = MerkleLog()
    for data in CT_LEAVES:
        log.append(data)
    for index, size, path in CT_INCLUSION:
        assert [p.hex() for p in log.inclusion_proof(index, size)] == path
    for old, new, proof in CT_CONSISTENCY:
        assert [p.hex() for p in log.consistency_proof(old, new)] == proof
        assert [p.hex() for p in ref_subproof(old, [leaf_hash(d) for d in CT_LEAVES[:new]], True)] == proof


def test_incremental_roots_equal_the_recursive_definition_at_every_size() -> None:
    log, hashes = log_of(300)
    fresh = MerkleLog()
    for n, h in enumerate(hashes, start=1):
        assert fresh.append_leaf_hash(h) == n - 1  # gap-free, 0-based
        assert fresh.root() == root_from_leaf_hashes(hashes[:n]) == log.root(n)
    assert fresh.size == len(fresh) == 300


def test_bad_arguments_are_refused() -> None:
    log, _ = log_of(10)
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleLog().append_leaf_hash(b"short")
    with pytest.raises(ValueError, match="size 11"):
        log.root(11)
    with pytest.raises(IndexError):
        log.inclusion_proof(10, 10)
    with pytest.raises(IndexError):
        log.inclusion_proof(0, 0)
    with pytest.raises(ValueError, match="old size"):
        log.consistency_proof(6, 5)
    assert log.consistency_proof(0, 10) == log.consistency_proof(10, 10) == []


# --- Inclusion proofs -----------------------------------------------------------------------


@pytest.mark.parametrize("verify", INCLUSION, ids=IDS)
def test_every_inclusion_proof_up_to_64_leaves_verifies_and_nothing_else_does(
    verify: InclusionVerifier,
) -> None:
    log, hashes = log_of(65)
    other = leaf_hash(b"not in the log")
    for size in range(1, 65):
        root = log.root(size)
        for index in range(size):
            path = log.inclusion_proof(index, size)
            assert path == ref_path(index, hashes[:size])
            leaf = hashes[index]
            assert verify(leaf, index, size, path, root)
            assert not verify(other, index, size, path, root)
            assert not any(verify(leaf, j, size, path, root) for j in range(size) if j != index)
            assert not verify(leaf, index + size, size, path, root)
            # The size only shapes the walk: it is the signed checkpoint that ties a size to its
            # root. So the same path can fit another size, but never that size's own root.
            assert not verify(leaf, index, size + 1, path, log.root(size + 1))
            assert not verify(leaf, index, size, path, flip(root))
            assert not verify(leaf, index, size, [*path, root], root)
            for i in range(len(path)):
                assert not verify(leaf, index, size, [*path[:i], flip(path[i], 7), *path[i + 1 :]], root)
                assert not verify(leaf, index, size, path[:i] + path[i + 1 :], root)
            if index < size - 1:
                assert not verify(leaf, index, size - 1, path, log.root(size - 1))


@pytest.mark.parametrize("verify", INCLUSION, ids=IDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_inclusion_proofs_in_larger_trees(verify: InclusionVerifier, data: st.DataObject) -> None:
    log, hashes = log_of(2000)
    size = data.draw(st.integers(1, 2000), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = log.root(size)
    assert root == root_from_leaf_hashes(hashes[:size])
    path = log.inclusion_proof(index, size)
    assert path == ref_path(index, hashes[:size])
    assert len(path) <= (size - 1).bit_length()
    assert verify(hashes[index], index, size, path, root)
    wrong = (
        data.draw(st.integers(0, size - 1).filter(lambda j: j != index), label="wrong index")
        if size > 1
        else None
    )
    if wrong is not None:
        assert not verify(hashes[index], wrong, size, path, root)
        assert not verify(hashes[wrong], index, size, path, root)
    if path:
        i = data.draw(st.integers(0, len(path) - 1), label="tampered element")
        bit = data.draw(st.integers(0, 7), label="bit")
        assert not verify(hashes[index], index, size, [*path[:i], flip(path[i], bit), *path[i + 1 :]], root)


# --- Consistency proofs ---------------------------------------------------------------------


@pytest.mark.parametrize("verify", CONSISTENCY, ids=IDS)
def test_every_consistency_proof_up_to_64_leaves_verifies_and_tampering_fails(
    verify: ConsistencyVerifier,
) -> None:
    log, hashes = log_of(65)
    for new in range(1, 65):
        new_root = log.root(new)
        for old in range(1, new + 1):
            old_root = log.root(old)
            proof = log.consistency_proof(old, new)
            assert proof == ref_subproof(old, hashes[:new], True)
            assert verify(old, new, old_root, new_root, proof)
            assert not verify(old, new, flip(old_root), new_root, proof)
            assert not verify(old, new, old_root, flip(new_root), proof)
            if old > 1:  # the root of a different (shorter) old tree
                assert not verify(old, new, log.root(old - 1), new_root, proof)
            if old == new:
                assert not verify(old, new, old_root, new_root, [old_root])
                continue
            # As for inclusion, the sizes are bound to roots by the checkpoints, not by the proof.
            assert not verify(old, new + 1, old_root, log.root(new + 1), proof)
            assert not verify(old + 1, new, log.root(old + 1), new_root, proof)
            assert not verify(old, new, old_root, new_root, [*proof, new_root])
            for i in range(len(proof)):
                assert not verify(
                    old, new, old_root, new_root, [*proof[:i], flip(proof[i], 3), *proof[i + 1 :]]
                )
                assert not verify(old, new, old_root, new_root, proof[:i] + proof[i + 1 :])


@pytest.mark.parametrize("verify", CONSISTENCY, ids=IDS)
def test_consistency_with_and_of_the_empty_tree(verify: ConsistencyVerifier) -> None:
    log, _ = log_of(5)
    assert verify(0, 5, EMPTY_ROOT, log.root(5), [])
    assert not verify(0, 5, log.root(1), log.root(5), [])
    assert not verify(0, 5, EMPTY_ROOT, log.root(5), [log.root(5)])
    assert verify(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify(5, 4, log.root(5), log.root(4), [])
    assert not verify(3, 5, log.root(3), log.root(5), [])


@pytest.mark.parametrize("verify", CONSISTENCY, ids=IDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_consistency_proofs_in_larger_trees(verify: ConsistencyVerifier, data: st.DataObject) -> None:
    log, hashes = log_of(2000)
    new = data.draw(st.integers(1, 2000), label="new size")
    old = data.draw(st.integers(1, new), label="old size")
    proof = log.consistency_proof(old, new)
    assert proof == ref_subproof(old, hashes[:new], True)
    assert len(proof) <= 2 * new.bit_length()
    assert verify(old, new, log.root(old), log.root(new), proof)
    assert not verify(old, new, flip(log.root(old)), log.root(new), proof)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="tampered element")
        assert not verify(
            old, new, log.root(old), log.root(new), [*proof[:i], flip(proof[i]), *proof[i + 1 :]]
        )


@pytest.mark.parametrize(
    ("inclusion", "consistency"), list(zip(INCLUSION, CONSISTENCY, strict=True)), ids=IDS
)
def test_proof_elements_must_be_32_bytes(
    inclusion: InclusionVerifier, consistency: ConsistencyVerifier
) -> None:
    log, hashes = log_of(8)
    path = log.inclusion_proof(2, 8)
    assert inclusion(hashes[2], 2, 8, path, log.root())
    assert not inclusion(hashes[2], 2, 8, [*path[:-1], path[-1] + b"\x00"], log.root())
    proof = log.consistency_proof(3, 8)
    assert consistency(3, 8, log.root(3), log.root(), proof)
    assert not consistency(3, 8, log.root(3), log.root(), [proof[0][:31], *proof[1:]])


# --- Ledger leaves and checkpoints ----------------------------------------------------------


def test_a_ledger_leaf_is_the_canonical_bytes_the_auditor_recomputes() -> None:
    leaf = {"position": 7, "stream": "0b7e-stream", "version": 3, "event_hash": "ab" * 32}
    data = ledger_leaf(7, "0b7e-stream", 3, "ab" * 32)
    assert data == canonical_bytes(leaf) == orjson.dumps(leaf, option=orjson.OPT_SORT_KEYS)
    assert data == b'{"event_hash":"' + b"ab" * 32 + b'","position":7,"stream":"0b7e-stream","version":3}'


SEED = bytes(range(32))
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def test_checkpoints_sign_verify_and_round_trip() -> None:
    signer = CheckpointSigner(SEED)
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    assert signer.public_key_hex == public.hex()
    assert signer.key_id == hashlib.sha256(public).hexdigest()[:16]
    log, _ = log_of(100)
    cp = signer.sign(100, log.root(), NOW)
    assert (cp.size, cp.root, cp.time) == (100, log.root().hex(), "2026-11-01T09:30:00Z")
    assert cp.signed_bytes() == CHECKPOINT_DOMAIN + canonical_bytes(
        {"key_id": signer.key_id, "root": cp.root, "size": 100, "time": cp.time}
    )
    assert verify_checkpoint(cp, signer.public_key_hex)
    assert Checkpoint.from_dict(orjson.loads(orjson.dumps(cp.to_dict()))) == cp
    assert signer.sign(5, log.root(5).hex(), "2026-11-01T10:00:00.5Z").time == "2026-11-01T10:00:00.5Z"
    naive = signer.sign(1, log.root(1), datetime(2026, 11, 1, 9, 30))  # naive is taken as UTC
    assert naive.time == "2026-11-01T09:30:00Z"


def test_a_tampered_or_foreign_checkpoint_does_not_verify() -> None:
    signer, stranger = CheckpointSigner(SEED), CheckpointSigner(generate_seed())
    log, _ = log_of(100)
    cp = signer.sign(100, log.root(), NOW)
    fields = cp.to_dict()
    changes = {
        "size": 99,
        "root": log.root(99).hex(),
        "time": "2026-11-01T09:30:01Z",
        "key_id": stranger.key_id,
        "signature": flip(bytes.fromhex(cp.signature)).hex(),
    }
    for name, value in changes.items():
        assert not verify_checkpoint(Checkpoint.from_dict({**fields, name: value}), signer.public_key_hex)
    assert not verify_checkpoint(cp, stranger.public_key_hex)
    assert not verify_checkpoint(cp, "zz" * 32)
    forged = stranger.sign(100, log.root(), NOW)
    assert not verify_checkpoint(
        Checkpoint.from_dict({**forged.to_dict(), "key_id": signer.key_id}), signer.public_key_hex
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("size", -1), ("size", True), ("size", "5"), ("root", "AB" * 32), ("root", "ab"),
     ("time", "2026-11-01T09:30:00+08:00"), ("time", "2026-11-01 09:30:00Z"), ("key_id", "x" * 16),
     ("signature", "00" * 63)],
)  # fmt: skip
def test_malformed_checkpoints_are_refused(name: str, value: object) -> None:
    good = CheckpointSigner(SEED).sign(3, EMPTY_ROOT, NOW).to_dict()
    with pytest.raises(ValueError, match=name):
        Checkpoint.from_dict({**good, name: value})
    with pytest.raises(ValueError, match="unknown"):
        Checkpoint.from_dict({**good, "note": "extra"})
    with pytest.raises(ValueError, match="missing"):
        Checkpoint.from_dict({k: v for k, v in good.items() if k != name})


def test_the_signer_wants_a_32_byte_seed() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CheckpointSigner(b"short")
    assert len(generate_seed()) == 32
    assert generate_seed() != generate_seed()


# --- The auditor's pure-Python Ed25519 ------------------------------------------------------


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032, ids=["TEST1", "TEST2", "TEST3"])
def test_rfc_8032_vectors_verify_in_pure_python(seed: str, public: str, message: str, signature: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))  # the vectors are self-consistent
    assert key.public_key().public_bytes_raw().hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert auditor.ed25519_verify(pk, msg, sig)
    assert not auditor.ed25519_verify(pk, msg + b"\x00", sig)
    assert not auditor.ed25519_verify(pk, msg, sig[:-1])
    assert not auditor.ed25519_verify(pk[:31], msg, sig)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=200),
    bit=st.integers(0, 511),
)
def test_cryptography_signatures_verify_in_pure_python_and_tampered_ones_do_not(
    seed: bytes, message: bytes, bit: int
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes_raw()
    signature = key.sign(message)
    assert auditor.ed25519_verify(public, message, signature)
    tampered = bytearray(signature)
    tampered[bit // 8] ^= 1 << (bit % 8)
    assert not auditor.ed25519_verify(public, message, bytes(tampered))
    assert not auditor.ed25519_verify(public, message + b"!", signature)
    other = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
    assert not auditor.ed25519_verify(other.public_key().public_bytes_raw(), message, signature)


def test_the_pure_verifier_refuses_malleable_and_undecodable_signatures() -> None:
    _, public, _, signature = RFC8032[0]
    pk, sig = bytes.fromhex(public), bytes.fromhex(signature)
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + auditor._L).to_bytes(32, "little")  # same point maths, S >= L
    assert not auditor.ed25519_verify(pk, b"", malleated)
    not_a_point = (2**255 - 19 + 1).to_bytes(32, "little")  # y >= p is no canonical encoding
    assert not auditor.ed25519_verify(not_a_point, b"", sig)
    assert not auditor.ed25519_verify(pk, b"", not_a_point + sig[32:])
    assert auditor._decode((auditor._BY).to_bytes(32, "little")) == auditor._B  # the base point


# --- The standalone auditor, run as an auditor would ---------------------------------------


def test_the_auditor_imports_only_the_standard_library() -> None:
    tree = ast.parse(AUDITOR.read_text("utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the auditor"
            roots.add((node.module or "").split(".")[0])
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == set()


def _write(path: Path, value: Any) -> str:
    path.write_bytes(orjson.dumps(value))
    return str(path)


@pytest.fixture
def audit(tmp_path: Path) -> Callable[..., tuple[int, str]]:
    """Runs a copy of the auditor, alone in an empty directory, as a separate process."""
    copy = tmp_path / "auditor.py"
    shutil.copy(AUDITOR, copy)

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run(  # noqa: PLW1510 - the exit code is what is being tested
            [sys.executable, "-I", str(copy), *args], capture_output=True, text=True, cwd=tmp_path
        )
        return done.returncode, done.stdout + done.stderr

    return run


def test_the_auditor_cli_accepts_valid_material_and_says_why_it_rejects(
    tmp_path: Path, audit: Callable[..., tuple[int, str]]
) -> None:
    log, _ = log_of(20)
    signer = CheckpointSigner(SEED)
    key = signer.public_key_hex
    old, new = signer.sign(13, log.root(13), NOW), signer.sign(20, log.root(20), NOW)
    old_file, new_file = (
        _write(tmp_path / "old.json", old.to_dict()),
        _write(tmp_path / "new.json", new.to_dict()),
    )

    code, out = audit("checkpoint", new_file, "--public-key", key)
    assert (code, out.split(":")[0]) == (0, "VALID")
    assert "size 20" in out

    code, out = audit(
        "checkpoint", new_file, "--public-key", CheckpointSigner(generate_seed()).public_key_hex
    )
    assert code == 1
    assert out.startswith("INVALID")
    assert "not by the given public key" in out
    forged = _write(tmp_path / "forged.json", {**new.to_dict(), "size": 21})
    code, out = audit("checkpoint", forged, "--public-key", key)
    assert code == 1
    assert "bad signature" in out

    index = 11
    event_hash = hashlib.sha256(b"%d" % index).hexdigest()
    leaf = {"position": index, "stream": f"stream-{index}", "version": 1, "event_hash": event_hash}
    assert ledger_leaf(index, f"stream-{index}", 1, event_hash) == synthetic_leaves(20)[index]
    proof = {
        "leaf": leaf,
        "index": index,
        "size": 20,
        "path": [p.hex() for p in log.inclusion_proof(index, 20)],
    }
    code, out = audit(
        "inclusion",
        _write(tmp_path / "inc.json", proof),
        "--checkpoint",
        new_file,
        "--public-key",
        key,
    )
    assert code == 0
    assert out.startswith("VALID")
    assert "leaf 11" in out

    altered = {**proof, "leaf": {**leaf, "event_hash": "0" * 64}}
    code, out = audit(
        "inclusion",
        _write(tmp_path / "bad.json", altered),
        "--checkpoint",
        new_file,
        "--public-key",
        key,
    )
    assert code == 1
    assert "does not lead to the checkpoint's root" in out
    code, out = audit(
        "inclusion",
        _write(tmp_path / "inc.json", proof),
        "--checkpoint",
        old_file,
        "--public-key",
        key,
    )
    assert code == 1
    assert "the checkpoint signs 13" in out

    consistency = {
        "old_size": 13,
        "new_size": 20,
        "path": [p.hex() for p in log.consistency_proof(13, 20)],
    }
    cons_file = _write(tmp_path / "cons.json", consistency)
    code, out = audit("consistency", old_file, new_file, cons_file, "--public-key", key)
    assert code == 0
    assert "extends" in out
    code, out = audit("consistency", new_file, old_file, cons_file, "--public-key", key)
    assert code == 1
    assert "larger" in out
    rewritten = signer.sign(20, root_from_leaf_hashes([leaf_hash(b"x")] * 20), NOW)
    rewritten_file = _write(tmp_path / "rewritten.json", rewritten.to_dict())
    code, out = audit("consistency", old_file, rewritten_file, cons_file, "--public-key", key)
    assert code == 1
    assert "does not extend" in out


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: {**p, "path": p["path"][:-1]},
        lambda p: {**p, "path": [*p["path"][:-1], "00" * 32]},
        lambda p: {**p, "path": [p["path"][0].upper(), *p["path"][1:]]},
        lambda p: {**p, "index": p["index"] + 1},
        lambda p: {**p, "index": True},
        lambda p: {**p, "leaf": {**p["leaf"], "version": 2}},
        lambda p: {**p, "leaf": {**p["leaf"], "extra": 1}},
        lambda p: {k: v for k, v in p.items() if k != "path"},
        lambda p: [p],
    ],
)
def test_the_auditor_rejects_any_altered_inclusion_proof(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Callable[[Any], Any]
) -> None:
    log, _ = log_of(20)
    signer = CheckpointSigner(SEED)
    cp = _write(tmp_path / "cp.json", signer.sign(20, log.root(), NOW).to_dict())
    leaf = {
        "position": 4,
        "stream": "stream-4",
        "version": 1,
        "event_hash": hashlib.sha256(b"4").hexdigest(),
    }
    proof = {
        "leaf": leaf,
        "index": 4,
        "size": 20,
        "path": [p.hex() for p in log.inclusion_proof(4, 20)],
    }
    args = ["inclusion", "", "--checkpoint", cp, "--public-key", signer.public_key_hex]
    args[1] = _write(tmp_path / "good.json", proof)
    assert auditor.main(args) == 0
    args[1] = _write(tmp_path / "bad.json", mutate(proof))
    assert auditor.main(args) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("INVALID: ")


def test_the_auditor_reports_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = CheckpointSigner(SEED).public_key_hex
    assert auditor.main(["checkpoint", str(tmp_path / "absent.json"), "--public-key", key]) == 1
    (tmp_path / "junk.json").write_text("{not json")
    assert auditor.main(["checkpoint", str(tmp_path / "junk.json"), "--public-key", key]) == 1
    assert auditor.main(["checkpoint", str(tmp_path / "junk.json"), "--public-key", "abc"]) == 1
    assert all(line.startswith("INVALID: ") for line in capsys.readouterr().out.splitlines())
