"""Bench only: ``credit-ledger serve`` whose ``POST /v1/checks`` does no work, for bench/checks.py --floor.

The check's handler reads the request's body and answers a constant ``{"result": "none"}`` at
once: no key lookup, no check, no query record. Everything else is serve as it runs: the
embedded broker, the relay, the projector, Faust's web server, ``streams.http``'s dispatch (its
request-size limit and error mapping), the request's and the answer's JSON. What a check costs
above this floor is what the check itself costs; what this floor costs, no faster check can save.

A bench's own server: an unauthenticated answer is never served by credit-ledger itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]  # bench/projections.py is no package

# isort: split
import streams.web.measures
from credit_ledger.cli import main
from ledger.application.queries import OK, Answer
from streams.web.api import Api
from streams.web.bodies import json_object
from streams.web.calls import Call, Reply
from streams.web.queries import reply


async def no_work(api: Api, call: Call) -> Reply:
    await json_object(call)
    return reply(Answer(OK, {"result": "none"}))


streams.web.measures.check = no_work

if __name__ == "__main__":
    sys.exit(main())
