"""Handlers of /v1/proofs/, /checkpoint and /tile/: each hands its input to ``ProofService``."""

from __future__ import annotations

from streams.web.api import Api
from streams.web.calls import Call, Reply


async def checkpoints(api: Api, call: Call) -> Reply:
    """The signed checkpoints, oldest first (?limit=N for the latest N)."""
    return Reply(*await api.proofs.checkpoints(call.query))


async def inclusion(api: Api, call: Call) -> Reply:
    """?position=N or ?event_id=ID, and optionally &size=S: an inclusion proof."""
    return Reply(*await api.proofs.inclusion(call.query))


async def consistency(api: Api, call: Call) -> Reply:
    """?old=M&new=N: a consistency proof between two tree sizes."""
    return Reply(*await api.proofs.consistency(call.query))


async def public_key(api: Api, call: Call) -> Reply:
    """The operator's Ed25519 checkpoint key and its key id."""
    return Reply(*await api.proofs.public_key())


async def checkpoint_note(api: Api, call: Call) -> Reply:
    """The latest checkpoint as a C2SP signed note (text/plain)."""
    return await api.proofs.checkpoint_note()


async def tile(api: Api, call: Call) -> Reply:
    """A hash tile of the tree (application/octet-stream)."""
    return await api.proofs.tile(call.params["level"], call.params["index"])
