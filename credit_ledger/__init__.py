"""Composition root: configuration, wiring and the credit-ledger command line."""
