"""Read models: pure folds of ledger events into status, lists and audit views."""
