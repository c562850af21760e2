"""`witness serve` and `witness key`: a C2SP tlog-witness another body (an audit office, a court) runs
beside the ledger, cosigning its checkpoints only while they are consistent with what it saw."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from credit_ledger.cli.shared import UserError, command, group, with_settings
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note

if TYPE_CHECKING:
    from ledger.verification.notes import NoteSigner

NAME_HELP = "this witness's name, in its vkey and cosignatures (e.g. witness.audit.shanxi.example/w1)"
VKEY_EXAMPLE = "credit-ledger.shanxi/v1+7077f079+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"


@group(
    "witness",
    "run a witness: cosign a ledger's checkpoints only if its log only grew (C2SP tlog-witness)",
    "credit-ledger witness key --help",
    "credit-ledger witness serve --help",
)
def witness() -> None:
    """A witness keeps, per log, the latest checkpoint it cosigned, and cosigns a new one only with
    a consistency proof from it (see docs/auditing.md#running-a-witness)."""


name_option = click.option("--name", required=True, metavar="NAME", help=NAME_HELP)


@command(
    "serve",
    "serve add-checkpoint, and the latest checkpoint cosigned for each log, over HTTP",
    f"credit-ledger witness serve --name witness.audit.example/w1 --log {VKEY_EXAMPLE} --data-dir ./witness "
    "--http-port 9001",
)
@name_option
@click.option(
    "--log",
    "logs",
    multiple=True,
    required=True,
    metavar="VKEY",
    help="the vkey of a log to witness, named by its origin (checkpoint-key prints it); repeat",
)
@with_settings("data_dir", "http_host", "http_port")
def serve(settings: Settings, name: str, logs: tuple[str, ...]) -> int:
    """Answer POST /add-checkpoint (C2SP tlog-witness): a checkpoint of one of the --log keys,
    with the consistency proof from the size this witness last cosigned for that log, is cosigned
    (a cosignature/v1 line, C2SP tlog-cosignature) once the new state is on disk; one from another
    size, or of the size it holds with another root, is refused with 409 and the size it holds,
    one that does not extend it with 422. GET
    /<sha256 of the origin>/checkpoint serves the latest cosigned checkpoint to monitors and
    auditors (credit-ledger verify --from-witness). The key is CREDIT_WITNESS_KEY or
    DATA_DIR/witness-key.seed (made on first use); the state is DATA_DIR/witness-state.json, and
    refused checkpoints are kept as evidence in DATA_DIR/witness-refused.jsonl. Stops on Ctrl-C.
    """
    from credit_ledger.signals import run_until_signalled  # noqa: PLC0415 - keep --help fast
    from ledger.verification.notes import NoteError, VerifierKey  # noqa: PLC0415
    from ledger.verification.witness import Witness  # noqa: PLC0415
    from streams.witnessing import serve_witness  # noqa: PLC0415

    try:
        keys = [VerifierKey.parse(text) for text in logs]
        signer = _signer(name, settings)
        server = Witness(signer, keys, settings.data_dir)
    except (NoteError, ValueError) as exc:
        raise UserError(f"--log: {exc}") from None

    def listening(port: int) -> None:
        origins = ", ".join(sorted(server.origins))
        note(f"witness {name} cosigns {origins} at http://{settings.http_host}:{port}/add-checkpoint")
        note(f"its vkey (give it to the log's operator and to auditors): {signer.vkey}")

    host, port = settings.http_host, settings.http_port
    run_until_signalled(lambda stop: serve_witness(server, host, port, stop, listening))
    return 0


@command(
    "key",
    "print this witness's cosignature vkey (making its key on first use)",
    "credit-ledger witness key --name witness.audit.example/w1 --data-dir ./witness",
)
@name_option
@with_settings("data_dir")
def key(settings: Settings, name: str) -> int:
    """Print the witness's cosignature verifier key (signature type 0x04): the log's operator lists
    it in CREDIT_WITNESSES with the witness's URL, auditors in their --witness policy."""
    from ledger.verification.witness import KEY_FILE, KEY_VARIABLE  # noqa: PLC0415

    signer = _signer(name, settings)
    source = KEY_VARIABLE if settings.witness_key else str(settings.data_dir / KEY_FILE)
    json_line({"name": signer.name, "vkey": str(signer.vkey), "source": source})
    return 0


def _signer(name: str, settings: Settings) -> NoteSigner:
    from ledger.verification.checkpoints import KeyConfigError  # noqa: PLC0415
    from ledger.verification.notes import NoteError  # noqa: PLC0415
    from ledger.verification.witness import witness_signer  # noqa: PLC0415

    try:
        return witness_signer(name, settings.data_dir, settings.witness_key)
    except (KeyConfigError, NoteError) as exc:
        raise UserError(f"the witness key: {exc}") from None


witness.add_command(serve)
witness.add_command(key)

COMMANDS = (witness,)
