"""Auditors' subcommands: verify the ledger, its Merkle tree and checkpoints; produce proofs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from credit_ledger.config import Settings
from credit_ledger.output import json_line, note

if TYPE_CHECKING:
    from ledger.application.service import CreditLedger
    from ledger.verification.checkpoints import SourcedCheckpoint
    from ledger.verification.merkle import CheckpointSigner
    from ledger.verification.transparency import LedgerTree

Handler = Callable[[argparse.Namespace, Settings], int]
AUDITOR = "python auditor/auditor.py"


def _user_error(message: str) -> Exception:
    from credit_ledger.cli import UserError  # noqa: PLC0415 - cli imports this module

    return UserError(message)


def _command(
    sub: Any, name: str, help_text: str, handler: Handler, description: str
) -> argparse.ArgumentParser:
    from credit_ledger.cli import _command as command  # noqa: PLC0415 - cli imports this module

    return command(sub, name, help_text, handler, description)


def _replace(sub: Any, name: str) -> None:
    """Withdraw a subcommand registered earlier under ``name``, so the one registered next replaces it.

    ``credit_ledger.cli`` still registers its chain-only ``verify`` before this module's; argparse
    refuses a second parser of the same name. Once cli.py drops its own, this does nothing.
    """
    if name in sub.choices:
        del sub.choices[name]
        sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest != name]


@contextmanager
def _ledger(settings: Settings) -> Iterator[CreditLedger]:
    from credit_ledger.compose import build_ledger  # noqa: PLC0415 - keep --help fast

    ledger = build_ledger(settings)
    try:
        yield ledger
    finally:
        ledger.close()


def _tree(ledger: CreditLedger) -> LedgerTree:
    from ledger.verification.transparency import LedgerTree  # noqa: PLC0415

    tree = LedgerTree(ledger)
    tree.catch_up()
    return tree


def _configured_signer(settings: Settings) -> CheckpointSigner | None:
    from ledger.verification.checkpoints import KeyConfigError, configured_signer  # noqa: PLC0415

    try:
        return configured_signer(settings.data_dir)
    except KeyConfigError as exc:
        raise _user_error(str(exc)) from None


def _signer(settings: Settings) -> CheckpointSigner:
    """The operator's signer, writing a new key into the data dir on first use."""
    from ledger.verification.checkpoints import KeyConfigError, checkpoint_signer  # noqa: PLC0415

    try:
        return checkpoint_signer(settings.data_dir)
    except KeyConfigError as exc:
        raise _user_error(str(exc)) from None


def _emit(obj: Any) -> None:
    """One JSON line on the current stdout (looked up on each call, so a redirection takes effect)."""
    json_line(obj, sys.stdout)


def _write(obj: Any, out: str | None) -> None:
    """JSON to a file (indented, for people and the auditor) or one line on stdout."""
    if out is None or out == "-":
        _emit(obj)
        return
    Path(out).write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")


