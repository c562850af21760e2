"""Composition root: configuration, wiring and the credit-ledger command line."""

__version__ = "0.1.0"
