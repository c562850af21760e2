"""The credit ledger: subjects, catalogue, the credit-file aggregate, integrity, and the application."""
