"""Auditors' commands: verify the ledger, its Merkle tree and checkpoints; sign checkpoints; show the key."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from contract.topics import DIGESTS
from credit_ledger.cli import sources
from credit_ledger.cli.shared import (
    LEDGER,
    SUBJECT_CODE,
    Handler,
    UserError,
    command,
    idle_option,
    kafka_address,
    with_settings,
)
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note

if TYPE_CHECKING:
    from ledger.application.service import CreditLedger
    from ledger.domain.subjects import SubjectCode
    from ledger.verification.checkpoints import SourcedCheckpoint
    from ledger.verification.merkle import CheckpointSigner
    from ledger.verification.policy import WitnessPolicy
    from ledger.verification.transparency import LedgerTree


@contextmanager
def open_ledger(settings: Settings) -> Iterator[CreditLedger]:
    from credit_ledger.compose import build_ledger  # noqa: PLC0415 - keep --help fast

    ledger = build_ledger(settings)
    try:
        yield ledger
    finally:
        ledger.close()


def caught_up_tree(ledger: CreditLedger) -> LedgerTree:
    from ledger.verification.transparency import LedgerTree  # noqa: PLC0415

    tree = LedgerTree(ledger)
    tree.catch_up()
    return tree


def configured_signer(settings: Settings) -> CheckpointSigner | None:
    from ledger.verification.checkpoints import KeyConfigError, configured_signer  # noqa: PLC0415

    try:
        return configured_signer(settings.data_dir, settings.checkpoint_key)
    except KeyConfigError as exc:
        raise UserError(str(exc)) from None


def _signer(settings: Settings) -> CheckpointSigner:
    """The operator's signer, writing a new key into the data dir on first use."""
    from ledger.verification.checkpoints import KeyConfigError, checkpoint_signer  # noqa: PLC0415

    try:
        return checkpoint_signer(settings.data_dir, settings.checkpoint_key)
    except KeyConfigError as exc:
        raise UserError(str(exc)) from None


def _emit(obj: Any) -> None:
    """One JSON line on the current stdout (looked up on each call, so a redirection takes effect)."""
    json_line(obj, sys.stdout)


def write_json(obj: Any, out: str | None) -> None:
    """JSON to a file (indented, for people and the auditor) or one line on stdout."""
    import orjson  # noqa: PLC0415

    if out is None or out == "-":
        _emit(obj)
        return
    Path(out).write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def digests_topic_option(used_with: str) -> Callable[[Handler], Handler]:
    return click.option(
        "--topic",
        default=DIGESTS,
        show_default=True,
        metavar="TOPIC",
        help=f"the digests topic for {used_with}",
    )


# -- verify ------------------------------------------------------------------------------------