# -- verify ------------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.verification.audit import audit  # noqa: PLC0415
    from ledger.verification.checkpoints import CheckpointLog  # noqa: PLC0415

    with _ledger(settings) as ledger:
        if args.subject:
            return _verify_subject(ledger, args.subject)
        sourced: list[SourcedCheckpoint] = []
        path = Path(args.checkpoints) if args.checkpoints else CheckpointLog.in_dir(settings.data_dir).path
        if not args.no_file:
            sourced += CheckpointLog(path).read()
        if args.from_kafka:
            sourced += _from_kafka(settings, args.topic, args.idle)
        public_key = args.public_key
        if public_key is None:
            signer = _configured_signer(settings)
            public_key = signer.public_key_hex if signer is not None else None
        report = audit(ledger, sourced, public_key.strip().lower() if public_key else None)
    for problem in report.problems:
        _emit(problem.to_dict())
    rate = report.events / report.seconds if report.seconds else 0.0
    facts = (
        f"{report.events:,} events, Merkle tree root {report.tree.root().hex()}; "
        f"{_count(report.checkpoints, 'checkpoint')}, "
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


def _verify_subject(ledger: CreditLedger, raw: str) -> int:
    from ledger.domain.errors import LedgerError  # noqa: PLC0415
    from ledger.domain.subjects import parse_subject_code  # noqa: PLC0415
    from ledger.domain.workdays import local_date  # noqa: PLC0415

    try:
        code = parse_subject_code(raw, today=local_date(ledger.clock()), field="CODE")
    except LedgerError as exc:
        raise _user_error(f"CODE: {exc.message}") from None
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


def _from_kafka(settings: Settings, topic: str, idle: float) -> list[SourcedCheckpoint]:
    from ledger.verification.checkpoints import parse_checkpoint  # noqa: PLC0415
    from streams.clients import read_topic  # noqa: PLC0415

    if not settings.kafka_bootstrap:
        raise _user_error(
            "--from-kafka needs CREDIT_KAFKA_BOOTSTRAP or --kafka-bootstrap (the address 'serve' printed)"
        )
    try:
        return [
            parse_checkpoint(record.value, f"{topic}/{record.partition}@{record.offset}")
            for record in read_topic(settings.kafka_bootstrap, topic, idle=idle)
        ]
    except LookupError as exc:
        raise _user_error(str(exc)) from None


def register_verify(sub: Any) -> None:
    from contract.topics import DIGESTS  # noqa: PLC0415

    _replace(sub, "verify")
    p = _command(
        sub,
        "verify",
        "recompute every hash chain and the Merkle tree; check every checkpoint against them",
        cmd_verify,
        "Recompute every subject's hash chain and the Merkle tree over the ledger's order, then check\n"
        "every signed checkpoint (DATA_DIR/checkpoints.jsonl, and credit.digests with --from-kafka):\n"
        "its signature against the operator's public key, its root against the tree at its size, and\n"
        "that each later checkpoint extends the earlier (RFC 9162 consistency).\n"
        "Prints one JSON line per problem, naming the event (stream, version, position) or the\n"
        "checkpoint (size, time, source); a summary on stderr; exit status 1 if anything is wrong.",
    )
    p.add_argument("--subject", metavar="CODE", help="verify one subject's hash chain only")
    p.add_argument(
        "--public-key",
        metavar="HEX",
        help="the operator's Ed25519 public key (default: from CREDIT_CHECKPOINT_KEY or the data dir's seed)",
    )
    p.add_argument(
        "--checkpoints", metavar="FILE", help="checkpoints file (default DATA_DIR/checkpoints.jsonl)"
    )
    p.add_argument("--no-file", action="store_true", help="do not read the checkpoints file")
    p.add_argument("--from-kafka", action="store_true", help="also check the checkpoints on credit.digests")
    p.add_argument("--topic", default=DIGESTS, help=f"the digests topic for --from-kafka (default {DIGESTS})")
    p.add_argument(
        "--idle", type=float, default=2.0, help="seconds of quiet that end reading the topic (default 2)"
    )


# -- proof -------------------------------------------------------------------------------------


def cmd_proof_inclusion(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.verification.checkpoints import CheckpointLog  # noqa: PLC0415
    from ledger.verification.transparency import TransparencyError  # noqa: PLC0415

    if (args.stream is None) != (args.version is None):
        raise _user_error("--stream and --version go together")
    log = CheckpointLog.in_dir(settings.data_dir)
    with _ledger(settings) as ledger:
        tree = _tree(ledger)
        try:
            if args.position is not None:
                index = tree.index_of(args.position)
            elif args.event_id is not None:
                index = tree.index_of_event_id(args.event_id)
            else:
                index = tree.index_of_event(args.stream, args.version)
            size = args.size
            if size is None:
                latest = log.latest()
                if latest is None or latest.size <= index:
                    newest = f"the latest has size {latest.size}" if latest else "there is none"
                    raise _user_error(
                        f"the event is leaf {index}, not yet covered by a checkpoint ({newest}): "
                        "run 'credit-ledger checkpoint', or give --size"
                    )
                size = latest.size
            proof = tree.inclusion_proof_at(index, size)
        except TransparencyError as exc:
            raise _user_error(str(exc)) from None
    _write(proof, args.out)
    leaf = proof["leaf"]
    note(
        f"stream {leaf['stream']} version {leaf['version']} (position {leaf['position']}) is leaf "
        f"{proof['index']} of the tree of {proof['size']}"
    )
    cp = log.find(size)
    if args.checkpoint_out:
        if cp is None:
            raise _user_error(f"no checkpoint of size {size} in {log.path}")
        _write(cp.to_dict(), args.checkpoint_out)
    if args.out and args.out != "-":
        cp_file = args.checkpoint_out or "CHECKPOINT.json"
        signer = _configured_signer(settings)
        key = signer.public_key_hex if signer is not None else "HEX"
        note(f"check it with: {AUDITOR} inclusion {args.out} --checkpoint {cp_file} --public-key {key}")
    return 0


def cmd_proof_consistency(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.verification.transparency import TransparencyError  # noqa: PLC0415

    with _ledger(settings) as ledger:
        try:
            proof = _tree(ledger).consistency_proof(args.old, args.new)
        except TransparencyError as exc:
            raise _user_error(str(exc)) from None
    _write(proof, args.out)
    note(f"the tree of {args.new} extends the tree of {args.old}: {len(proof['path'])} hashes")
    return 0


def register_proof(sub: Any) -> None:
    p = sub.add_parser(
        "proof",
        help="produce an inclusion or consistency proof for the standalone auditor",
        description="Produce Merkle proofs in the files auditor/auditor.py reads (see docs/auditing.md).",
    )
    kinds = p.add_subparsers(title="proofs", metavar="KIND", required=True)
    inc = _command(
        kinds,
        "inclusion",
        "prove that one event is in the tree a checkpoint signs",
        cmd_proof_inclusion,
        "Prove that one event is in the tree of --size events (default: the latest checkpoint's size).\n"
        "The proof file holds the leaf {position, stream, version, event_hash}, its index, the size\n"
        "and the RFC 9162 path. Check it with auditor/auditor.py and the matching checkpoint.",
    )
    which = inc.add_mutually_exclusive_group(required=True)
    which.add_argument("--position", type=int, help="the event's position in the ledger")
    which.add_argument("--event-id", help="the event's id (as in an accepted outcome)")
    which.add_argument("--stream", help="the subject key (with --version)")
    inc.add_argument("--version", type=int, help="the event's version in --stream")
    inc.add_argument("--size", type=int, help="prove against the tree of this many events")
    inc.add_argument("--out", metavar="FILE", help="write the proof here (default: stdout)")
    inc.add_argument("--checkpoint-out", metavar="FILE", help="also write the checkpoint of that size here")
    con = _command(
        kinds,
        "consistency",
        "prove that a later tree extends an earlier one",
        cmd_proof_consistency,
        "Prove that the tree of --new events extends the tree of --old events (nothing was altered,\n"
        "dropped or reordered between two checkpoints). Check it with auditor/auditor.py.",
    )
    con.add_argument("--old", type=int, required=True, help="the earlier checkpoint's size")
    con.add_argument("--new", type=int, required=True, help="the later checkpoint's size")
    con.add_argument("--out", metavar="FILE", help="write the proof here (default: stdout)")


# -- checkpoint, checkpoint-key ----------------------------------------------------------------


def cmd_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.verification.checkpoints import CheckpointLog, checkpoint_json  # noqa: PLC0415

    signer = _signer(settings)
    with _ledger(settings) as ledger:
        cp = _tree(ledger).checkpoint(signer)
    log = CheckpointLog.in_dir(settings.data_dir)
    log.append(cp)
    if args.publish:
        _publish(settings, args.topic, cp.key_id.encode(), checkpoint_json(cp))
    _emit(cp.to_dict())
    note(f"checkpoint of {cp.size} events signed by key {cp.key_id}, appended to {log.path}")
    return 0


def _publish(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    from streams.clients import send_records  # noqa: PLC0415

    if not settings.kafka_bootstrap:
        raise _user_error("--publish needs CREDIT_KAFKA_BOOTSTRAP or --kafka-bootstrap")
    send_records(settings.kafka_bootstrap, topic, [(key, value)])


def register_checkpoint(sub: Any) -> None:
    from contract.topics import DIGESTS  # noqa: PLC0415

    p = _command(
        sub,
        "checkpoint",
        "sign a checkpoint of the Merkle tree now and append it to DATA_DIR/checkpoints.jsonl",
        cmd_checkpoint,
        "Bring the Merkle tree up to the ledger's last event, sign its size and root with the\n"
        "operator's key (CREDIT_CHECKPOINT_KEY, or DATA_DIR/checkpoint-key.seed, made on first use),\n"
        "append the checkpoint to DATA_DIR/checkpoints.jsonl and print it. The relay publishes\n"
        "checkpoints by itself every 10,000 events or 60 s; this makes one on demand.",
    )
    p.add_argument("--publish", action="store_true", help="also send it to credit.digests")
    p.add_argument("--topic", default=DIGESTS, help=f"the digests topic for --publish (default {DIGESTS})")


def cmd_checkpoint_key(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.verification.checkpoints import key_source  # noqa: PLC0415

    signer = _signer(settings)
    _emit(
        {
            "algorithm": "Ed25519",
            "public_key": signer.public_key_hex,
            "key_id": signer.key_id,
            "source": key_source(settings.data_dir),
        }
    )
    note("publish this public key out of band (not only over this ledger's own channels): auditors trust it")
    return 0


def register_checkpoint_key(sub: Any) -> None:
    _command(
        sub,
        "checkpoint-key",
        "print the operator's checkpoint public key and key id (making the key on first use)",
        cmd_checkpoint_key,
        "Print the Ed25519 public key (hex) and key id that checkpoints are signed with. The private\n"
        "seed comes from CREDIT_CHECKPOINT_KEY (64 hex digits) or DATA_DIR/checkpoint-key.seed, which\n"
        "is written (mode 0600) on first use. Auditors need only the public key.",
    )


COMMANDS: list[Callable[[Any], None]] = [
    register_verify,
    register_proof,
    register_checkpoint,
    register_checkpoint_key,
]
"""Each registers one subcommand on the argparse sub-parsers (see credit_ledger.cli)."""
