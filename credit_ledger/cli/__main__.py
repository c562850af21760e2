"""`python -m credit_ledger.cli`: how serve starts its child processes, and how tests run the command."""

import sys

from credit_ledger.cli import main

sys.exit(main())
