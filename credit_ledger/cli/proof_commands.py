"""Merkle proofs for the standalone auditor: proof inclusion, proof consistency."""

from __future__ import annotations

from collections.abc import Callable

import click

from credit_ledger.cli.audit_commands import caught_up_tree, configured_signer, open_ledger, write_json
from credit_ledger.cli.shared import LEDGER, Handler, UserError, command, group, with_settings
from credit_ledger.config import Settings
from credit_ledger.output import note

AUDITOR = "python auditor/auditor.py"


def out_option(what: str) -> Callable[[Handler], Handler]:
    return click.option("--out", metavar="FILE", help=f"write {what} here (default: stdout)")


@group(
    "proof",
    "produce an inclusion or consistency proof for the standalone auditor",
    "credit-ledger proof inclusion --position 3 --out proof.json --checkpoint-out cp.json",
    "credit-ledger proof consistency --old 5 --new 9 --out cons.json",
)
def proof() -> None:
    """Produce Merkle proofs in the files auditor/auditor.py reads (see docs/auditing.md)."""


@command(
    "inclusion",
    "prove that one event is in the tree a checkpoint signs",
    "credit-ledger proof inclusion --position 3 --out proof.json --checkpoint-out cp.json",
    "credit-ledger proof inclusion --event-id 2387a3b2-7a7f-5480-a94c-e3990b6c87a2",
    "credit-ledger proof inclusion --stream 1779b27b-d847-898d-8040-16126f21d2e5 --version 3",
)
@click.option("--position", type=int, metavar="N", help="the event's position in the ledger")
@click.option("--event-id", metavar="ID", help="the event's id (as in an accepted outcome)")
@click.option("--stream", metavar="KEY", help="the subject key (with --version)")
@click.option("--version", type=int, metavar="N", help="the event's version in --stream")
@click.option("--size", type=int, metavar="N", help="prove against the tree of this many events")
@out_option("the proof")
@click.option("--checkpoint-out", metavar="FILE", help="also write the checkpoint of that size here")
@with_settings(*LEDGER)
def inclusion(
    settings: Settings,
    position: int | None,
    event_id: str | None,
    stream: str | None,
    version: int | None,
    size: int | None,
    out: str | None,
    checkpoint_out: str | None,
) -> int:
    """Prove that one event (give one of --position, --event-id, or --stream with --version) is in
    the tree of --size events (default: the latest checkpoint's size). The proof file holds the
    leaf {position, stream, version, event_hash}, its index, the size and the RFC 9162 path. Check
    it with auditor/auditor.py and the matching checkpoint.
    """
    from ledger.verification.checkpoints import CheckpointLog  # noqa: PLC0415
    from ledger.verification.transparency import TransparencyError  # noqa: PLC0415

    which = (("--position", position), ("--event-id", event_id), ("--stream", stream))
    given = [flag for flag, value in which if value is not None]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise click.UsageError(f"give one of --position, --event-id or --stream{got}")
    if (stream is None) != (version is None):
        raise UserError("--stream and --version go together")
    log = CheckpointLog.in_dir(settings.data_dir)
    with open_ledger(settings) as ledger:
        tree = caught_up_tree(ledger)
        try:
            if position is not None:
                index = tree.index_of(position)
            elif event_id is not None:
                index = tree.index_of_event_id(event_id)
            else:
                assert stream is not None  # checked above: --stream, and with it --version
                assert version is not None
                index = tree.index_of_event(stream, version)
            if size is None:
                latest = log.latest()
                if latest is None or latest.size <= index:
                    newest = f"the latest has size {latest.size}" if latest else "there is none"
                    raise UserError(
                        f"the event is leaf {index}, not yet covered by a checkpoint ({newest}): "
                        "run 'credit-ledger checkpoint', or give --size"
                    )
                size = latest.size
            found = tree.inclusion_proof_at(index, size)
        except TransparencyError as exc:
            raise UserError(str(exc)) from None
    write_json(found, out)
    leaf = found["leaf"]
    note(
        f"stream {leaf['stream']} version {leaf['version']} (position {leaf['position']}) is leaf "
        f"{found['index']} of the tree of {found['size']}"
    )
    cp = log.find(size)
    if checkpoint_out:
        if cp is None:
            raise UserError(f"no checkpoint of size {size} in {log.path}")
        write_json(cp.to_dict(), checkpoint_out)
    if out and out != "-":
        # A checkpoint file the auditor can be handed: the one just written, else the latest note.
        cp_file = checkpoint_out or "cp.note"
        signer = configured_signer(settings)
        key = str(signer.vkey(settings.log_origin)) if signer is not None else "VKEY"
        note(f"check it with: {AUDITOR} inclusion {out} --checkpoint {cp_file} --public-key {key}")
        if not checkpoint_out:
            note("  (cp.note: the latest checkpoint: 'credit-ledger checkpoint --note', or GET /checkpoint)")
    return 0


@command(
    "consistency",
    "prove that a later tree extends an earlier one",
    "credit-ledger proof consistency --old 5 --new 9 --out cons.json",
)
@click.option("--old", type=int, metavar="N", required=True, help="the earlier checkpoint's size")
@click.option("--new", type=int, metavar="N", required=True, help="the later checkpoint's size")
@out_option("the proof")
@with_settings(*LEDGER)
def consistency(settings: Settings, old: int, new: int, out: str | None) -> int:
    """Prove that the tree of --new events extends the tree of --old events (nothing was altered,
    dropped or reordered between two checkpoints). Check it with auditor/auditor.py.
    """
    from ledger.verification.transparency import TransparencyError  # noqa: PLC0415

    with open_ledger(settings) as ledger:
        try:
            found = caught_up_tree(ledger).consistency_proof(old, new)
        except TransparencyError as exc:
            raise UserError(str(exc)) from None
    write_json(found, out)
    note(f"the tree of {new} extends the tree of {old}: {len(found['path'])} hashes")
    return 0


proof.add_command(inclusion)
proof.add_command(consistency)


COMMANDS = (proof,)
