"""A transparency-log witness (c2sp.org/tlog-witness): it cosigns a log's checkpoint only if the
checkpoint is consistent with the latest one it cosigned for that log.

``add-checkpoint`` takes an old size line, the consistency proof from that size (one base64
hash a line), a blank line and the checkpoint note. The witness checks the log's signature with
the keys it was given for the checkpoint's origin, that the old size is the size it last
cosigned for that origin (else 409 and its latest size, ``text/x.tlog.size``), that a checkpoint
of that same size has the root it holds (else 409 too: a fork), and that the proof shows the new
tree extends the one it holds (else 422). Then it records the new checkpoint
before it answers with its ``cosignature/v1`` line (c2sp.org/tlog-cosignature). Checking the
old size and recording the new one happen under one lock (a thread lock and an exclusive lock
on a file beside the state), so two requests cannot roll its view back.

The state is one JSON file: per origin, the latest cosigned size, root and checkpoint (with the
log's signature and the witness's own cosignature), which ``GET /<sha256(origin)>/checkpoint``
serves to monitors. A checkpoint validly signed by a known log but refused is kept as evidence,
one JSON line each, in a file beside the state.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ledger.verification.checkpoints import configured_seed, seed_file
from ledger.verification.merkle import EMPTY_ROOT, verify_consistency
from ledger.verification.notes import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteError,
    NoteSignature,
    NoteSigner,
    VerifierKey,
    parse_note,
)
from ledger.verification.signed import rfc3339_utc
from ledger.verification.tlog_checkpoint import CheckpointBody, FormatError, decimal, hash_line

MAX_PROOF_LINES = 63
MAX_REQUEST = 64 * 1024
"""The largest add-checkpoint body read (a checkpoint and 63 hashes are a few kilobytes)."""

SIZE_TYPE = "text/x.tlog.size"
NOTE_TYPE = "text/plain; charset=utf-8"
STATE_FILE = "witness-state.json"
REFUSED_FILE = "witness-refused.jsonl"
KEY_FILE = "witness-key.seed"
"""Where a witness's data dir keeps its Ed25519 seed (hex) when ``CREDIT_WITNESS_KEY`` is unset."""
KEY_VARIABLE = "CREDIT_WITNESS_KEY"
"""The environment variable that holds a witness's Ed25519 seed as 64 hex digits."""


def witness_signer(name: str, data_dir: Path, key: str | None = None) -> NoteSigner:
    """The witness's cosigning key under ``name``: from ``key`` (CREDIT_WITNESS_KEY), else the data
    dir's seed file, written (mode 0600) on first use."""
    seed = configured_seed(data_dir, KEY_FILE, KEY_VARIABLE, key)
    return NoteSigner(name, seed if seed is not None else seed_file(data_dir, KEY_FILE), COSIGNATURE_V1)


class RequestError(ValueError):
    """An add-checkpoint body that is not one; the message says what is wrong."""


@dataclass(frozen=True)
class AddCheckpoint:
    """One add-checkpoint request: the size it extends, the proof from it, the checkpoint note."""

    old: int
    proof: tuple[bytes, ...]
    note: str

    def body(self) -> bytes:
        lines = [f"old {self.old}", *(base64.b64encode(h).decode() for h in self.proof)]
        return ("".join(line + "\n" for line in lines) + "\n" + self.note).encode()

    @classmethod
    def parse(cls, raw: bytes) -> AddCheckpoint:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("the request is not UTF-8") from None
        head, blank, note = text.partition("\n\n")
        lines = head.split("\n")
        if not blank or not lines[0].startswith("old "):
            raise RequestError("the request is 'old N', the proof lines, a blank line, then the checkpoint")
        old = decimal(lines[0][4:])
        if old is None:
            raise RequestError(f"the old size is a decimal number without leading zeroes: {lines[0][:40]!r}")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise RequestError(f"a consistency proof has at most {MAX_PROOF_LINES} lines")
        proof = []
        for line in lines[1:]:
            digest = hash_line(line)
            if digest is None:
                raise RequestError(f"each proof line is one hash in base64, not {line[:60]!r}")
            proof.append(digest)
        return cls(old, tuple(proof), note)


