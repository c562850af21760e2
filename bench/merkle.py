"""Benchmark: build an RFC 9162 Merkle log of N ledger leaves, then time roots, proofs and checks.

Run: python bench/merkle.py [--leaves 1000000] [--proofs 10000] [--seed 2026]
Targets (auditors issue): >= 100,000 events/s to build and to verify; a proof in < 1 ms.

Leaves are ``ledger_leaf(position, stream, version, event_hash)`` for synthetic events spread
over 10,000 streams; making the event hashes is not timed (the ledger already has them).
Proofs are verified with auditor/auditor.py, the standalone pure-Python verifier an auditor runs.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import hashlib
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable

import orjson

from auditor import auditor
from ledger.verification.merkle import CheckpointSigner, MerkleLog, leaf_hash, ledger_leaf

Event = tuple[int, str, int, str]  # position, stream, version, event_hash


def _times_us(fn: Callable[[int], object], args: Iterable[int]) -> list[float]:
    """Wall time of ``fn(a)`` for each ``a``, in microseconds."""
    out = []
    clock = time.perf_counter
    for a in args:
        t = clock()
        fn(a)
        out.append((clock() - t) * 1e6)
    return out


def _summary(samples: list[float]) -> str:
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98]
    return f"avg {statistics.fmean(samples):.1f} us, p99 {p99:.1f} us, max {max(samples):.1f} us"


def _events(n: int, rng: random.Random) -> list[Event]:
    streams = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(10_000)]
    versions = [0] * len(streams)
    events = []
    for position in range(n):
        s = rng.randrange(len(streams))
        versions[s] += 1
        events.append((position, streams[s], versions[s], hashlib.sha256(b"%d" % position).hexdigest()))
    return events


def _build(events: list[Event]) -> MerkleLog:
    """Canonical leaf bytes, leaf hash, and the node hashes each append completes."""
    n, log = len(events), MerkleLog()
    append = log.append
    started = time.perf_counter()
    for position, stream, version, digest in events:
        append(ledger_leaf(position, stream, version, digest))
    elapsed = time.perf_counter() - started
    print(f"build (ledger_leaf + append): {n:,} in {elapsed:.2f} s: {n / elapsed:,.0f} leaves/s")
    hashes = [log.leaf_hash_at(i) for i in range(n)]
    rebuilt, started = MerkleLog(), time.perf_counter()
    for h in hashes:
        rebuilt.append_leaf_hash(h)
    elapsed = time.perf_counter() - started
    print(f"rebuild from leaf hashes (append_leaf_hash): {n / elapsed:,.0f} leaves/s")
    return log


def _roots(log: MerkleLog, rng: random.Random, count: int) -> bytes:
    n = log.size
    started = time.perf_counter()
    root = log.root()
    print(f"root of all {n:,} leaves: {(time.perf_counter() - started) * 1e6:.1f} us")
    sizes = [rng.randint(1, n) for _ in range(count)]
    print(f"root at {count:,} random past sizes: {_summary(_times_us(log.root, sizes))}")
    return root


def _inclusion(log: MerkleLog, events: list[Event], rng: random.Random, count: int) -> None:
    n, root = log.size, log.root()
    indexes = [rng.randrange(n) for _ in range(count)]
    samples = _times_us(lambda i: log.inclusion_proof(i, n), indexes)
    print(f"inclusion proof, {count:,} random leaves of {n:,}: {_summary(samples)}")
    proofs = [log.inclusion_proof(i, n) for i in indexes]
    print(f"  proof length: {statistics.fmean(len(p) for p in proofs):.1f} hashes")
    hashes = [log.leaf_hash_at(i) for i in indexes]
    verify = auditor.verify_inclusion
    started = time.perf_counter()
    ok = all(verify(h, i, n, p, root) for h, i, p in zip(hashes, indexes, proofs, strict=True))
    elapsed = time.perf_counter() - started
    print(
        f"verify inclusion (auditor, pure Python): {count / elapsed:,.0f} proofs/s "
        f"({elapsed / count * 1e6:.1f} us each), all valid: {ok}"
    )
    started = time.perf_counter()
    for i, p in zip(indexes, proofs, strict=True):
        position, stream, version, digest = events[i]
        leaf = {"position": position, "stream": stream, "version": version, "event_hash": digest}
        data = orjson.dumps(leaf, option=orjson.OPT_SORT_KEYS)
        ok &= verify(auditor.leaf_hash(data), i, n, p, root)
    elapsed = time.perf_counter() - started
    print(f"  from the leaf's fields (encode, hash, verify): {count / elapsed:,.0f}/s, valid: {ok}")


def _consistency(log: MerkleLog, rng: random.Random, count: int) -> None:
    n = log.size
    pairs = [sorted((rng.randint(1, n), rng.randint(1, n))) for _ in range(count)]
    samples = _times_us(lambda k: log.consistency_proof(pairs[k][0], pairs[k][1]), range(count))
    print(f"consistency proof, {count:,} random size pairs: {_summary(samples)}")
    checks = [(m, m2, log.root(m), log.root(m2), log.consistency_proof(m, m2)) for m, m2 in pairs]
    started = time.perf_counter()
    ok = all(auditor.verify_consistency(*c) for c in checks)
    elapsed = time.perf_counter() - started
    print(f"verify consistency (auditor, pure Python): {count / elapsed:,.0f}/s, all valid: {ok}")


def _full_audit(events: list[Event], root: bytes) -> None:
    """Recompute the root from every event's fields: what a replica or full auditor does."""
    started = time.perf_counter()
    full = MerkleLog()
    for position, stream, version, digest in events:
        full.append_leaf_hash(leaf_hash(ledger_leaf(position, stream, version, digest)))
    elapsed = time.perf_counter() - started
    rate, same = len(events) / elapsed, full.root() == root
    print(f"full recompute of the root from all events: {rate:,.0f} events/s, root matches: {same}")


def _checkpoint(root: bytes, size: int) -> None:
    signer = CheckpointSigner(hashlib.sha256(b"bench").digest())
    samples = _times_us(lambda _: signer.sign(size, root, "2026-11-01T09:00:00Z"), range(200))
    print(f"checkpoint sign (cryptography Ed25519): {_summary(samples)}")
    cp = signer.sign(size, root, "2026-11-01T09:00:00Z")
    key, message, signature = signer.public_key, cp.signed_bytes(), bytes.fromhex(cp.signature)
    samples = _times_us(lambda _: auditor.ed25519_verify(key, message, signature), range(50))
    print(f"checkpoint verify (auditor, pure-Python Ed25519): {_summary(samples)}")


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    _harness.start()
    events = _events(args.leaves, rng)
    log = _build(events)
    root = _roots(log, rng, args.proofs)
    _inclusion(log, events, rng, args.proofs)
    _consistency(log, rng, args.proofs)
    _full_audit(events, root)
    _checkpoint(root, log.size)
    rss = _harness.peak_rss_mb()
    print(f"peak RSS: {rss:.0f} MB (includes the {args.leaves:,} synthetic events held for the run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
