"""The application: the ledger service, submissions into commands, handlers, the query service, ports."""
