"""The credit-ledger command line: one entry point, a subcommand per job (click)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from credit_ledger import __version__
from credit_ledger.cli import (
    access_commands,
    audit_commands,
    client_commands,
    ledger_commands,
    measure_commands,
    process_commands,
    proof_commands,
    read_commands,
    witness_commands,
)
from credit_ledger.cli.shared import Group, UserError, examples
from credit_ledger.config import VARIABLES, ConfigError
from credit_ledger.output import note
from ledger.domain.errors import LedgerError

ENVIRONMENT_ONLY = "(environment only: keep secrets off the command line)"
DESCRIPTION = """\
credit-ledger: an event-sourced, verifiable ledger of personal public-credit records.

Departments publish credit events (records, corrections, objections, repairs, expiries, list
designations); the ledger keeps every event forever in hash-chained streams, one per subject;
stream processing turns them into status, red and black lists and an audit trail. With no
configuration it runs on one machine: SQLite files in ./data and an embedded Kafka-compatible
broker.

Machine-readable output is JSON lines on stdout (--json where the default is a table);
diagnostics go to stderr; the exit status is non-zero on error (2: a usage or configuration
error).
"""

CONFIGURATION = "\n".join(
    ["\b", "Configuration (environment variable = option of the commands that use it):"]
    + [f"  {v.env:<28} {v.flag if v.option else ENVIRONMENT_ONLY}" for v in VARIABLES]
)

EPILOG = (
    CONFIGURATION
    + "\n\n"
    + examples("credit-ledger demo", "credit-ledger serve --help", "credit-ledger status --help")
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("credit-ledger", cls=Group, help=DESCRIPTION, epilog=EPILOG, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="credit-ledger", message="%(prog)s %(version)s")
def credit_ledger() -> None:
    """The root of every command (its help is DESCRIPTION)."""


for module in (
    process_commands,
    client_commands,
    ledger_commands,
    read_commands,
    measure_commands,
    audit_commands,
    proof_commands,
    witness_commands,
    access_commands,
):
    for subcommand in module.COMMANDS:
        credit_ledger.add_command(subcommand)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit status per kind of failure
    """Run one command line. Exit status: 0 done, 1 failed, 2 misused or misconfigured, 130 interrupted."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with credit_ledger.make_context("credit-ledger", args) as ctx:
            return int(credit_ledger.invoke(ctx) or 0)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.ClickException as exc:  # a usage error: it names the option or argument
        exc.show()
        return exc.exit_code
    except ConfigError as exc:
        note(f"credit-ledger: configuration error: {exc}")
        return 2
    except (KeyboardInterrupt, click.Abort):
        return 130
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away (| head): nothing more to say, and no noise at exit
        return 0
    except UserError as exc:
        note(f"credit-ledger: {exc}")
        return 1
    except LedgerError as exc:  # the ledger refused something the user gave it
        note(f"credit-ledger: {exc.code}: {exc.message}")
        return 1
    except Exception as exc:
        if not is_infrastructure(exc):
            raise  # a bug: its traceback is what a report of it needs
        note(f"credit-ledger: {type(exc).__name__}: {exc}")
        return 1


def is_infrastructure(exc: Exception) -> bool:
    """A failure of something outside the program the user can act on (a broker not reachable, a port
    in use, a disk full): said in one line, without a traceback."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("kafka", "aiokafka", "streams")


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