@dataclass(frozen=True)
class Answer:
    """What the witness answers: an HTTP status, its body and its content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def origin_hash(origin: str) -> str:
    """How a monitor names a log to a witness: SHA-256 of its origin, lowercase hex."""
    return hashlib.sha256(origin.encode()).hexdigest()


class Witness:
    """Cosigns checkpoints of the logs whose keys it was given (``logs``: vkeys of type 0x01,
    each named by its log's origin), keeping its state in ``data_dir``."""

    def __init__(
        self,
        signer: NoteSigner,
        logs: Sequence[VerifierKey],
        data_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if signer.vkey.signature_type != COSIGNATURE_V1:
            raise ValueError("a witness signs with a cosignature key (type 0x04)")
        if not logs or any(key.signature_type != ED25519 for key in logs):
            raise ValueError("a witness needs the Ed25519 (type 0x01) keys of the logs it witnesses")
        self.signer = signer
        self.logs = tuple(logs)
        self.state_path = data_dir / STATE_FILE
        self.refused_path = data_dir / REFUSED_FILE
        self._clock = clock
        self._lock = threading.Lock()
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def origins(self) -> set[str]:
        return {key.name for key in self.logs}

    def add_checkpoint(self, raw: bytes) -> Answer:
        """Answer one add-checkpoint request body, as tlog-witness says."""
        try:
            request = AddCheckpoint.parse(raw)
            note = parse_note(request.note)
            body = CheckpointBody.parse(note.text)
        except (RequestError, NoteError, FormatError) as exc:
            return Answer(400, f"{exc}\n".encode())
        keys = [key for key in self.logs if key.name == body.origin]
        if not keys:
            return Answer(404, f"unknown log origin {body.origin[:200]!r}\n".encode())
        valid, invalid = note.signed_by(keys)
        if invalid or not valid:
            why = "a signature by its key does not verify" if invalid else "no signature of its key"
            return Answer(403, f"not a checkpoint of {body.origin}: {why}\n".encode())
        if request.old > body.size:
            return Answer(400, f"old size {request.old} is beyond the checkpoint's {body.size}\n".encode())
        with self._locked():
            state = self._load()
            held = state.get(body.origin, {"size": 0, "root": EMPTY_ROOT.hex()})
            refusal = self._refusal(request, body, held)
            if refusal is not None:
                self._keep_refused(refusal, note)
                return refusal
            stamp = int(self._clock())
            cosignature = self.signer.cosign(note.text, stamp)
            logged = Note(note.text, (*(s for s in note.signatures if _by(s, valid)), cosignature))
            state[body.origin] = {"size": body.size, "root": body.root.hex(), "checkpoint": logged.render()}
            self._save(state)
        return Answer(200, cosignature.line().encode())

    def latest(self, hashed_origin: str) -> Answer:
        """The latest checkpoint cosigned for the log whose origin hashes to ``hashed_origin``."""
        state = self._load()
        for origin, held in state.items():
            if origin_hash(origin) == hashed_origin.lower():
                return Answer(200, str(held["checkpoint"]).encode(), NOTE_TYPE)
        return Answer(404, b"no checkpoint of that log has been cosigned here\n")

    @staticmethod
    def _refusal(request: AddCheckpoint, body: CheckpointBody, held: dict[str, Any]) -> Answer | None:
        size, root = int(held["size"]), bytes.fromhex(str(held["root"]))
        if request.old != size:
            return Answer(409, f"{size}\n".encode(), SIZE_TYPE)
        if request.old == body.size and body.root != root:
            # tlog-witness: the same size with another root is a 409 (the body, as for any 409 here,
            # the size held: the client learns it cannot go on from there).
            return Answer(409, f"{size}\n".encode(), SIZE_TYPE)
        if request.old == 0 and request.proof:
            return Answer(422, b"from size 0 the consistency proof is empty\n")
        if request.old == body.size and request.proof:
            return Answer(422, f"from size {size} to itself the consistency proof is empty\n".encode())
        extends = verify_consistency(size, body.size, root, body.root, request.proof)
        if 0 < request.old < body.size and not extends:
            return Answer(422, f"the proof does not show the tree extends the one of size {size}\n".encode())
        return None

    def _keep_refused(self, refusal: Answer, note: Note) -> None:
        """A validly signed checkpoint refused: evidence of a log's misbehaviour, kept."""
        line = {
            "time": rfc3339_utc(datetime.fromtimestamp(self._clock(), UTC)),
            "status": refusal.status,
            "reason": refusal.body.decode().strip(),
            "note": note.render(),
        }
        with self.refused_path.open("ab") as out:
            out.write(orjson.dumps(line) + b"\n")

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.state_path.exists():
            return {}
        loaded = orjson.loads(self.state_path.read_bytes())
        logs: dict[str, dict[str, Any]] = loaded["logs"]
        return logs

    def _save(self, state: dict[str, dict[str, Any]]) -> None:
        """Write the state aside, sync it, and move it into place: whole or not at all."""
        aside = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}")
        with aside.open("wb") as out:
            out.write(orjson.dumps({"logs": state}, option=orjson.OPT_INDENT_2))
            out.flush()
            os.fsync(out.fileno())
        os.replace(aside, self.state_path)
        directory = os.open(self.state_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold this process's lock and the state's file lock (another process may serve the dir)."""
        with self._lock, self.state_path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _by(signature: NoteSignature, keys: Sequence[VerifierKey]) -> bool:
    return any((signature.name, signature.key_id) == (key.name, key.key_id) for key in keys)
