"""Two witnesses, a ledger, and a fork of it shown to one witness: the story the witness tests read.

- W1 runs in this process (``streams.witnessing.serve_witness`` on a thread of its own); W2 is a
  ``credit-ledger witness serve`` process. Both witness the log ``ORIGIN`` under the operator's key.
- The ledger (data dir ``log``) grows to size A, and its relay's publisher has both witnesses
  cosign checkpoint A; it grows to B, and both cosign B (with the proof from A).
- A copy of the ledger taken at A (data dir ``fork``) grows otherwise, past B. Its operator signs
  a checkpoint of the fork at size B (the split view), and its publisher asks W2 to cosign the
  fork's newest checkpoint: W2 answers 409 with B, and then 422 to the proof from B.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from credit_ledger.compose import build_ledger
from credit_ledger.config import Settings
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.verification.checkpoints import CheckpointLog
from ledger.verification.notes import COSIGNATURE_V1, NoteSigner
from ledger.verification.policy import WitnessEndpoint
from ledger.verification.signed import Checkpoint, CheckpointSigner
from ledger.verification.transparency import LedgerTree
from ledger.verification.witness import KEY_FILE, AddCheckpoint, Answer, Witness
from streams.broker import free_port
from streams.digests import CheckpointPublisher
from streams.witnessing import WitnessClient, serve_witness
from tests.integration.serving import answers, wait_for
from tests.unit.test_transparency import Sent

ORIGIN = "credit-ledger.shanxi/v1"
SECRET = "witness-test-secret-0123456789"
SEED = bytes(range(32))
NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
START_TIMEOUT = 60.0


class ThreadedWitness:
    """A witness served on an event loop in a thread of this process."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="witness", daemon=True)

    def _serve(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve_witness(self.witness, "127.0.0.1", 0, self._stop, self._listening)

        asyncio.run(main())

    def _listening(self, port: int) -> None:
        self.port = port
        self._ready.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedWitness:
        self._thread.start()
        assert self._ready.wait(START_TIMEOUT), "the witness did not start listening"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)


class CliWitness:
    """`credit-ledger witness serve` as a process of its own."""

    def __init__(self, name: str, data_dir: Path, log_vkey: str) -> None:
        self.port = free_port()
        self.log = data_dir / "serve.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        args = ["witness", "serve", "--name", name, "--log", log_vkey, "--data-dir", str(data_dir)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "credit_ledger.cli", *args, "--http-port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            )
        wait_for(lambda: answers(self.url + "/") or self.process.poll() is not None, START_TIMEOUT, self.tail)
        assert self.process.poll() is None, self.tail()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(START_TIMEOUT)


@dataclass
class Story:
    """What happened, for the tests to check."""

    log: Path
    fork: Path
    signer: CheckpointSigner
    w1: ThreadedWitness
    w2: CliWitness
    keys: tuple[NoteSigner, NoteSigner]
    a: Checkpoint  # the log's checkpoints, as filed by its publisher
    b: Checkpoint
    fork_b: Checkpoint  # the fork's checkpoint of size B, signed by the same key
    fork_latest: Checkpoint  # the fork's newest, which W2 refused
    w2_outcome: str
    probe: tuple[int, str, str]  # W2's answer to the fork's checkpoint sent with the old size A

    @property
    def vkey(self) -> str:
        return str(self.signer.vkey(ORIGIN))

    def witness_vkeys(self) -> list[str]:
        return [str(w.vkey) for w in self.keys]


def _grow(ledger: CreditLedger, catalogue: Catalogue, seed: int, beyond: int) -> None:
    generator = SubmissionGenerator(catalogue.latest, subjects=12, seed=seed, prefix=f"w{seed}")
    while ledger.reader.head() <= beyond:
        ledger.submit(generator.take(10))


def _publisher(ledger: CreditLedger, data_dir: Path, endpoints: list[WitnessEndpoint]) -> CheckpointPublisher:
    signer = CheckpointSigner(SEED, previous=CheckpointLog.in_dir(data_dir).last)
    return CheckpointPublisher(
        ledger, Sent(), data_dir=data_dir, signer=signer, origin=ORIGIN, witnesses=WitnessClient(endpoints)
    )


def _ask(url: str, body: bytes) -> tuple[int, str, str]:
    request = urllib.request.Request(f"{url}/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers.get_content_type(), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get_content_type(), refused.read().decode()


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("witnesses")
    signer = CheckpointSigner(SEED)
    log_key = signer.vkey(ORIGIN)
    keys = (
        NoteSigner("witness.audit.example/w1", bytes([1]) * 32, COSIGNATURE_V1),
        NoteSigner("witness.court.example/w2", bytes([2]) * 32, COSIGNATURE_V1),
    )
    (root / "w2").mkdir()
    (root / "w2" / KEY_FILE).write_text(bytes([2]).hex() * 32 + "\n")  # W2's own key, which its process reads
    w1 = ThreadedWitness(Witness(keys[0], [log_key], root / "w1")).start()
    w2 = CliWitness(keys[1].name, root / "w2", str(log_key))
    endpoints = [WitnessEndpoint(keys[0].vkey, w1.url), WitnessEndpoint(keys[1].vkey, w2.url)]
    log, fork = root / "log", root / "fork"
    try:
        ledger = build_ledger(Settings(data_dir=log, subject_secret=SECRET), clock=lambda: NOW)
        try:
            _grow(ledger, catalogue, seed=1, beyond=40)
            publisher = _publisher(ledger, log, endpoints)
            a = asyncio.run(publisher.publish())
            fork.mkdir()
            with (
                sqlite3.connect(log / "ledger.sqlite") as source,
                sqlite3.connect(fork / "ledger.sqlite") as copy,
            ):
                source.backup(copy)  # the ledger as it was at A
            shutil.copy(log / "master.key", fork / "master.key")  # a copy of the ledger goes with its key
            _grow(ledger, catalogue, seed=2, beyond=a.size + 30)
            b = asyncio.run(publisher.publish())
        finally:
            ledger.close()
        forked = build_ledger(
            Settings(data_dir=fork, subject_secret=SECRET), clock=lambda: NOW + timedelta(hours=1)
        )
        try:
            _grow(forked, catalogue, seed=3, beyond=b.size + 10)
            tree = LedgerTree(forked)
            tree.catch_up()
            fork_b = CheckpointSigner(SEED, previous=CheckpointLog.in_dir(fork).last).sign(
                b.size,
                tree.root(b.size),
                NOW + timedelta(hours=1),
                receipts=forked.reader.receipt_head(),
                origin=ORIGIN,
            )
            CheckpointLog.in_dir(fork).append(fork_b)
            shown = _publisher(forked, fork, endpoints[1:])  # the fork is shown to W2 only
            fork_latest = asyncio.run(shown.publish())
            outcome = shown.witnesses.outcomes[keys[1].name] if shown.witnesses else ""
            proof = tree.log.consistency_proof(a.size, fork_latest.size)
            probe = _ask(w2.url, AddCheckpoint(a.size, tuple(proof), fork_latest.note()).body())
        finally:
            forked.close()
        yield Story(log, fork, signer, w1, w2, keys, a, b, fork_b, fork_latest, outcome, probe)
    finally:
        w1.stop()
        assert w2.stop() == 0, w2.tail()


def monitored(url: str) -> Answer:
    """What a witness serves monitors for the log ORIGIN."""
    from ledger.verification.witness import origin_hash  # noqa: PLC0415

    with urllib.request.urlopen(f"{url}/{origin_hash(ORIGIN)}/checkpoint", timeout=30) as answer:
        return Answer(answer.status, answer.read(), answer.headers["Content-Type"])
