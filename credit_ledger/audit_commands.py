"""Auditors' subcommands: verify the ledger, its Merkle tree and checkpoints; produce proofs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS: list[Callable[[Any], None]] = []
"""Each registers one subcommand on the argparse sub-parsers (see credit_ledger.cli)."""
