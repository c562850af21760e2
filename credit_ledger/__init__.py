"""Composition root: configuration, wiring and the credit-ledger command line."""

from importlib.metadata import version

__version__ = version("credit-ledger")
