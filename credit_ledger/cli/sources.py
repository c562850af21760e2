"""Where `verify` reads checkpoints besides the data dir's file: credit.digests, witnesses, the HTTP API.

Each checkpoint read is named by its source, so a problem says where each copy was seen:
``credit.digests/PARTITION@OFFSET``, ``witness URL`` (the checkpoint a witness last cosigned,
from its monitoring endpoint ``URL/<sha256(origin)>/checkpoint``), ``URL/checkpoint`` and
``URL/v1/proofs/checkpoints#N`` (a ledger's HTTP API).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import orjson

from credit_ledger.cli.shared import UserError, kafka_address
from credit_ledger.config import Settings
from credit_ledger.output import note

if TYPE_CHECKING:
    from ledger.verification.checkpoints import SourcedCheckpoint

TIMEOUT = 30.0
MAX_ANSWER = 64 * 2**20
"""The most read from one HTTP answer (a checkpoints list of a long-lived ledger is large)."""


def from_kafka(settings: Settings, topic: str, idle: float) -> list[SourcedCheckpoint]:
    """Every message on the digests topic, read as a checkpoint (any version)."""
    from ledger.verification.checkpoints import parse_checkpoint  # noqa: PLC0415
    from streams.clients import read_topic  # noqa: PLC0415

    bootstrap = kafka_address(settings, needed_for="--from-kafka")
    try:
        return [
            parse_checkpoint(record.value, f"{topic}/{record.partition}@{record.offset}")
            for record in read_topic(bootstrap, topic, idle=idle)
        ]
    except LookupError as exc:
        raise UserError(str(exc)) from None


def _get(url: str) -> bytes | None:
    """The body at ``url`` (None for a 404); a UserError naming the URL if it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            body: bytes = answer.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise UserError(f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UserError(f"cannot read {url}: {exc}") from None
    if len(body) > MAX_ANSWER:
        raise UserError(f"{url} answered more than {MAX_ANSWER} bytes")
    return body


def _note(raw: bytes, source: str) -> SourcedCheckpoint:
    from ledger.verification.checkpoints import SourcedCheckpoint  # noqa: PLC0415
    from ledger.verification.signed import Checkpoint  # noqa: PLC0415

    try:
        return SourcedCheckpoint(source, Checkpoint.from_note(raw))
    except ValueError as exc:
        return SourcedCheckpoint(source, None, str(exc))


def from_witness(url: str, origin: str) -> list[SourcedCheckpoint]:
    """The checkpoint of the log ``origin`` that the witness at ``url`` cosigned last (if any)."""
    from ledger.verification.witness import origin_hash  # noqa: PLC0415

    prefix = url.rstrip("/")
    body = _get(f"{prefix}/{origin_hash(origin)}/checkpoint")
    if body is None:
        note(f"verify: witness {prefix} has cosigned no checkpoint of {origin}")
        return []
    return [_note(body, f"witness {prefix}")]


def from_http(url: str) -> list[SourcedCheckpoint]:
    """The checkpoints a ledger's HTTP API serves: ``/checkpoint`` and ``/v1/proofs/checkpoints``."""
    from ledger.verification.checkpoints import parse_checkpoint  # noqa: PLC0415

    prefix = url.rstrip("/")
    found: list[SourcedCheckpoint] = []
    latest = _get(f"{prefix}/checkpoint")
    if latest is not None:
        found.append(_note(latest, f"{prefix}/checkpoint"))
    listed = _get(f"{prefix}/v1/proofs/checkpoints")
    try:
        items = orjson.loads(listed or b'{"checkpoints": []}')["checkpoints"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{prefix}/v1/proofs/checkpoints is not a list of checkpoints") from None
    for number, item in enumerate(items if isinstance(items, list) else [], 1):
        found.append(parse_checkpoint(orjson.dumps(item), f"{prefix}/v1/proofs/checkpoints#{number}"))
    return found