@command(
    "verify",
    "recompute every hash chain and the Merkle tree; check every checkpoint against them",
    "credit-ledger verify",
    "credit-ledger verify --subject 11010519491231002X",
    "credit-ledger verify --from-kafka --kafka-bootstrap 127.0.0.1:46955",
    "credit-ledger verify --witness audit.example/w1+b4b5e8d4+BDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop "
    "--from-witness http://127.0.0.1:9001",
)
@click.option("--subject", type=SUBJECT_CODE, help="verify one subject's hash chain only")
@click.option(
    "--public-key",
    metavar="HEX",
    help="the operator's Ed25519 public key (default: from CREDIT_CHECKPOINT_KEY or the data dir's seed)",
)
@click.option("--checkpoints", metavar="FILE", help="checkpoints file (default DATA_DIR/checkpoints.jsonl)")
@click.option("--no-file", is_flag=True, help="do not read the checkpoints file")
@click.option("--from-kafka", is_flag=True, help="also check the checkpoints on credit.digests")
@click.option(
    "--from-witness",
    multiple=True,
    metavar="URL",
    help="also check the checkpoint this witness cosigned last (its URL prefix; repeat for each)",
)
@click.option(
    "--from-http",
    multiple=True,
    metavar="URL",
    help="also check the checkpoints a ledger's HTTP API serves (URL/checkpoint, URL/v1/proofs/checkpoints)",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    metavar="VKEY",
    help="a witness of the policy, by its cosignature vkey (repeat for each)",
)
@click.option(
    "--min-witnesses",
    type=click.IntRange(min=1),
    metavar="K",
    help="the policy: at least K of the --witness cosigned each checkpoint (default: all of them)",
)
@digests_topic_option("--from-kafka")
@idle_option("reading the topic")
@with_settings(*LEDGER, "kafka_bootstrap", "log_origin")
def verify(
    settings: Settings,
    subject: SubjectCode | None,
    public_key: str | None,
    checkpoints: str | None,
    no_file: bool,
    from_kafka: bool,
    from_witness: tuple[str, ...],
    from_http: tuple[str, ...],
    witness_keys: tuple[str, ...],
    min_witnesses: int | None,
    topic: str,
    idle: float,
) -> int:
    """Recompute every subject's hash chain and the Merkle tree over the ledger's order, then check
    every signed checkpoint (DATA_DIR/checkpoints.jsonl; credit.digests with --from-kafka; what
    witnesses cosigned with --from-witness; what a ledger's HTTP API serves with --from-http): its
    signature against the operator's public key, its origin (--log-origin), its root against the
    tree at its size, that checkpoints of one size agree and that each later checkpoint extends
    the earlier (RFC 9162 consistency). Two views shown to different parties (a split view) are
    named with both checkpoints and every source of each.

    With --witness (and --min-witnesses K), each checkpoint must carry valid cosignatures of at
    least K of those witnesses, or be covered by a later checkpoint that does.

    Prints one JSON line per problem, naming the event (stream, version, position) or the
    checkpoint (size, time, source); a summary on stderr; exit status 1 if anything is wrong.
    """
    from credit_ledger.progress import progress  # noqa: PLC0415
    from ledger.verification.audit import audit  # noqa: PLC0415
    from ledger.verification.checkpoints import CheckpointLog  # noqa: PLC0415

    policy = _policy(witness_keys, min_witnesses)
    with open_ledger(settings) as ledger:
        if subject is not None:
            return _verify_subject(ledger, subject)
        sourced: list[SourcedCheckpoint] = []
        path = Path(checkpoints) if checkpoints else CheckpointLog.in_dir(settings.data_dir).path
        if not no_file:
            sourced += CheckpointLog(path).read()
        if from_kafka:
            sourced += sources.from_kafka(settings, topic, idle)
        for url in from_witness:
            sourced += sources.from_witness(url, settings.log_origin)
        for url in from_http:
            sourced += sources.from_http(url)
        if public_key is None:
            signer = configured_signer(settings)
            public_key = signer.public_key_hex if signer is not None else None
        key = public_key.strip().lower() if public_key else None
        with progress("events verified", total=ledger.reader.head()) as advance:
            report = audit(ledger, sourced, key, origin=settings.log_origin, policy=policy, progress=advance)
    for problem in report.problems:
        _emit(problem.to_dict())
    rate = report.events / report.seconds if report.seconds else 0.0
    witnessed = f" ({policy.describe()} required)" if policy is not None else ""
    sealed = report.sealed
    opened = (
        f"{sealed.opened:,} sealed values open in their place, {sealed.shredded:,} shredded; "
        if sealed is not None and (sealed.opened or sealed.shredded)
        else ""
    )
    facts = (
        f"{report.events:,} events, Merkle tree root {report.tree.root().hex()}; {opened}"
        f"{_count(report.checkpoints, 'checkpoint')}{witnessed}, "
        f"{_count(report.consistency_checked, 'consistency proof')}; "
        f"{report.seconds:.1f} s ({rate:,.0f} events/s)"
    )
    if report.ok:
        note(f"verified: every hash chain is intact and every checkpoint matches: {facts}")
        if not report.checkpoints:
            note(
                "note: no checkpoints to check against; events removed from the end of a stream or "
                "rewritten consistently are visible only against a checkpoint"
            )
        return 0
    kinds: dict[str, int] = {}
    for problem in report.problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    note(f"verify: {_count(len(report.problems), 'problem')} ({summary}): {facts}")
    return 1


def _policy(witness_keys: tuple[str, ...], minimum: int | None) -> WitnessPolicy | None:
    """The witness policy of --witness and --min-witnesses (None without witnesses)."""
    from ledger.verification.policy import PolicyError, WitnessPolicy  # noqa: PLC0415

    if not witness_keys:
        if minimum is not None:
            raise click.UsageError("--min-witnesses needs the witnesses it counts: give --witness VKEY")
        return None
    try:
        return WitnessPolicy.of(witness_keys, minimum)
    except PolicyError as exc:
        raise click.UsageError(f"--witness: {exc}") from None


