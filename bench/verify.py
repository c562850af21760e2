"""Benchmark: verify a SQLite ledger of >= 1M events (chains + Merkle tree + checkpoint) and time proofs.

Run: python bench/verify.py [--events 1000000] [--subjects 100000] [--database PATH] [--profile]
Targets (auditors issue): >= 100,000 events/s to verify; an inclusion proof in < 1 ms.

Builds the ledger first with generated submissions (about 1.13 events each; timed on its own, not
part of the figures), unless --database names one built before (kept with --keep). Then, on a
freshly opened ledger: the whole audit (``ledger.verification.audit.audit``: every hash chain, the tree,
one signed checkpoint), and for the breakdown the chains alone (``CreditLedger.verify``) and the
tree alone (``LedgerTree.catch_up``). Then 1,000 inclusion proofs for random events against the
checkpoint, each including the read of its event from the store, and 1,000 consistency proofs.
With --profile, where the chain check spends its time (cProfile over the first 200,000 events).
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import argparse
import cProfile
import io
import itertools
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, load_catalogue
from ledger.domain.integrity import verify_streams
from ledger.verification.audit import audit
from ledger.verification.checkpoints import SourcedCheckpoint
from ledger.verification.merkle import (
    CheckpointSigner,
    generate_seed,
    leaf_hash,
    ledger_leaf,
    verify_inclusion,
)
from ledger.verification.transparency import LedgerTree


def open_ledger(catalogue: Catalogue, path: Path) -> CreditLedger:
    return _harness.open_ledger(path, catalogue)


def build(catalogue: Catalogue, path: Path, events: int, subjects: int, batch: int) -> None:
    ledger = open_ledger(catalogue, path)
    generator = SubmissionGenerator(catalogue.latest, subjects=subjects, seed=2026)
    submitted = 0
    started = time.perf_counter()
    stored = ledger.reader.head()
    while stored < events:
        ledger.submit(generator.take(batch))
        submitted += batch
        if submitted % 100_000 == 0:
            stored = ledger.reader.head()
            elapsed = time.perf_counter() - started
            print(f"  building: {submitted:,} submissions, {stored:,} events, {elapsed:.0f} s", flush=True)
        elif submitted * 1.1 >= events:
            stored = ledger.reader.head()
    elapsed = time.perf_counter() - started
    ledger.close()
    print(
        f"build: {submitted:,} submissions -> {stored:,} events in {elapsed:.1f} s "
        f"({submitted / elapsed:,.0f} submissions/s); database {path.stat().st_size / 1e6:,.0f} MB"
    )


def timed(label: str, events: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed:.2f} s, {events / elapsed:,.0f} events/s")
    return events / elapsed


def summary_us(samples: list[float]) -> str:
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98]
    return f"avg {statistics.fmean(samples):.1f} us, p99 {p99:.1f} us, max {max(samples):.1f} us"


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--database", type=Path, help="use (or build once into) this SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the database built in a temporary dir")
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="profile the chain check")
    args = parser.parse_args()

    _harness.start(gc=True)
    catalogue = load_catalogue()
    tmp = None
    path = args.database
    if path is None:
        tmp = tempfile.mkdtemp(prefix="bench-verify-")
        path = Path(tmp) / "ledger.sqlite"
    if not path.exists():
        build(catalogue, path, args.events, args.subjects, args.batch)
    try:
        return measure(catalogue, path, args)
    finally:
        if tmp is not None and not args.keep:
            path.unlink()
            for leftover in Path(tmp).iterdir():
                leftover.unlink()
            os.rmdir(tmp)
        elif tmp is not None:
            print(f"kept: {path}")


def measure(catalogue: Catalogue, path: Path, args: argparse.Namespace) -> int:
    ledger = open_ledger(catalogue, path)
    events = ledger.reader.head()
    print(f"ledger: {events:,} events, {path.stat().st_size / 1e6:,.0f} MB")

    signer = CheckpointSigner(generate_seed())
    tree = LedgerTree(ledger)
    tree_rate = timed("tree alone (LedgerTree.catch_up)", events, tree.catch_up)
    checkpoint = tree.checkpoint(signer)
    chains_rate = timed("chains alone (CreditLedger.verify)", events, ledger.verify)
    report = audit(ledger, [SourcedCheckpoint("bench", checkpoint)], signer.public_key_hex)
    assert report.ok, report.problems[:3]
    assert report.tree.root() == tree.root()
    rate = report.events / report.seconds
    print(
        f"verify (chains in a second process + tree + checkpoint): {report.seconds:.2f} s, {rate:,.0f} events/s "
        f"-> target >= 100,000 events/s: {'met' if rate >= 100_000 else 'NOT met'}"
    )

    rng = random.Random(2026)
    positions = [tree.position_at(rng.randrange(tree.size)) for _ in range(args.proofs)]
    samples, proofs = [], []
    clock = time.perf_counter
    for position in positions:
        t = clock()
        proofs.append(tree.inclusion_proof(position, checkpoint.size))
        samples.append((clock() - t) * 1e6)
    root = bytes.fromhex(checkpoint.root)
    for proof in proofs:
        leaf = proof["leaf"]
        data = ledger_leaf(leaf["position"], leaf["stream"], leaf["version"], leaf["event_hash"])
        path_hashes = [bytes.fromhex(h) for h in proof["path"]]
        assert verify_inclusion(leaf_hash(data), proof["index"], proof["size"], path_hashes, root)
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98]
    print(
        f"inclusion proof (incl. reading the event), {args.proofs} random events: {summary_us(samples)} "
        f"-> target < 1 ms: {'met' if p99 < 1000 else 'NOT met'}"
    )
    pairs = [sorted(rng.sample(range(1, tree.size + 1), 2)) for _ in range(args.proofs)]
    consistency = []
    for old, new in pairs:
        t = clock()
        tree.consistency_proof(old, new)
        consistency.append((clock() - t) * 1e6)
    print(f"consistency proof, {args.proofs} random pairs: {summary_us(consistency)}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print(f"breakdown: chains alone {chains_rate:,.0f} events/s, tree alone {tree_rate:,.0f} events/s")
    if args.profile:
        profile_chains(ledger)
    ledger.close()
    return 0


def profile_chains(ledger: CreditLedger, n: int = 200_000) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    verify_streams(itertools.islice(ledger.stored_events(), n))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    print(f"profile of the chain check over the first {n:,} events (cProfile, tottime):")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


if __name__ == "__main__":
    sys.exit(main())