def _verify_subject(ledger: CreditLedger, code: SubjectCode) -> int:
    breaks = ledger.verify(ledger.key_of(code))
    for b in breaks:
        _emit(
            {
                "problem": "chain",
                "message": str(b),
                "stream": b.stream_id,
                "version": b.version,
                "position": None,
                "detail": b.problem,
            }
        )
    note(f"verified: the hash chain of {code.masked} is intact" if not breaks else "verify: the chain breaks")
    return 1 if breaks else 0


# -- checkpoint, checkpoint-key ----------------------------------------------------------------


@command(
    "checkpoint",
    "sign a checkpoint of the Merkle tree now and append it to DATA_DIR/checkpoints.jsonl",
    "credit-ledger checkpoint",
    "credit-ledger checkpoint --publish",
)
@click.option("--publish", is_flag=True, help="also send it to credit.digests")
@click.option("--note", "as_note", is_flag=True, help="print the signed note itself, not its JSON line")
@digests_topic_option("--publish")
@with_settings(*LEDGER, "kafka_bootstrap", "log_origin")
def checkpoint(settings: Settings, publish: bool, as_note: bool, topic: str) -> int:
    """Bring the Merkle tree up to the ledger's last event, sign its size and root with the
    operator's key (CREDIT_CHECKPOINT_KEY, or DATA_DIR/checkpoint-key.seed, made on first use),
    append the checkpoint to DATA_DIR/checkpoints.jsonl and print it: a C2SP checkpoint note of
    the log --log-origin (version 3), as the JSON line filed, or with --note as the note. The relay
    publishes checkpoints by itself every 10,000 events or 60 s, cosigned by its witnesses; this
    makes one on demand, with the operator's signature only.
    """
    from ledger.verification.checkpoints import CheckpointLog, checkpoint_json  # noqa: PLC0415
    from streams.clients import send_records  # noqa: PLC0415

    signer = _signer(settings)
    with open_ledger(settings) as ledger:
        cp = caught_up_tree(ledger).checkpoint(signer, origin=settings.log_origin)
    log = CheckpointLog.in_dir(settings.data_dir)
    log.append(cp)
    if publish:
        bootstrap = kafka_address(settings, needed_for="--publish")
        send_records(bootstrap, topic, [(cp.key_id.encode(), checkpoint_json(cp))])
    if as_note:
        sys.stdout.write(cp.note())
        sys.stdout.flush()
    else:
        _emit(cp.to_dict())
    note(f"checkpoint of {cp.size} events of {cp.origin} signed by key {cp.key_id}, appended to {log.path}")
    return 0


@command(
    "checkpoint-key",
    "print the operator's checkpoint public key, key id and vkey (making the key on first use)",
    "credit-ledger checkpoint-key",
    "credit-ledger checkpoint-key --log-origin credit-ledger.shanxi/v1",
)
@with_settings("data_dir", "log_origin")
def checkpoint_key(settings: Settings) -> int:
    """Print the Ed25519 public key (hex) and key id that checkpoints are signed with, and the
    signed-note verifier key (vkey) of the log --log-origin that Go's sumdb/note and other C2SP
    tools take. The private seed comes from CREDIT_CHECKPOINT_KEY (64 hex digits) or
    DATA_DIR/checkpoint-key.seed, which is written (mode 0600) on first use. Auditors need only
    the public key (or the vkey).
    """
    from ledger.verification.checkpoints import key_source  # noqa: PLC0415

    signer = _signer(settings)
    _emit(
        {
            "algorithm": "Ed25519",
            "public_key": signer.public_key_hex,
            "key_id": signer.key_id,
            "origin": settings.log_origin,
            "vkey": str(signer.vkey(settings.log_origin)),
            "source": key_source(settings.data_dir, settings.checkpoint_key),
        }
    )
    note("publish this public key out of band (not only over this ledger's own channels): auditors trust it")
    return 0


COMMANDS = (verify, checkpoint, checkpoint_key)
